"""ArtMiner features: checkpoint layouts, key validation and parity with PyTorch's layer3."""

import jax
import numpy as np
import pytest
import torch
import torchvision

from artdup_jax.artminer import features, init_variables, l2_normalise, load_weights, pixels_for_cells
from artdup_jax.convert import CheckpointMismatchError, convert_state_dict, load_torch_checkpoint, save_variables
from baselines.torch.artminer import to_input
from tests.artminer.conftest import random_images


def _numpy_state_dict(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _assert_same_variables(a, b):
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (_, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_released_layout_has_model_prefix_and_no_layer4(released_pth):
    keys = torch.load(released_pth, weights_only=True).keys()
    assert all(k.startswith("model.") for k in keys)
    assert not any("layer4" in k or k.startswith("model.fc") for k in keys)


@pytest.mark.parametrize("shape", [(2, 63, 47, 3), (1, 79, 111, 3)])
def test_features_match_torch_layer3(torch_net, variables, shape):
    images = random_images(1, shape)
    with torch.no_grad():
        expected = torch_net(torch.cat([to_input((im * 255).round().astype(np.uint8)) for im in images]))
    expected = expected.numpy().transpose(0, 2, 3, 1)
    got = np.asarray(features(variables, np.round(images * 255) / 255))
    assert got.shape == expected.shape == (shape[0], -(-shape[1] // 16), -(-shape[2] // 16), 256)
    error, scale = np.abs(got - expected).max(), np.abs(expected).max()
    print(f"\nartminer features {shape}: max abs err {error:.3g}, max|torch| {scale:.3g}, relative {error / scale:.3g}")
    assert error <= 1e-4 * scale


def test_torchvision_imagenet_layout_loads_like_the_released_one(torch_net, variables, tmp_path):
    # A full torchvision resnet18 (layer4, fc, num_batches_tracked) holding the same trunk weights.
    resnet = torchvision.models.resnet18()
    resnet.load_state_dict({**resnet.state_dict(), **{k[len("model."):]: v for k, v in torch_net.state_dict().items()}})
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    _assert_same_variables(load_torch_checkpoint("artminer", tmp_path / "resnet18.pth"), variables)


def test_missing_key_is_named(torch_net):
    state = _numpy_state_dict(torch_net)
    del state["model.layer3.1.bn2.running_var"]
    with pytest.raises(CheckpointMismatchError, match=r"missing: layer3\.1\.bn2\.running_var"):
        convert_state_dict("artminer", state)


def test_unexpected_and_mis_shaped_keys_are_named(torch_net):
    state = _numpy_state_dict(torch_net)
    state["model.layer3.1.conv3.weight"] = np.zeros((256, 256, 1, 1), np.float32)
    state["model.conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    with pytest.raises(CheckpointMismatchError) as info:
        convert_state_dict("artminer", state)
    assert "unexpected: layer3.1.conv3.weight (shape (256, 256, 1, 1))" in info.value.problems
    assert "wrong shape: conv1.weight (expected (64, 3, 7, 7), got (64, 3, 3, 3))" in info.value.problems


def test_a_file_mixing_both_layouts_is_refused(torch_net):
    state = _numpy_state_dict(torch_net)
    state["conv1.weight"] = state["model.conv1.weight"]
    with pytest.raises(CheckpointMismatchError, match="duplicate: model.conv1.weight and conv1.weight"):
        convert_state_dict("artminer", state)


def test_load_weights_reads_pth_and_converted_directory(released_pth, variables, tmp_path):
    _assert_same_variables(load_weights(released_pth), variables)
    save_variables(variables, tmp_path / "converted")
    _assert_same_variables(load_weights(tmp_path / "converted"), variables)
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "absent.pth")


@pytest.mark.parametrize("cells", [(1, 1), (3, 5)])
def test_16n_minus_1_pixels_give_n_cells(cells):
    rows, cols = cells
    out = features(init_variables(0), np.zeros((1, pixels_for_cells(rows), pixels_for_cells(cols), 3), np.float32))
    assert out.shape == (1, rows, cols, 256)
    assert float(out.min()) >= 0.0  # post-ReLU


def test_l2_normalise_per_cell_and_per_block():
    x = np.random.default_rng(0).uniform(size=(3, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(l2_normalise(x)), axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(l2_normalise(x, axis=(-3, -2, -1)))), 1.0, rtol=1e-6)
