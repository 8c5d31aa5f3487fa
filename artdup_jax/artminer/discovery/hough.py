"""Hough initialisation of a pair's affine RANSAC: the smoothed cell-shift vote and the matches near its peak.

Per scale each match votes for its cell shift ``(r1 - r2, c1 - c2)``, offset by ``(R2 - 2, C2 - 2)`` (so the most
extreme shift lands on index -1, which wraps to the last bin, as the release); the grid is convolved ('same',
zeros) with ``exp(-(dx^2 + dy^2) / tau_c^2)`` on ``[-tau_c, tau_c]^2``; the first maximum in row-major order is
the peak; its matches within ``tau_c`` (Chebyshev) of the peak are the sampling set.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.discovery.matching import first_argmax


def _hough_sampling_set(r1, c1, r2, c2, matched, rows1, cols1, rows2, cols2, grid, tolerance_cells):
    """The Hough step at one scale: the smoothed vote peak and the matches within ``tau_c`` of it.

    Votes go to a static ``grid`` holding the true ``(R1 + R2, C1 + C2)`` one; the shift ``-1`` wraps to the true
    grid's last bin, as numpy's negative index does in the release. Returns ``(peak value, (N1,) bool)``.
    """
    shift_r, shift_c = r1 - r2 + rows2 - 2, c1 - c2 + cols2 - 2
    bin_r = jnp.where(shift_r < 0, shift_r + rows1 + rows2, shift_r)
    bin_c = jnp.where(shift_c < 0, shift_c + cols1 + cols2, shift_c)
    grid_rows, grid_cols = grid
    votes = jnp.zeros(grid, jnp.float32).at[bin_r, bin_c].add(matched.astype(jnp.float32), mode="drop")
    smoothed = _convolve_same(votes, _hough_kernel(tolerance_cells))
    inside = (jnp.arange(grid_rows)[:, None] < rows1 + rows2) & (jnp.arange(grid_cols)[None, :] < cols1 + cols2)
    flat = jnp.where(inside, smoothed, -jnp.inf).reshape(-1)
    peak, _ = first_argmax(flat, 0)  # first maximum in row-major order
    peak_r, peak_c = peak // grid_cols, peak % grid_cols
    near = (jnp.abs(shift_r - peak_r) <= tolerance_cells) & (jnp.abs(shift_c - peak_c) <= tolerance_cells)
    return flat[peak], matched & near


def _hough_kernel(tolerance_cells: float) -> np.ndarray:
    axis = np.arange(-tolerance_cells, tolerance_cells + 1)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return np.exp(-(xx**2 + yy**2) / tolerance_cells**2).astype(np.float32)


def _convolve_same(grid, kernel: np.ndarray):
    """``scipy.signal.convolve2d(grid, kernel, mode='same')`` with zero padding, ``grid (Gr, Gc)``."""
    k = kernel.shape[0]
    start = (k - 1) // 2
    pad = ((k - 1 - start, start), (k - 1 - start, start))
    return lax.conv_general_dilated(grid[None, :, :, None], jnp.asarray(kernel[::-1, ::-1])[:, :, None, None],
                                    (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)[0, :, :, 0]
