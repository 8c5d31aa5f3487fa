"""RANSAC against known transforms and OpenCV."""

import cv2
import jax
import numpy as np
import pytest

from artdup_jax.geometry.ransac import (
    find_homographies,
    find_homography,
    ransac,
)
from tests.geometry.random_models import random_affine, random_homography

SIZE = 640.0
ITERS = 2000  # plenty for 40-50% outliers; keeps the tests fast


def _matches(H, n, outlier_ratio, noise, seed):
    """``n`` pixel matches: src uniform in the image, dst = H src + noise, a fraction replaced by junk."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, SIZE, (n, 2))
    dst = cv2.perspectiveTransform(src[None], H)[0] + rng.normal(0, noise, (n, 2))
    outliers = rng.random(n) < outlier_ratio
    dst[outliers] = rng.uniform(0, SIZE, (outliers.sum(), 2))
    return src.astype(np.float32), dst.astype(np.float32), ~outliers


def _corner_error(H_est, H_ref):
    corners = np.array([[[0, 0], [SIZE, 0], [SIZE, SIZE], [0, SIZE]]], np.float64)
    a = cv2.perspectiveTransform(corners, np.asarray(H_est, np.float64))
    b = cv2.perspectiveTransform(corners, np.asarray(H_ref, np.float64))
    return np.abs(a - b).max()


def test_recovers_known_homography_at_least_as_well_as_cv2():
    rng = np.random.default_rng(0)
    H_true = random_homography(rng)
    src, dst, true_inliers = _matches(H_true, 500, 0.4, 0.5, seed=1)
    H, mask = find_homography(src, dst, threshold=3.0, iterations=ITERS)
    H_cv2, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0, maxIters=ITERS, confidence=0.999999999)
    ours, theirs = _corner_error(H, H_true), _corner_error(H_cv2, H_true)
    assert ours < 0.5
    assert ours <= theirs + 0.1
    assert H.shape == (3, 3) and H.dtype == np.float64 and H[2, 2] == pytest.approx(1.0)
    assert mask.shape == (500,) and mask.dtype == bool
    assert (mask & ~true_inliers).sum() < 0.02 * 500  # few junk matches land within 3 px by chance
    assert (mask & true_inliers).sum() > 0.97 * true_inliers.sum()


def test_adaptive_stopping_matches_fixed_budget_quality():
    rng = np.random.default_rng(2)
    H_true = random_homography(rng)
    src, dst, _ = _matches(H_true, 500, 0.4, 0.5, seed=3)
    H, _ = find_homography(src, dst, threshold=3.0, iterations=ITERS, confidence=0.999)
    assert _corner_error(H, H_true) < 0.5


def test_affine_model_recovers_known_affine():
    rng = np.random.default_rng(4)
    A_true = random_affine(rng)
    src, dst, _ = _matches(A_true, 300, 0.4, 0.5, seed=5)
    A, mask = find_homography(src, dst, threshold=3.0, iterations=ITERS, model="affine")
    A_cv2, _ = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=3.0, maxIters=ITERS)
    np.testing.assert_array_equal(A[2], [0.0, 0.0, 1.0])
    ours = _corner_error(A, A_true)
    assert ours < 0.5
    assert ours <= _corner_error(np.vstack([A_cv2, [0, 0, 1]]), A_true) + 0.1


def test_batched_equals_per_pair_and_ignores_padding():
    rng = np.random.default_rng(6)
    sizes = (500, 300, 260)  # one padded shape (512) for the single-pair calls: one compilation
    rows = 512
    src = np.full((3, rows, 2), np.nan, np.float32)  # padded rows hold junk that must not matter
    dst = np.full((3, rows, 2), 1e6, np.float32)
    valid = np.zeros((3, rows), bool)
    singles = []
    for p, n in enumerate(sizes):
        s, d, _ = _matches(random_homography(rng), n, 0.3, 0.5, seed=10 + p)
        src[p, :n], dst[p, :n], valid[p, :n] = s, d, True
        singles.append(find_homography(s, d, threshold=3.0, iterations=ITERS, seed=p))
    batch = find_homographies(src, dst, valid, threshold=3.0, iterations=ITERS, seed=[0, 1, 2])
    H, inliers = batch  # unpacks like cv2.findHomography's (H, mask)
    assert H.shape == (3, 3, 3) and inliers.shape == (3, rows) and batch.found.all()
    np.testing.assert_array_equal(batch.num_inliers, inliers.sum(axis=1))
    for p, (n, (H_single, mask_single)) in enumerate(zip(sizes, singles)):
        np.testing.assert_allclose(H[p], H_single, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(inliers[p, :n], mask_single)
        assert not inliers[p, n:].any()
        assert batch.num_inliers[p] == mask_single.sum()


def test_deterministic_for_a_seed():
    src, dst, _ = _matches(random_homography(np.random.default_rng(7)), 300, 0.5, 0.5, seed=8)
    first = find_homography(src, dst, threshold=3.0, iterations=ITERS, seed=3)
    second = find_homography(src, dst, threshold=3.0, iterations=ITERS, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_result_does_not_depend_on_chunk_size():
    src, dst, _ = _matches(random_homography(np.random.default_rng(9)), 128, 0.5, 0.5, seed=9)
    args = (jax.random.key(0), src, dst, np.ones(128, bool))
    a = ransac(*args, threshold=3.0, iterations=200)  # one chunk of 200
    b = ransac(*args, threshold=3.0, iterations=200, chunk=64)
    # Same hypothesis selected; XLA may vectorise the two fits differently (float32 rounding only).
    np.testing.assert_allclose(np.asarray(a.H), np.asarray(b.H), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(a.inliers), np.asarray(b.inliers))


def _degenerate_cases():
    rng = np.random.default_rng(11)
    t = rng.uniform(0, SIZE, 40)
    line_src = np.stack([t, 0.5 * t + 3], -1)
    line_dst = np.stack([2 * t + 1, -t + 5], -1)
    base_src, base_dst, _ = _matches(random_homography(rng), 3, 0.0, 0.0, seed=12)
    nan = np.full((30, 2), np.nan)
    return {
        "three_matches": (base_src, base_dst),
        "all_collinear": (line_src, line_dst),
        "three_distinct_points_repeated": (np.tile(base_src, (10, 1)), np.tile(base_dst, (10, 1))),
        "all_nan": (nan, nan),
        "nan_leaves_three": (np.concatenate([nan, base_src]), np.concatenate([nan, base_dst])),
    }


# Three distinct points determine an affine map, so those cases are degenerate for homographies only.
_AFFINE_SOLVABLE = ("three_matches", "three_distinct_points_repeated", "nan_leaves_three")


@pytest.mark.parametrize("case,model", [(case, model) for model in ("homography", "affine")
                                        for case in _degenerate_cases()
                                        if not (model == "affine" and case in _AFFINE_SOLVABLE)])
def test_degenerate_inputs_give_no_model(case, model):
    src, dst = _degenerate_cases()[case]
    H, mask = find_homography(src, dst, threshold=3.0, iterations=200, model=model)
    assert H is None
    assert mask.shape == (len(src),) and not mask.any()


def test_no_model_result_is_nan_free_identity():
    src, dst = _degenerate_cases()["all_collinear"]
    pad = ((0, 88), (0, 0))
    result = ransac(jax.random.key(0), np.pad(src, pad).astype(np.float32),
                    np.pad(dst, pad).astype(np.float32), np.arange(128) < 40, threshold=3.0, iterations=200)
    assert not bool(result.found) and int(result.num_inliers) == 0
    np.testing.assert_array_equal(np.asarray(result.H), np.eye(3))
    assert not np.asarray(result.inliers).any()


def test_nan_rows_are_ignored():
    src, dst, _ = _matches(random_homography(np.random.default_rng(13)), 300, 0.3, 0.5, seed=13)
    src[::10] = np.nan
    H, mask = find_homography(src, dst, threshold=3.0, iterations=ITERS)
    assert H is not None and np.isfinite(H).all()
    assert not mask[::10].any() and mask.sum() > 150
