"""The device half of one-shot detection (its steps 3-5): one compiled program per batch of queries.

From packed collection maps (``packed_maps.PackedMaps``) and normalised query kernels it computes, with no
Python loop over images or scales:

1. per map (every image at every scale, one convolution per size bucket): the top ``k`` window positions of
   every query (``similarity.top_k_matches``), scattered into an ``(N, S, Q, k)`` table;
2. per image and query: the best ``P`` of its ``S k`` candidates (scale-major order, ties to the earlier one);
3. greedy NMS among those ``P`` (``suppress_overlaps_device``), where any intersection with a kept box removes a
   box, the query's own image being excluded;
4. over the collection: the best ``top_n`` surviving candidates of each query (ties keep collection order).

Boxes are compared as fractions of the image (``r / R``, ``min((r + h) / R, 1)``, ...), which orders them exactly
as the release's float64 pixel boxes: the pixel box is the fraction times the image side, so equal fractions
give equal pixels and distinct ones (denominators <= the longest map side, so >= 1 / R^2 apart) stay in the same
order in float32. Pixel boxes of the returned candidates are computed on the host in float64
(``detection.cells_to_boxes``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from artdup_jax.artminer.similarity import top_k_matches


def suppress_overlaps_device(boxes: jnp.ndarray, valid: jnp.ndarray, threshold: float = 0.0) -> jnp.ndarray:
    """Greedy NMS over candidates sorted best first, batched over leading axes (``detection.suppress_overlaps``
    on the device).

    Args: boxes ``(..., P, 4)`` [x1, y1, x2, y2]; valid ``(..., P)`` bool. Returns keep ``(..., P)`` bool: a kept
    box removes every later box whose ``intersection / own area`` exceeds ``threshold``.
    """
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))

    def intersection(low, high):  # (..., i, j)
        return jnp.maximum(0.0, jnp.minimum(high[..., :, None], high[..., None, :])
                           - jnp.maximum(low[..., :, None], low[..., None, :]))

    area = (x2 - x1) * (y2 - y1)
    inter = intersection(x1, x2) * intersection(y1, y2)
    covers = inter > threshold * area[..., None, :]  # [i, j]: box i covers more than threshold of box j
    count = boxes.shape[-2]

    def step(i, state):
        keep, suppressed = state
        kept = ~suppressed[..., i]
        keep = keep.at[..., i].set(kept)
        return keep, suppressed | (kept[..., None] & covers[..., i, :])

    keep, _ = lax.fori_loop(0, count, step, (jnp.zeros_like(valid), ~valid))
    return keep


@functools.partial(jax.jit, static_argnames=("shapes", "num_images", "num_scales", "k", "per_image", "top_n"))
def rank_detections(buckets, kernels, kernel_hw, shape_index, excluded, box_grid, *, shapes: tuple,
                    num_images: int, num_scales: int, k: int, per_image: int, top_n: int):
    """Ranked candidates of ``Q`` queries over ``N`` images.

    Args:
      buckets: tuple of ``(maps (M, Rp, Cp, D), valid_hw (M, 2), image (M,), scale (M,))`` (``MapBucket`` fields).
      kernels: ``(Q, Kh, Kw, D)`` normalised, zero-padded queries; kernel_hw ``(Q, 2)``; shape_index ``(Q,)``
        into the static ``shapes`` (``similarity.pad_kernels``).
      excluded: ``(Q,)`` int32 image each query skips (its own; -1: none).
      box_grid: ``(N, S, Q, 2)`` float32 ``(R, C)`` the boxes divide by (the resize rule with the shorter side at
        least the kernel's larger side).
      k: positions per map and query; per_image: candidates per image before NMS (``<= S k``); top_n: results
        per query (``<= N per_image``).
    Returns:
      ``score (Q, top_n)`` (``-inf``: none), ``image``, ``scale`` (index), ``row``, ``col`` ``(Q, top_n)`` int32.
    """
    num_queries = kernels.shape[0]
    shape = (num_images, num_scales, num_queries, k)
    scores = jnp.full(shape, -jnp.inf, jnp.float32)
    rows = jnp.zeros(shape, jnp.int32)
    cols = jnp.zeros(shape, jnp.int32)
    for maps, valid_hw, image, scale in buckets:  # a handful of size buckets, fixed when tracing
        values, r, c = top_k_matches(maps, valid_hw, kernels, kernel_hw, shape_index, shapes=shapes, k=k)
        scores = scores.at[image, scale].set(values, mode="drop")
        rows = rows.at[image, scale].set(r, mode="drop")
        cols = cols.at[image, scale].set(c, mode="drop")

    def per_query(a):  # (N, S, Q, k) -> (N, Q, S k), scale-major
        return jnp.transpose(a, (0, 2, 1, 3)).reshape(num_images, num_queries, num_scales * k)

    scale_of = jnp.broadcast_to(jnp.repeat(jnp.arange(num_scales, dtype=jnp.int32), k),
                                (num_images, num_queries, num_scales * k))
    best, order = lax.top_k(per_query(scores), per_image)  # (N, Q, P), ties to the earlier candidate
    row, col, scale = (jnp.take_along_axis(a, order, -1) for a in (per_query(rows), per_query(cols), scale_of))

    grid = jnp.take_along_axis(jnp.transpose(box_grid, (0, 2, 1, 3)), scale[..., None], 2)  # (N, Q, P, 2)
    height = kernel_hw[None, :, None, 0].astype(jnp.float32)
    width = kernel_hw[None, :, None, 1].astype(jnp.float32)
    fractions = jnp.stack([col / grid[..., 1], row / grid[..., 0], jnp.minimum((col + width) / grid[..., 1], 1.0),
                           jnp.minimum((row + height) / grid[..., 0], 1.0)], -1)
    own = jnp.arange(num_images)[:, None, None] == excluded[None, :, None]
    keep = suppress_overlaps_device(fractions, jnp.isfinite(best) & ~own)

    ranked = jnp.where(keep, best, -jnp.inf).transpose(1, 0, 2).reshape(num_queries, -1)  # (Q, N P)
    score, flat = lax.top_k(ranked, top_n)  # ties keep collection order
    image_index, slot = flat // per_image, flat % per_image

    def pick(a):  # (N, Q, P) -> (Q, top_n)
        return a.transpose(1, 0, 2)[jnp.arange(num_queries)[:, None], image_index, slot]

    return score, image_index.astype(jnp.int32), pick(scale), pick(row), pick(col)
