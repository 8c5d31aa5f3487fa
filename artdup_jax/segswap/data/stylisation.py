"""Stylisation of synthetic pairs: a painting's look on an image, by AdaIN or by a classical stand-in.

``stylise_with(image, style, rng, styliser)`` is the hook the pair generator calls: with a ``styliser``
(``(uint8 image, uint8 painting, α) -> uint8 image``, e.g. ``artdup_jax.segswap.style.PaintingStyliser`` over
converted ``vgg_normalised.pth`` + decoder weights) it runs AdaIN; without one, the classical ``stylise`` (Lab
colour statistics of a painting, an edge-preserving "brush" filter and the painting's high-frequency texture,
mixed with the original). α ~ U[0, 1] either way. ``example["style_method"]`` records which, an index into
``STYLE_METHODS``. Images are ``(S, S, 3)`` uint8 RGB.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from artdup_jax.segswap.data.segments import fit_image

STYLE_METHODS = ("classical", "adain")  # example["style_method"] indexes this: what its "stylised" flags mean


@dataclasses.dataclass(frozen=True)
class StyleImage:
    """A painting for ``stylise``: its pixels (uint8, longer side ≤ ``max_side``) and Lab statistics."""

    pixels: np.ndarray
    lab_mean: np.ndarray  # (3,)
    lab_std: np.ndarray  # (3,)


def prepare_styles(paintings: Sequence[np.ndarray], max_side: int = 640) -> list[StyleImage]:
    """``StyleImage``s of ``(H, W, 3)`` uint8 RGB paintings, shrunk to a longer side of at most ``max_side``."""
    styles = []
    for painting in paintings:
        pixels = fit_image(np.ascontiguousarray(painting[..., :3]), max_side)
        lab = cv2.cvtColor(fit_image(pixels, 128), cv2.COLOR_RGB2LAB).astype(np.float64).reshape(-1, 3)
        styles.append(StyleImage(pixels, lab.mean(0), lab.std(0)))
    return styles


def stylise(image: np.ndarray, style: StyleImage, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Classical stand-in for AdaIN on an ``(S, S, 3)`` uint8 image with a painting ``style``.

    AdaIN's statistic transfer, done on Lab pixels instead of VGG features; an edge-preserving filter that
    flattens regions like brush strokes; the painting's high-frequency texture (a random crop) added; the
    result mixed with the input as AdaIN's content-style trade-off, ``strength`` · styled + (1 - strength) · input.
    """
    size = image.shape[0]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    small = lab[::4, ::4].reshape(-1, 3)
    transferred = (lab - small.mean(0)) / (small.std(0) + 1e-3) * style.lab_std + style.lab_mean
    styled = cv2.cvtColor(np.clip(transferred, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    styled = cv2.edgePreservingFilter(styled, flags=cv2.RECURS_FILTER, sigma_s=float(rng.uniform(10, 40)) * size / 480,
                                      sigma_r=float(rng.uniform(0.2, 0.5)))
    painting = style.pixels
    side = min(painting.shape[:2])
    crop_side = int(rng.integers(max(8, side // 4), side + 1))
    cy = rng.integers(0, painting.shape[0] - crop_side + 1)
    cx = rng.integers(0, painting.shape[1] - crop_side + 1)
    crop = cv2.cvtColor(painting[cy:cy + crop_side, cx:cx + crop_side], cv2.COLOR_RGB2GRAY).astype(np.float32)
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop_side > size else cv2.INTER_LINEAR)
    texture = crop - cv2.GaussianBlur(crop, (0, 0), 2.0)
    styled = styled.astype(np.float32) + rng.uniform(0, 1) * texture[..., None]
    out = strength * styled + (1 - strength) * image.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def stylise_with(image: np.ndarray, style: StyleImage, rng: np.random.Generator, styliser) -> np.ndarray:
    """``styliser(image, painting, α)`` (AdaIN) if given, else the classical ``stylise``; α ~ U[0, 1]."""
    alpha = rng.uniform(0, 1)
    return stylise(image, style, alpha, rng) if styliser is None else styliser(image, style.pixels, alpha)

