"""Match quality for robust fits: SIFT ratios, guided-matching ratios, and rootsift.robust_fit's estimators."""

import cv2
import numpy as np
import pytest

from artdup_jax.geometry import sift
from artdup_jax.geometry.classical import rootsift


def _matches_with_outliers(seed=0, n=300, outlier_fraction=0.4):
    """(src, dst, quality, H, true inliers): dst = H src + 0.5 px noise for the inliers, random elsewhere;
    the quality is higher for the inliers on average (as a descriptor ratio is)."""
    rng = np.random.default_rng(seed)
    H = np.array([[0.9, 0.1, 30.0], [-0.05, 1.1, -12.0], [2e-4, -1e-4, 1.0]])
    src = rng.uniform(0, 600, (n, 2)).astype(np.float32)
    dst = cv2.perspectiveTransform(src[None].astype(np.float64), H)[0] + rng.normal(0, 0.5, (n, 2))
    outlier = rng.random(n) < outlier_fraction
    dst[outlier] = rng.uniform(0, 600, (outlier.sum(), 2))
    quality = -np.where(outlier, rng.uniform(0.5, 0.95, n), rng.uniform(0.2, 0.8, n))
    return src, dst.astype(np.float32), quality.astype(np.float32), H, ~outlier


@pytest.mark.parametrize("estimator", rootsift.HOMOGRAPHY_ESTIMATORS)
def test_robust_fit_recovers_a_homography_with_either_estimator(estimator):
    src, dst, quality, H, inlier = _matches_with_outliers()
    estimate, mask = rootsift.robust_fit(src, dst, 3.0, quality=quality, estimator=estimator)
    assert estimate is not None and mask.shape == (len(src),)
    corners = np.float64([[[0, 0], [600, 0], [600, 600], [0, 600]]])
    error = np.linalg.norm(cv2.perspectiveTransform(corners, estimate) - cv2.perspectiveTransform(corners, H), axis=-1)
    assert error.max() < 2.0, (estimator, error)
    assert (mask & inlier).sum() > 0.95 * inlier.sum() and (mask & ~inlier).sum() < 0.05 * (~inlier).sum()


def test_robust_fit_refuses_an_unknown_estimator_and_needs_four_matches():
    src, dst, _, _, _ = _matches_with_outliers(n=20)
    with pytest.raises(ValueError, match="estimator"):
        rootsift.robust_fit(src, dst, 3.0, estimator="lmeds")
    H, mask = rootsift.robust_fit(src[:3], dst[:3], 3.0)
    assert H is None and not mask.any()


def test_the_portfolio_keeps_opencv_magsac_by_default():
    # Ours verified the same demo copies but its homography candidates scored slightly lower there.
    assert rootsift.RootSiftConfig().homography_estimator == "cv2"


def test_ratio_matches_return_the_ratios_of_the_same_matches():
    rng = np.random.default_rng(0)
    a = rng.random((200, 128), np.float32)
    b = np.concatenate([a[:80] + 0.05 * rng.random((80, 128), np.float32), rng.random((150, 128), np.float32)])
    plain = sift.ratio_matches(a, b, 0.8)
    indices, ratios = sift.ratio_matches(a, b, 0.8, return_ratios=True)
    np.testing.assert_array_equal(indices, plain)
    assert len(plain) >= 60 and ratios.shape == (len(plain),) and np.all((ratios >= 0) & (ratios < 0.8))
    distance = np.linalg.norm(a[:, None] - b[None], axis=-1)
    nearest = np.sort(distance, axis=1)[:, :2]
    np.testing.assert_allclose(ratios, nearest[indices[:, 0], 0] / nearest[indices[:, 0], 1], rtol=1e-4)
    empty, empty_ratios = sift.ratio_matches(None, b, 0.8, return_ratios=True)
    assert empty.shape == (0, 2) and empty_ratios.shape == (0,)


def test_guided_matches_return_the_ratios_of_the_same_matches():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 300, (150, 2)).astype(np.float32)
    descriptors = rng.random((150, 128)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    a = rootsift.Keypoints(xy, descriptors)
    noisy = descriptors + 0.02 * rng.random((150, 128)).astype(np.float32)
    b = rootsift.Keypoints(xy + 1.0, noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    shift = np.array([[1.0, 0, 1.0], [0, 1.0, 1.0], [0, 0, 1.0]])
    plain = rootsift.guided_matches(a, b, shift, radius=20.0, ratio=0.9)
    indices, ratios = rootsift.guided_matches(a, b, shift, radius=20.0, ratio=0.9, return_ratios=True)
    np.testing.assert_array_equal(indices, plain)
    assert len(plain) > 100 and np.mean(indices[:, 0] == indices[:, 1]) > 0.95
    assert ratios.shape == (len(plain),) and np.all((ratios >= 0) & (ratios < 0.9))
