"""Exact mutual nearest neighbours from a few rows of the similarity matrix: bounds that rule the other rows out.

A reference cell ``i`` can only be mutually matched if it is some target cell's nearest reference cell (its
column's first argmax). With the saliency weighting, a handful of strongly weighted cells win every column, so
only their rows of ``S = A B^T`` are needed. Which ones is decided with a rigorous upper bound of every entry,
from a ``k``-dimensional orthonormal basis ``Q`` (the bank's leading right singular vectors):

    a . b = (Q a) . (Q b) + r_a . r_b <= (Q a) . (Q b) + |r_a| |r_b|,        r = (I - Q^T Q) x,

plus ``BOUND_MARGIN |a| |b|``, which covers the float32 rounding of both the bound and the matrix product
(``<= 256 u |a| |b| = 1.5e-5 |a| |b|`` for any summation order). Per pair and scale:

1. the ``first_rows`` largest-norm reference rows are computed exactly; their column maxima ``L_j`` bound every
   column's maximum from below;
2. every other row with a bound ``>= L_j`` for some column is "needed"; at most ``extra_rows`` of them are
   computed exactly (more: the pair is flagged, and ``score_pairs`` matches it densely);
3. a row not computed is strictly below its column's maximum everywhere, so it is no column's argmax and has no
   mutual match; the computed rows hold every column's argmax (first index on ties, as the dense code) and
   their own row argmaxes.

The computed entries come from the same float32 matrix product as the dense code's (a subset of its rows;
tested equal bit for bit on this CPU), so the matches and similarities are the dense ones. Columns of zero
vectors take part in no match (their similarity is 0) and are left out of the bound.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.discovery.matching import first_argmax

BASIS_DIMS = 8  # k: leading singular vectors of the bank's cells used by the bound
BOUND_MARGIN = 1e-4  # relative slack of the bound (> 1.5e-5 + the bound's own rounding)
FIRST_ROWS = 32  # largest-norm reference rows computed exactly first
EXTRA_ROWS = 32  # further rows the bound may ask for before a pair is matched densely
BASIS_SAMPLE = 4096  # cells per map kind the basis is fitted on


def screening_basis(maps, dims: int = BASIS_DIMS, sample: int = BASIS_SAMPLE) -> np.ndarray:
    """``(dims, D)`` float64 orthonormal rows: the leading right singular vectors of a fixed sample of the valid
    cells of ``maps`` (a list of ``(cells (N, L, D), valid (N, L))``), each cell scaled to unit norm. Only the
    speed of the screen depends on it, never the matches."""
    rows = []
    for cells, valid in maps:
        index = np.argwhere(np.asarray(valid))
        if len(index):
            pick = index[np.linspace(0, len(index) - 1, min(sample, len(index))).astype(int)]
            rows.append(np.asarray(cells[pick[:, 0], pick[:, 1]], np.float64))
    if not rows:
        return np.zeros((0, 1))
    x = np.concatenate(rows)
    x = x[np.linalg.norm(x, axis=1) > 0]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:dims]


def bound_vectors(cells: np.ndarray, basis: np.ndarray, *, reference: bool) -> np.ndarray:
    """``(..., D)`` cells -> ``(..., k + 2)`` float32 bound vectors: ``[Q x, |r|, margin |x|]`` for references,
    ``[Q x, |r|, |x|]`` for targets, so that the dot product of a reference's with a target's bounds ``a . b``
    (float64 inside, rounded up where a rounding could lower the bound)."""
    x = np.asarray(cells, np.float64)
    projected = x @ basis.T
    residual = np.sqrt(np.maximum(np.sum(x * x, -1) - np.sum(projected * projected, -1), 0.0))
    residual = np.maximum(residual, np.linalg.norm(x - projected @ basis, axis=-1)) * (1 + 1e-6)
    norm = np.linalg.norm(x, axis=-1) * (1 + 1e-6) * (BOUND_MARGIN if reference else 1.0)
    return np.concatenate([projected, residual[..., None], norm[..., None]], -1).astype(np.float32)


def largest_rows(cells: np.ndarray, valid: np.ndarray, count: int = FIRST_ROWS) -> np.ndarray:
    """``(N, count)`` int32 indices of each map's ``count`` largest-norm valid rows (``L``, past the end, where a
    map has fewer)."""
    norms = np.where(valid, np.linalg.norm(np.asarray(cells, np.float32), axis=-1), -1.0)
    order = np.argsort(-norms, axis=-1, kind="stable")[..., :count]
    length = cells.shape[-2]
    order = np.where(np.take_along_axis(valid, order, -1), order, length).astype(np.int32)
    if order.shape[-1] < count:
        order = np.pad(order, [(0, 0)] * (order.ndim - 1) + [(0, count - order.shape[-1])], constant_values=length)
    return order


def _exact_rows(reference, rows, target):
    """``(R, N2)`` rows ``rows`` (``L1`` = none: zeros) of the similarity matrix, by the dense code's product."""
    picked = reference[jnp.minimum(rows, reference.shape[0] - 1)]
    return jnp.einsum("ic,jc->ij", picked, target, precision=jax.lax.Precision.HIGHEST)


def screened_mutual_matches(reference, reference_valid, reference_bounds, first_rows, target, target_valid,
                            target_bounds, *, extra_rows: int = EXTRA_ROWS):
    """``dense_mutual_matches`` (same outputs, equal values) from at most ``len(first_rows) + extra_rows`` rows.

    reference ``(N1, D)``, reference_valid ``(N1,)``, reference_bounds ``(N1, k + 2)`` (``bound_vectors``),
    first_rows ``(F,)`` int32 (``largest_rows``); target ``(N2, D)``, target_valid ``(N2,)``, target_bounds
    ``(N2, k + 2)``. Returns ``(matched (N1,), index (N1,) int32, similarity (N1,), exact)``: ``exact`` False when
    more than ``extra_rows`` further rows were needed (the outputs are then incomplete).
    """
    n1 = reference.shape[0]
    in_first = jnp.zeros((n1,), bool).at[first_rows].set(True, mode="drop")
    first_ok = (first_rows < n1) & reference_valid[jnp.minimum(first_rows, n1 - 1)]
    first = jnp.where(first_ok[:, None] & target_valid[None, :], _exact_rows(reference, first_rows, target), -jnp.inf)
    column_floor = jnp.max(first, axis=0)
    # Padded and all-zero target cells take part in no match: no bound needed there.
    column_floor = jnp.where(target_valid & (target_bounds[:, -1] > 0), column_floor, jnp.inf)
    bound = jnp.einsum("ik,jk->ij", reference_bounds, target_bounds, precision=jax.lax.Precision.HIGHEST)
    needed = reference_valid & ~in_first & (jnp.max(bound - column_floor[None, :], axis=1) >= 0)
    exact = jnp.sum(needed) <= extra_rows
    (extra,) = jnp.nonzero(needed, size=extra_rows, fill_value=n1)
    extra = extra.astype(jnp.int32)
    more = jnp.where((extra < n1)[:, None] & target_valid[None, :], _exact_rows(reference, extra, target), -jnp.inf)

    # Rows in ascending index order, so that first maxima are the dense code's.
    rows = jnp.where(jnp.concatenate([first_ok, extra < n1]), jnp.concatenate([first_rows, extra]), n1)
    order = jnp.argsort(rows)
    rows = rows[order]
    scores = jnp.concatenate([first, more])[order]  # (R, N2)
    column_best, _ = first_argmax(scores, axis=0)  # position in ``rows`` of each column's first maximum
    best_b, similarity = first_argmax(scores, axis=1)
    matched = ((rows[column_best[best_b]] == rows) & (rows < n1) & target_valid[best_b]
               & (similarity * similarity > 0) & jnp.isfinite(similarity))

    def spread(values, fill):
        return jnp.full((n1,), fill, values.dtype).at[rows].set(values, mode="drop")

    return (spread(matched, False), spread(jnp.where(matched, best_b, 0).astype(jnp.int32), 0),
            spread(jnp.where(matched, similarity, 0.0), 0.0), exact)
