"""Sliding cosine as convolutions vs a brute-force float64 loop over windows."""

import numpy as np

from artdup_jax.artminer import normalise_query, sliding_cosine, top_k_matches
from artdup_jax.artminer.similarity import pad_kernels


def brute_force(feature_map: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(R, C, D) x (h, w, D) -> (R-h+1, C-w+1): the release's cosine, one window at a time, float64."""
    feature_map, kernel = feature_map.astype(np.float64), kernel.astype(np.float64)
    h, w, _ = kernel.shape
    out = np.zeros((feature_map.shape[0] - h + 1, feature_map.shape[1] - w + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            window = feature_map[r:r + h, c:c + w]
            out[r, c] = np.sum(window * kernel) / (np.sqrt(np.sum(window**2)) + 1e-7)
    return out


def _maps(seed, shape):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_normalised_query_has_unit_frobenius_norm():
    kernel = np.asarray(normalise_query(_maps(0, (3, 2, 5))))
    assert abs(np.sqrt(np.sum(kernel.astype(np.float64) ** 2)) - 1.0) < 1e-6


def test_sliding_cosine_equals_brute_force():
    maps = _maps(1, (2, 6, 7, 5))
    kernels = np.asarray(normalise_query(_maps(2, (3, 3, 2, 5))))
    got = np.asarray(sliding_cosine(maps, kernels))
    assert got.shape == (2, 4, 6, 3)
    for b in range(2):
        for q in range(3):
            np.testing.assert_allclose(got[b, ..., q], brute_force(maps[b], kernels[q]), rtol=1e-5, atol=1e-6)


def test_identical_window_scores_one():
    maps = _maps(3, (1, 5, 5, 4))
    kernel = np.asarray(normalise_query(maps[0, 1:3, 2:5]))[None]
    scores = np.asarray(sliding_cosine(maps, kernel))[0, ..., 0]
    assert np.unravel_index(np.argmax(scores), scores.shape) == (1, 2)
    assert abs(scores[1, 2] - 1.0) < 1e-5


def test_padded_batch_of_maps_and_queries_equals_each_one_alone():
    # Two maps of different true sizes in one zero-padded batch, three queries of different shapes.
    true_maps = [_maps(4, (6, 7, 5)), _maps(5, (5, 4, 5))]
    kernels = [np.asarray(normalise_query(_maps(6 + q, shape))) for q, shape in
               enumerate([(3, 2, 5), (2, 3, 5), (3, 2, 5)])]
    padded_kernels, kernel_hw, shapes, shape_index = pad_kernels(kernels)
    assert shapes == ((2, 3), (3, 2)) and list(shape_index) == [1, 0, 1]
    batch = np.zeros((2, 8, 8, 5), np.float32)
    for b, m in enumerate(true_maps):
        batch[b, : m.shape[0], : m.shape[1]] = m
    valid_hw = np.array([m.shape[:2] for m in true_maps], np.int32)
    k = 4
    scores, rows, cols = (np.asarray(a) for a in top_k_matches(batch, valid_hw, padded_kernels, kernel_hw,
                                                               shape_index, shapes=shapes, k=k))
    for b, m in enumerate(true_maps):
        for q, kernel in enumerate(kernels):
            expected = brute_force(m, kernel)
            order = np.argsort(-expected, axis=None, kind="stable")[:k]
            np.testing.assert_allclose(scores[b, q], expected.reshape(-1)[order], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(rows[b, q] * expected.shape[1] + cols[b, q], order)


def test_too_few_windows_are_padded_with_minus_infinity():
    batch = _maps(9, (1, 3, 3, 2))
    padded, hw, shapes, index = pad_kernels([np.asarray(normalise_query(_maps(10, (2, 2, 2))))])
    scores, _, _ = top_k_matches(batch, np.array([[3, 3]], np.int32), padded, hw, index, shapes=shapes, k=6)
    scores = np.asarray(scores)[0, 0]
    assert np.isfinite(scores[:4]).all() and np.isneginf(scores[4:]).all()
