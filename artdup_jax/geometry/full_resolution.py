"""Full-resolution results of an alignment computed on resized images: coordinate maps and tiled warping.

Conventions (OpenCV's, as ``geometry.classical``): pixel centres at integers, x (column) first. A homography
``H`` is (3, 3) float64 and maps **source pixels to target pixels** of the original images, so
``cv2.warpPerspective(source, H, (W_t, H_t))`` draws the source in the target's frame. A coordinate map is
``(h, w, 2) float32``: for each target pixel, the source pixel it reads (``cv2.remap``'s map, x first).

An alignment is computed at a processing size (both images resized, ``preprocess.scale_matrix``); at full
resolution its map is ``H⁻¹(p) + residual(p)``: the homography, exact at any size, plus the fine stage's
residual (original source pixels, known on the processing target lattice, bilinearly interpolated). Maps
and warps are produced ``tile`` x ``tile`` target pixels at a time, so a 6000-pixel target never needs a
full-size float map in memory: the peak is the source, the warped output and one tile's maps.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from artdup_jax.geometry.classical import preprocess

TILE = 512  # target pixels per tile side: a tile's float64 coordinates take 4 MiB, its temporaries ~16 MiB


def tiles(hw: tuple[int, int], tile: int = TILE) -> Iterator[tuple[slice, slice]]:
    """(rows, columns) slices covering an (H, W) frame in ``tile`` x ``tile`` blocks, row-major."""
    for top in range(0, hw[0], tile):
        for left in range(0, hw[1], tile):
            yield slice(top, min(top + tile, hw[0])), slice(left, min(left + tile, hw[1]))


def _pixels(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) float64 x and y of the pixel centres of a block."""
    return np.meshgrid(np.arange(cols.start, cols.stop, dtype=np.float64),
                       np.arange(rows.start, rows.stop, dtype=np.float64))


def _through(H: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y) of any equal shapes through a (3, 3) homography."""
    z = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    return (H[0, 0] * x + H[0, 1] * y + H[0, 2]) / z, (H[1, 0] * x + H[1, 1] * y + H[1, 2]) / z


def residual_from_grid(grid: np.ndarray, source_processing_hw: tuple[int, int], homography: np.ndarray,
                       source_hw: tuple[int, int], target_hw: tuple[int, int]) -> np.ndarray:
    """What a processing-size flow adds to the homography, in original source pixels.

    grid: (h, w, 2) on the processing target lattice (the target resized to (h, w)), where each pixel reads
      the processing source (``source_processing_hw``), normalised [-1, 1] AC, x first (``ransac_flow``'s
      grids). homography: (3, 3) original source → original target pixels. Returns (h, w, 2) float32: the
      grid's source position minus the homography's, original source pixels; 0 where the homography reads
      outside the source (the grids are clamped there: no residual to keep).
    """
    h, w = grid.shape[:2]
    hs, ws = source_processing_hw
    x_proc = (grid[..., 0].astype(np.float64) + 1) / 2 * (ws - 1)
    y_proc = (grid[..., 1].astype(np.float64) + 1) / 2 * (hs - 1)
    x_grid, y_grid = _through(np.linalg.inv(preprocess.scale_matrix(source_hw, source_processing_hw)), x_proc, y_proc)
    x_t, y_t = _through(np.linalg.inv(preprocess.scale_matrix(target_hw, (h, w))), *_pixels(slice(0, h), slice(0, w)))
    x_h, y_h = _through(np.linalg.inv(homography), x_t, y_t)
    inside = (x_h >= -0.5) & (x_h <= source_hw[1] - 0.5) & (y_h >= -0.5) & (y_h <= source_hw[0] - 0.5)
    residual = np.stack([x_grid - x_h, y_grid - y_h], -1) * inside[..., None]
    return residual.astype(np.float32)


def coordinate_map(homography: np.ndarray, target_hw: tuple[int, int], rows: slice, cols: slice,
                   residual: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 2) float32 source pixels read by the target pixels ``[rows, cols]`` (original frames).

    homography: (3, 3) source → target pixels. residual: optional (h_p, w_p, 2) float32 from
    ``residual_from_grid``, on a processing lattice of the same target.
    """
    x, y = _pixels(rows, cols)
    x_s, y_s = _through(np.linalg.inv(homography), x, y)
    out = np.stack([x_s, y_s], -1).astype(np.float32)
    if residual is not None:
        to_lattice = preprocess.scale_matrix(target_hw, residual.shape[:2])
        x_l, y_l = (to_lattice[0, 0] * x + to_lattice[0, 2]).astype(np.float32), \
            (to_lattice[1, 1] * y + to_lattice[1, 2]).astype(np.float32)
        out += cv2.remap(residual, x_l, y_l, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def warp_full_resolution(source: np.ndarray, homography: np.ndarray, target_hw: tuple[int, int], *,
                         residual: np.ndarray | None = None, tile: int = TILE,
                         coordinates_out: np.ndarray | None = None) -> np.ndarray:
    """The source drawn in the original target frame, tile by tile (``cv2.remap``, bilinear, black outside).

    source: (H_s, W_s, C) or (H_s, W_s), uint8 (or float32) at its original resolution. homography: (3, 3)
    source → target pixels; without ``residual`` the result equals ``cv2.warpPerspective(source, homography,
    (W_t, H_t))`` up to interpolation rounding. When the warp shrinks the source more than twice, the source
    is first area-averaged to about the target's scale (bilinear sampling would alias). coordinates_out:
    an optional writable (H_t, W_t, 2) float32 array (e.g. ``np.lib.format.open_memmap``) that receives the
    coordinate maps (original source pixels, before any such shrinking). Returns (H_t, W_t[, C]) of the
    source's dtype.
    """
    source_hw = source.shape[:2]
    shrink = None
    factor = preprocess.linear_scale(homography, source_hw)
    if factor < 0.5:
        small_hw = preprocess.resized_hw(source_hw, max(16, round(max(source_hw) * factor)))
        shrink = preprocess.scale_matrix(source_hw, small_hw)
        source = cv2.resize(source, (small_hw[1], small_hw[0]), interpolation=cv2.INTER_AREA)
    out = np.zeros(tuple(target_hw) + source.shape[2:], source.dtype)
    for rows, cols in tiles(target_hw, tile):
        coordinates = coordinate_map(homography, target_hw, rows, cols, residual)
        if coordinates_out is not None:
            coordinates_out[rows, cols] = coordinates
        if shrink is not None:
            coordinates = coordinates * np.float32([shrink[0, 0], shrink[1, 1]]) + \
                np.float32([shrink[0, 2], shrink[1, 2]])
        out[rows, cols] = cv2.remap(source, coordinates[..., 0], coordinates[..., 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out
