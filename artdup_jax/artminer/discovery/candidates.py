"""Which pairs to verify: regional global descriptors and each image's most similar images.

Exhaustive discovery scores every pair (``all_pairs``); otherwise each image's ``top_k`` nearest neighbours by
the largest cosine between regional descriptors (``candidate_pairs``), about ``N k`` pairs. ``directed`` turns
unordered pairs into the ``(reference, target)`` rows that are scored.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.model import EPS

REGION_FRACTION = 0.6  # side of the regional windows, as a fraction of the map's side
REGION_STEPS = 3  # windows per axis


def region_windows(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """``(r0, c0, r1, c1)`` cell windows of the regional descriptor: the whole map and a 3 x 3 grid of windows
    of 60% of each side (R-MAC-like; always ``1 + 9`` windows, repeated when the map is tiny)."""
    h, w = max(1, round(rows * REGION_FRACTION)), max(1, round(cols * REGION_FRACTION))
    starts_r = np.linspace(0, rows - h, REGION_STEPS).round().astype(int)
    starts_c = np.linspace(0, cols - w, REGION_STEPS).round().astype(int)
    return [(0, 0, rows, cols)] + [(int(r), int(c), int(r) + h, int(c) + w) for r in starts_r for c in starts_c]


def global_descriptors(maps: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 10, D)`` regional descriptors of raw maps: the mean feature of each window of ``region_windows``,
    L2-normalised, the collection's mean descriptor removed, L2-normalised again.

    A copied detail fills only part of an image; a window around it is closer to the copy's window than the
    whole-image means are (with random weights, top-10 recall of planted pairs rises from ~60% to ~85%).
    Removing the mean stops the (non-negative, hence all-alike) descriptors from being dominated by their
    common part.
    """
    pooled = np.stack([np.stack([np.asarray(m[r0:r1, c0:c1], np.float32).reshape(-1, m.shape[-1]).mean(0)
                                 for r0, c0, r1, c1 in region_windows(*m.shape[:2])]) for m in maps])
    pooled = pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + EPS)
    if len(pooled) > 1:
        pooled = pooled - pooled.reshape(-1, pooled.shape[-1]).mean(0)
    return (pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + EPS)).astype(np.float32)


def all_pairs(num_images: int) -> np.ndarray:
    """``(N (N - 1) / 2, 2)`` unordered pairs ``i < j``."""
    i, j = np.triu_indices(num_images, k=1)
    return np.stack([i, j], 1).astype(np.int64)


def candidate_pairs(descriptors: np.ndarray, top_k: int, *, block: int = 256) -> np.ndarray:
    """Unordered pairs ``i < j`` such that j is among i's ``top_k`` most similar images or i among j's.

    Similarity of two images = the largest cosine between their regional descriptors ``(N, W, D)``: one matrix
    product per block of rows, then max over window pairs and top-k on the device. ``O(N^2 W^2 D)`` FLOPs,
    ``O(N k)`` pairs.
    """
    descriptors = np.asarray(descriptors, np.float32)
    if descriptors.ndim == 2:
        descriptors = descriptors[:, None]
    n, windows, depth = descriptors.shape
    k = min(top_k, n - 1)
    if k <= 0:
        return np.zeros((0, 2), np.int64)
    flat = jnp.asarray(descriptors.reshape(n * windows, depth))
    found = []
    for start in range(0, n, block):
        rows = flat[start * windows:(start + block) * windows]
        sims = jnp.einsum("id,jd->ij", rows, flat, precision=lax.Precision.HIGHEST)
        sims = sims.reshape(-1, windows, n, windows).max(axis=(1, 3))
        own = jnp.arange(n)[None, :] == jnp.arange(start, start + sims.shape[0])[:, None]
        _, index = lax.top_k(jnp.where(own, -jnp.inf, sims), k)
        found.append(np.asarray(index))
    neighbours = np.concatenate(found)
    i = np.repeat(np.arange(n), k)
    j = neighbours.reshape(-1)
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], 1)
    return np.unique(pairs, axis=0).astype(np.int64)


def directed(pairs: np.ndarray, symmetric: bool = True) -> np.ndarray:
    """Unordered ``(M, 2)`` -> directional ``(reference, target)`` rows: ``(2M, 2)`` (both ways) or ``(M, 2)``."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return np.concatenate([pairs, pairs[:, ::-1]]) if symmetric else pairs
