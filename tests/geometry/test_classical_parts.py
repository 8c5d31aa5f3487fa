"""The parts of ``geometry.classical`` against independent references: OpenCV, known transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from artdup_jax.geometry.classical import align_classical, dense_flow, ecc, fourier_mellin, preprocess, rootsift
from artdup_jax.geometry.classical.verification import Verifier, identity_homography
from tests.geometry.synthetic_copies import alignment_error


def _known_perspective(hw):
    h, w = hw
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    moved = corners + np.float32([[20, 30], [-35, 10], [-15, -25], [30, -10]])
    return cv2.getPerspectiveTransform(corners, moved).astype(np.float64)


@pytest.fixture(scope="module")
def warped_pair():
    """(source, target, true source → target homography): a photograph and its perspective view."""
    source = skimage.data.astronaut()
    H = _known_perspective(source.shape[:2])
    target = cv2.warpPerspective(source, H, (source.shape[1], source.shape[0]))
    return source, target, H


def test_scale_matrix_follows_cv2_resize():
    image = np.zeros((60, 80), np.float32)
    image[20, 50] = 1.0
    image = cv2.GaussianBlur(image, (0, 0), 3.0)
    resized = cv2.resize(image, (200, 90), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:90, 0:200]
    centroid = np.array([(resized * xs).sum(), (resized * ys).sum()]) / resized.sum()
    expected = preprocess.apply(preprocess.scale_matrix((60, 80), (90, 200)), [[50.0, 20.0]])[0]
    np.testing.assert_allclose(centroid, expected, atol=0.05)


def test_mutual_ratio_matches_equal_opencv_brute_force():
    rng = np.random.default_rng(0)
    a = rng.random((700, 128), np.float32) ** 3
    b = np.concatenate([a[:300] + 0.02 * rng.random((300, 128), np.float32), rng.random((500, 128), np.float32) ** 3])
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    best_a_of_b = [m[0].trainIdx for m in matcher.knnMatch(b, a, k=1)]
    expected = sorted((m[0].queryIdx, m[0].trainIdx) for m in matcher.knnMatch(a, b, k=2)
                      if m[0].distance < 0.8 * m[1].distance and best_a_of_b[m[0].trainIdx] == m[0].queryIdx)
    assert sorted(map(tuple, rootsift.mutual_ratio_matches(a, b, 0.8, chunk=256).tolist())) == expected


def test_rootsift_recovers_a_known_perspective(warped_pair):
    source, target, H = warped_pair
    assert alignment_error(rootsift.rootsift_homography(source, target), H, source.shape[:2], target.shape[:2]) < 1.0


@pytest.mark.parametrize("angle, scale", [(0.0, 1.0), (14.0, 1.2), (-25.0, 0.8), (170.0, 1.0)])
def test_fourier_mellin_recovers_a_known_similarity(angle, scale):
    source = skimage.data.camera()
    h, w = source.shape
    H = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), [0, 0, 1]])
    H[:2, 2] += (12, -9)
    target = cv2.warpPerspective(source, H, (w, h))
    result = fourier_mellin.fourier_mellin(source, target)
    assert result.scale == pytest.approx(scale, rel=0.02)
    assert alignment_error(result.homography, H, (h, w), (h, w)) < 0.01 * w


def test_ecc_brings_a_perturbed_homography_back_to_the_known_one(warped_pair):
    source, target, H = warped_pair
    perturbed = np.array([[1.02, 0.01, 6.0], [-0.01, 0.99, -5.0], [0, 0, 1]]) @ H
    refined = ecc.refine_ecc(source, target, perturbed)
    assert refined is not None
    assert alignment_error(refined, H, source.shape[:2], target.shape[:2]) < 1.5


def test_ecc_fails_with_none_on_a_blank_target():
    source = skimage.data.astronaut()
    blank = np.full_like(source, 128)
    assert ecc.refine_ecc(source, blank, identity_homography(source.shape[:2], blank.shape[:2])) is None


def test_the_score_ignores_colour_and_contrast_polarity():
    image = skimage.data.astronaut()
    negative = 255 - cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    identity = identity_homography(image.shape[:2], negative.shape[:2])
    assert Verifier(image, negative).score(identity).score > 0.95


def test_the_score_of_the_true_homography_beats_the_identity(warped_pair):
    source, target, H = warped_pair
    verifier = Verifier(source, target)
    assert verifier.verified(verifier.score(H).score, verifier.identity().score)
    assert not verifier.verified(verifier.identity().score, verifier.identity().score)


def test_align_classical_homography_is_opencv_warp_perspective_convention(warped_pair):
    source, target, _ = warped_pair
    result = align_classical(source, target)
    warped = cv2.warpPerspective(source, result.homography, (target.shape[1], target.shape[0]))
    inside = cv2.erode((target.max(-1) > 0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert result.verified
    assert np.abs(warped.astype(np.float32) - target)[inside].mean() < 4.0  # of 255


def test_dense_flow_finds_a_residual_shift_with_confidence(warped_pair):
    source, target, H = warped_pair
    shifted = np.array([[1, 0, 3.0], [0, 1, -2.0], [0, 0, 1]]) @ H  # the coarse stage is 3 px right, 2 px up
    result = dense_flow.dense_flow(source, target, shifted)
    confident = result.confidence > 0.5
    assert result.flow.shape == target.shape[:2] + (2,) and confident.mean() > 0.5
    np.testing.assert_allclose(np.median(result.flow[confident], axis=0), [3.0, -2.0], atol=0.3)
    h, w = target.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 1, 2).astype(np.float64)
    true_source = cv2.perspectiveTransform(grid, np.linalg.inv(H)).reshape(h, w, 2)
    assert np.median(np.linalg.norm(result.source_coordinates - true_source, axis=-1)[confident]) < 0.5
