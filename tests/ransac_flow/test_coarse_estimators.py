"""The coarse stage's estimator choice: "release" (the default, for parity) and "magsac" (the tool's)."""

import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.geometry.homography import apply_homography
from artdup_jax.ransac_flow import coarse


def _perfect_matcher_features(truth, h=12, w=12, outliers=0.2, seed=0):
    """Target cells carry the feature of the source cell ``truth`` (target -> source, normalised) sends them
    to; a fraction ``outliers`` of the target cells carry a random source cell's feature instead."""
    rng = np.random.default_rng(seed)
    source_features = rng.standard_normal((h * w, 32)).astype(np.float32)
    source_features /= np.linalg.norm(source_features, axis=1, keepdims=True)
    xy = np.asarray(coarse.cell_centres(h, w)).reshape(-1, 2)
    mapped = np.asarray(apply_homography(jnp.asarray(truth), jnp.asarray(xy)))
    cols = np.clip(np.round(((mapped[:, 0] + 1) * w - 1) / 2), 0, w - 1).astype(int)
    rows = np.clip(np.round(((mapped[:, 1] + 1) * h - 1) / 2), 0, h - 1).astype(int)
    cells = rows * w + cols
    wrong = rng.random(h * w) < outliers
    cells[wrong] = rng.integers(0, h * w, wrong.sum())
    return coarse.CoarseFeatures(source=jnp.asarray(source_features), source_xy=jnp.asarray(xy),
                                 target=jnp.asarray(source_features[cells]), target_xy=jnp.asarray(xy),
                                 target_cells_hw=(h, w), source_image=None, target_image=None)


def test_the_default_is_the_release_estimator_and_unknown_names_are_refused():
    assert coarse.CoarseConfig().estimator == "release" and coarse.QUICK_START.estimator == "release"
    features = _perfect_matcher_features(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="estimator"):
        coarse.coarse_homography(features, coarse.CoarseConfig(estimator="lmeds"))


def test_magsac_recovers_a_known_homography_from_deep_feature_matches():
    truth = np.array([[1.05, 0.04, 0.03], [-0.02, 0.97, -0.05], [0.01, 0.02, 1.0]], np.float32)
    features = _perfect_matcher_features(truth)
    corners = jnp.asarray([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]], jnp.float32)
    errors = {}
    for estimator in coarse.ESTIMATORS:
        result = coarse.coarse_homography(features, coarse.CoarseConfig(iterations=2000, estimator=estimator))
        assert result.matrix is not None and result.num_inliers > 0.5 * result.num_matches, estimator
        errors[estimator] = np.abs(np.asarray(apply_homography(jnp.asarray(result.matrix, jnp.float32), corners))
                                   - np.asarray(apply_homography(jnp.asarray(truth), corners))).max()
    assert errors["magsac"] < 2 / 12, errors  # within one cell on a 12x12 grid (matches quantised to cells)
