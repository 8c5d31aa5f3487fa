"""Coarse-to-fine alignment of a pair: the evaluation scripts' recipe (ransac_flow.md §1.6, §2.7, §4).

``align_pair`` resizes both images per the coarse config, finds up to ``max_homographies`` homographies
(deep features, SIFT, or none), refines each with the fine network when its weights are given, and merges
the layers by matchability (§4 "multi-homography merge"). Everything is at the resized target's lattice.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.homography import homography_grid
from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import grid_sample
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.fine import refine

COARSE_METHODS = ("deep", "sift", "identity")


@dataclasses.dataclass
class Alignment:
    """A pair aligned onto the target. Grids map target pixels to source locations (normalised AC, x first).

    source, target: (H, W, 3) the resized images (source at scale 1, same size as the target here).
    homographies: list of (3, 3) target-normalised → source-normalised matrices, one per layer.
    coarse_grid: (H, W, 2) the first homography's grid. grid: (H, W, 2) the final merged flow.
    matchability: (H, W) in [0, 1] (1 inside the image when no fine network ran).
    """

    source: np.ndarray
    target: np.ndarray
    homographies: list
    coarse_grid: np.ndarray
    grid: np.ndarray
    matchability: np.ndarray
    fine: bool

    def warp(self, grid: np.ndarray | None = None) -> np.ndarray:
        """The source warped onto the target with ``grid`` (default: the final flow). (H, W, 3)."""
        grid = self.grid if grid is None else grid
        return np.asarray(grid_sample(self.source[None], jnp.asarray(grid)[None], align_corners=True))[0]

    def flow_pixels(self) -> np.ndarray:
        """(H, W, 2) optical-flow displacement in source pixels: source location − target pixel."""
        h, w = self.target.shape[:2]
        hs, ws = self.source.shape[:2]
        x = (self.grid[..., 0] + 1) / 2 * (ws - 1) - np.arange(w)[None, :]
        y = (self.grid[..., 1] + 1) / 2 * (hs - 1) - np.arange(h)[:, None]
        return np.stack([x, y], axis=-1)


def _inside(grid):
    return np.all(np.abs(grid) <= 1.0, axis=-1).astype(np.float32)


def align_pair(source: np.ndarray, target: np.ndarray, *, coarse: str = "deep", coarse_variables=None,
               fine_variables=None, config: coarse_lib.CoarseConfig = coarse_lib.CoarseConfig(),
               max_homographies: int = 1, region_threshold: float = 0.01, merge_threshold: float = 0.95) -> Alignment:
    """Aligns ``source`` onto ``target`` ((H, W, 3) float32 RGB in [0, 1], any sizes).

    coarse: "deep" (needs ``coarse_variables``: ResNet-50 or MoCo weights), "sift" (no weights), or
      "identity" (the images are already roughly aligned).
    fine_variables: the fine network's variables; None skips the fine stage (coarse result only).
    max_homographies: 1 = quick start / HPatches; 11 = the evaluation default (maxCoarse 10).
    Raises ValueError when no homography is found (too few matches).
    """
    if coarse not in COARSE_METHODS:
        raise ValueError(f"coarse must be one of {COARSE_METHODS}, got {coarse!r}")
    if coarse == "deep" and coarse_variables is None:
        raise ValueError("coarse='deep' needs coarse_variables (ResNet-50 / MoCo weights); use coarse='sift'")
    target_image = coarse_lib.resize_image(target, config.size, config.rule)
    height, width = target_image.shape[:2]
    features = None
    if coarse == "deep":
        features = coarse_lib.extract(coarse_variables, source, target, config)
        source_image = features.source_image
    else:
        source_image = coarse_lib.resize_image(source, config.size, config.rule)

    explained = np.zeros((height, width), np.float32)  # "Mask" of §1.6
    layers = []  # (homography, grid, matchability)
    for index in range(max_homographies):
        H = _next_homography(coarse, features, source_image, target_image, explained, config, index)
        if H is None:
            break
        grid, match = _layer(H, source_image, target_image, fine_variables)
        excluded = (explained > 0.5).astype(np.float32)
        if index > 0 and not (match * (1 - excluded)).mean() > region_threshold:
            break
        layers.append((H, grid, match))
        explained = ((explained + match * (1 - excluded)) >= 1.0).astype(np.float32)
        if fine_variables is None:
            break  # without matchability there is nothing to explain the next homography's region
    if not layers:
        raise ValueError("no homography found: too few consistent matches between the two images")
    grid, matchability = _merge(layers, merge_threshold)
    return Alignment(source=source_image, target=target_image, homographies=[h for h, _, _ in layers],
                     coarse_grid=np.asarray(homography_grid(jnp.asarray(layers[0][0], jnp.float32), height, width)),
                     grid=grid, matchability=matchability, fine=fine_variables is not None)


def _next_homography(coarse, features, source_image, target_image, explained, config, index):
    if coarse == "identity":
        return np.eye(3) if index == 0 else None
    if coarse == "sift":
        return coarse_lib.sift_homography(source_image, target_image, seed=config.seed).matrix if index == 0 else None
    h, w = features.target_cells_hw
    cells = np.asarray(resize_bilinear(jnp.asarray(explained)[None, :, :, None], (h, w), align_corners=False))
    return coarse_lib.coarse_homography(features, config, cells[0, :, :, 0] > 0.5, seed=config.seed + index).matrix


def _layer(H, source_image, target_image, fine_variables):
    height, width = target_image.shape[:2]
    if fine_variables is None:
        grid = np.asarray(homography_grid(jnp.asarray(H, jnp.float32), height, width))
        return grid, _inside(grid)
    out = refine(fine_variables, source_image[None], target_image[None], jnp.asarray(H, jnp.float32))
    return np.asarray(out["grid"][0]), np.asarray(out["matchability"][0])


def _merge(layers, threshold):
    """Layer 0 everywhere, then each later layer where its matchability ≥ threshold and no earlier one was."""
    grid = np.clip(layers[0][1], -1, 1)
    matchability = layers[0][2].copy()
    covered = layers[0][2] >= threshold
    for _, layer_grid, layer_match in layers[1:]:
        take = (layer_match >= threshold) & ~covered
        grid = np.where(take[..., None], np.clip(layer_grid, -1, 1), grid)
        matchability = np.where(take, layer_match, matchability)
        covered |= take
    return grid, matchability
