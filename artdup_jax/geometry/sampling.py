"""Bilinear grid sampling and the normalised-coordinate conventions (see the table in ``geometry/__init__``).

Grids are channels-last: ``grid[..., 0]`` is x (column), ``grid[..., 1]`` is y (row), both normalised
to [-1, 1]. ``align_corners=True`` (AC) puts -1 / +1 on the centres of the first / last pixel;
``align_corners=False`` (PC / half-pixel) puts them on the outer edges of those pixels.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_PADDING_MODES = ("zeros", "border")


def normalised_to_pixel(xy, size_hw, *, align_corners: bool):
    """Normalised [-1, 1] coordinates -> pixel coordinates (pixel ``i`` has its centre at ``i``).

    Args:
      xy: ``(..., 2)`` normalised coordinates, x (column) first.
      size_hw: ``(height, width)`` of the image the coordinates refer to.
      align_corners: True: ``p = (g + 1) / 2 * (n - 1)`` (AC);
        False: ``p = ((g + 1) * n - 1) / 2`` (PC / half-pixel).
    Returns:
      ``(..., 2)`` pixel coordinates, x first.
    """
    height, width = size_hw
    size = jnp.asarray([width, height], dtype=jnp.result_type(xy, jnp.float32))
    xy = jnp.asarray(xy)
    if align_corners:
        return (xy + 1) * 0.5 * (size - 1)
    return ((xy + 1) * size - 1) * 0.5


def pixel_to_normalised(xy, size_hw, *, align_corners: bool):
    """Pixel coordinates -> normalised [-1, 1] coordinates; inverse of :func:`normalised_to_pixel`.

    Args:
      xy: ``(..., 2)`` pixel coordinates, x (column) first.
      size_hw: ``(height, width)``.
      align_corners: True: ``g = 2p / (n - 1) - 1`` (AC; a size of 1 maps pixel 0 to -1);
        False: ``g = (2p + 1) / n - 1`` (PC / half-pixel).
    Returns:
      ``(..., 2)`` normalised coordinates, x first.
    """
    height, width = size_hw
    size = jnp.asarray([width, height], dtype=jnp.result_type(xy, jnp.float32))
    xy = jnp.asarray(xy)
    if align_corners:
        return 2 * xy / jnp.maximum(size - 1, 1) - 1
    return (2 * xy + 1) / size - 1


def identity_grid(height: int, width: int, *, align_corners: bool, dtype=jnp.float32):
    """Normalised coordinates of every pixel of a ``height x width`` image.

    Returns:
      ``(height, width, 2)``, x first. ``align_corners=True``: evenly spaced from -1 to 1 inclusive (AC,
      the identity grid of RANSAC-Flow); False: pixel centres ``2(j + 0.5)/n - 1`` (PC).
    """
    cols = jnp.arange(width, dtype=dtype)
    rows = jnp.arange(height, dtype=dtype)
    xs = pixel_to_normalised(jnp.stack([cols, jnp.zeros_like(cols)], -1), (height, width),
                             align_corners=align_corners)[:, 0]
    ys = pixel_to_normalised(jnp.stack([jnp.zeros_like(rows), rows], -1), (height, width),
                             align_corners=align_corners)[:, 1]
    grid_x = jnp.broadcast_to(xs[None, :], (height, width))
    grid_y = jnp.broadcast_to(ys[:, None], (height, width))
    return jnp.stack([grid_x, grid_y], axis=-1).astype(dtype)


def numpy_identity_grid(height: int, width: int, dtype=np.float64) -> np.ndarray:
    """The AC identity grid by NumPy, for host-side code (data pipelines, scoring): ``(height, width, 2)``,
    x first, ``np.linspace(-1, 1, n)`` along each axis computed in float64 and cast to ``dtype``.

    Equal to :func:`identity_grid` with ``align_corners=True`` up to float32 rounding (that one computes in
    float32, so a few values differ in the last bit).
    """
    xs, ys = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    return np.stack([xs, ys], axis=-1).astype(dtype)


def cell_centres(h: int, w: int, dtype=jnp.float32):
    """PC coordinates of the cells of an ``h x w`` feature map: x = 2(j + 0.5)/w - 1, y likewise.

    Returns ``(h, w, 2)``, x first. Identical to ``identity_grid(h, w, align_corners=False)``.
    """
    return identity_grid(h, w, align_corners=False, dtype=dtype)


def grid_sample(image, grid, *, align_corners: bool, padding_mode: str = "zeros"):
    """Bilinear sampling of ``image`` at normalised ``grid`` locations (torch ``grid_sample`` semantics).

    Args:
      image: ``(B, H, W, C)``.
      grid: ``(B, Ho, Wo, 2)`` normalised [-1, 1], x (column) first; values outside [-1, 1] are allowed.
      align_corners: coordinate convention, see :func:`normalised_to_pixel` (the RANSAC-Flow code uses True).
      padding_mode: "zeros": each of the four taps that falls outside the image contributes 0;
        "border": pixel coordinates are clamped to the image before interpolation.
    Returns:
      ``(B, Ho, Wo, C)``, dtype of ``image``. Differentiable w.r.t. ``image`` and ``grid``.
    """
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    batch, height, width, channels = image.shape
    _, out_h, out_w, _ = grid.shape
    dtype = jnp.result_type(image.dtype, grid.dtype, jnp.float32)
    pix = normalised_to_pixel(grid.astype(dtype), (height, width), align_corners=align_corners)
    px, py = pix[..., 0], pix[..., 1]
    if padding_mode == "border":
        px = jnp.clip(px, 0, width - 1)
        py = jnp.clip(py, 0, height - 1)

    x0f = jnp.floor(px)
    y0f = jnp.floor(py)
    wx1 = px - x0f
    wy1 = py - y0f
    wx0 = 1 - wx1
    wy0 = 1 - wy1
    # Clamp before the int cast so that far-away (or huge) coordinates stay representable; any tap
    # clamped here is out of range anyway and is masked to zero below.
    x0 = jnp.clip(x0f, -2, width + 1).astype(jnp.int32)
    y0 = jnp.clip(y0f, -2, height + 1).astype(jnp.int32)
    x1 = x0 + 1
    y1 = y0 + 1

    flat = image.reshape(batch, height * width, channels)

    def tap(xi, yi, weight):
        valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)
        values = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1)
        weight = jnp.where(valid, weight, 0).reshape(batch, -1, 1)
        return values * weight.astype(values.dtype)

    out = (tap(x0, y0, wx0 * wy0) + tap(x1, y0, wx1 * wy0)
           + tap(x0, y1, wx0 * wy1) + tap(x1, y1, wx1 * wy1))
    return out.reshape(batch, out_h, out_w, channels).astype(image.dtype)
