import numpy as np
import pytest
import torch

from baselines.torch import adain as torch_adain


def _he_initialised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights that keep activations O(1) through the stack, so relative errors mean something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * np.sqrt(2.0 / fan_in))
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
    return module.eval()


@pytest.fixture(scope="session")
def torch_networks():
    """(full 53-module vgg, decoder) with random weights, in the official module layout."""
    return _he_initialised(torch_adain.vgg(), seed=1), _he_initialised(torch_adain.decoder(), seed=2)


@pytest.fixture(scope="session")
def official_files(torch_networks, tmp_path_factory):
    """(vgg_normalised.pth, decoder.pth) saved as the official files: plain Sequential state dicts."""
    vgg, decoder = torch_networks
    folder = tmp_path_factory.mktemp("adain")
    torch.save(vgg.state_dict(), folder / "vgg_normalised.pth")
    torch.save(decoder.state_dict(), folder / "decoder.pth")
    return folder / "vgg_normalised.pth", folder / "decoder.pth"


@pytest.fixture(scope="session")
def converted(official_files):
    from artdup_jax.convert import load_torch_checkpoint

    return load_torch_checkpoint("adain", official_files)
