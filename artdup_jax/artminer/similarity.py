"""Sliding cosine similarity between query blocks and feature maps, as convolutions.

The score of query ``q`` (an ``(h, w, 256)`` block divided by its global Frobenius norm) at map position
``(r, c)`` is ``<q, F[r:r+h, c:c+w]> / (||F[r:r+h, c:c+w]|| + 1e-7)``: the cosine between the flattened
blocks. The numerator is a valid stride-1 convolution of the map with the query; the window norm is the
square root of a box filter over the squared features. Positions are the window's top-left cell.
"""

from __future__ import annotations

import functools
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.model import EPS

HIGHEST = lax.Precision.HIGHEST


def normalise_query(block: jnp.ndarray, eps: float = EPS) -> jnp.ndarray:
    """``(..., h, w, D)`` block divided by its global L2 norm over ``(h, w, D)`` (+ eps)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(block), axis=(-3, -2, -1), keepdims=True))
    return block / (norm + eps)


def _window_sums(squares: jnp.ndarray, h: int, w: int, padding: str | Sequence) -> jnp.ndarray:
    """Sum over every ``h x w`` window of ``(B, R, C, 1)``, top-left anchored."""
    return lax.reduce_window(squares, 0.0, lax.add, (1, h, w, 1), (1, 1, 1, 1), padding)


def sliding_cosine(maps: jnp.ndarray, kernels: jnp.ndarray, *, eps: float = EPS, precision=HIGHEST) -> jnp.ndarray:
    """Cosine between each query block and every window of equal size.

    Args:
      maps: ``(B, R, C, D)`` raw features.
      kernels: ``(Q, h, w, D)`` query blocks, already normalised (``normalise_query``); the kernel is used as
        given, so an unnormalised kernel gives the training retrieval's un-normalised scores.
    Returns:
      ``(B, R - h + 1, C - w + 1, Q)``.
    """
    chex.assert_rank([maps, kernels], 4)
    chex.assert_equal(maps.shape[-1], kernels.shape[-1])
    _, h, w, _ = kernels.shape
    dot = lax.conv_general_dilated(maps, jnp.transpose(kernels, (1, 2, 3, 0)), (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
    squares = jnp.sum(jnp.square(maps), axis=-1, keepdims=True)
    return dot / (jnp.sqrt(_window_sums(squares, h, w, "VALID")) + eps)


def pad_kernels(kernels: Sequence[np.ndarray]):
    """Queries of different shapes -> one zero-padded stack (top-left aligned).

    Returns ``(padded (Q, Kh, Kw, D), kernel_hw (Q, 2) int32, shapes, shape_index (Q,) int32)``, where
    ``shapes`` is the sorted tuple of distinct ``(h, w)`` and ``shape_index[q]`` points into it.
    """
    if not kernels:
        raise ValueError("no query kernels")
    hw = np.array([k.shape[:2] for k in kernels], np.int32)
    shapes = tuple(sorted({(int(h), int(w)) for h, w in hw}))
    padded = np.zeros((len(kernels), int(hw[:, 0].max()), int(hw[:, 1].max()), kernels[0].shape[-1]), np.float32)
    for q, kernel in enumerate(kernels):
        padded[q, : kernel.shape[0], : kernel.shape[1]] = np.asarray(kernel)
    shape_index = np.array([shapes.index((int(h), int(w))) for h, w in hw], np.int32)
    return padded, hw, shapes, shape_index


@functools.partial(jax.jit, static_argnames=("shapes", "k", "eps", "precision"))
def top_k_matches(maps, valid_hw, kernels, kernel_hw, shape_index, *, shapes: tuple, k: int, eps: float = EPS,
                  precision=HIGHEST):
    """Best ``k`` window positions of every query in every map, all queries in one convolution.

    Maps of different true sizes share one call: each is zero-padded (bottom/right) to ``(Rp, Cp)`` and a
    window counts only if it lies inside the map's true ``(R, C)``. Queries of different shapes share it too:
    kernels are zero-padded to ``(Kh, Kw)`` (zeros add nothing to the dot product) and each query's window
    norm is taken over its own ``(h, w)``.

    Args:
      maps: ``(B, Rp, Cp, D)`` raw features, zero beyond each map's true size.
      valid_hw: ``(B, 2)`` int true ``(R, C)`` per map.
      kernels: ``(Q, Kh, Kw, D)`` normalised queries (``pad_kernels``); kernel_hw: ``(Q, 2)`` true ``(h, w)``.
      shape_index: ``(Q,)`` index of each query's ``(h, w)`` in ``shapes`` (static tuple of distinct shapes).
      k: positions kept per (map, query); fewer valid windows give ``-inf`` scores.
    Returns:
      ``scores (B, Q, k)`` descending, ``rows (B, Q, k)``, ``cols (B, Q, k)`` int32 top-left cells.
    """
    chex.assert_rank([maps, kernels], 4)
    batch, rows_p, cols_p, _ = maps.shape
    _, kh, kw, _ = kernels.shape
    dot = lax.conv_general_dilated(maps, jnp.transpose(kernels, (1, 2, 3, 0)), (1, 1),
                                   ((0, kh - 1), (0, kw - 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision=precision)  # (B, Rp, Cp, Q)
    squares = jnp.sum(jnp.square(maps), axis=-1, keepdims=True)
    sums = jnp.concatenate([_window_sums(squares, h, w, ((0, 0), (0, h - 1), (0, w - 1), (0, 0)))
                            for h, w in shapes], axis=-1)  # (B, Rp, Cp, S)
    scores = dot / (jnp.sqrt(jnp.take(sums, shape_index, axis=-1)) + eps)
    row = jnp.arange(rows_p)[None, :, None, None]
    col = jnp.arange(cols_p)[None, None, :, None]
    map_rows, map_cols = valid_hw[:, 0, None, None, None], valid_hw[:, 1, None, None, None]
    inside = (row + kernel_hw[:, 0] <= map_rows) & (col + kernel_hw[:, 1] <= map_cols)
    scores = jnp.where(inside, scores, -jnp.inf)
    flat = jnp.transpose(scores, (0, 3, 1, 2)).reshape(batch, -1, rows_p * cols_p)
    if flat.shape[-1] < k:  # tiny maps: pad so that every call returns k entries
        flat = jnp.pad(flat, ((0, 0), (0, 0), (0, k - flat.shape[-1])), constant_values=-jnp.inf)
    values, index = lax.top_k(flat, k)
    index = jnp.where(jnp.isfinite(values), index, 0)
    return values, (index // cols_p).astype(jnp.int32), (index % cols_p).astype(jnp.int32)
