"""Training pairs for the fine network, as deterministic NumPy/OpenCV examples.

Two sources, one output format (``pair_signature``):
- ``synthetic_pair``: any photograph, a second view made by a small random homography, a smooth local
  deformation and photometric/style jitter. Mimics a coarse-aligned pair, and its true dense correspondence
  is known, so held-out pairs measure the learned flow.
- ``MegaDepthPairs``: the official layout, a folder of already coarse-aligned groups ``{i}_1.jpg``,
  ``{i}_2.jpg`` [``{i}_3.jpg``], with the official augmentation (random scale, shared crop, shared flip).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import cv2
import numpy as np
from PIL import Image

from artdup_jax.data.embedded import embedded_images
from artdup_jax.geometry.sampling import numpy_identity_grid


_ANTIALIAS_SIGMA = 0.5  # Gaussian σ per unit of decimation factor (photo pixels per view pixel)


def pair_signature(size: int) -> dict:
    return {
        "image_1": ((size, size, 3), np.float32),
        "image_2": ((size, size, 3), np.float32),
        "grid_2_to_1": ((size, size, 2), np.float32),
    }


def _smooth_field(rng, size: int, amplitude: float, nodes: int = 4) -> np.ndarray:
    """(size, size, 2) smooth random displacement in pixels: a coarse random grid, bicubic-upsampled."""
    coarse = rng.uniform(-amplitude, amplitude, (nodes, nodes, 2)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _jitter(image: np.ndarray, rng) -> np.ndarray:
    """Photometric and style change: gain, gamma, offset per channel, sometimes grey or blurred. In [0, 1]."""
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    image = image * rng.uniform(0.7, 1.3, 3) + rng.uniform(-0.1, 0.1, 3)
    if rng.random() < 0.15:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), rng.uniform(0.4, 1.2))
    return np.clip(image, 0, 1).astype(np.float32)


def synthetic_pair(index: int, *, seed: int, size: int, max_shift: float, deformation: float,
                   photos: tuple[np.ndarray, ...] | None = None, jitter: bool = True) -> dict:
    """One pair, a deterministic function of ``(seed, index)``.

    image_1, image_2: (size, size, 3) float32 in [0, 1]. grid_2_to_1: (size, size, 2) float32, for every pixel
    of image_2 its location in image_1, normalised AC ([-1, 1], x first) — the fine network's target-to-source
    flow with image_2 as target.
    max_shift: homography corner displacement as a fraction of ``size``; deformation: pixels of smooth warp.
    """
    rng = np.random.default_rng([seed, index])
    photos = embedded_images() if photos is None else photos
    photo = photos[rng.integers(len(photos))].astype(np.float32) / 255.0
    height, width = photo.shape[:2]
    side = rng.uniform(0.35, 0.9) * min(height, width)
    x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - side)
    scale = side / size  # photo pixels per view pixel
    # Low-pass before sampling at 1/scale: unfiltered bilinear decimation aliases, and the two views would
    # then alias differently, i.e. differ by more than the known warp.
    photo = cv2.GaussianBlur(photo, (0, 0), _ANTIALIAS_SIGMA * scale) if scale > 1 else photo

    lattice = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).astype(np.float64)
    corners = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]], np.float32)
    moved = corners + rng.uniform(-max_shift, max_shift, (4, 2)).astype(np.float32) * size
    view2_to_view1 = cv2.getPerspectiveTransform(corners, moved).astype(np.float64)
    homogeneous = lattice @ view2_to_view1[:, :2].T + view2_to_view1[:, 2]
    in_view1 = homogeneous[..., :2] / homogeneous[..., 2:]
    in_view1 = in_view1 + _smooth_field(rng, size, deformation)  # view-1 pixel coordinates of view-2 pixels

    def to_photo(xy):
        return (xy[..., 0] * scale + x0).astype(np.float32), (xy[..., 1] * scale + y0).astype(np.float32)

    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REFLECT
    image_1 = cv2.remap(photo, *to_photo(lattice), flags, borderMode=border)
    image_2 = cv2.remap(photo, *to_photo(in_view1), flags, borderMode=border)
    grid = 2.0 * in_view1 / (size - 1) - 1.0
    return {
        "image_1": np.clip(image_1, 0, 1).astype(np.float32),
        "image_2": _jitter(image_2, rng) if jitter else np.clip(image_2, 0, 1).astype(np.float32),
        "grid_2_to_1": grid.astype(np.float32),
    }


@dataclasses.dataclass(frozen=True)
class MegaDepthPairs:
    """A folder of coarse-aligned groups ``{i}_1.jpg``, ``{i}_2.jpg`` (optionally ``{i}_3.jpg``)."""

    folder: str
    size: int = 224

    def groups(self) -> list[list[str]]:
        members: dict[str, list[str]] = {}
        for path in sorted(glob.glob(os.path.join(self.folder, "*_*.*"))):
            match = re.fullmatch(r"(.+)_(\d+)\.(jpg|jpeg|png)", os.path.basename(path), re.IGNORECASE)
            if match:
                members.setdefault(match.group(1), []).append(path)
        groups = [sorted(v) for _, v in sorted(members.items()) if len(v) >= 2]
        if not groups:
            raise FileNotFoundError(f"no '{{i}}_1.jpg, {{i}}_2.jpg' groups of pre-aligned images in {self.folder}")
        return groups

    def example(self, index: int, *, seed: int, groups: list[list[str]]) -> dict:
        """Two distinct members of group ``index mod len(groups)`` with the official augmentation.

        The flow between them is unknown (they are only coarsely aligned): grid_2_to_1 is the identity.
        """
        rng = np.random.default_rng([seed, index])
        group = groups[index % len(groups)]
        first, second = rng.choice(len(group), 2, replace=False)
        images = [Image.open(group[i]).convert("RGB") for i in (first, second)]
        shorter = int(rng.choice([self.size, self.size * 3 // 2, self.size * 2]))
        width, height = images[0].size
        ratio = shorter / min(width, height)
        new_w, new_h = max(self.size, int(round(width * ratio)) // 8 * 8), max(self.size, int(round(height * ratio)) // 8 * 8)
        arrays = [np.asarray(im.resize((new_w, new_h), Image.LANCZOS), np.float32) / 255.0 for im in images]
        top = rng.integers(0, new_h - self.size + 1)
        left = rng.integers(0, new_w - self.size + 1)
        flip = rng.random() < 0.5
        crops = []
        for a in arrays:
            a = a[top:top + self.size, left:left + self.size]
            crops.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
        identity = numpy_identity_grid(self.size, self.size, np.float32)
        return {"image_1": crops[0], "image_2": crops[1], "grid_2_to_1": identity}
