"""torchvision ResNets (random weights, random BN statistics, eval mode) -> .pth -> converter -> same features."""

import functools

import jax
import numpy as np
import pytest
import torch

from artdup_jax.convert import build_model, load_torch_checkpoint
from tests.convert.conftest import make_torch_resnet
from tests.nn.torch_reference import torchvision_trunk


def compare(family, torch_model, pth, last_stage, shape):
    variables = load_torch_checkpoint(family, pth, last_stage=last_stage)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        expected = torchvision_trunk(torch_model, torch.from_numpy(x), last_stage).numpy().transpose(0, 2, 3, 1)
    apply = jax.jit(functools.partial(build_model(family, last_stage=last_stage).apply, train=False))
    got = np.asarray(apply(variables, x.transpose(0, 2, 3, 1)))
    assert got.shape == expected.shape
    error, scale = np.abs(got - expected).max(), np.abs(expected).max()
    print(f"\n{family} {last_stage} {shape}: max abs err {error:.3g}, max|torch| {scale:.3g}, relative {error / scale:.3g}")
    assert error <= 1e-4 * scale


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_layer3_features_match_torchvision(arch, tmp_path):
    model = make_torch_resnet(arch)
    torch.save(model.state_dict(), tmp_path / f"{arch}.pth")
    compare(arch, model, tmp_path / f"{arch}.pth", "layer3", (2, 3, 64, 64))


def test_layer4_cut_matches_torchvision(resnet18_pth):
    compare("resnet18", *resnet18_pth, "layer4", (2, 3, 64, 64))


def test_odd_input_size_matches_torchvision(resnet18_pth):
    # Odd sizes at every stride-2 step: catches any asymmetric ("SAME"-style) padding.
    compare("resnet18", *resnet18_pth, "layer3", (1, 3, 63, 45))
