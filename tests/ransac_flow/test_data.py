"""Synthetic and MegaDepth-layout training pairs."""

import numpy as np
from PIL import Image

from artdup_jax.geometry.sampling import grid_sample
from artdup_jax.ransac_flow.data import MegaDepthPairs, synthetic_pair


def test_true_grid_warps_image_1_onto_image_2():
    pair = synthetic_pair(3, seed=0, size=64, max_shift=0.1, deformation=3.0, jitter=False)
    warped = np.asarray(grid_sample(pair["image_1"][None], pair["grid_2_to_1"][None], align_corners=True))[0]
    inside = np.all(np.abs(pair["grid_2_to_1"]) < 0.95, axis=-1)
    error = np.abs(warped - pair["image_2"])[inside].mean()
    identity_error = np.abs(pair["image_1"] - pair["image_2"])[inside].mean()
    assert error < 0.02 and error < 0.5 * identity_error


def test_pairs_are_reproducible_and_differ_by_index():
    a, b = (synthetic_pair(5, seed=1, size=32, max_shift=0.05, deformation=1.0) for _ in range(2))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image_2"], synthetic_pair(6, seed=1, size=32, max_shift=0.05,
                                                           deformation=1.0)["image_2"])


def test_megadepth_layout_gives_same_size_crops_of_distinct_members(tmp_path):
    rng = np.random.default_rng(0)
    for group in range(2):
        for member in (1, 2, 3):
            Image.fromarray(rng.integers(0, 255, (90, 120, 3), np.uint8)).save(tmp_path / f"{group}_{member}.jpg")
    reader = MegaDepthPairs(str(tmp_path), size=64)
    groups = reader.groups()
    assert len(groups) == 2 and all(len(g) == 3 for g in groups)
    example = reader.example(0, seed=0, groups=groups)
    assert example["image_1"].shape == example["image_2"].shape == (64, 64, 3)
    assert not np.array_equal(example["image_1"], example["image_2"])
