"""Where an object goes in image B: its A→B affine (aspect, rotation, crop, resize, paste) and the two-object
layouts. Matrices are 3×3 affines in continuous pixel coordinates (origin at the top-left corner, pixel i
covers [i, i + 1)).
"""

from __future__ import annotations

import numpy as np

from artdup_jax.segswap.data.config import SynthesisConfig

_SCALE_STEPS = 10  # the object size factor r takes 10 values with probabilities ∝ exp(-k / 10)


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def _scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def _rotate(degrees: float) -> np.ndarray:
    """Counter-clockwise on screen for positive angles (PIL's sense) in y-down coordinates."""
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), np.sin(t), 0], [-np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _size_factor(rng: np.random.Generator, scales: tuple[float, float]) -> float:
    weights = np.exp(-np.arange(_SCALE_STEPS) / 10)
    return float(np.linspace(*scales, _SCALE_STEPS)[rng.choice(_SCALE_STEPS, p=weights / weights.sum())])


def object_transform(rng: np.random.Generator, mask: np.ndarray, region: tuple[int, int, int, int],
                     scales: tuple[float, float], config: SynthesisConfig) -> np.ndarray | None:
    """The object's A→B affine (3×3, continuous pixels): aspect, rotation, crop to the mask, resize, paste.

    Args:
      mask: ``(S, S)`` soft object mask in A, in [0, 1].
      region: ``(x0, y0, x1, y1)`` pixels of B the object must fit in.
    Returns None when the mask is empty.
    """
    rows, cols = np.nonzero(mask > 0.5)
    if rows.size == 0:
        return None
    sw, sh = rng.uniform(*config.aspect, size=2)
    linear = _rotate(rng.uniform(-config.max_rotation, config.max_rotation)) @ _scale(sw, sh)
    corners = np.stack([np.concatenate([cols, cols + 1, cols, cols + 1]),
                        np.concatenate([rows, rows, rows + 1, rows + 1])], axis=-1).astype(np.float64)
    moved = corners @ linear[:2, :2].T
    low, high = moved.min(0), moved.max(0)
    box_w, box_h = high - low
    x0, y0, x1, y1 = region
    fit = min((x1 - x0) / box_w, (y1 - y0) / box_h)
    factor = fit * _size_factor(rng, scales)
    if config.max_scale_change > 0:
        factor = min(float(np.clip(factor, 1 / config.max_scale_change, config.max_scale_change)), fit)
    patch_w, patch_h = box_w * factor, box_h * factor
    # Integer top-left corners where the patch fits (the tolerance absorbs rounding when r = 1).
    left = x0 + rng.integers(0, max(int(np.floor(x1 - x0 - patch_w + 1e-6)), 0) + 1)
    top = y0 + rng.integers(0, max(int(np.floor(y1 - y0 - patch_h + 1e-6)), 0) + 1)
    return _translate(left, top) @ _scale(factor, factor) @ _translate(*(-low)) @ linear


def two_object_layouts(size: int, gap: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """16 layouts of two disjoint regions ``(x0, y0, x1, y1)`` separated by ``gap`` pixels: the
    two halves (4 orders), a half with a quadrant of the other half (8), diagonal quadrants (4)."""
    a, b = size // 2 - gap // 2, size // 2 + gap - gap // 2
    halves = {"L": (0, 0, a, size), "R": (b, 0, size, size), "T": (0, 0, size, a), "B": (0, b, size, size)}
    quads = {"TL": (0, 0, a, a), "TR": (b, 0, size, a), "BL": (0, b, a, size), "BR": (b, b, size, size)}
    layouts = [(halves[p], halves[q]) for p, q in (("L", "R"), ("R", "L"), ("T", "B"), ("B", "T"))]
    opposite = {"L": ("TR", "BR"), "R": ("TL", "BL"), "T": ("BL", "BR"), "B": ("TL", "TR")}
    layouts += [(halves[p], quads[q]) for p, qs in opposite.items() for q in qs]
    layouts += [(quads[p], quads[q]) for p, q in (("TL", "BR"), ("BR", "TL"), ("TR", "BL"), ("BL", "TR"))]
    return layouts

