"""RANSAC-Flow's local correlation (``netCorr``, CorrNeigh with kernel 7), ransac_flow.md §2.3.

Channel ``k`` of the volume is the displacement ``(dx, dy) = (k mod K - r, k // K - r)`` in feature cells
(dy-major, dx-minor), with ``K = 2r + 1``. The decoders' 49-channel axes use the same order.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

RADIUS = 3  # 7x7 window: ±3 cells = ±24 px at the fine network's input resolution


def window_offsets(radius: int = RADIUS) -> np.ndarray:
    """``(K*K, 2)`` int displacements in feature cells, x first, in correlation channel order (dy-major)."""
    size = 2 * radius + 1
    k = np.arange(size * size)
    return np.stack([k % size - radius, k // size - radius], axis=-1)


def local_correlation(reference, other, radius: int = RADIUS):
    """Dot products between each ``reference`` cell and the ``(2r+1)^2`` cells of ``other`` around it.

    ``corr[b, y, x, K*i + j] = sum_c reference[b, y, x, c] * other[b, y + i - r, x + j - r, c]``, with
    ``other`` zero-padded (out-of-map displacements give 0). No division by C: the caller L2-normalises.

    Args:
      reference: ``(B, h, w, C)``, the frame the volume lives on (the target T in RANSAC-Flow).
      other: ``(B, h, w, C)``, the map that is read at displaced positions (the coarse-aligned source).
      radius: half-width ``r`` of the window in cells.
    Returns:
      ``(B, h, w, (2r+1)^2)``, channel order dy-major / dx-minor (see ``window_offsets``).
    """
    if reference.shape != other.shape:
        raise ValueError(f"reference {reference.shape} and other {other.shape} must have the same shape")
    _, height, width, _ = reference.shape
    size = 2 * radius + 1
    padded = jnp.pad(other, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
    # One elementwise product + channel sum per static offset (no matmul, so no reduced-precision TF32).
    channels = [
        jnp.sum(reference * padded[:, i : i + height, j : j + width, :], axis=-1)
        for i in range(size)
        for j in range(size)
    ]
    return jnp.stack(channels, axis=-1)
