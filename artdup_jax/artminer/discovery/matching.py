"""Mutual nearest neighbours between a reference's cells and a target's, in a dense per-reference-cell layout.

Coordinates are ``((row + 0.49) / R, (col + 0.49) / C)`` on the cropped reference grid and on the target's grid
at each scale (row first), as the release normalises them.
"""

from __future__ import annotations

import jax.numpy as jnp

from artdup_jax.geometry.matching import cosine_similarity

COORD_OFFSET = 0.49  # cell centre offset of the release's normalised coordinates


def first_argmax(x, axis: int):
    """``(argmax(x, axis), max(x, axis))``: the first index of the maximum, as ``jnp.argmax``, for arrays without
    NaN. Two plain reductions (max, then min over the indices that reach it): XLA:CPU runs these vectorised,
    while ``argmax``'s (value, index) reduction is several times slower than the matrix product before it."""
    best = jnp.max(x, axis=axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    index = jnp.arange(x.shape[axis], dtype=jnp.int32).reshape(shape)
    first = jnp.min(jnp.where(x == best, index, x.shape[axis]), axis=axis)
    return jnp.minimum(first, x.shape[axis] - 1), jnp.squeeze(best, axis)


def dense_mutual_matches(reference, target, reference_valid, target_valid):
    """Mutual nearest neighbours as ``geometry.matching.mutual_nearest_neighbours`` keeps them (top-1 both ways,
    first index on ties, product of the two maxima > 0, padding absent), but laid out per reference cell:
    ``matched (N1,)`` bool, ``index (N1,)`` int32 target cell, ``similarity (N1,)`` cosine (0 where unmatched).
    No compaction or scatter: cheaper to compile and to run inside the vmapped pair score.
    """
    scores = cosine_similarity(reference, target)  # (N1, N2)
    scores = jnp.where(reference_valid[:, None] & target_valid[None, :], scores, -jnp.inf)
    best_b, similarity = first_argmax(scores, axis=1)
    best_a, _ = first_argmax(scores, axis=0)
    matched = ((best_a[best_b] == jnp.arange(scores.shape[0])) & reference_valid & target_valid[best_b]
               & (similarity * similarity > 0) & jnp.isfinite(similarity))
    return matched, jnp.where(matched, best_b, 0).astype(jnp.int32), jnp.where(matched, similarity, 0.0)


def _reference_grid(reference_hw, n1: int):
    """Row, column and normalised coordinates ``(N1, 2)`` of every (padded) reference cell."""
    rows1, cols1 = reference_hw[0], reference_hw[1]
    cell = jnp.arange(n1)
    r1, c1 = cell // jnp.maximum(cols1, 1), cell % jnp.maximum(cols1, 1)
    x1 = jnp.stack([(r1 + COORD_OFFSET) / rows1, (c1 + COORD_OFFSET) / cols1], -1).astype(jnp.float32)
    return r1, c1, x1
