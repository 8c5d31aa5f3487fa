"""RANSAC-Flow's homography RANSAC, as the official coarse stage runs it (the coarse stage's estimator).

Hypotheses are 4-tuples of match indices drawn with replacement (:func:`official_hypotheses`); each is fitted
by an unnormalised DLT (SVD), gated by ``det > 1e-6`` and scored by the number of matches whose transfer error
is below a tolerance; the official sequential rules (tuples with a repeated index dropped, chunks of 100, an
all-zero full chunk aborts) are applied to the scores afterwards. No refit. Matches the PyTorch port in
``baselines/torch/ransac_flow_ransac.py``. The generic estimator is :mod:`artdup_jax.geometry.ransac`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

OFFICIAL_CHUNK = 100
OFFICIAL_MIN_DET = 1e-6


class OfficialRansacResult(NamedTuple):
    """Output of :func:`official_ransac_flow_ransac`.

    M: ``(3, 3)`` float32 mapping target to source, as the SVD returned it (unit norm) with ``M[2, 2] >= 0``;
      zeros where not found.
    inliers: ``(N,)`` bool inlier mask of ``M`` (all False where not found).
    num_inliers: int32, the selected score.
    found: bool.
    scores: ``(I,)`` int32 per input hypothesis (inliers times [det > 1e-6]); -1 for dropped tuples.
    """

    M: jax.Array
    inliers: jax.Array
    num_inliers: jax.Array
    found: jax.Array
    scores: jax.Array


def official_hypotheses(key, num_matches: int, iterations: int):
    """RANSAC-Flow's draw: ``(iterations, 4)`` indices uniform in ``[0, num_matches)``, with replacement.

    Tuples with a repeated index are kept here and dropped by :func:`official_ransac_flow_ransac`.
    """
    return jax.random.randint(key, (iterations, 4), 0, num_matches, dtype=jnp.int32)


def _official_dlt(target, source):
    """Unnormalised DLT via SVD: ``(I, 4, 2)`` target/source -> ``(I, 3, 3)`` mapping target to source."""
    xt, yt = target[..., 0], target[..., 1]
    xs, ys = source[..., 0], source[..., 1]
    one, zero = jnp.ones_like(xt), jnp.zeros_like(xt)
    rows_a = jnp.stack([zero, zero, zero, -xt, -yt, -one, ys * xt, ys * yt, ys], -1)  # (I, 4, 9)
    rows_b = jnp.stack([xt, yt, one, zero, zero, zero, -xs * xt, -xs * yt, -xs], -1)
    A = jnp.stack([rows_a, rows_b], axis=-2).reshape(target.shape[:-2] + (8, 9))  # interleaved rows
    _, _, vh = jnp.linalg.svd(A, full_matrices=True)
    return vh[..., -1, :].reshape(target.shape[:-2] + (3, 3))


def _det3(m):
    return (m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
            - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
            + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0]))


def _official_inliers(M, target, source, valid, tol):
    """``(C, N)``: transfer error ``|source - pi(M target)|`` < tol, computed as the original (sqrt)."""
    m = M[:, :, :, None]
    xt, yt = target[:, 0], target[:, 1]
    z = m[:, 2, 0] * xt + m[:, 2, 1] * yt + m[:, 2, 2]
    u = (m[:, 0, 0] * xt + m[:, 0, 1] * yt + m[:, 0, 2]) / z
    v = (m[:, 1, 0] * xt + m[:, 1, 1] * yt + m[:, 1, 2]) / z
    error = jnp.sqrt((source[:, 0] - u) ** 2 + (source[:, 1] - v) ** 2)
    return (error < tol) & valid


@functools.partial(jax.jit, static_argnames=("chunk",))
def official_ransac_flow_ransac(target_xy, source_xy, hypothesis_indices, tol, valid=None, *,
                                chunk: int = 1000) -> OfficialRansacResult:
    """RANSAC-Flow's homography RANSAC on given hypotheses, vectorised.

    Every hypothesis is fitted and scored at once (``chunk`` bounds the score matrix's memory only);
    the original's sequential chunk-of-100 rules are then applied to the scores: tuples with a repeated index
    are dropped; over the surviving ones, in order, any *full* chunk of 100 whose best score is 0 aborts
    (no homography); otherwise the first maximum (> 0) wins. No refit.

    Deliberate deviation: each fitted matrix is canonicalised to ``M[2, 2] >= 0`` before the ``det > 1e-6``
    gate, so that the gate rejects reflections rather than whatever sign the SVD happened to return.

    Args:
      target_xy, source_xy: ``(N, 2)`` float, x first (normalised PC coordinates in RANSAC-Flow).
      hypothesis_indices: ``(I, 4)`` int, rows of the match arrays (e.g. :func:`official_hypotheses`).
      tol: inlier iff the transfer error is strictly below ``tol`` (units of source_xy).
      valid: optional ``(N,)`` bool; invalid matches never count and tuples using them are dropped.
      chunk: hypotheses per scoring step (memory only; results do not depend on it).
    Returns:
      :class:`OfficialRansacResult`; ``M`` maps target to source.
    """
    target = jnp.asarray(target_xy, jnp.float32)
    source = jnp.asarray(source_xy, jnp.float32)
    idx = jnp.asarray(hypothesis_indices, jnp.int32)
    num_matches, num_hyps = target.shape[0], idx.shape[0]
    if num_hyps == 0 or idx.shape[1:] != (4,):
        raise ValueError(f"hypothesis_indices must be (I >= 1, 4), got {idx.shape}")
    valid = jnp.ones((num_matches,), bool) if valid is None else jnp.asarray(valid, bool)

    repeated = jnp.zeros((num_hyps,), bool)
    for i in range(4):
        for j in range(i + 1, 4):
            repeated |= idx[:, i] == idx[:, j]
    kept = ~repeated & jnp.all(valid[idx], axis=-1)

    M = _official_dlt(target[idx], source[idx])
    M = jnp.where(M[..., 2:3, 2:3] < 0, -M, M)
    gate = _det3(M) > OFFICIAL_MIN_DET

    chunk = min(chunk, num_hyps)
    num_chunks = -(-num_hyps // chunk)
    pad = num_chunks * chunk - num_hyps
    M_chunks = jnp.concatenate([M, jnp.zeros((pad, 3, 3), M.dtype)]).reshape(num_chunks, chunk, 3, 3)
    counts = jax.lax.map(
        lambda m: jnp.sum(_official_inliers(m, target, source, valid, tol), -1, dtype=jnp.int32),
        M_chunks).reshape(-1)[:num_hyps]
    scores = jnp.where(kept, counts * gate, -1)

    # Sequential semantics on the surviving hypotheses, in their original order.
    order = jnp.argsort(~kept, stable=True)
    compact = scores[order]  # surviving first, -1 after
    n_kept = jnp.sum(kept, dtype=jnp.int32)
    num_blocks = -(-num_hyps // OFFICIAL_CHUNK)
    padded = jnp.concatenate([compact, jnp.full((num_blocks * OFFICIAL_CHUNK - num_hyps,), -1, jnp.int32)])
    block_best = jnp.max(padded.reshape(num_blocks, OFFICIAL_CHUNK), axis=-1)
    full_block = jnp.arange(num_blocks) < n_kept // OFFICIAL_CHUNK
    aborted = jnp.any(full_block & (block_best == 0))

    best = jnp.argmax(compact)
    best_score = compact[best]
    found = ~aborted & (best_score > 0) & (jnp.sum(valid) >= 4)
    M_best = M[order[best]]
    inliers = _official_inliers(M_best[None], target, source, valid, tol)[0]
    return OfficialRansacResult(
        M=jnp.where(found, M_best, 0.0),
        inliers=inliers & found,
        num_inliers=jnp.where(found, best_score, 0),
        found=found,
        scores=scores,
    )
