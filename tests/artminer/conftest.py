"""Shared fixtures: a random-weight ArtMiner network saved in the release's layout, and tiny collections."""

import numpy as np
import pytest
import torch
import torchvision

from artdup_jax.convert import load_torch_checkpoint
from artdup_jax.data.synthetic_collection import make_collection
from baselines.torch.artminer import ArtMinerNet
from baselines.torch.randomise import randomise_batchnorm

# Small everywhere: 2 shared CPU cores. Images of 128x160 px hold details of 40-50% of their longer side,
# which the 8-cell query block meets at 16-20 cells on the image's longer side.
IMAGE_SIZE = (128, 160)
SCALES = (20, 16)


@pytest.fixture(scope="session")
def torch_net():
    """ArtMinerNet (state_dict keys ``model.*``) with random weights and random BN statistics, eval mode."""
    torch.manual_seed(30)
    return ArtMinerNet(randomise_batchnorm(torchvision.models.resnet18(), seed=31)).eval()


@pytest.fixture(scope="session")
def released_pth(torch_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("artminer") / "brueghelModel_random.pth"
    torch.save(torch_net.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def variables(released_pth):
    return load_torch_checkpoint("artminer", released_pth)


@pytest.fixture(scope="session")
def exact_copies(tmp_path_factory):
    """2 categories x 3 copies (rescaled, aspect-jittered, moved, same colours) + 2 distractors.

    Random-weight features need exact copies that carry some of their surroundings and stay off the image
    border (zero padding makes border cells look alike): with those, detection is reliable across network and
    collection seeds (checked for 3 x 3 seeds), so the test checks the pipeline, not luck.
    """
    return make_collection(tmp_path_factory.mktemp("exact_copies"), seed=0, num_categories=2,
                           instances_per_category=3, num_distractors=2, image_size=IMAGE_SIZE,
                           detail_fraction=(0.4, 0.5), aspect_jitter=0.1, style_strength=0.0, context=0.3,
                           border=16)


def random_images(seed: int, shape) -> np.ndarray:
    """(B, H, W, 3) float32 in [0, 1] with smooth structure, like real pictures."""
    rng = np.random.default_rng(seed)
    b, h, w, _ = shape
    coarse = rng.uniform(size=(b, h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    smooth = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :h, :w]
    return np.clip(0.7 * smooth + 0.3 * rng.uniform(size=shape), 0, 1).astype(np.float32)
