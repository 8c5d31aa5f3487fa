"""MAGSAC++ against known transforms, OpenCV's USAC_MAGSAC and a float64 reference of its loss.

Every estimator call pads to 256 rows (200 matches, or 256 in the batches), so the file compiles five
programs: one pair (homography, with and without a quality; affine), a batch of three, and ``vmap`` of
``magsac_pair`` on the same batch.
"""

import functools

import cv2
import jax
import numpy as np
import pytest

from artdup_jax.geometry.magsac import find_homography_magsac, magsac_homographies, magsac_pair
from artdup_jax.geometry.magsac_sampling import draw_samples, prosac_schedule, sample_order
from artdup_jax.geometry.magsac_scoring import (
    magsac_gain,
    magsac_gain_reference,
    magsac_weight,
    sigma_quantile,
)
from tests.geometry.random_models import random_affine, random_homography

SIZE = 640.0
N = 200  # matches per pair: pads to 256 rows
ROWS = 256


def _matches(H, outlier_ratio, noise, seed, n=N, heavy_tailed=False):
    """``n`` pixel matches: src uniform in the image, dst = H src + noise, a fraction replaced by junk.

    ``heavy_tailed``: Student-t noise (3 degrees of freedom) of scale ``noise``, like keypoint errors.
    """
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, SIZE, (n, 2))
    error = rng.standard_t(3, (n, 2)) if heavy_tailed else rng.normal(0, 1, (n, 2))
    dst = cv2.perspectiveTransform(src[None], H)[0] + noise * error
    outliers = rng.random(n) < outlier_ratio
    dst[outliers] = rng.uniform(0, SIZE, (outliers.sum(), 2))
    return src.astype(np.float32), dst.astype(np.float32), ~outliers


def _corner_error(H_est, H_ref):
    corners = np.array([[[0, 0], [SIZE, 0], [SIZE, SIZE], [0, SIZE]]], np.float64)
    a = cv2.perspectiveTransform(corners, np.asarray(H_est, np.float64))
    b = cv2.perspectiveTransform(corners, np.asarray(H_ref, np.float64))
    return np.linalg.norm(a - b, axis=-1).mean()


def _opencv_magsac(src, dst):
    H, _ = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0, maxIters=10000, confidence=0.999)
    return H


# ----------------------------------------------------------------------------------------------------
# The MAGSAC++ loss tables
# ----------------------------------------------------------------------------------------------------


def test_loss_table_matches_float64_integration_of_the_weight():
    sigma_max = 8.0 / sigma_quantile()
    r = np.array([0.0, 0.3, 1.0, 2.0, 4.0, 6.0, 7.9, 8.5, 50.0])
    ours = np.asarray(magsac_gain((r / 8.0) ** 2))
    np.testing.assert_allclose(ours, magsac_gain_reference(r, sigma_max), atol=2e-3)
    assert ours[0] == pytest.approx(1.0) and ours[-2] == 0.0 and ours[-1] == 0.0
    weights = np.asarray(magsac_weight((r / 8.0) ** 2))
    assert weights[0] == pytest.approx(1.0) and np.all(np.diff(weights) <= 0) and weights[-2] == 0.0


def test_loss_tables_never_nan():
    u = np.array([np.nan, np.inf, -0.0, 1e30], np.float32)
    assert np.all(np.isfinite(np.asarray(magsac_gain(u)))) and np.all(np.isfinite(np.asarray(magsac_weight(u))))


# ----------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------


def test_sample_order_sorts_valid_rows_by_decreasing_quality():
    rng = np.random.default_rng(20)
    quality = rng.normal(size=50).astype(np.float32)
    valid = rng.random(50) < 0.7
    order = np.asarray(sample_order(valid, quality))
    expected = np.flatnonzero(valid)[np.argsort(-quality[valid], kind="stable")]
    np.testing.assert_array_equal(order[:valid.sum()], expected)
    assert set(order[valid.sum():]) == set(np.flatnonzero(~valid))
    presorted = np.asarray(sample_order(np.arange(50) < 30, -np.arange(50, dtype=np.float32)))
    np.testing.assert_array_equal(presorted, np.arange(50))  # already in order: the fast path


def test_prosac_samples_grow_from_the_best_matches():
    order, n_valid, k = np.arange(100, dtype=np.int32), np.int32(100), 4
    schedule = prosac_schedule(n_valid, 100, k, 10_000)
    rows = np.asarray(draw_samples(np.array([1, 2], np.uint32), order, n_valid, 0, 40, k, schedule))
    assert all(len(set(r)) == k for r in rows)  # distinct
    newest = rows.max(1)  # each sample holds the newest match of its subset, which only grows
    assert newest[0] == k - 1 and np.all(np.diff(newest) >= 0) and np.all(newest <= np.arange(40) + k - 1)
    assert newest[-1] > 2 * k
    uniform = np.asarray(draw_samples(np.array([1, 2], np.uint32), order, n_valid, 0, 40, k))
    assert uniform.max() > 50


# ----------------------------------------------------------------------------------------------------
# One pair
# ----------------------------------------------------------------------------------------------------


def test_exact_recovery_with_half_outliers():
    H_true = random_homography(np.random.default_rng(0))
    src, dst, true_inliers = _matches(H_true, 0.5, 0.0, seed=1)
    H, mask = find_homography_magsac(src, dst, threshold=3.0)
    assert H.shape == (3, 3) and H.dtype == np.float64 and H[2, 2] == pytest.approx(1.0)
    assert _corner_error(H, H_true) < 1e-2
    assert mask.shape == (N,) and mask.dtype == bool
    assert np.all(mask[true_inliers]) and (mask & ~true_inliers).sum() <= 2  # junk can land within 3 px


@pytest.mark.parametrize("heavy_tailed", [False, True], ids=["gaussian", "student_t"])
def test_at_least_as_accurate_as_opencv_magsac(heavy_tailed):
    ours, theirs = [], []
    for seed in range(8):
        H_true = random_homography(np.random.default_rng(100 + seed))
        src, dst, _ = _matches(H_true, 0.4, 1.0 if not heavy_tailed else 0.5, seed=200 + seed,
                               heavy_tailed=heavy_tailed)
        ours.append(_corner_error(find_homography_magsac(src, dst, threshold=3.0)[0], H_true))
        theirs.append(_corner_error(_opencv_magsac(src, dst), H_true))
    assert np.median(ours) <= np.median(theirs)
    assert np.max(ours) < 1.5


def test_prosac_order_finds_the_model_in_the_first_chunk():
    H_true = random_homography(np.random.default_rng(3))
    src, dst, true_inliers = _matches(H_true, 0.85, 0.5, seed=4)
    quality = np.where(true_inliers, 1.0, 0.0) + np.random.default_rng(5).uniform(0, 0.5, N)
    H, mask = find_homography_magsac(src, dst, quality=quality, threshold=3.0, max_iterations=32)
    assert _corner_error(H, H_true) < 1.0  # 15% inliers: 32 uniform samples would rarely hit 4 of them
    assert (mask & true_inliers).sum() > 0.9 * true_inliers.sum()


def test_affine_model_recovers_known_affine():
    A_true = random_affine(np.random.default_rng(6))
    src, dst, _ = _matches(A_true, 0.4, 0.5, seed=7)
    A, _ = find_homography_magsac(src, dst, threshold=3.0, model="affine")
    A_cv2, _ = cv2.estimateAffine2D(src, dst, method=cv2.USAC_MAGSAC, ransacReprojThreshold=3.0)
    np.testing.assert_array_equal(A[2], [0.0, 0.0, 1.0])
    assert _corner_error(A, A_true) < 0.5
    assert _corner_error(A, A_true) <= _corner_error(np.vstack([A_cv2, [0, 0, 1]]), A_true) + 0.1


def test_deterministic_for_a_seed():
    src, dst, _ = _matches(random_homography(np.random.default_rng(8)), 0.5, 1.0, seed=9)
    first = find_homography_magsac(src, dst, seed=3)
    second = find_homography_magsac(src, dst, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_nan_rows_are_ignored():
    src, dst, _ = _matches(random_homography(np.random.default_rng(10)), 0.3, 0.5, seed=11)
    src[::10] = np.nan
    H, mask = find_homography_magsac(src, dst)
    assert H is not None and np.isfinite(H).all()
    assert not mask[::10].any() and mask.sum() > 100


def _degenerate_cases():
    rng = np.random.default_rng(12)
    t = rng.uniform(0, SIZE, N)
    base_src, base_dst, _ = _matches(random_homography(rng), 0.0, 0.0, seed=13, n=3)
    return {
        "three_matches": (base_src, base_dst),
        "all_collinear": (np.stack([t, 0.5 * t + 3], -1), np.stack([2 * t + 1, -t + 5], -1)),
        "all_the_same_point": (np.full((N, 2), 5.0), np.full((N, 2), 7.0)),
        "three_distinct_points_repeated": (np.resize(base_src, (N, 2)), np.resize(base_dst, (N, 2))),
        "all_nan": (np.full((N, 2), np.nan), np.full((N, 2), np.nan)),
    }


_AFFINE_SOLVABLE = ("three_matches", "three_distinct_points_repeated")  # 3 distinct points fix an affine map


@pytest.mark.parametrize("case,model", [(case, model) for model in ("homography", "affine")
                                        for case in _degenerate_cases()
                                        if not (model == "affine" and case in _AFFINE_SOLVABLE)])
def test_degenerate_inputs_give_no_model(case, model):
    src, dst = _degenerate_cases()[case]
    H, mask = find_homography_magsac(src, dst, model=model, max_iterations=200)
    assert H is None
    assert mask.shape == (len(src),) and not mask.any()


# ----------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------


def _batch():
    """Three pairs of 200, 150 and 120 matches padded to 256 rows; padded rows hold junk that must not matter."""
    rng = np.random.default_rng(14)
    src = np.full((3, ROWS, 2), np.nan, np.float32)
    dst = np.full((3, ROWS, 2), 1e6, np.float32)
    valid = np.zeros((3, ROWS), bool)
    truths = []
    for p, n in enumerate((200, 150, 120)):
        truths.append(random_homography(rng))
        s, d, _ = _matches(truths[-1], 0.4, 0.5, seed=15 + p, n=n)
        src[p, :n], dst[p, :n], valid[p, :n] = s, d, True
    return src, dst, valid, truths


def test_batched_equals_per_pair():
    src, dst, valid, truths = _batch()
    batch = magsac_homographies(src, dst, valid, threshold=3.0, seed=5)
    H, inliers = np.asarray(batch.H), np.asarray(batch.inliers)
    assert H.shape == (3, 3, 3) and inliers.shape == (3, ROWS) and np.asarray(batch.found).all()
    np.testing.assert_array_equal(np.asarray(batch.num_inliers), inliers.sum(1))
    for p in range(3):
        n = valid[p].sum()
        H_single, mask_single = find_homography_magsac(src[p, :n], dst[p, :n], threshold=3.0, seed=5)
        # Same hypotheses and decisions; XLA vectorises a batch differently, and float32 rounding can tip a
        # near-tie between two polishing iterates, hence a tolerance in pixels rather than bitwise equality.
        assert _corner_error(H[p], H_single) < 0.02
        np.testing.assert_array_equal(inliers[p, :n], mask_single)
        assert not inliers[p, n:].any()
        assert _corner_error(H[p], truths[p]) < 1.0


def test_vmapped_pair_function_equals_batched_api():
    src, dst, valid, _ = _batch()
    run = jax.jit(jax.vmap(functools.partial(magsac_pair, threshold=3.0, seed=5)))
    vmapped, batch = run(src, dst, valid), magsac_homographies(src, dst, valid, threshold=3.0, seed=5)
    for p in range(3):
        assert _corner_error(np.asarray(vmapped.H[p]), np.asarray(batch.H[p])) < 0.02
    np.testing.assert_array_equal(np.asarray(vmapped.inliers), np.asarray(batch.inliers))
    np.testing.assert_array_equal(np.asarray(vmapped.iterations), np.asarray(batch.iterations))


def test_adaptive_stopping_and_budget():
    src, dst, valid, _ = _batch()
    adaptive = magsac_homographies(src, dst, valid, threshold=3.0, max_iterations=10_000)
    assert np.all(np.asarray(adaptive.iterations) < 500)  # 60% inliers: ~50 samples reach 0.999
    fixed = magsac_homographies(src, dst, valid, threshold=3.0, max_iterations=96, confidence=0.0)
    np.testing.assert_array_equal(np.asarray(fixed.iterations), 96)


def test_no_model_result_is_nan_free_identity():
    src, dst, valid, _ = _batch()
    t = np.linspace(0, SIZE, ROWS, dtype=np.float32)
    src[1], dst[1] = np.stack([t, 2 * t], -1), np.stack([t + 1, 2 * t - 3], -1)  # pair 1: all collinear
    result = jax.tree.map(np.asarray, magsac_homographies(src, dst, valid, threshold=3.0))
    np.testing.assert_array_equal(result.found, [True, False, True])
    np.testing.assert_array_equal(result.H[1], np.eye(3))
    assert result.score[1] == 0 and result.num_inliers[1] == 0 and not result.inliers[1].any()
    assert all(np.isfinite(a).all() for a in (result.H, result.score))
