"""Random-weight PyTorch models and the same weights as JAX variables, for the network stages.

Each builder returns the PyTorch module(s) in eval mode on the requested device and the Flax variables
converted from their state_dict by ``artdup_jax.convert`` (the path released checkpoints take), so both
frameworks compute the same function. BatchNorm statistics and affines are randomised: with PyTorch's
defaults every BN would be a near-identity and an agreement check would test less.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
import torchvision
from torch import nn

from artdup_jax.convert import convert_state_dict
from baselines.torch.randomise import randomise_batchnorm


def state_dict_numpy(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """A (nested) state_dict -> flat ``{"a.b.weight": ndarray}``, as ``convert.read_state_dict`` flattens files."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(state_dict_numpy(value, f"{prefix}{key}."))
        elif isinstance(value, torch.Tensor):
            flat[f"{prefix}{key}"] = value.detach().cpu().numpy()
    return flat


def artminer(device, seed: int = 0):
    """ArtMiner's ResNet-18 ``layer3`` network: ``(ArtMinerNet, variables)``."""
    from baselines.torch.artminer import ArtMinerNet

    torch.manual_seed(seed)
    net = ArtMinerNet(randomise_batchnorm(torchvision.models.resnet18(), seed + 1)).eval()
    variables = convert_state_dict("artminer", state_dict_numpy(net.state_dict()))
    return net.to(device), variables


def resnet50_layer3(device, seed: int = 0):
    """torchvision ResNet-50 cut after ``layer3`` (RANSAC-Flow's coarse backbone):
    ``(nn.Sequential trunk, variables of resnet50(last_stage="layer3"))``."""
    torch.manual_seed(seed)
    resnet = randomise_batchnorm(torchvision.models.resnet50(), seed + 1).eval()
    variables = convert_state_dict("resnet50", state_dict_numpy(resnet.state_dict()), last_stage="layer3")
    trunk = nn.Sequential(*list(resnet.children())[:7]).eval()
    return trunk.to(device), variables


def segswap(device, seed: int = 0):
    """SegSwap (ResNet-50 ``layer3`` backbone + the released "small" transformer): ``(backbone, encoder,
    variables)``. LayerNorm affines and attention biases are randomised too, and the head is rescaled so that
    the outputs vary over the cells (``calibrate_segswap_head``)."""
    from baselines.torch import segswap as reference

    torch.manual_seed(seed)
    backbone = randomise_batchnorm(reference.resnet50_layer3(), seed + 1).eval()
    encoder = reference.TransEncoder().eval()
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.2)
            if isinstance(module, nn.MultiheadAttention):
                module.in_proj_bias.normal_(0.0, 0.2, generator=generator)
                module.out_proj.bias.normal_(0.0, 0.2, generator=generator)
    calibrate_segswap_head(encoder, seed + 3)
    checkpoint = {"backbone": backbone.state_dict(), "encoder": encoder.state_dict()}
    variables = convert_state_dict("segswap", state_dict_numpy(checkpoint))
    return backbone.to(device), encoder.to(device), variables


def unit_features(seed: int, shape) -> np.ndarray:
    """``(B, h, w, C)`` float32, non-negative like ReLU features, L2-normalised over C."""
    features = np.abs(np.random.default_rng(seed).normal(size=shape)).astype(np.float32)
    return features / np.linalg.norm(features, axis=-1, keepdims=True)


@torch.no_grad()
def calibrate_segswap_head(encoder: nn.Module, seed: int) -> None:
    """Rescale ``final_linear`` so that each output logit has mean 0 and std 1 over the cells of a random
    pair. With random weights the tokens of all cells are alike, and the outputs would be nearly constant."""
    features = torch.from_numpy(unit_features(seed, (2, 8, 8, 1024)).transpose(0, 3, 1, 2).copy())
    head = encoder.net.final_linear
    logits = []
    handle = head.register_forward_hook(lambda module, inputs, output: logits.append(output))
    encoder(features[:1], features[1:])
    handle.remove()
    out = torch.cat(logits, dim=0).transpose(0, 1).flatten(1)  # (3, cells)
    mean, std = out.mean(1), out.std(1)
    head.weight.div_(std[:, None, None, None])
    head.bias.sub_(mean).div_(std)


def fine_network(device, seed: int = 0):
    """RANSAC-Flow's fine network (``netFeatCoarse``, ``netFlowCoarse``, ``netMatch``): ``(FineNetworkTorch,
    variables)``. The matchability head gets weights large enough to vary (its spec init is N(0, 1e-4))."""
    from baselines.torch.ransac_flow_fine import FineNetworkTorch

    torch.manual_seed(seed)
    net = randomise_batchnorm(FineNetworkTorch(), seed + 1)
    with torch.no_grad():
        net.netMatch.conv4.weight.normal_(0.0, 0.03, generator=torch.Generator().manual_seed(seed + 2))
    net.eval()
    variables = convert_state_dict("ransac_flow", state_dict_numpy(net.released_checkpoint()))
    return net.to(device), variables


@functools.cache
def smooth_images(seed: int, shape: tuple[int, int, int, int], cell: int = 8) -> np.ndarray:
    """``(B, H, W, 3)`` float32 in [0, 1]: blocky structure plus noise, like pictures rather than white noise
    (correlations and matches get clear peaks). Cached and read-only: stages share inputs."""
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    coarse = rng.uniform(size=(b, h // cell + 1, w // cell + 1, c))
    smooth = np.repeat(np.repeat(coarse, cell, axis=1), cell, axis=2)[:, :h, :w]
    images = np.clip(0.7 * smooth + 0.3 * rng.uniform(size=shape), 0, 1).astype(np.float32)
    images.flags.writeable = False
    return images


def nchw(images: np.ndarray, device) -> torch.Tensor:
    """``(B, H, W, C)`` NumPy -> contiguous ``(B, C, H, W)`` tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))).to(device)


def default_device(device):
    """Context making ``device`` PyTorch's default for new tensors, for ports that create helper tensors
    (identity grids, SSIM windows) without a device argument. A no-op on CPU, where it would only add the
    cost of a Python function mode to every op."""
    if torch.device(device).type == "cpu":
        return contextlib.nullcontext()
    return torch.device(device)
