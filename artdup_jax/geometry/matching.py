"""Mutual nearest-neighbour matching of L2-normalised features (RANSAC-Flow's coarse stage, ArtMiner).

Features are ``(N, C)`` rows (one per feature cell), already L2-normalised, so the similarity is the cosine.
Outputs have static shapes: match lists are padded to ``min(Na, Nb)`` (no cell can take part in more than
one mutual match) with a validity mask, listed in increasing ``index_a`` order (the order of PyTorch's
``nonzero`` on the ``Na x Nb`` keep-matrix). Ties in an argmax go to the first index.
A leading ``(P,)`` batch dimension on the features (and masks) runs the same program vmapped over pairs.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

MASK_MODES = ("before", "after")


class MutualMatches(NamedTuple):
    """Padded match list; leading ``(P,)`` for a batch.

    index_a, index_b: ``(..., K)`` int32 rows of ``features_a`` / ``features_b``, ``K = min(Na, Nb)``;
      0 in padded slots.
    similarity: ``(..., K)`` float32 cosine of each match; 0 in padded slots.
    valid: ``(..., K)`` bool, True for the first ``count`` slots.
    count: ``(...,)`` int32 number of matches.
    """

    index_a: jax.Array
    index_b: jax.Array
    similarity: jax.Array
    valid: jax.Array
    count: jax.Array


def cosine_similarity(features_a, features_b):
    """``(..., Na, C)`` x ``(..., Nb, C)`` -> ``(..., Na, Nb)`` dot products at full float32 precision.

    Equal to the cosine for L2-normalised rows. HIGHEST precision keeps GPU matmuls out of TF32, which
    would otherwise flip near-tied argmaxes.
    """
    return jnp.einsum("...ic,...jc->...ij", features_a, features_b, precision=jax.lax.Precision.HIGHEST)


def _mutual_from_scores(scores, keep_a, keep_b):
    """Mutual NN on a score matrix ``(Na, Nb)``; ``keep_a`` / ``keep_b`` filter matches afterwards."""
    num_a, num_b = scores.shape
    best_b = jnp.argmax(scores, axis=1)  # (Na,)
    best_a = jnp.argmax(scores, axis=0)  # (Nb,)
    max_a = jnp.max(scores, axis=1)  # row maxima
    max_b = jnp.max(scores, axis=0)  # column maxima
    # RANSAC-Flow keeps (a, b) iff the product of the two maxima is > 0; for a mutual pair both are S[a, b].
    mutual = ((best_a[best_b] == jnp.arange(num_a)) & (max_a * max_b[best_b] > 0)
              & keep_a & keep_b[best_b])
    size = min(num_a, num_b)
    (index_a,) = jnp.nonzero(mutual, size=size, fill_value=0)
    count = jnp.sum(mutual, dtype=jnp.int32)
    valid = jnp.arange(size) < count
    index_b = jnp.where(valid, best_b[index_a], 0).astype(jnp.int32)
    similarity = jnp.where(valid, scores[index_a, index_b], 0.0)
    return MutualMatches(index_a.astype(jnp.int32), index_b, similarity, valid, count)


def _mutual_single(features_a, features_b, valid_a, valid_b, excluded_b, mask_mode):
    features_a = jnp.asarray(features_a, jnp.float32)
    features_b = jnp.asarray(features_b, jnp.float32)
    num_a, num_b = features_a.shape[0], features_b.shape[0]
    valid_a = jnp.ones((num_a,), bool) if valid_a is None else jnp.asarray(valid_a, bool)
    valid_b = jnp.ones((num_b,), bool) if valid_b is None else jnp.asarray(valid_b, bool)
    keep_b = jnp.ones((num_b,), bool)
    if excluded_b is not None:
        excluded_b = jnp.asarray(excluded_b, bool)
        if mask_mode == "before":
            # Quick-start / YFCC copy: masked target features are zeroed, then matched.
            features_b = jnp.where(excluded_b[:, None], 0.0, features_b)
        else:
            # Evaluation copy: match on all cells, then drop matches landing on masked cells.
            keep_b = ~excluded_b
    scores = cosine_similarity(features_a, features_b)
    # Padding: invalid cells are absent, so they can neither match nor win anybody's argmax.
    scores = jnp.where(valid_a[:, None] & valid_b[None, :], scores, -jnp.inf)
    return _mutual_from_scores(scores, valid_a, keep_b & valid_b)


@functools.partial(jax.jit, static_argnames=("mask_mode",))
def mutual_nearest_neighbours(features_a, features_b, valid_a=None, valid_b=None, *,
                              excluded_b=None, mask_mode: str = "after") -> MutualMatches:
    """Mutual nearest neighbours between two sets of L2-normalised features.

    Keeps ``(a, b)`` iff ``b = argmax_b' S[a, b']``, ``a = argmax_a' S[a', b]`` and the product of the two
    maxima is > 0 (RANSAC-Flow's rule), with ``S = features_a features_b^T``.

    Args:
      features_a: ``(Na, C)`` or ``(P, Na, C)`` (source cells in RANSAC-Flow).
      features_b: ``(Nb, C)`` or ``(P, Nb, C)`` (target cells).
      valid_a, valid_b: optional ``(..., Na)`` / ``(..., Nb)`` bool padding masks; invalid cells are treated
        as absent.
      excluded_b: optional ``(..., Nb)`` bool target cells masked out by the multi-homography loop.
      mask_mode: how ``excluded_b`` acts. "after" (HPatches/KITTI/MegaDepth evaluation copy): mutual NN on
        all cells, then matches on excluded cells are dropped. "before" (quick-start/YFCC copy): excluded
        target features are zeroed before matching, so mutual NN is recomputed among the remaining cells.
    Returns:
      :class:`MutualMatches`, padded to ``K = min(Na, Nb)``.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    run = functools.partial(_mutual_single, mask_mode=mask_mode)
    if features_a.ndim == 2:
        return run(features_a, features_b, valid_a, valid_b, excluded_b)
    axes = tuple(None if m is None else 0 for m in (valid_a, valid_b, excluded_b))
    return jax.vmap(run, in_axes=(0, 0) + axes)(features_a, features_b, valid_a, valid_b, excluded_b)
