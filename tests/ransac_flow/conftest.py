"""A random-weight PyTorch port of the fine network, saved like a released checkpoint and converted."""

import numpy as np
import pytest
import torch

from artdup_jax.convert import load_torch_checkpoint
from baselines.torch.randomise import randomise_batchnorm
from baselines.torch.ransac_flow_fine import FineNetworkTorch


def randomise(net: FineNetworkTorch, seed: int) -> FineNetworkTorch:
    """Random BN affine parameters and running statistics; a non-trivial matchability head."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        randomise_batchnorm(net, generator)
        # The spec's N(0, 1e-4) init makes the matchability ~0.5 everywhere, which would test nothing.
        net.netMatch.conv4.weight.normal_(0.0, 0.03, generator=generator)
    return net.eval()


@pytest.fixture(scope="session")
def torch_fine_network():
    torch.manual_seed(20)
    return randomise(FineNetworkTorch(), seed=21)


@pytest.fixture(scope="session")
def released_pth(torch_fine_network, tmp_path_factory):
    """Path of the 4-entry checkpoint dict (netFeatCoarse, netCorr, netFlowCoarse, netMatch)."""
    path = tmp_path_factory.mktemp("ransac_flow") / "MegaDepth_random.pth"
    torch.save(torch_fine_network.released_checkpoint(), path)
    return path


@pytest.fixture(scope="session")
def fine_variables(released_pth):
    return load_torch_checkpoint("ransac_flow", released_pth)


def random_images(seed: int, shape=(2, 48, 64, 3)) -> np.ndarray:
    """(B, H, W, 3) float32 in [0, 1]: smooth structure plus noise, so correlations have clear peaks."""
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    coarse = rng.uniform(size=(b, h // 8 + 1, w // 8 + 1, c))
    smooth = np.kron(coarse, np.ones((1, 8, 8, 1)))[:, :h, :w]
    return np.clip(0.7 * smooth + 0.3 * rng.uniform(size=shape), 0, 1).astype(np.float32)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
