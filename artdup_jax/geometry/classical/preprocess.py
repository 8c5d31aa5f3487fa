"""Shared preprocessing of the classical aligners: grey conversion, resizing with its homography, gradients.

Pixel coordinates are OpenCV's: the centre of pixel (column i, row j) is at (x, y) = (i, j). Resizing an
image of width w to width w' (``cv2.resize``, half-pixel convention) moves x to (x + 0.5)·w'/w - 0.5; the
3x3 matrix of that change is ``scale_matrix``. Every homography here acts on column vectors (x, y, 1).
"""

from __future__ import annotations

import cv2
import numpy as np


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1] → (H, W) float32 grey in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    image = image.astype(np.float32, copy=False)
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise ValueError(f"expected (H, W, 3) or (H, W) image, got shape {image.shape}")
    return np.clip(image, 0.0, 1.0)


def scale_matrix(from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) float64: pixel coordinates of an (H, W) image → those of the same image resized to ``to_hw``."""
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)


def resized_hw(hw: tuple[int, int], longer_side: int) -> tuple[int, int]:
    """(H, W) scaled so that the longer side is ``longer_side``, aspect ratio kept."""
    factor = longer_side / max(hw)
    return max(1, round(hw[0] * factor)), max(1, round(hw[1] * factor))


def resize(grey: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 → (h, w) float32; area averaging when shrinking, bicubic when enlarging."""
    if tuple(grey.shape[:2]) == tuple(hw):
        return grey
    shrinking = hw[0] * hw[1] < grey.shape[0] * grey.shape[1]
    return cv2.resize(grey, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def change_frames(H: np.ndarray, source_map: np.ndarray, target_map: np.ndarray) -> np.ndarray:
    """A source → target homography re-expressed between other frames.

    ``source_map`` / ``target_map``: (3, 3) maps from the frames ``H`` works in to the new ones (e.g.
    ``scale_matrix``). Returns ``target_map · H · source_map⁻¹``, normalised so that [2, 2] = 1.
    """
    out = target_map @ np.asarray(H, np.float64) @ np.linalg.inv(source_map)
    return out / out[2, 2]


def gradient_magnitude(grey: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """(H, W) float32 → (H, W) float32 Sobel gradient magnitude of the image smoothed by ``sigma`` px."""
    if sigma > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def normalised_gradient(grey: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gradient magnitude divided by its local (≈ 1/8 of the image) mean: (H, W) float32, roughly in [0, 4].

    Equalises strong and weak contrast regions, so dark varnished paintings, prints and photographs give
    comparable maps (the copies' media differ, their contours do not).
    """
    magnitude = gradient_magnitude(grey, sigma)
    window = max(3, max(grey.shape) // 8)
    local = cv2.blur(magnitude, (window, window)) + 1e-3 + 0.1 * float(magnitude.mean())
    return np.minimum(magnitude / local, 4.0).astype(np.float32)


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] → uint8."""
    return np.clip(np.round(grey * 255.0), 0, 255).astype(np.uint8)


def frame_corners(hw: tuple[int, int]) -> np.ndarray:
    """(4, 2) float64 corners (x, y) of an (H, W) image's pixel-centre frame, clockwise from top-left."""
    h, w = hw
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)


def apply(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, 2) points through a (3, 3) homography → (N, 2), float64."""
    xy = np.asarray(xy, np.float64)
    mapped = np.concatenate([xy, np.ones((len(xy), 1))], 1) @ np.asarray(H, np.float64).T
    return mapped[:, :2] / mapped[:, 2:]


def linear_scale(H: np.ndarray, source_hw: tuple[int, int]) -> float:
    """How much ``H`` enlarges the source on average: sqrt(area of the warped frame / area of the frame)."""
    quad = apply(H, frame_corners(source_hw)).astype(np.float32)
    area = float(cv2.contourArea(quad))
    return float(np.sqrt(max(area, 1.0) / max(1.0, (source_hw[0] - 1) * (source_hw[1] - 1))))


def source_at_target_scale(grey_s: np.ndarray, H: np.ndarray, target_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The source resized to about the resolution it has once warped by ``H`` into a target frame resized by
    ``target_factor``; returns (resized (h, w) float32, (3, 3) source pixels → resized pixels).

    Warping a large image straight into a small frame aliases; this shrinks it first (area averaging).
    """
    side = int(np.clip(max(grey_s.shape) * linear_scale(H, grey_s.shape) * target_factor, 16, max(grey_s.shape)))
    hw = resized_hw(grey_s.shape, side)
    return resize(grey_s, hw), scale_matrix(grey_s.shape, hw)


def plausible(H: np.ndarray | None, source_hw: tuple[int, int], target_hw: tuple[int, int],
              max_area_ratio: float = 25.0) -> bool:
    """The source frame maps (source → target ``H``) to a convex, unflipped quadrilateral of sane area.

    A fold, a flip or a collapse is never a real copy's geometry; such homographies come from chance matches.
    """
    if H is None or not np.all(np.isfinite(H)):
        return False
    corners = np.concatenate([frame_corners(source_hw), np.ones((4, 1))], 1) @ np.asarray(H, np.float64).T
    if np.any(corners[:, 2] <= 1e-9):
        return False
    quad = corners[:, :2] / corners[:, 2:]
    edges = np.roll(quad, -1, axis=0) - quad
    nxt = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]
    if not np.all(turns > 0):  # clockwise in image coordinates (y down) as the source frame: no flip
        return False
    area = 0.5 * abs(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))
    reference = float(target_hw[0] * target_hw[1])
    return reference / max_area_ratio < area < reference * max_area_ratio
