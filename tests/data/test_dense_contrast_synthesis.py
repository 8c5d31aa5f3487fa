"""Synthetic pairs: the cell targets follow the homography, and examples are reproducible."""

import numpy as np

from artdup_jax.dense_contrast.data import cell_targets, make_pair


def test_identity_homography_maps_every_cell_to_itself():
    np.testing.assert_array_equal(cell_targets(np.eye(3), 32, 8), np.arange(16))


def test_translation_by_one_cell_shifts_targets_and_drops_the_last_column():
    shift = np.array([[1, 0, 8], [0, 1, 0], [0, 0, 1]], float)
    targets = cell_targets(shift, 32, 8).reshape(4, 4)
    np.testing.assert_array_equal(targets[:, :3], np.arange(16).reshape(4, 4)[:, 1:])
    assert (targets[:, 3] == -1).all()


def test_pairs_are_a_function_of_seed_and_index():
    a = make_pair(7, seed=1, image_size=32, stride=4, max_corner_shift=0.1)
    b = make_pair(7, seed=1, image_size=32, stride=4, max_corner_shift=0.1)
    c = make_pair(8, seed=1, image_size=32, stride=4, max_corner_shift=0.1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image_a"], c["image_a"])
    assert a["image_a"].shape == (32, 32, 3) and 0 <= a["image_b"].min() and a["image_b"].max() <= 1
