"""Training pairs: a crop of a photograph and a homography-warped, recoloured view of the same region."""

from __future__ import annotations

import cv2
import numpy as np

from artdup_jax.data.embedded import embedded_images


def cell_targets(homography_a_to_b: np.ndarray, image_size: int, stride: int) -> np.ndarray:
    """For every feature cell of A (row-major), the index of the B cell its centre maps to, or -1 if outside.

    homography_a_to_b: (3, 3) pixel homography (pixel centres at integer coordinates). Returns (n*n,) int32,
    n = image_size // stride.
    """
    n = image_size // stride
    centres = (np.arange(n) + 0.5) * stride - 0.5
    x, y = np.meshgrid(centres, centres)
    points = np.stack([x.ravel(), y.ravel(), np.ones(n * n)])
    mapped = homography_a_to_b @ points
    u, v = mapped[0] / mapped[2], mapped[1] / mapped[2]
    col, row = np.floor((u + 0.5) / stride), np.floor((v + 0.5) / stride)
    inside = (col >= 0) & (col < n) & (row >= 0) & (row < n) & (mapped[2] > 0)
    return np.where(inside, row * n + col, -1).astype(np.int32)


def make_pair(index: int, *, seed: int, image_size: int, stride: int, max_corner_shift: float) -> dict:
    """One example, a deterministic function of ``(seed, index)``.

    Returns image_a, image_b: (S, S, 3) float32 RGB in [0, 1]; homography_a_to_b: (3, 3) float32 pixels;
    target_cell: (n*n,) int32 (see ``cell_targets``).
    """
    rng = np.random.default_rng([seed, index])
    images = embedded_images()
    photo = images[rng.integers(len(images))]
    height, width = photo.shape[:2]
    side = rng.uniform(0.25, 0.8) * min(height, width)
    x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - side)
    scale = image_size / side
    photo_to_a = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale], [0, 0, 1]])

    corners = np.array([[0, 0], [image_size, 0], [image_size, image_size], [0, image_size]], np.float32)
    moved = corners + rng.uniform(-max_corner_shift, max_corner_shift, (4, 2)).astype(np.float32) * image_size
    a_to_b = cv2.getPerspectiveTransform(corners, moved).astype(np.float64)

    size = (image_size, image_size)
    image_a = cv2.warpPerspective(photo, photo_to_a, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    image_b = cv2.warpPerspective(
        photo, a_to_b @ photo_to_a, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    image_b = _recolour(image_b.astype(np.float32) / 255.0, rng)
    return {
        "image_a": image_a.astype(np.float32) / 255.0,
        "image_b": image_b,
        "homography_a_to_b": a_to_b.astype(np.float32),
        "target_cell": cell_targets(a_to_b, image_size, stride),
    }


def _recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A style change: per-channel gain and offset, sometimes grey, sometimes blurred. (H, W, 3) in [0, 1]."""
    image = image * rng.uniform(0.6, 1.4, 3) + rng.uniform(-0.15, 0.15, 3)
    if rng.random() < 0.2:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def signature(image_size: int, stride: int) -> dict:
    n = image_size // stride
    return {
        "image_a": ((image_size, image_size, 3), np.float32),
        "image_b": ((image_size, image_size, 3), np.float32),
        "homography_a_to_b": ((3, 3), np.float32),
        "target_cell": ((n * n,), np.int32),
    }
