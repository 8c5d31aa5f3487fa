"""Exact mutual nearest neighbours from a few rows of the similarity matrix: bounds rule the other rows out.

A reference cell ``i`` can only be mutually matched if it is some target cell's nearest reference cell (its
column's first argmax). With the saliency weighting, a handful of strongly weighted cells win every column, so
only their rows of ``S = A B^T`` are needed; the others are shown to lose every column with upper bounds:

* Cauchy-Schwarz: ``a . b <= |a| |b|``, one number per row and column;
* a ``k``-dimensional orthonormal basis ``Q`` (leading right singular vectors of the cells, ``screening_basis``):
  ``a . b = (Q a) . (Q b) + r_a . r_b <= (Q a) . (Q b) + |r_a| |r_b|`` with ``r = x - Q^T Q x``;

each plus a relative slack that covers the float32 rounding of the bound and of the matrix product itself
(``<= 256 u |a| |b| = 1.5e-5 |a| |b|`` in any summation order; ``bound_vectors``). Per pair and scale, with the
reference rows sorted by decreasing norm:

1. the ``FIRST_ROWS`` largest rows are computed exactly; their column maxima ``L_j`` bound every column's maximum
   from below;
2. the rows whose Cauchy-Schwarz bound can reach some ``L_j`` (a prefix of the sorted rows) get the basis bound,
   ``BOUND_CHUNK`` rows a step; those whose bound can reach some ``L_j`` are computed exactly, ``EXACT_CHUNK`` a
   step (all of them, however many: the cost adapts, the result never depends on it);
3. every other row is strictly below its column's maximum everywhere: no column's argmax, no mutual match. The
   computed rows hold every column's first argmax and their own row argmaxes.

The computed entries come from the dense code's float32 product restricted to a block of rows (at least 2 rows;
tested equal bit for bit), so the matches and similarities are the dense ones. Columns that are padding or zero
vectors take part in no match and are left out of the bounds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.discovery.matching import first_argmax

BASIS_DIMS = 16  # k: leading singular vectors of the scored images' cells used by the bound
BASIS_SAMPLE = 512  # cells per map kind the basis is fitted on
BASIS_IMAGES = 32  # images they are drawn from
BOUND_MARGIN = 5e-4  # relative slack of the basis bound (about 5 times its rounding; ``bound_vectors``)
NORM_MARGIN = 1e-3  # relative slack of the Cauchy-Schwarz bound (its rounding: < 3e-5)
FIRST_ROWS = 16  # largest-norm reference rows computed exactly first
BOUND_CHUNK = 32  # rows per step of the basis bound
EXACT_CHUNK = 16  # rows per step of the exact product (>= 2: one row would take another code path)
_NO_ROW = np.iinfo(np.int32).max


def screening_basis(maps, dims: int = BASIS_DIMS, sample: int = BASIS_SAMPLE) -> np.ndarray:
    """``(dims, D)`` float32 orthonormal rows: the leading right singular vectors of a fixed sample of cells, each
    scaled to unit norm. ``maps``: ``(cells (N, L, D), valid (N, L), ids)`` triples; cells come from up to
    ``BASIS_IMAGES`` of the images ``ids``, read by rows ``valid[ids]`` and points ``cells[ids, cells]`` only.
    Only the speed of the screen depends on the basis, never the matches."""
    rows = []
    for cells, valid, ids in maps:
        ids = np.unique(np.asarray(ids, np.int64))
        if not len(ids):
            continue
        ids = ids[np.linspace(0, len(ids) - 1, min(BASIS_IMAGES, len(ids))).astype(int)]
        index = np.argwhere(np.asarray(valid[ids]))
        if len(index):
            pick = index[np.linspace(0, len(index) - 1, min(sample, len(index))).astype(int)]
            rows.append(np.asarray(cells[ids[pick[:, 0]], pick[:, 1]], np.float64).reshape(len(pick), -1))
    x = np.concatenate(rows) if rows else np.zeros((0, 1))
    x = x[np.linalg.norm(x, axis=1) > 0]
    if not len(x):
        return np.zeros((0, maps[0][0].shape[-1] if maps else 1), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(x.T @ x)  # ascending eigenvalues, orthonormal columns
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims].T, np.float32)


def bound_vectors(cells, basis, scale: float = 1.0):
    """``(N, D)`` cells -> ``(N, k + 2)`` float32 ``[Q x, |r|, scale |x|]`` with ``r = x - Q^T Q x``: the dot product
    of a reference's (``scale = BOUND_MARGIN``) and a target's (``scale = 1``) bounds their cells' ``a . b``.

    Rounding: the float32 basis is orthonormal to ~1e-7 and ``Q x`` is off by at most ``sqrt(k) 256 u |x|``
    (u = 2^-24), so the cross terms the identity then leaves out stay below ``2 (6.1e-5 + 1e-6) |a| |b|`` for
    ``k = 16``; with the product's own ``1.5e-5 |a| |b|`` and the bound's, ``BOUND_MARGIN`` holds them 3 times over.
    """
    projected = jnp.einsum("nd,kd->nk", cells, basis, precision=lax.Precision.HIGHEST)
    residual = cells - jnp.einsum("nk,kd->nd", projected, basis, precision=lax.Precision.HIGHEST)
    residual_norm = jnp.sqrt(jnp.sum(residual * residual, -1)) * (1 + 1e-5)
    return jnp.concatenate([projected, residual_norm[:, None], scale * upper_norms(cells)[:, None]], 1)


def upper_norms(cells):
    """``(N,)`` norms of ``cells (N, D)``, rounded up (their float32 error is below 8e-6 relative)."""
    return jnp.sqrt(jnp.sum(cells * cells, -1)) * (1 + 1e-5)


def screen_target(cells, valid, basis) -> dict:
    """What the screen needs of a target map ``(N2, D)`` at one scale (computed once for all its references)."""
    norm = upper_norms(cells)
    return {"cells": cells, "valid": valid, "bounds": bound_vectors(cells, basis),
            "norm": norm, "checked": valid & (norm > 0)}  # padding and zero vectors match nothing


def screen_reference(cells, valid, basis) -> dict:
    """A reference map ``(N1, D)``'s rows sorted by decreasing norm (valid rows first) and their bounds."""
    norm = upper_norms(cells)
    order = jnp.argsort(jnp.where(valid, -norm, jnp.inf), stable=True).astype(jnp.int32)
    cells = cells[order]
    return {"order": order, "cells": cells, "norm": norm[order], "count": jnp.sum(valid, dtype=jnp.int32),
            "bounds": jnp.concatenate([bound_vectors(cells, basis, BOUND_MARGIN),
                                       -jnp.ones((cells.shape[0], 1), cells.dtype)], 1)}


def screened_mutual_matches(reference: dict, target: dict):
    """``dense_mutual_matches`` of a prepared reference and target (``screen_reference``, ``screen_target``):
    ``matched (N1,)``, ``index (N1,)`` int32 target cell, ``similarity (N1,)``; equal values, in the reference's
    own row order."""
    cells, count, ids = reference["cells"], reference["count"], reference["order"]
    n1, n2 = cells.shape[0], target["cells"].shape[0]

    def exact(positions, state):
        """Exact rows at sorted ``positions`` (``>= count``: skipped): row argmaxes stored, column stats merged."""
        column_max, column_id, row_best, row_max = state
        real = positions < count
        rows = jnp.where(real, positions, 0)  # a copy of row 0 changes no column statistic
        scores = jnp.einsum("ic,jc->ij", cells[rows], target["cells"], precision=lax.Precision.HIGHEST)
        best, value = first_argmax(jnp.where(target["valid"][None, :], scores, -jnp.inf), axis=1)
        chunk_max = jnp.max(scores, axis=0)
        chunk_id = jnp.min(jnp.where(scores == chunk_max[None, :], ids[rows][:, None], _NO_ROW), axis=0)
        column_id = jnp.where(chunk_max > column_max, chunk_id,
                              jnp.where(chunk_max == column_max, jnp.minimum(column_id, chunk_id), column_id))
        keep = jnp.where(real, positions, n1)
        return (jnp.maximum(column_max, chunk_max), column_id, row_best.at[keep].set(best, mode="drop"),
                row_max.at[keep].set(value, mode="drop"))

    state = (jnp.full((n2,), -jnp.inf), jnp.full((n2,), _NO_ROW, jnp.int32), jnp.zeros((n1,), jnp.int32),
             jnp.full((n1,), -jnp.inf))
    state = exact(jnp.arange(FIRST_ROWS, dtype=jnp.int32), state)
    column_floor = jnp.where(target["checked"], state[0], jnp.inf)

    # Rows past the Cauchy-Schwarz prefix lose every column; the prefix gets the basis bound, chunk by chunk.
    threshold = jnp.min(jnp.where(target["checked"], state[0] / target["norm"], jnp.inf))
    prefix = jnp.sum((jnp.arange(n1) < count) & (reference["norm"] * (1 + NORM_MARGIN) >= threshold))
    augmented = jnp.concatenate([target["bounds"], column_floor[:, None]], 1)

    def bound_step(carry):
        start, needed = carry
        positions = start + jnp.arange(BOUND_CHUNK, dtype=jnp.int32)
        slack = jnp.einsum("ik,jk->ij", reference["bounds"][jnp.minimum(positions, n1 - 1)], augmented,
                           precision=lax.Precision.HIGHEST)
        hit = (jnp.max(slack, axis=1) >= 0) & (positions < prefix)
        return start + BOUND_CHUNK, needed.at[positions].set(hit, mode="drop")

    _, needed = lax.while_loop(lambda c: c[0] < prefix, bound_step, (jnp.int32(FIRST_ROWS), jnp.zeros((n1,), bool)))
    (listed,) = jnp.nonzero(needed, size=n1 + EXACT_CHUNK, fill_value=n1)
    listed = listed.astype(jnp.int32)
    total = jnp.sum(needed, dtype=jnp.int32)

    def exact_step(carry):
        start, state = carry
        return start + EXACT_CHUNK, exact(lax.dynamic_slice(listed, (start,), (EXACT_CHUNK,)), state)

    _, (_, column_id, row_best, row_max) = lax.while_loop(lambda c: c[0] < total, exact_step, (jnp.int32(0), state))
    computed = ((jnp.arange(n1) < FIRST_ROWS) | needed) & (jnp.arange(n1) < count)
    matched = (computed & (column_id[row_best] == ids) & (row_max * row_max > 0) & jnp.isfinite(row_max))

    def unsort(values):
        return jnp.zeros_like(values).at[ids].set(values)

    return (unsort(matched), unsort(jnp.where(matched, row_best, 0)), unsort(jnp.where(matched, row_max, 0.0)))
