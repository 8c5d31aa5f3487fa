"""RANSAC-Flow on a pair: the one inference recipe of the tool, the demo and the evaluation protocols.

1. Coarse stage (:class:`~artdup_jax.ransac_flow.coarse.CoarseSearch`): both images resized per the coarse
   config, a homography from deep-feature (or SIFT) matches.
2. Fine stage: the homography refined by the fine network (``fine.refine``), giving a *layer*: a grid and a
   matchability on the target lattice. Without fine weights a layer is the homography's grid, with
   matchability 1 where it lands inside the source, and the loop stops after one homography.
3. The next homography is searched outside the target region the layers already explain (matchability
   summed to >= 1); it is kept iff it newly explains more than ``region_threshold`` of the target.
4. The layers are merged by matchability (:func:`merge_layers`).

:func:`align_pair` runs it for the tool (and HPatches); ``inference_protocols`` adds the protocols' variants
(YFCC's rotation trial and foreground masks, KITTI's two-level fine stage at full resolution). Grids map
target pixels to source locations, normalised AC, x first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.homography import homography_grid
from artdup_jax.geometry.sampling import grid_sample
from artdup_jax.ransac_flow.coarse import METHODS, CoarseConfig, CoarseHomography, CoarseSearch
from artdup_jax.ransac_flow.fine import refine

SAFETY_CAP = 100  # "unbounded" homography loops stop here at the latest


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """The coarse stage's settings and the rules of the homography loop and of the merge.

    max_homographies: most homographies per pair; None = unbounded (KITTI; stops at :data:`SAFETY_CAP`).
    region_threshold: a later homography is kept iff the share of the target it newly explains exceeds this.
    merge_threshold: a later layer takes the pixels where its matchability is ``>=`` this and no earlier
      layer's was.
    kitti_rule: KITTI's acceptance (small confident components removed, ``> 0.9999`` tests), used with the
      two-level fine stage at ``fine_size`` (KITTI's ``fineSize``; level 1 at half of it).
    """

    coarse: CoarseConfig = CoarseConfig()
    max_homographies: int | None = 1
    region_threshold: float = 0.01
    merge_threshold: float = 0.95
    kitti_rule: bool = False
    fine_size: int | None = None


@dataclasses.dataclass
class Predictor:
    """What a run needs besides the images.

    coarse_method: "deep" (``coarse_variables``: ResNet-50 / MoCo weights), "sift" or "identity".
    fine_variables: the fine network's variables; None = coarse homography only.
    """

    settings: InferenceSettings
    coarse_method: str
    coarse_variables: dict | None = None
    fine_variables: dict | None = None

    @property
    def fine(self) -> bool:
        return self.fine_variables is not None


@dataclasses.dataclass
class _Layer:
    homography: np.ndarray  # (3, 3) target-normalised -> source-normalised
    grid: np.ndarray  # (H, W, 2)
    matchability: np.ndarray  # (H, W)


LayerFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # homography -> (grid, matchability)


def coarse_layer(lattice_hw) -> LayerFn:
    """``H -> (grid, matchability)`` without the fine network: the homography's grid on ``lattice_hw`` and 1
    where it lands inside the source."""
    height, width = lattice_hw

    def layer(H):
        grid = np.asarray(homography_grid(jnp.asarray(H, jnp.float32), height, width))
        return grid, np.all(np.abs(grid) <= 1.0, axis=-1).astype(np.float32)

    return layer


def homography_layer(fine_variables: dict | None, source_image: np.ndarray, target_image: np.ndarray) -> LayerFn:
    """``H -> (grid (H, W, 2), matchability (H, W))`` on the target's lattice: ``refine`` with the fine
    network, else :func:`coarse_layer`."""
    if fine_variables is None:
        return coarse_layer(target_image.shape[:2])

    def layer(H):
        out = refine(fine_variables, source_image[None], target_image[None], jnp.asarray(H, jnp.float32))
        return np.asarray(out["grid"][0]), np.asarray(out["matchability"][0], np.float32)

    return layer


def remove_small_components(match: np.ndarray, *, threshold: float = 0.99, max_fraction: float = 0.01):
    """KITTI: zero the matchability on connected components of ``match > threshold`` whose area is at most
    ``max_fraction`` of the image (8-connectivity)."""
    import cv2

    binary = (match > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_fraction * match.size
    out = match.copy()
    out[small[labels]] = 0.0
    return out


def homography_loop(search: CoarseSearch, settings: InferenceSettings, lattice_hw, foreground: np.ndarray,
                    layer_fn: LayerFn, *, fine: bool) -> tuple[list[_Layer], CoarseHomography | None]:
    """Steps 1-3 on a target lattice of ``lattice_hw``; ``foreground`` (bool, same lattice) limits the search.

    Returns ``(layers, the first CoarseHomography)``; no layer when the first homography is not found.
    """
    explained = np.zeros(tuple(lattice_hw), np.float32)  # "Mask" of the official code
    background = 1.0 - foreground.astype(np.float32)
    layers, first = [], None
    limit = SAFETY_CAP if settings.max_homographies is None else settings.max_homographies
    for index in range(limit):
        excluded = ((explained + background) > 0.5).astype(np.float32)
        if index > 0 and excluded.all():
            break
        found = search.homography(excluded > 0.5, index)
        if first is None:
            first = found
        if found.matrix is None:
            break
        grid, match = layer_fn(found.matrix)
        if settings.kitti_rule:
            match = remove_small_components(match)
            share = float(np.mean((match > 0.9999) * (1 - excluded)))
        else:
            share = float(np.mean(match * (1 - excluded)))
        if index > 0 and not share > settings.region_threshold:
            break
        layers.append(_Layer(np.asarray(found.matrix), grid, match))
        update = explained + match * (1 - excluded)
        explained = (update > 0.9999 if settings.kitti_rule else update >= 1.0).astype(np.float32)
        if not fine:
            break  # without matchability nothing tells which region the next homography should explain
    return layers, first


def merge_layers(layers: list[_Layer], threshold: float, *, interpolate: bool = False):
    """Layer 0 everywhere, then each later layer where its matchability ``>= threshold`` and no earlier
    layer's was. Grids are clamped to [-1, 1]. ``interpolate``: pixels covered by no layer take the grid of
    the nearest covered pixel (Euclidean distance transform; KITTI ``--interpolate``).

    Returns ``(grid (H, W, 2), matchability (H, W), covered (H, W) bool)``.
    """
    grid = np.clip(layers[0].grid, -1, 1)
    matchability = np.asarray(layers[0].matchability, np.float32).copy()
    covered = layers[0].matchability >= threshold
    for layer in layers[1:]:
        take = (layer.matchability >= threshold) & ~covered
        grid = np.where(take[..., None], np.clip(layer.grid, -1, 1), grid)
        matchability = np.where(take, layer.matchability, matchability)
        covered |= take
    if interpolate and covered.any() and not covered.all():
        from scipy.ndimage import distance_transform_edt

        _, (rows, cols) = distance_transform_edt(~covered, return_indices=True)
        grid = grid[rows, cols]
    return grid, matchability, covered


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


def align_pair(source: np.ndarray, target: np.ndarray, *, coarse: str = "deep", coarse_variables=None,
               fine_variables=None, config: CoarseConfig = CoarseConfig(), max_homographies: int = 1,
               region_threshold: float = 0.01, merge_threshold: float = 0.95) -> Alignment:
    """Aligns ``source`` onto ``target`` ((H, W, 3) float32 RGB in [0, 1], any sizes).

    coarse: "deep" (needs ``coarse_variables``: ResNet-50 or MoCo weights), "sift" (no weights), or
      "identity" (the images are already roughly aligned). "sift" and "identity" give one homography, and
      "sift" runs RANSAC with ``sift_homography``'s default 10 000 draws whatever ``config.iterations`` says.
    fine_variables: the fine network's variables; None skips the fine stage (coarse result only).
    max_homographies: 1 = quick start / HPatches; 11 = the evaluation default (maxCoarse 10).
    Everything is at the resized target's lattice. Raises ValueError when no homography is found (too few
    matches).
    """
    if coarse not in METHODS:
        raise ValueError(f"coarse must be one of {METHODS}, got {coarse!r}")
    if coarse == "deep" and coarse_variables is None:
        raise ValueError("coarse='deep' needs coarse_variables (ResNet-50 / MoCo weights); use coarse='sift'")
    if coarse != "deep":
        max_homographies = min(max_homographies, 1)
    if coarse == "sift":
        config = dataclasses.replace(config, iterations=10_000)
    settings = InferenceSettings(config, max_homographies, region_threshold, merge_threshold)
    search = CoarseSearch.build(coarse, coarse_variables, config, source, target)
    lattice_hw = search.target_image.shape[:2]
    layers, _ = homography_loop(search, settings, lattice_hw, np.ones(lattice_hw, bool),
                                homography_layer(fine_variables, search.source_image, search.target_image),
                                fine=fine_variables is not None)
    if not layers:
        raise ValueError("no homography found: too few consistent matches between the two images")
    grid, matchability, _ = merge_layers(layers, merge_threshold)
    height, width = lattice_hw
    return Alignment(source=search.source_image, target=search.target_image,
                     homographies=[layer.homography for layer in layers],
                     coarse_grid=np.asarray(homography_grid(jnp.asarray(layers[0].homography, jnp.float32), height,
                                                            width)),
                     grid=grid, matchability=matchability, fine=fine_variables is not None)
