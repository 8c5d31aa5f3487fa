"""RANSAC-Flow's RANSAC: JAX (all hypotheses at once) vs the PyTorch port (chunks of 100 + NumPy SVD)."""

import cv2
import numpy as np
import pytest

from artdup_jax.ransac_flow.official_ransac import official_ransac_flow_ransac
from baselines.torch.ransac_flow_ransac import ransac_flow_ransac


def _normalised_matches(n, seed, mirrored=False):
    """Target/source in normalised coordinates, source = M(target) + noise, half junk.

    ``mirrored``: no junk and source mirrored, so every fitted map is a reflection (det < 0, score 0).
    """
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (n, 2))
    M = np.array([[0.9, 0.05, 0.1], [-0.04, 1.1, -0.05], [0.05, -0.03, 1.0]])
    source = cv2.perspectiveTransform(target[None], M)[0]
    if mirrored:
        source[:, 0] *= -1
    else:
        source += rng.normal(0, 0.003, (n, 2))
        junk = rng.random(n) < 0.5
        source[junk] = rng.uniform(-1, 1, (junk.sum(), 2))
    return target.astype(np.float32), source.astype(np.float32)


def _run_both(target, source, indices, tol=0.05):
    ours = official_ransac_flow_ransac(target, source, indices, tol)
    theirs = ransac_flow_ransac(0, source, target, tol, hypothesis_indices=indices)
    return ours, theirs


def test_official_mode_scores_and_selection_equal_torch_port():
    target, source = _normalised_matches(300, seed=20)
    indices = np.random.default_rng(21).integers(0, 300, (1037, 4))  # with repeats, remainder chunk of 10+
    ours, theirs = _run_both(target, source, indices)
    scores = np.asarray(ours.scores)
    np.testing.assert_array_equal(scores >= 0, theirs.kept)
    np.testing.assert_array_equal(scores[theirs.kept], theirs.scores)
    assert bool(ours.found) and int(ours.num_inliers) == theirs.num_inliers > 100
    assert ours.M[2, 2] >= 0
    np.testing.assert_allclose(np.asarray(ours.M), theirs.M, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(ours.inliers), theirs.inliers)


@pytest.mark.parametrize("num_hyps", [150, 50])
def test_official_mode_returns_nothing_when_every_score_is_zero(num_hyps):
    # 150: the first full chunk of 100 scores 0 -> abort. 50: no full chunk, nothing > 0 (the original crashes).
    target, source = _normalised_matches(200, seed=22, mirrored=True)
    indices = np.random.default_rng(23).integers(0, 200, (num_hyps, 4))
    ours, theirs = _run_both(target, source, indices)
    assert theirs.M is None and not bool(ours.found)
    assert not np.asarray(ours.inliers).any() and int(ours.num_inliers) == 0
    assert np.isfinite(np.asarray(ours.M)).all()


def test_official_mode_aborts_on_a_later_zero_chunk():
    good_t, good_s = _normalised_matches(100, seed=24)
    bad_t, bad_s = _normalised_matches(100, seed=25, mirrored=True)
    target, source = np.concatenate([good_t, bad_t]), np.concatenate([good_s, bad_s])
    rng = np.random.default_rng(26)
    distinct = np.stack([rng.choice(100, 4, replace=False) for _ in range(200)])
    indices = np.concatenate([distinct[:100], 100 + distinct[100:]])  # chunk 1: good, chunk 2: mirrored
    ours, theirs = _run_both(target, source, indices)
    assert np.asarray(ours.scores)[:100].max() > 0  # the first chunk found a model ...
    assert theirs.M is None and not bool(ours.found)  # ... but the all-zero second chunk aborts
