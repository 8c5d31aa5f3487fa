import pytest


@pytest.fixture(scope="session")
def resnet18_checkpoint(tmp_path_factory):
    """A torchvision ResNet-18 state dict saved with torch.save: the 'artminer' / 'resnet18' families'."""
    torch = pytest.importorskip("torch")  # only the checkpoint tests need PyTorch (requirements-torch.txt)
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path
