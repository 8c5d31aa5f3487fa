"""Thin-plate-spline warps of image B, on normalised [0, 1] points, and warping an image with a ``Map``."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from artdup_jax.segswap.data.ground_truth import Map, cell_centres


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r² log r, written with r²: 0.5 · r² · log r²."""
    return 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0))


def fit_tps(source: np.ndarray, target: np.ndarray) -> Map:
    """The thin-plate spline through ``source`` ``(K, 2)`` -> ``target`` ``(K, 2)`` (exact interpolation)."""
    k = len(source)
    kernel = _tps_kernel(np.sum((source[:, None] - source[None]) ** 2, axis=-1))
    affine = np.concatenate([np.ones((k, 1)), source], axis=1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k], system[:k, k:], system[k:, :k] = kernel, affine, affine.T
    rhs = np.concatenate([target, np.zeros((3, 2))])
    weights = np.linalg.solve(system, rhs)

    def apply(points):
        flat = points.reshape(-1, 2)
        basis = _tps_kernel(np.sum((flat[:, None] - source[None]) ** 2, axis=-1))
        out = basis @ weights[:k] + weights[k] + flat @ weights[k + 1:]
        return out.reshape(points.shape)

    return apply


def invert_map(forward: Map, initial: Map, iterations: int = 8) -> Map:
    """The inverse of a near-identity ``forward`` map by fixed-point refinement of ``initial``'s guess:
    q <- q + (p - forward(q)), which converges while forward's Jacobian stays close to the identity."""

    def apply(points):
        guess = initial(points)
        for _ in range(iterations):
            guess = guess + (points - forward(guess))
        return guess

    return apply


def random_tps(rng: np.random.Generator, grid_sizes: Sequence[int]) -> tuple[int, Map, Map]:
    """A random TPS warp: ``(g, warped_to_original, original_to_warped)``.

    Control points on a regular g×g grid move by U(±0.5/g) in [-1, 1] units (±0.25/g here), clipped to the
    image. The released generator's inverse is a second spline fitted the other way, off by up to ~1 % of the
    image; here that spline is only the starting guess of ``invert_map``, so the ground truth stays consistent.
    """
    g = int(grid_sizes[rng.integers(len(grid_sizes))])
    x, y = np.meshgrid(np.linspace(0, 1, g), np.linspace(0, 1, g))
    control = np.stack([x.ravel(), y.ravel()], axis=-1)
    moved = np.clip(control + rng.uniform(-0.25 / g, 0.25 / g, control.shape), 0, 1)
    warped_to_original = fit_tps(control, moved)
    return g, warped_to_original, invert_map(warped_to_original, fit_tps(moved, control))


def warp_with_map(image: np.ndarray, output_to_input: Map, lattice: int = 4) -> np.ndarray:
    """``out(p) = image(output_to_input(p))``, bilinear, zero outside; ``(S, S, C)`` square images.

    The (smooth) map is evaluated every ``lattice`` pixels and interpolated bilinearly in between.
    """
    size = image.shape[0]
    coarse = output_to_input(cell_centres(max(size // lattice, 2))).astype(np.float32)
    sources = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR) * size - 0.5
    return cv2.remap(image, sources[..., 0], sources[..., 1], interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)

