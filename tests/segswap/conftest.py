"""A random-weight PyTorch SegSwap (real layer sizes), saved like the released checkpoint and converted."""

import numpy as np
import pytest
import torch

from artdup_jax.convert import load_torch_checkpoint
from baselines.torch.randomise import randomise_batchnorm
from baselines.torch import segswap as reference


def randomise(backbone: torch.nn.Module, encoder: torch.nn.Module, seed: int):
    """Random BN statistics/affines, LayerNorm affines and biases, so no layer is a near-identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        randomise_batchnorm(backbone, generator)
        for module in encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.2)
            if isinstance(module, torch.nn.MultiheadAttention):  # PyTorch initialises these biases to 0
                module.in_proj_bias.normal_(0.0, 0.2, generator=generator)
                module.out_proj.bias.normal_(0.0, 0.2, generator=generator)
    return backbone.eval(), encoder.eval()


def calibrate_head(backbone: torch.nn.Module, encoder: torch.nn.Module, seed: int):
    """Rescale ``final_linear`` so that each output logit has mean 0 and std 1 over the cells of a random pair.

    With random weights the tokens of all cells are similar, which would leave every output near one value
    (and where the sigmoid is flat, parity errors would be hidden).
    """
    images = nchw(random_images(seed, (2, 64, 64, 3)))
    head = encoder.net.final_linear
    logits = []
    handle = head.register_forward_hook(lambda module, inputs, output: logits.append(output))
    with torch.no_grad():
        features = reference.features(backbone, images)
        encoder(features[:1], features[1:])
        handle.remove()
        out = torch.cat([logits[0], logits[1]], dim=0).transpose(0, 1).flatten(1)  # (3, cells)
        mean, std = out.mean(1), out.std(1)
        head.weight.div_(std[:, None, None, None])
        head.bias.sub_(mean).div_(std)
    return backbone, encoder


@pytest.fixture(scope="session")
def torch_segswap():
    """(backbone, encoder) in eval mode, the released "small" configuration."""
    torch.manual_seed(30)
    backbone, encoder = randomise(reference.resnet50_layer3(), reference.TransEncoder(), seed=31)
    return calibrate_head(backbone, encoder, seed=32)


@pytest.fixture(scope="session")
def released_checkpoint(torch_segswap):
    return reference.released_checkpoint(*torch_segswap)


@pytest.fixture(scope="session")
def released_pth(released_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("segswap") / "hard_mining_random.pth"
    torch.save(released_checkpoint, path)
    return path


@pytest.fixture(scope="session")
def segswap_variables(released_pth):
    return load_torch_checkpoint("segswap", released_pth)


def random_images(seed: int, shape) -> np.ndarray:
    """(B, H, W, 3) float32 in [0, 1]: blocky structure plus noise."""
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    coarse = rng.uniform(size=(b, h // 16 + 1, w // 16 + 1, c))
    smooth = np.kron(coarse, np.ones((1, 16, 16, 1)))[:, :h, :w]
    return np.clip(0.7 * smooth + 0.3 * rng.uniform(size=shape), 0, 1).astype(np.float32)


def random_features(seed: int, shape) -> np.ndarray:
    """(B, h, w, C) float32, L2-normalised over C, non-negative like ReLU features."""
    features = np.abs(np.random.default_rng(seed).normal(size=shape))
    return (features / np.linalg.norm(features, axis=-1, keepdims=True)).astype(np.float32)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def nhwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().transpose(0, 2, 3, 1)
