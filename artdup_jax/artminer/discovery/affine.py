"""Affine RANSAC hypotheses: which triples of sampling matches to fit, the fits, and their errors.

Fewer than ``ENUMERATE_BELOW`` (50) sampling matches: distinct 3-subsets, a random ``min(C(n, 3), iterations)`` of
them (drawn once per seed and size, ``subset_table``); otherwise ``iterations`` random triples of distinct matches
(keyed by the pair's indices, so a pair draws the same in any batch). Each affine map (I2 -> I1, least squares
through 3 points, minimum-norm when they are collinear, as ``numpy.linalg.lstsq``) maps ``(row, col)`` points.
"""

from __future__ import annotations

import functools
import itertools

import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.random_draws import hash_uniform

ENUMERATE_BELOW = 50  # fewer sampling matches than this: hypotheses are distinct 3-subsets (the release)


@functools.lru_cache(maxsize=8)
def subset_table(seed: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """For every sampling-set size ``n < 50``: the hypotheses the release would evaluate, a random
    ``min(C(n, 3), iterations)`` of the distinct 3-subsets of ``range(n)``, drawn without replacement.

    Returns ``(subsets (50, iterations, 3) int32, count (50,) int32)``. Drawn once per (seed, iterations) and shared
    by every pair with the same ``n`` (the subsets index each pair's own sampling list, so pairs stay independent in
    what they sample; one gather per pair instead of a top-k over 18 424 keys).
    """
    rng = np.random.default_rng([seed, iterations])
    subsets = np.zeros((ENUMERATE_BELOW, iterations, 3), np.int32)
    count = np.zeros((ENUMERATE_BELOW,), np.int32)
    for n in range(3, ENUMERATE_BELOW):
        table = np.array(list(itertools.combinations(range(n), 3)), np.int32)
        chosen = rng.choice(len(table), min(len(table), iterations), replace=False)
        subsets[n, : len(chosen)] = table[chosen]
        count[n] = len(chosen)
    return subsets, count


def _hypotheses(bits, n, iterations: int, subsets, subset_count):
    """``(iterations, 3)`` int32 positions in the sampling list and a validity mask: below 50 matches the
    precomputed distinct subsets of ``subset_table``, otherwise random triples of distinct matches (ranks shifted
    past the earlier picks, drawn from the pair's own key)."""
    row = jnp.clip(n, 0, ENUMERATE_BELOW - 1)
    enumerated = subsets[row]
    enumerated_valid = jnp.arange(iterations) < subset_count[row]
    counter = jnp.arange(iterations * 3, dtype=jnp.uint32).reshape(iterations, 3)
    u = hash_uniform(bits, counter, stream=1)
    m = jnp.maximum(n, 3).astype(jnp.float32)
    i0 = jnp.minimum((u[:, 0] * m).astype(jnp.int32), n - 1)
    i1 = jnp.minimum((u[:, 1] * (m - 1)).astype(jnp.int32), n - 2)
    i1 = i1 + (i1 >= i0)
    i2 = jnp.minimum((u[:, 2] * (m - 2)).astype(jnp.int32), n - 3)
    low, high = jnp.minimum(i0, i1), jnp.maximum(i0, i1)
    i2 = i2 + (i2 >= low)
    i2 = i2 + (i2 >= high)
    triples = jnp.stack([i0, i1, i2], -1)
    small = n < ENUMERATE_BELOW
    index = jnp.where(small, enumerated, triples)
    valid = jnp.where(small, enumerated_valid, True) & (n >= 4)
    return jnp.clip(index, 0, None), valid


COLLINEAR_AREA = 1e-6  # |det| of [x2, 1] below this: the 3 points are collinear (grid cells give >= 1e-4)


def _inverse_2x2(m):
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    adj = jnp.stack([jnp.stack([m[..., 1, 1], -m[..., 0, 1]], -1), jnp.stack([-m[..., 1, 0], m[..., 0, 0]], -1)], -2)
    return adj / det[..., None, None]


def _affine_fits(x2, x1):
    """Least-squares affine maps through 3 correspondences, minimum norm when the I2 points are collinear (what
    ``numpy.linalg.lstsq`` returns): ``(H, 3, 2)`` ``T`` with ``x1 ~ [x2, 1] @ T``. x2, x1: ``(H, 3, 2)``.

    In closed form, without an SVD: an invertible design matrix is inverted by its adjugate; a collinear one
    factors as ``Y = S M`` with ``S = [s_i, 1]`` (positions along the line) and ``M = [[d, 0], [c, 1]]`` (direction,
    point), both of rank 2, so ``pinv(Y) = M^T (M M^T)^-1 (S^T S)^-1 S^T``.
    """
    design = jnp.concatenate([x2, jnp.ones_like(x2[..., :1])], -1)  # (H, 3, 3)
    a, b, c = x2[..., 0, :], x2[..., 1, :], x2[..., 2, :]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    collinear = jnp.abs(area) <= COLLINEAR_AREA
    # Regular: adjugate / det (the determinant of the design matrix is the twice-area).
    m = design
    adjugate = jnp.stack([
        jnp.stack([m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1],
                   m[..., 0, 2] * m[..., 2, 1] - m[..., 0, 1] * m[..., 2, 2],
                   m[..., 0, 1] * m[..., 1, 2] - m[..., 0, 2] * m[..., 1, 1]], -1),
        jnp.stack([m[..., 1, 2] * m[..., 2, 0] - m[..., 1, 0] * m[..., 2, 2],
                   m[..., 0, 0] * m[..., 2, 2] - m[..., 0, 2] * m[..., 2, 0],
                   m[..., 0, 2] * m[..., 1, 0] - m[..., 0, 0] * m[..., 1, 2]], -1),
        jnp.stack([m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0],
                   m[..., 0, 1] * m[..., 2, 0] - m[..., 0, 0] * m[..., 2, 1],
                   m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]], -1)], -2)
    det = jnp.sum(m[..., 0, :] * adjugate[..., :, 0], -1)
    inverse = adjugate / jnp.where(collinear, 1.0, det)[..., None, None]
    # Collinear: direction from the farthest-apart pair, positions along it.
    pairs = [(a, b), (a, c), (b, c)]
    lengths = jnp.stack([jnp.sum((q - p) ** 2, -1) for p, q in pairs], -1)
    l0, l1, l2 = lengths[..., 0], lengths[..., 1], lengths[..., 2]
    far = jnp.where((l0 >= l1) & (l0 >= l2), 0, jnp.where(l1 >= l2, 1, 2))  # argmax of 3, first on ties
    far = far[..., None]
    d = jnp.where(far == 0, b - a, jnp.where(far == 1, c - a, c - b))
    d = d / jnp.sqrt(jnp.maximum(jnp.sum(d * d, -1, keepdims=True), 1e-30))
    s = jnp.sum((x2 - a[..., None, :]) * d[..., None, :], -1)  # (H, 3)
    S = jnp.stack([s, jnp.ones_like(s)], -1)  # (H, 3, 2)
    M = jnp.stack([jnp.concatenate([d, jnp.zeros_like(d[..., :1])], -1),
                   jnp.concatenate([a, jnp.ones_like(a[..., :1])], -1)], -2)  # (H, 2, 3)
    St = jnp.swapaxes(S, -1, -2)
    Mt = jnp.swapaxes(M, -1, -2)
    left = jnp.einsum("hij,hjk->hik", Mt, _inverse_2x2(jnp.einsum("hij,hjk->hik", M, Mt)))
    right = jnp.einsum("hij,hjk->hik", _inverse_2x2(jnp.einsum("hij,hjk->hik", St, S)), St)
    pseudo = jnp.einsum("hij,hjk->hik", left, right)
    solve = jnp.where(collinear[..., None, None], pseudo, inverse)
    return jnp.einsum("hij,hjk->hik", solve, x1)


def _apply(T, x2):
    """``T (..., 3, 2)`` applied to ``x2 (..., 2)`` broadcasting: returns (row, col)."""
    row = x2[..., 0] * T[..., 0, 0] + x2[..., 1] * T[..., 1, 0] + T[..., 2, 0]
    col = x2[..., 0] * T[..., 0, 1] + x2[..., 1] * T[..., 1, 1] + T[..., 2, 1]
    return row, col


def _squared_errors(T, x1, x2):
    """``(H, N, S)`` squared distance in I1 between ``x1 (N, 2)`` and ``T(x2 (N, S, 2))`` per hypothesis."""
    t = T[:, None, None]  # (H, 1, 1, 3, 2)
    row, col = _apply(t, x2[None])
    return (x1[None, :, None, 0] - row) ** 2 + (x1[None, :, None, 1] - col) ** 2
