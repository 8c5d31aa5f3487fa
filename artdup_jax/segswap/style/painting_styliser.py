"""AdaIN for SegSwap's synthetic pairs: uint8 images in and out, NumPy at the edges.

The content image and the painting are each resized so that their shorter side is ``working_side`` (512 in
the paper; no crop) and scaled to [0, 1]; AdaIN at trade-off α; decoded, clamped to [0, 1] and resized back to
the content's size (bilinear). AdaIN keeps only a painting's relu4_1 mean and std, so they are computed once
per painting and cached: a stylisation then costs one encoder and one decoder pass, compiled once per
content size (480² -> 512²), plus one compile per painting shape for its statistics.
"""

from __future__ import annotations

import functools
import threading

import cv2
import jax
import numpy as np

from artdup_jax.checkpoints.orbax_io import load_variables
from artdup_jax.segswap.style.adain import style_statistics, stylise_with_statistics

WORKING_SIDE = 512  # the paper's shorter side for both images


def resize_shorter_side(image: np.ndarray, side: int) -> np.ndarray:
    """``(H, W, C)`` -> the same aspect with ``min(H', W') = side`` (area filter when shrinking, else bilinear)."""
    height, width = image.shape[:2]
    scale = side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _unit_float(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float32)[None] / 255


class PaintingStyliser:
    """``styliser(image, painting, alpha)``: ``(H, W, 3)`` uint8 RGB content painted like ``painting``
    (``(H', W', 3)`` uint8 RGB) at α in [0, 1] -> ``(H, W, 3)`` uint8. Safe to call from several threads."""

    method = "adain"

    def __init__(self, variables: dict, working_side: int = WORKING_SIDE):
        self.variables = jax.device_put(variables)
        self.working_side = working_side
        self._statistics: dict[int, tuple[np.ndarray, jax.Array, jax.Array]] = {}
        self._lock = threading.Lock()

    def painting_statistics(self, painting: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """relu4_1 mean and std ``(1, 1, 1, 512)`` of ``painting`` at the working size, cached by identity."""
        with self._lock:
            cached = self._statistics.get(id(painting))
        if cached is not None and cached[0] is painting:
            return cached[1], cached[2]
        mean, std = style_statistics(self.variables,
                                     _unit_float(resize_shorter_side(painting, self.working_side)))
        with self._lock:
            self._statistics[id(painting)] = (painting, mean, std)  # holding the array keeps its id unique
        return mean, std

    def __call__(self, image: np.ndarray, painting: np.ndarray, alpha: float) -> np.ndarray:
        height, width = image.shape[:2]
        mean, std = self.painting_statistics(painting)
        content = _unit_float(resize_shorter_side(image, self.working_side))
        out = np.asarray(stylise_with_statistics(self.variables, content, mean, std, np.float32(alpha)))[0]
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def load_painting_styliser(weights: str, working_side: int = WORKING_SIDE) -> PaintingStyliser:
    """One shared styliser per converted AdaIN checkpoint directory
    (``python -m artdup_jax.convert adain vgg_normalised.pth decoder.pth DIR``)."""
    return PaintingStyliser(load_variables(weights), working_side)
