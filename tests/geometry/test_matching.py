"""Mutual nearest neighbours against a brute-force NumPy reference of RANSAC-Flow's rule."""

import numpy as np
import pytest

from artdup_jax.geometry.matching import cosine_similarity, mutual_nearest_neighbours


def _normalised(rng, n, c=16, nonnegative=True):
    f = rng.normal(size=(n, c))
    if nonnegative:
        f = np.maximum(f, 0)  # ReLU features, as the ResNet trunk gives
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return (f / np.maximum(norm, 1e-12)).astype(np.float32)


def _reference(fa, fb):
    """Pairs (a, b), in increasing a, kept by a literal reading of the original: both argmaxes agree and
    the product of the row maximum and the column maximum is > 0 (float64 scores)."""
    s = fa.astype(np.float64) @ fb.astype(np.float64).T
    pairs = []
    for a in range(s.shape[0]):
        b = int(np.argmax(s[a]))
        if int(np.argmax(s[:, b])) == a and s[a].max() * s[:, b].max() > 0:
            pairs.append((a, b))
    return pairs


def _pairs(m):
    valid = np.asarray(m.valid)
    return list(zip(np.asarray(m.index_a)[valid].tolist(), np.asarray(m.index_b)[valid].tolist()))


def test_cosine_similarity_matches_float64():
    rng = np.random.default_rng(0)
    fa, fb = _normalised(rng, 30, 64), _normalised(rng, 20, 64)
    np.testing.assert_allclose(np.asarray(cosine_similarity(fa, fb)), fa.astype(np.float64) @ fb.T.astype(np.float64),
                               atol=1e-6)


def test_mutual_nn_equals_brute_force():
    rng = np.random.default_rng(1)
    fa, fb = _normalised(rng, 60), _normalised(rng, 45)
    m = mutual_nearest_neighbours(fa, fb)
    expected = _reference(fa, fb)
    assert len(expected) > 5
    assert _pairs(m) == expected
    assert m.index_a.shape == (45,) and int(m.count) == len(expected)
    s = fa @ fb.T
    np.testing.assert_allclose(np.asarray(m.similarity)[: len(expected)],
                               [s[a, b] for a, b in expected], atol=1e-6)
    assert not np.asarray(m.similarity)[len(expected):].any()


def test_product_rule_keeps_negative_mutual_pairs():
    # The only row scores -0.6 and -0.8; (0, 0) is mutual and (-0.6) * (-0.6) > 0, so it is kept.
    fa = np.array([[-1.0, 0.0]], np.float32)
    fb = np.array([[0.6, 0.8], [0.8, 0.6]], np.float32)
    assert _reference(fa, fb) == [(0, 0)]
    m = mutual_nearest_neighbours(fa, fb)
    assert _pairs(m) == [(0, 0)] and float(m.similarity[0]) == pytest.approx(-0.6)


def test_product_rule_drops_zero_similarity():
    # Row 0 is an all-zero feature; (0, 0) is mutual (first-index ties) but 0 * 0 is not > 0.
    fa = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    fb = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    assert _reference(fa, fb) == [(1, 1)]
    assert _pairs(mutual_nearest_neighbours(fa, fb)) == [(1, 1)]


def test_padding_masks_treat_cells_as_absent():
    rng = np.random.default_rng(3)
    fa, fb = _normalised(rng, 40), _normalised(rng, 30)
    valid_a = rng.random(40) < 0.7
    valid_b = rng.random(30) < 0.7
    rows_a, rows_b = np.flatnonzero(valid_a), np.flatnonzero(valid_b)
    expected = [(rows_a[a], rows_b[b]) for a, b in _reference(fa[valid_a], fb[valid_b])]
    got = _pairs(mutual_nearest_neighbours(fa, fb, valid_a, valid_b))
    assert got == [(int(a), int(b)) for a, b in expected]


@pytest.mark.parametrize("mask_mode", ["before", "after"])
def test_masked_target_modes(mask_mode):
    rng = np.random.default_rng(4)
    fa, fb = _normalised(rng, 50), _normalised(rng, 40)
    excluded = rng.random(40) < 0.4
    if mask_mode == "after":  # match on all cells, then drop matches on excluded ones
        expected = [(a, b) for a, b in _reference(fa, fb) if not excluded[b]]
    else:  # zero the excluded target features, then match
        expected = _reference(fa, np.where(excluded[:, None], 0.0, fb))
    got = _pairs(mutual_nearest_neighbours(fa, fb, excluded_b=excluded, mask_mode=mask_mode))
    assert got == expected


def test_mask_modes_differ():
    rng = np.random.default_rng(5)
    fa, fb = _normalised(rng, 50), _normalised(rng, 40)
    excluded = rng.random(40) < 0.4
    before = _pairs(mutual_nearest_neighbours(fa, fb, excluded_b=excluded, mask_mode="before"))
    after = _pairs(mutual_nearest_neighbours(fa, fb, excluded_b=excluded, mask_mode="after"))
    assert set(after) <= set(before) and len(before) > len(after)  # freed cells find new partners


def test_batched_equals_per_pair():
    rng = np.random.default_rng(6)
    fa = np.stack([_normalised(rng, 30) for _ in range(3)])
    fb = np.stack([_normalised(rng, 25) for _ in range(3)])
    valid_b = rng.random((3, 25)) < 0.8
    batched = mutual_nearest_neighbours(fa, fb, valid_b=valid_b)
    assert batched.index_a.shape == (3, 25)
    for p in range(3):
        single = mutual_nearest_neighbours(fa[p], fb[p], valid_b=valid_b[p])
        for field_b, field_s in zip(batched, single):
            np.testing.assert_array_equal(np.asarray(field_b)[p], np.asarray(field_s))
