"""The evaluation protocols' variants of the inference recipe (``inference.py``).

* :func:`predict_pair` (MegaDepth, RobotCar, YFCC): the recipe on both images resized per the coarse config,
  with an optional foreground mask of the target (later homographies are searched inside it) and YFCC's
  trial of 4 target rotations. The SIFT coarse stage searches later homographies by detecting target
  keypoints only in the not yet explained region (the deep stage masks target feature cells).
* :func:`predict_kitti`: the coarse stage at the configured size, the unbounded loop with KITTI's acceptance
  rule, the two-level fine stage (shorter sides ``fine_size / 2`` and ``fine_size`` rounded to 8), layers
  and merge at the original resolution of the target (``th = 1.0`` in KITTI's settings), with
  nearest-covered-pixel filling.

Grids map target pixels to source locations, normalised AC, x first.
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.ransac_flow.coarse import CoarseSearch, resize_exact
from artdup_jax.ransac_flow.fine import refine_two_levels
from artdup_jax.ransac_flow.inference import (
    Predictor,
    coarse_layer,
    homography_layer,
    homography_loop,
    merge_layers,
)


@dataclasses.dataclass
class Prediction:
    """A pair's merged prediction.

    grid: ``(H, W, 2)`` normalised AC source locations on the target lattice (the resized target, rotated by
      ``rotation`` degrees counter-clockwise for YFCC; the original target for KITTI).
    matchability: ``(H, W)`` merged matchability (layer 0 where no later layer took over).
    foreground: ``(H, W)`` bool on the same lattice (all True without a mask).
    source_size_hw: size of the source image the grid's coordinates refer to.
    target_size_hw: the (unrotated) target size at the evaluation resolution.
    """

    grid: np.ndarray
    matchability: np.ndarray
    foreground: np.ndarray
    source_size_hw: tuple[int, int]
    target_size_hw: tuple[int, int]
    homographies: list
    num_inliers: int
    num_matches: int
    rotation: int = 0
    seconds: float = 0.0
    rotation_inliers: dict | None = None

    def summary(self) -> dict:
        return {"homographies": len(self.homographies), "num_inliers": self.num_inliers,
                "num_matches": self.num_matches, "rotation": self.rotation,
                "rotation_inliers": self.rotation_inliers, "seconds": self.seconds}


def resize_foreground(mask: np.ndarray, size_hw) -> np.ndarray:
    """A foreground (building) mask at any size → bool on an ``size_hw`` lattice, as the official code's
    ``scipy.misc.imresize``: the mask is byte-scaled (min → 0, max → 255), resized bilinearly and thresholded
    at 128, so a constant mask (no building, or all building) becomes all foreground."""
    mask = np.asarray(mask, bool)
    if mask.all() or not mask.any():
        return np.ones(tuple(size_hw), bool)
    pil = Image.fromarray(mask.astype(np.uint8) * 255)
    resized = np.asarray(pil.resize((int(size_hw[1]), int(size_hw[0])), Image.BILINEAR))
    return resized > 128


def predict_pair(predictor: Predictor, source: np.ndarray, target: np.ndarray, *, foreground=None,
                 rotations=(0,)) -> Prediction | None:
    """Prediction for ``source`` → ``target`` ((H, W, 3) float RGB in [0, 1]) on the resized target's lattice.

    foreground: optional bool mask of the (unrotated, any size) target; None = all foreground.
    rotations: target orientations to try (degrees, counter-clockwise, multiples of 90); the one whose first
      coarse homography has the most inliers is kept (YFCC's trial; ties keep the earliest).
    Returns None when no homography is found.
    """
    start = time.perf_counter()
    config = predictor.settings.coarse
    base = CoarseSearch.build(predictor.coarse_method, predictor.coarse_variables, config, source, target)
    target_size_hw = base.target_image.shape[:2]
    tried, counts = [], {}
    for degrees in rotations:
        if degrees % 90:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {degrees}")
        k = (degrees // 90) % 4
        search = base if k == 0 else base.with_target(np.ascontiguousarray(np.rot90(target, k)))
        lattice_hw = search.target_image.shape[:2]
        fg = (np.ones(lattice_hw, bool) if foreground is None
              else resize_foreground(np.rot90(np.asarray(foreground, bool), k), lattice_hw))
        tried.append((degrees, search, fg))
    if len(tried) > 1:
        for degrees, search, fg in tried:
            found = search.homography(~fg, 0)
            counts[int(degrees)] = int(found.num_inliers) if found.matrix is not None else 0
        best = max(range(len(tried)), key=lambda i: (counts[int(tried[i][0])], -i))
        degrees, search, fg = tried[best]
    else:
        degrees, search, fg = tried[0]
    layer_fn = homography_layer(predictor.fine_variables, search.source_image, search.target_image)
    layers, first = homography_loop(search, predictor.settings, search.target_image.shape[:2], fg, layer_fn,
                                    fine=predictor.fine)
    if not layers:
        return None
    grid, matchability, _ = merge_layers(layers, predictor.settings.merge_threshold)
    return Prediction(grid=grid, matchability=matchability, foreground=fg,
                      source_size_hw=tuple(search.source_image.shape[:2]), target_size_hw=tuple(target_size_hw),
                      homographies=[layer.homography for layer in layers], num_inliers=first.num_inliers,
                      num_matches=first.num_matches, rotation=int(degrees), seconds=time.perf_counter() - start,
                      rotation_inliers=counts or None)


def kitti_fine_size(width: int, height: int, size: int, multiple: int = 8) -> tuple[int, int]:
    """KITTI fine-stage size ``(w, h)``: shorter side scaled to ``size``, each side *rounded* to ``multiple``."""
    ratio = min(width, height) / float(size)
    new_w = int(round(width / ratio / multiple)) * multiple
    new_h = int(round(height / ratio / multiple)) * multiple
    return max(new_w, multiple), max(new_h, multiple)


def predict_kitti(predictor: Predictor, source: np.ndarray, target: np.ndarray) -> Prediction | None:
    """KITTI prediction at the original resolution of ``target``; None when no homography is found."""
    start = time.perf_counter()
    settings = predictor.settings
    search = CoarseSearch.build(predictor.coarse_method, predictor.coarse_variables, settings.coarse, source,
                                target)
    out_hw = tuple(target.shape[:2])
    if predictor.fine:
        height, width = out_hw
        t_1 = resize_exact(target, kitti_fine_size(width, height, max(settings.fine_size // 2, 8)))
        t_2 = resize_exact(target, kitti_fine_size(width, height, settings.fine_size))
        source_batch = jnp.asarray(source, jnp.float32)[None]

        def layer(H):
            grid, match = refine_two_levels(predictor.fine_variables, source_batch, jnp.asarray(t_1)[None],
                                            jnp.asarray(t_2)[None], jnp.asarray(H, jnp.float32), out_hw=out_hw)
            return np.asarray(grid), np.asarray(match, np.float32)
    else:
        layer = coarse_layer(out_hw)

    layers, first = homography_loop(search, settings, out_hw, np.ones(out_hw, bool), layer, fine=predictor.fine)
    if not layers:
        return None
    grid, matchability, _ = merge_layers(layers, settings.merge_threshold, interpolate=True)
    return Prediction(grid=grid, matchability=matchability, foreground=np.ones(out_hw, bool),
                      source_size_hw=tuple(source.shape[:2]), target_size_hw=out_hw,
                      homographies=[layer.homography for layer in layers], num_inliers=first.num_inliers,
                      num_matches=first.num_matches, seconds=time.perf_counter() - start)
