"""fine_flow / refine against the PyTorch port, through a released-format checkpoint."""

import numpy as np
import pytest
import torch

from artdup_jax.convert import CheckpointMismatchError, load_torch_checkpoint
from artdup_jax.ransac_flow import fine_flow, refine
from baselines.torch import ransac_flow_fine as reference
from tests.ransac_flow.conftest import nchw, random_images

TOLERANCE = 1e-4


def max_abs_error(name, got, expected):
    got = np.asarray(got)
    assert got.shape == expected.shape, name
    error = float(np.abs(got - expected).max())
    print(f"\n{name}: max abs err {error:.3g} (max |value| {np.abs(expected).max():.3g})")
    return error


def test_fine_flow_matches_torch(torch_fine_network, fine_variables):
    source, target = random_images(1), random_images(2)
    expected = reference.fine_flow(torch_fine_network, nchw(source), nchw(target))
    got = fine_flow(fine_variables, source, target)
    assert max_abs_error("residual", got["residual"], expected["residual"].numpy().transpose(0, 2, 3, 1)) <= TOLERANCE
    assert max_abs_error(
        "matchability", got["matchability"], expected["matchability"].numpy().transpose(0, 2, 3, 1)
    ) <= TOLERANCE
    assert max_abs_error("grid", got["grid"], expected["grid"].numpy()) <= TOLERANCE


def test_refine_matches_torch_with_a_near_identity_homography(torch_fine_network, fine_variables):
    rng = np.random.default_rng(3)
    homography = (np.eye(3) + rng.normal(scale=[[0.05, 0.05, 0.1], [0.05, 0.05, 0.1], [0.02, 0.02, 0]])).astype(
        np.float32
    )
    source, target = random_images(4), random_images(5)
    expected = reference.refine(torch_fine_network, nchw(source), nchw(target), torch.from_numpy(homography))
    got = refine(fine_variables, source, target, homography)
    assert max_abs_error("refine grid", got["grid"], expected["grid"].numpy()) <= TOLERANCE
    assert max_abs_error("refine matchability", got["matchability"], expected["matchability"].numpy()) <= TOLERANCE
    assert 0 < np.mean(np.asarray(got["matchability"]) > 0) < 1  # the in-bounds factor did cut somewhere


def test_checkpoint_missing_a_key_names_it(torch_fine_network, tmp_path):
    checkpoint = torch_fine_network.released_checkpoint()
    del checkpoint["netFlowCoarse"]["bn2.running_var"]
    path = tmp_path / "broken.pth"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match=r"missing: netFlowCoarse\.bn2\.running_var"):
        load_torch_checkpoint("ransac_flow", path)


def test_checkpoint_with_an_unknown_key_names_it(torch_fine_network, tmp_path):
    checkpoint = torch_fine_network.released_checkpoint()
    checkpoint["netMatch"]["conv5.weight"] = torch.zeros(1, 1, 3, 3)
    path = tmp_path / "extra.pth"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected: netMatch\.conv5\.weight"):
        load_torch_checkpoint("ransac_flow", path)


def test_checkpoint_with_a_modified_blur_filter_is_rejected(torch_fine_network, tmp_path):
    checkpoint = torch_fine_network.released_checkpoint()
    checkpoint["netFeatCoarse"]["layer3.0.downsample.0.filt"] = torch.full((128, 1, 3, 3), 1 / 9)
    path = tmp_path / "blur.pth"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match=r"layer3\.0\.downsample\.0\.filt"):
        load_torch_checkpoint("ransac_flow", path)


def test_refine_matches_torch_with_per_pair_homographies_and_a_larger_source(torch_fine_network, fine_variables):
    rng = np.random.default_rng(6)
    homographies = (np.eye(3) + rng.normal(scale=0.03, size=(2, 3, 3)) * [[1, 1, 2], [1, 1, 2], [0.5, 0.5, 0]])
    homographies = homographies.astype(np.float32)
    source, target = random_images(7, shape=(2, 96, 128, 3)), random_images(8)
    expected = reference.refine(torch_fine_network, nchw(source), nchw(target), torch.from_numpy(homographies))
    got = refine(fine_variables, source, target, homographies)
    assert max_abs_error("refine grid (B,3,3)", got["grid"], expected["grid"].numpy()) <= TOLERANCE
    assert max_abs_error(
        "refine matchability (B,3,3)", got["matchability"], expected["matchability"].numpy()
    ) <= TOLERANCE
