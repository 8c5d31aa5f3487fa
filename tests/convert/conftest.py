import numpy as np
import pytest
import torch
import torchvision

from baselines.torch.randomise import randomise_batchnorm

SEEDS = {"resnet18": 10, "resnet34": 11, "resnet50": 12}


def make_torch_resnet(arch: str) -> torch.nn.Module:
    """torchvision ``arch`` with random weights and random BN statistics, in eval mode."""
    torch.manual_seed(SEEDS[arch])
    return randomise_batchnorm(getattr(torchvision.models, arch)(), seed=SEEDS[arch]).eval()


def numpy_state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def resnet18_pth(tmp_path_factory):
    """(torch model, path of its state_dict saved with torch.save)."""
    model = make_torch_resnet("resnet18")
    path = tmp_path_factory.mktemp("resnet18") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path
