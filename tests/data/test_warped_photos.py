"""Photographs warped by known homographies (the robust-estimator comparison's synthetic pairs)."""

import cv2
import numpy as np

from artdup_jax.data import warped_photos


def test_pairs_are_deterministic_and_the_homography_is_the_warp():
    first = warped_photos.warped_photo_pairs(("camera",), per_photo=2, seed=3)
    again = warped_photos.warped_photo_pairs(("camera",), per_photo=2, seed=3)
    assert [p.name for p in first] == ["camera #0", "camera #1"]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.target, b.target)
        np.testing.assert_array_equal(a.homography, b.homography)
    pair = first[0]
    assert pair.source.dtype == np.uint8 and pair.source.shape == pair.target.shape == (512, 512)
    clean = cv2.warpPerspective(pair.source, pair.homography, pair.source.shape[::-1], flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones_like(pair.source), pair.homography, pair.source.shape[::-1]) > 0
    residual = pair.target.astype(np.float64) - clean
    assert inside.mean() > 0.3 and np.std(residual[inside]) < 3.0  # only the noise (sigma 2) differs
    assert not np.array_equal(first[0].homography, first[1].homography)


def test_the_corners_move_by_at_most_the_shift():
    rng = np.random.default_rng(0)
    for _ in range(20):
        H = warped_photos.random_corner_homography(rng, (100, 200), max_shift=0.1)
        corners = np.float64([[[0, 0], [199, 0], [199, 99], [0, 99]]])
        moved = cv2.perspectiveTransform(corners, H)[0] - corners[0]
        assert np.all(np.abs(moved[:, 0]) <= 20 + 1e-6) and np.all(np.abs(moved[:, 1]) <= 10 + 1e-6)
