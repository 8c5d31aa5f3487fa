"""Coarse stage: scale pyramid, resize rules, and homography recovery from feature matches."""

import os

import numpy as np
import pytest
import jax.numpy as jnp
import cv2

from artdup_jax.geometry.homography import apply_homography
from artdup_jax.ransac_flow import coarse


def test_scale_lists_match_the_spec_table():
    np.testing.assert_allclose(coarse.scale_list(7, 2), [2.0, 5 / 3, 4 / 3, 1.0, 5 / 6, 2 / 3, 0.5], rtol=1e-6)
    np.testing.assert_allclose(coarse.scale_list(3, 1.2), [1.2, 1.0, 1 / 1.2], rtol=1e-6)
    assert coarse.scale_list(1, 2) == [1.0]


def test_resize_rules_floor_each_side_to_16():
    assert coarse.resized_size(640, 480, 480, "shorter") == (640, 480)
    assert coarse.resized_size(1000, 700, 480, "shorter") == (672, 480)  # round(685.7) = 686 -> 672
    assert coarse.resized_size(447, 315, 400, "longer") == (400, 272)  # round(281.9) = 282 -> 272


def test_known_homography_is_recovered_from_feature_matches():
    # Target cells carry the feature of the source cell the homography sends them to: a perfect matcher.
    rng = np.random.default_rng(0)
    h = w = 12
    source_features = rng.standard_normal((h * w, 32)).astype(np.float32)
    source_features /= np.linalg.norm(source_features, axis=1, keepdims=True)
    source_xy = np.asarray(coarse.cell_centres(h, w)).reshape(-1, 2)
    truth = np.array([[1.05, 0.04, 0.03], [-0.02, 0.97, -0.05], [0.01, 0.02, 1.0]], np.float32)
    mapped = np.asarray(apply_homography(jnp.asarray(truth), jnp.asarray(source_xy)))  # target -> source
    cols = np.clip(np.round(((mapped[:, 0] + 1) * w - 1) / 2), 0, w - 1).astype(int)
    rows = np.clip(np.round(((mapped[:, 1] + 1) * h - 1) / 2), 0, h - 1).astype(int)
    target_features = source_features[rows * w + cols]
    features = coarse.CoarseFeatures(
        source=jnp.asarray(source_features), source_xy=jnp.asarray(source_xy),
        target=jnp.asarray(target_features), target_xy=jnp.asarray(source_xy), target_cells_hw=(h, w),
        source_image=None, target_image=None)
    result = coarse.coarse_homography(features, coarse.CoarseConfig(iterations=2000))
    assert result.matrix is not None and result.num_inliers > 0.5 * result.num_matches
    corners = jnp.asarray([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]], jnp.float32)
    error = np.abs(np.asarray(apply_homography(jnp.asarray(result.matrix, jnp.float32), corners))
                   - np.asarray(apply_homography(jnp.asarray(truth), corners)))
    assert error.max() < 2 / 12  # within one cell on a 12×12 grid (matches are quantised to cells)


def test_all_target_cells_excluded_gives_no_homography():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((64, 16)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    xy = np.asarray(coarse.cell_centres(8, 8)).reshape(-1, 2)
    features = coarse.CoarseFeatures(jnp.asarray(f), jnp.asarray(xy), jnp.asarray(f), jnp.asarray(xy), (8, 8),
                                     None, None)
    result = coarse.coarse_homography(features, coarse.CoarseConfig(iterations=500),
                                      excluded_target_cells=np.ones((8, 8), bool))
    assert result.matrix is None and result.num_matches == 0


@pytest.mark.parametrize("estimator", coarse.ESTIMATORS)
def test_sift_homography_aligns_a_real_hpatches_pair(estimator):
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "hpatches", "v_churchill")
    if not os.path.isdir(folder):
        pytest.skip("../shared/data/hpatches is absent (only CI and project machines have it)")
    def read(name):
        image = cv2.cvtColor(cv2.imread(os.path.join(folder, name)), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)).astype(np.float32) / 255
    source, target = read("1.ppm"), read("2.ppm")
    truth_1_to_2 = np.loadtxt(os.path.join(folder, "H_1_2"))
    result = coarse.sift_homography(source, target, estimator=estimator)
    assert result.matrix is not None and result.num_inliers >= 20
    # Target pixel -> source pixel, at half resolution: S · H_1_2^-1 · S^-1.
    scale = np.diag([0.5, 0.5, 1.0])
    truth_t_to_s = scale @ np.linalg.inv(truth_1_to_2) @ np.linalg.inv(scale)
    from artdup_jax.geometry.homography import normalised_to_pixel_homography
    estimated = np.asarray(normalised_to_pixel_homography(jnp.asarray(result.matrix, jnp.float32),
                                                          target.shape[:2], source.shape[:2], align_corners=True))
    h, w = target.shape[:2]
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])[:, None]
    error = np.linalg.norm(cv2.perspectiveTransform(corners, estimated) - cv2.perspectiveTransform(corners, truth_t_to_s), axis=-1)
    assert error.max() < 3.0
