"""The resize rule: the pixel size every image (or query box) is given before it enters the network.

* A target number of cells ``L`` for the longer side and a minimum ``m`` for the shorter one give
  ``(rows, cols)`` cells (``cells_for_size``), computed as the release does: ``ratio = w / h`` in double
  precision, Python 2 rounding (halves away from zero);
* each axis is resized to ``16 * (cells - 1) + 15`` = ``16 * cells - 1`` pixels (``pixels_for_cells``), so
  the aspect ratio is *not* preserved exactly: x and y get independent scale factors;
* with PIL's NEAREST filter (the Pillow <= 6 default the published numbers used; ``resample`` selects
  another PIL filter).

An input of ``16 n - 1`` pixels gives exactly ``n`` cells, and cell ``k`` has its receptive-field centre on
input pixel ``16 k`` (0-based). ``SCALES`` is the release's pyramid of longer-side cell counts.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from artdup_jax.geometry.resize import _pil_nearest_index

STRIDE = 16  # pixels per cell ("strideNet")
MIN_INPUT = 15  # pixels that give one cell ("minNet")


def scale_list(base: int = 20, octaves: int = 2, per_octave: int = 3) -> tuple[int, ...]:
    """Longer-side cell counts, largest first: ``int(B (2^O - 2^(i/P))) + B`` for ``i = 0 .. O P``."""
    return tuple(int(base * (2**octaves - 2 ** (i / per_octave))) + base for i in range(octaves * per_octave + 1))


SCALES = scale_list()  # (80, 74, 68, 60, 49, 36, 20)

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def round_half_away(x: float) -> int:
    """Python 2 ``round``: halves go away from zero (Python 3 and NumPy round them to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def cells_for_size(width: float, height: float, longer_cells: int, min_cells: int) -> tuple[int, int]:
    """``(rows, cols)`` cells for a ``width x height`` image or box: ``longer_cells`` on the longer side.

    The shorter side gets ``max(round(L * short / long), min_cells)``; a square counts as landscape.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    ratio = float(width) / float(height)
    if ratio < 1:
        return longer_cells, max(round_half_away(ratio * longer_cells), min_cells)
    return max(round_half_away(longer_cells / ratio), min_cells), longer_cells


def pixels_for_cells(cells: int) -> int:
    """``16 (cells - 1) + 15``: the input size that gives exactly ``cells`` feature cells."""
    return STRIDE * (cells - 1) + MIN_INPUT


def resized_hw(width: float, height: float, longer_cells: int, min_cells: int) -> tuple[int, int]:
    """Pixel ``(height, width)`` the resize rule gives an image (or box) of ``width x height`` pixels."""
    rows, cols = cells_for_size(width, height, longer_cells, min_cells)
    return pixels_for_cells(rows), pixels_for_cells(cols)


def resize_factors(width: float, height: float, longer_cells: int, min_cells: int) -> tuple[float, float]:
    """``(y_factor, x_factor)``: new size / old size per axis. They differ in general (16n - 1 rounding)."""
    new_h, new_w = resized_hw(width, height, longer_cells, min_cells)
    return new_h / height, new_w / width


@functools.lru_cache(maxsize=4096)
def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out,)`` source index of each output pixel of PIL's NEAREST resize along one axis (read-only)."""
    index = _pil_nearest_index(n_in, n_out)[:, 0]
    index.flags.writeable = False
    return index


def resize_image(image: np.ndarray, size_hw: tuple[int, int], *, resample: str = "nearest") -> np.ndarray:
    """PIL ``Image.resize((W, H), resample)`` of an ``(H, W, 3)`` RGB image.

    "nearest" copies input pixel ``int((i + 0.5) n_in / n_out)`` on each axis, exactly as Pillow (any dtype,
    kept). Other filters run Pillow on the 8-bit image (float input in [0, 1] is rounded to 8 bits first,
    which is exact for images read from 8-bit files) and return float32 in [0, 1].
    """
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, got {resample!r}")
    out_h, out_w = size_hw
    height, width = image.shape[:2]
    if resample == "nearest":
        return np.asarray(image)[nearest_indices(height, out_h)[:, None], nearest_indices(width, out_w)[None, :]]
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    resized = Image.fromarray(pixels).resize((out_w, out_h), RESAMPLE[resample])
    return np.asarray(resized, np.float32) / 255.0


def as_float_image(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255; floating images -> float32 (assumed in [0, 1])."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def resize_to_cells(image: np.ndarray, longer_cells: int, min_cells: int, *, resample: str = "nearest") -> np.ndarray:
    """The resize rule applied to a whole ``(H, W, 3)`` image: ``(16 rows - 1, 16 cols - 1, 3)``."""
    height, width = image.shape[:2]
    return resize_image(image, resized_hw(width, height, longer_cells, min_cells), resample=resample)
