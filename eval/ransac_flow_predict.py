"""RANSAC-Flow prediction shared by the KITTI, MegaDepth/RobotCar and YFCC evaluations (ransac_flow.md §1.6,
§1.7, §2.7, §4.2-§4.4).

* :data:`BENCHMARKS` holds each benchmark's coarse-stage settings (§1.7) and homography-loop rules;
  :func:`benchmark_settings` applies command-line overrides (``--size``, ``--iterations``, ...).
* :func:`add_model_arguments` / :func:`build_predictor` load the weights: ``--checkpoint`` (fine network),
  ``--coarse-checkpoint`` + ``--coarse-family`` (deep coarse stage, MoCo by default as the evaluation scripts).
  Without ``--coarse-checkpoint`` the coarse stage is OpenCV SIFT + our RANSAC; without ``--checkpoint`` only
  the coarse homography is predicted (matchability = 1 where it lands inside the source). The predictor's
  ``description`` says which, and every output records it.
* :func:`predict_pair` (MegaDepth, RobotCar, YFCC): both images resized to the shorter side ``size`` (floored to
  16), multi-homography loop (§1.6: region threshold, ``Mask`` update at ``>= 1.0``, optional foreground mask),
  merge by matchability ``>= th`` (§4). Optionally the YFCC 4-rotation trial of the target.
* :func:`predict_kitti`: coarse stage at shorter side 800 with 3 scales, the unbounded loop with KITTI's
  acceptance rule, the two-level fine stage (shorter sides ``fine_size / 2`` and ``fine_size`` rounded to 8),
  composition and matchability at the original resolution, merge at ``th = 1.0`` with nearest-covered-pixel
  filling (``--interpolate``).

The SIFT coarse stage restricts later homographies to the not-yet-explained target region by detecting target
keypoints only there (the deep stage masks target feature cells, "after" or "before" mutual NN per §1.3).
Grids map target pixels to source locations, normalised AC, x first.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.data.images import ImageReadError
from artdup_jax.geometry.homography import homography_grid, pixel_to_normalised_homography
from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import cell_centres, grid_sample, identity_grid
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.fine import FineNetwork, refine

SAFETY_CAP = 100  # "unbounded" homography loops stop here at the latest


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    """One row of §1.7 plus the loop / merge rules of the benchmark's evaluation and result scripts.

    max_homographies: None = unbounded (KITTI; guarded by :data:`SAFETY_CAP`).
    region_threshold: a later homography is kept iff its newly explained share exceeds this (§1.6 step 4).
    merge_threshold: a later layer takes the pixels where its matchability is ``>=`` this (§4 merge).
    kitti_rule: KITTI's acceptance (small components removed, ``> 0.9999`` tests), two-level fine stage,
      evaluation at the original resolution and nearest-pixel filling of uncovered pixels.
    fine_size: KITTI's ``fineSize`` (level 1 at half of it).
    """

    name: str
    coarse: coarse_lib.CoarseConfig
    max_homographies: int | None
    region_threshold: float
    merge_threshold: float
    kitti_rule: bool = False
    fine_size: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_EVAL = coarse_lib.CoarseConfig(size=480, rule="shorter", num_scales=7, scale_ratio=2.0, iterations=10_000,
                                tolerance=0.05, mask_mode="after", seed=0)
BENCHMARKS: dict[str, BenchmarkSettings] = {
    "kitti": BenchmarkSettings(
        "kitti", coarse_lib.CoarseConfig(size=800, rule="shorter", num_scales=3, scale_ratio=1.2,
                                         iterations=50_000, tolerance=0.05, mask_mode="after", seed=1000),
        max_homographies=None, region_threshold=0.005, merge_threshold=1.0, kitti_rule=True, fine_size=650),
    "megadepth": BenchmarkSettings("megadepth", _EVAL, max_homographies=11, region_threshold=0.01,
                                   merge_threshold=0.95),
    "robotcar": BenchmarkSettings("robotcar", _EVAL, max_homographies=11, region_threshold=0.01,
                                  merge_threshold=0.95),
    # The YFCC copy of the coarse code zeroes masked target features before mutual NN (§1.3).
    "yfcc": BenchmarkSettings("yfcc", dataclasses.replace(_EVAL, mask_mode="before"), max_homographies=11,
                              region_threshold=0.01, merge_threshold=0.95),
}


def benchmark_settings(name: str, *, size=None, iterations=None, max_homographies=None, seed=None,
                       fine_size=None) -> BenchmarkSettings:
    """The benchmark's settings with the given overrides (None keeps the default)."""
    base = BENCHMARKS[name]
    coarse = dataclasses.replace(
        base.coarse, **{k: v for k, v in (("size", size), ("iterations", iterations), ("seed", seed))
                        if v is not None})
    changes = {"coarse": coarse}
    if max_homographies is not None:
        if max_homographies < 1:
            raise ValueError(f"--max-homographies must be >= 1, got {max_homographies}")
        changes["max_homographies"] = max_homographies
    if fine_size is not None:
        changes["fine_size"] = fine_size
    return dataclasses.replace(base, **changes)


# --------------------------------------------------------------------------------------------------
# Command line and weights


def add_model_arguments(parser: argparse.ArgumentParser, benchmark: str) -> None:
    """``--checkpoint``, ``--coarse-checkpoint``, ``--coarse-family`` and the quick-run overrides."""
    defaults = BENCHMARKS[benchmark]
    group = parser.add_argument_group("RANSAC-Flow model")
    group.add_argument("--checkpoint", help="fine network: released .pth, converted directory or training "
                                            "workdir (default: none, coarse homography only)")
    group.add_argument("--coarse-checkpoint", help="ResNet-50 / MoCo weights (.pth or converted directory) for "
                                                   "the deep coarse stage (default: SIFT coarse stage)")
    group.add_argument("--coarse-family", default="moco_resnet50", choices=("moco_resnet50", "resnet50"),
                       help="family of --coarse-checkpoint (evaluation scripts default to MoCo)")
    where = ("the coarse stage (the flow is scored at the original resolution)" if defaults.kitti_rule
             else "prediction and scoring; PCK pixel thresholds then refer to this size")
    group.add_argument("--size", type=int, default=None,
                       help=f"shorter side of the resized images for {where} (default {defaults.coarse.size})")
    group.add_argument("--iterations", type=int, default=None,
                       help=f"coarse RANSAC hypotheses (default {defaults.coarse.iterations})")
    group.add_argument("--max-homographies", type=int, default=None,
                       help="most homographies per pair (default "
                            f"{defaults.max_homographies or 'unbounded'})")
    group.add_argument("--seed", type=int, default=None,
                       help=f"coarse RANSAC seed (default {defaults.coarse.seed})")


@dataclasses.dataclass
class Predictor:
    settings: BenchmarkSettings
    coarse_method: str  # "deep" or "sift"
    coarse_variables: dict | None
    fine_variables: dict | None
    sources: dict  # where the weights came from

    @property
    def fine(self) -> bool:
        return self.fine_variables is not None

    @property
    def description(self) -> str:
        if self.coarse_method == "deep":
            coarse = f"deep coarse stage ({self.sources['coarse_family']}: {self.sources['coarse_checkpoint']})"
        else:
            coarse = ("SIFT coarse stage (no --coarse-checkpoint: OpenCV SIFT + our RANSAC, not the paper's "
                      "MoCo-feature coarse stage)")
        if self.fine:
            fine = f"fine network {self.sources['checkpoint']}"
        else:
            fine = "no fine network (no --checkpoint: coarse homography only, matchability = inside the source)"
        return f"{coarse}; {fine}"

    def as_dict(self) -> dict:
        return {"coarse": self.coarse_method, **self.sources, "fine": self.fine,
                "description": self.description, "settings": self.settings.as_dict()}


def build_predictor(args: argparse.Namespace, benchmark: str) -> Predictor:
    """Loads the weights named on the command line (raises ValueError / FileNotFoundError with the path)."""
    from artdup_jax.app.align import load_weights

    settings = benchmark_settings(benchmark, size=args.size, iterations=args.iterations,
                                  max_homographies=args.max_homographies, seed=args.seed,
                                  fine_size=getattr(args, "fine_size", None))
    if settings.coarse.size < 16:
        raise ValueError(f"--size must be at least 16, got {settings.coarse.size}")
    coarse_variables = fine_variables = None
    for path in (args.coarse_checkpoint, args.checkpoint):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such checkpoint file or directory")
    if args.coarse_checkpoint:
        coarse_variables = _load(load_weights, args.coarse_checkpoint, args.coarse_family)
    if args.checkpoint:
        fine_variables = _load(load_weights, args.checkpoint, "ransac_flow")
    sources = {"checkpoint": args.checkpoint, "coarse_checkpoint": args.coarse_checkpoint,
               "coarse_family": args.coarse_family if args.coarse_checkpoint else None}
    return Predictor(settings, "deep" if coarse_variables is not None else "sift", coarse_variables,
                     fine_variables, sources)


def run_main(args: argparse.Namespace, evaluate: Callable[[argparse.Namespace], dict],
             markdown_report: Callable[[dict], str], layout_error: type[Exception], stem: str) -> int:
    """The rest of ``main`` in the KITTI, MegaDepth/RobotCar and YFCC evaluations, once ``args`` are parsed.

    Checks ``--max-pairs`` (exit 2), runs ``evaluate(args)`` (which writes ``<out>/<stem>.json`` and ``.md``) and
    prints its Markdown report; a dataset-layout error, an unreadable image, a bad value or a missing file
    becomes one ``error:`` line and exit 1.
    """
    if args.max_pairs is not None and args.max_pairs < 1:
        print("error: --max-pairs must be at least 1", file=sys.stderr)
        return 2
    try:
        results = evaluate(args)
    except (layout_error, ImageReadError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / stem}.json and .md")
    return 0


def _load(load_weights, path: str, family: str) -> dict:
    try:
        return load_weights(path, family)
    except Exception as exc:  # converters raise many kinds; the command line wants one line
        text = str(exc).strip().splitlines()
        raise ValueError(f"{path}: cannot load {family} weights ({type(exc).__name__}"
                         f"{': ' + text[0] if text else ''})") from None


# --------------------------------------------------------------------------------------------------
# Prediction result


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


@dataclasses.dataclass
class _Layer:
    homography: np.ndarray
    grid: np.ndarray
    matchability: np.ndarray


# --------------------------------------------------------------------------------------------------
# Small helpers


def _inside(grid) -> np.ndarray:
    return np.all(np.abs(np.asarray(grid)) <= 1.0, axis=-1).astype(np.float32)


def _resize_exact(image: np.ndarray, size_wh) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → PIL LANCZOS to ``size_wh`` (as every image resize of the reference)."""
    pil = Image.fromarray(np.clip(np.round(image * 255), 0, 255).astype(np.uint8))
    return np.asarray(pil.resize(tuple(int(v) for v in size_wh), Image.LANCZOS), np.float32) / 255.0


def kitti_fine_size(width: int, height: int, size: int, multiple: int = 8) -> tuple[int, int]:
    """KITTI fine-stage size ``(w, h)``: shorter side scaled to ``size``, each side *rounded* to ``multiple``."""
    ratio = min(width, height) / float(size)
    new_w = int(round(width / ratio / multiple)) * multiple
    new_h = int(round(height / ratio / multiple)) * multiple
    return max(new_w, multiple), max(new_h, multiple)


def _downsample_mask(mask: np.ndarray, size_hw) -> np.ndarray:
    """Half-pixel bilinear (no antialiasing) resize of a 0/1 mask, thresholded at > 0.5 (§1.3)."""
    resized = resize_bilinear(jnp.asarray(mask, jnp.float32)[None, :, :, None], tuple(size_hw), align_corners=False)
    return np.asarray(resized)[0, :, :, 0] > 0.5


def resize_foreground(mask: np.ndarray, size_hw) -> np.ndarray:
    """A foreground (building) mask at any size → bool on an ``size_hw`` lattice, as the reference's
    ``scipy.misc.imresize``: the mask is byte-scaled (min → 0, max → 255), resized bilinearly and thresholded
    at 128, so a constant mask (no building, or all building) becomes all foreground (§7 item 19)."""
    mask = np.asarray(mask, bool)
    if mask.all() or not mask.any():
        return np.ones(tuple(size_hw), bool)
    pil = Image.fromarray(mask.astype(np.uint8) * 255)
    resized = np.asarray(pil.resize((int(size_hw[1]), int(size_hw[0])), Image.BILINEAR))
    return resized > 128


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


def merge_layers(layers: list[_Layer], threshold: float, *, interpolate: bool = False):
    """§4 merge: layer 0 everywhere, then each later layer where its matchability ``>= threshold`` and no
    earlier layer's was. Grids are clamped to [-1, 1]. ``interpolate``: pixels covered by no layer take the
    grid of the nearest covered pixel (Euclidean distance transform; KITTI ``--interpolate``).

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


# --------------------------------------------------------------------------------------------------
# Coarse stage with masks


def _gray_uint8(image):
    import cv2

    return cv2.cvtColor(np.clip(image * 255, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def sift_homography_masked(source: np.ndarray, target: np.ndarray, allowed_target: np.ndarray, *, seed: int,
                           iterations: int, ratio: float = 0.8, threshold_px: float = 3.0,
                           min_inliers: int = 15) -> coarse_lib.CoarseHomography:
    """:func:`coarse.sift_homography` with target keypoints detected only where ``allowed_target`` (bool at the
    target's size) is set: the SIFT counterpart of masking target feature cells (§1.6 step 2)."""
    import cv2

    from artdup_jax.geometry import ransac

    if allowed_target.all():
        return coarse_lib.sift_homography(source, target, seed=seed, iterations=iterations, ratio=ratio,
                                          threshold_px=threshold_px, min_inliers=min_inliers)
    sift = cv2.SIFT_create()
    kp_s, desc_s = sift.detectAndCompute(_gray_uint8(source), None)
    kp_t, desc_t = sift.detectAndCompute(_gray_uint8(target), allowed_target.astype(np.uint8) * 255)
    if desc_s is None or desc_t is None or len(kp_s) < 4 or len(kp_t) < 4:
        return coarse_lib.CoarseHomography(None, 0, 0)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_t, desc_s, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < max(4, min_inliers):
        return coarse_lib.CoarseHomography(None, 0, len(good))
    target_px = np.float32([kp_t[m.queryIdx].pt for m in good])
    source_px = np.float32([kp_s[m.trainIdx].pt for m in good])
    H_pixels, inliers = ransac.find_homography(target_px, source_px, threshold=threshold_px,
                                               iterations=iterations, seed=seed)
    if (H_pixels is None or inliers.sum() < min_inliers
            or not coarse_lib._plausible(H_pixels, target.shape[:2], source.shape[:2])):
        return coarse_lib.CoarseHomography(None, int(inliers.sum()), len(good))
    H = pixel_to_normalised_homography(jnp.asarray(H_pixels, jnp.float32), target.shape[:2], source.shape[:2],
                                       align_corners=True)
    return coarse_lib.CoarseHomography(np.asarray(H, np.float64), int(inliers.sum()), len(good))


class _Coarse:
    """The coarse stage of one pair (one target orientation): deep features or SIFT images, computed once.
    Homographies are memoised per (index, excluded region), so the YFCC rotation trial's first homography
    is not searched twice."""

    def __init__(self, predictor: Predictor, source_image, target_image, features):
        self.predictor, self.source_image, self.target_image, self.features = (
            predictor, source_image, target_image, features)
        self._memo: dict = {}

    @classmethod
    def build(cls, predictor: Predictor, source: np.ndarray, target: np.ndarray) -> "_Coarse":
        config = predictor.settings.coarse
        if predictor.coarse_method == "deep":
            features = coarse_lib.extract(predictor.coarse_variables, source, target, config)
            return cls(predictor, features.source_image, features.target_image, features)
        return cls(predictor, coarse_lib.resize_image(source, config.size, config.rule),
                   coarse_lib.resize_image(target, config.size, config.rule), None)

    def with_target(self, target: np.ndarray) -> "_Coarse":
        """The same source (its features reused) against another target (YFCC rotations)."""
        config = self.predictor.settings.coarse
        target_image = coarse_lib.resize_image(target, config.size, config.rule)
        features = None
        if self.features is not None:
            feats = coarse_lib.backbone_features(self.predictor.coarse_variables, target_image[None])
            _, h, w, c = feats.shape
            features = dataclasses.replace(
                self.features, target=feats.reshape(h * w, c), target_xy=cell_centres(h, w).reshape(h * w, 2),
                target_cells_hw=(h, w), target_image=target_image)
        return _Coarse(self.predictor, self.source_image, target_image, features)

    def homography(self, excluded: np.ndarray, index: int) -> coarse_lib.CoarseHomography:
        """Next homography avoiding the ``excluded`` target pixels (bool, any lattice size; resized here)."""
        excluded = np.asarray(excluded, bool)
        key = (index, excluded.shape, np.packbits(excluded).tobytes())
        if key not in self._memo:
            self._memo[key] = self._search(excluded, index)
        return self._memo[key]

    def _search(self, excluded, index):
        config = self.predictor.settings.coarse
        seed = config.seed + index
        if self.features is not None:
            cells = _downsample_mask(excluded, self.features.target_cells_hw)
            return coarse_lib.coarse_homography(self.features, config, cells, seed=seed)
        allowed = ~_downsample_mask(excluded, self.target_image.shape[:2])
        return sift_homography_masked(self.source_image, self.target_image, allowed, seed=seed,
                                      iterations=config.iterations)


# --------------------------------------------------------------------------------------------------
# Fine stage


@jax.jit
def _fine_on_grid(variables, source, target, coarse_grid):
    """Fine network on ``(T, grid_sample(source, coarse_grid))``: residual, m_TS, m_ST at 1/8 resolution."""
    coarse_source = grid_sample(source, coarse_grid, align_corners=True)
    return FineNetwork().apply(variables, target, coarse_source, train=False)


def _residual_grid(residual, size_hw):
    """``P = clamp(g + U(Δ), -1, 1)`` with U the half-pixel bilinear resize to ``size_hw``."""
    h, w = size_hw
    return jnp.clip(identity_grid(h, w, align_corners=True) + resize_bilinear(residual, (h, w), align_corners=False),
                    -1.0, 1.0)


@functools.partial(jax.jit, static_argnames=("size_hw",))
def _level_one_grid(H, residual_1, *, size_hw):
    """Level 2's "coarse" grid: the level-1 result at level 2's size (upsampled Δ1, clamped, composed with the
    homography grid of that size)."""
    return grid_sample(homography_grid(H, *size_hw)[None], _residual_grid(residual_1, size_hw), align_corners=True)


@functools.partial(jax.jit, static_argnames=("out_hw",))
def _kitti_compose(H, residual_1, level_2, *, out_hw):
    """At the original resolution: homography ∘ level 1 ∘ level 2, and the bidirectional matchability."""
    p_1 = _residual_grid(residual_1, out_hw)
    p_2 = _residual_grid(level_2["residual"], out_hw)
    grid_1 = grid_sample(homography_grid(H, *out_hw)[None], p_1, align_corners=True)
    grid = grid_sample(grid_1, p_2, align_corners=True)
    forward = resize_bilinear(level_2["matchability"], out_hw, align_corners=False)[..., 0]
    backward = grid_sample(resize_bilinear(level_2["matchability_backward"], out_hw, align_corners=False), p_2,
                           align_corners=True)[..., 0]
    inside = jnp.all(jnp.abs(grid) <= 1.0, axis=-1).astype(jnp.float32)
    return grid[0], (forward * backward * inside)[0]


def _kitti_layer(variables, source, target_1, target_2, H, *, out_hw):
    """Two-level fine alignment for one homography (§4.2), composed at ``out_hw`` (the original size).

    The two fine passes are separate jitted calls (one compilation per level size, reused across pairs)."""
    H = jnp.asarray(H, jnp.float32)
    h1, w1 = target_1.shape[1:3]
    level_1 = _fine_on_grid(variables, source, target_1, homography_grid(H, h1, w1)[None])
    coarse_2 = _level_one_grid(H, level_1["residual"], size_hw=tuple(target_2.shape[1:3]))
    level_2 = _fine_on_grid(variables, source, target_2, coarse_2)
    return _kitti_compose(H, level_1["residual"], level_2, out_hw=tuple(out_hw))


# --------------------------------------------------------------------------------------------------
# Homography loop


def _homography_loop(predictor: Predictor, coarse: _Coarse, lattice_hw, foreground, layer_fn):
    """§1.6 on a target lattice of ``lattice_hw``; returns ``(layers, first CoarseHomography)``."""
    settings = predictor.settings
    explained = np.zeros(tuple(lattice_hw), np.float32)  # "Mask"
    background = 1.0 - foreground.astype(np.float32)
    layers, first = [], None
    limit = settings.max_homographies or SAFETY_CAP
    for index in range(limit):
        excluded = ((explained + background) > 0.5).astype(np.float32)
        if index > 0 and excluded.all():
            break
        found = coarse.homography(excluded > 0.5, index)
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
        if not predictor.fine:
            break  # without matchability nothing tells which region the next homography should explain
    return layers, first


def _generic_layer(predictor: Predictor, source_image, target_image):
    height, width = target_image.shape[:2]

    def layer(H):
        if not predictor.fine:
            grid = np.asarray(homography_grid(jnp.asarray(H, jnp.float32), height, width))
            return grid, _inside(grid)
        out = refine(predictor.fine_variables, source_image[None], target_image[None], jnp.asarray(H, jnp.float32))
        return np.asarray(out["grid"][0]), np.asarray(out["matchability"][0], np.float32)

    return layer


def predict_pair(predictor: Predictor, source: np.ndarray, target: np.ndarray, *, foreground=None,
                 rotations=(0,)) -> Prediction | None:
    """MegaDepth / RobotCar / YFCC prediction for ``source`` → ``target`` ((H, W, 3) float RGB in [0, 1]).

    foreground: optional bool mask of the (unrotated, any size) target; None = all foreground.
    rotations: target orientations to try (degrees, counter-clockwise, multiples of 90); the one whose first
      coarse homography has the most inliers is kept (YFCC's trial; ties keep the earliest).
    Returns None when no homography is found.
    """
    start = time.perf_counter()
    base = _Coarse.build(predictor, source, target)
    target_size_hw = base.target_image.shape[:2]
    tried, counts = [], {}
    for degrees in rotations:
        if degrees % 90:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {degrees}")
        k = (degrees // 90) % 4
        coarse = base if k == 0 else base.with_target(np.ascontiguousarray(np.rot90(target, k)))
        lattice_hw = coarse.target_image.shape[:2]
        fg = (np.ones(lattice_hw, bool) if foreground is None
              else resize_foreground(np.rot90(np.asarray(foreground, bool), k), lattice_hw))
        tried.append((degrees, coarse, fg))
    if len(tried) > 1:
        for degrees, coarse, fg in tried:
            found = coarse.homography(~fg, 0)
            counts[int(degrees)] = int(found.num_inliers) if found.matrix is not None else 0
        best = max(range(len(tried)), key=lambda i: (counts[int(tried[i][0])], -i))
        degrees, coarse, fg = tried[best]
    else:
        degrees, coarse, fg = tried[0]
    layers, first = _homography_loop(predictor, coarse, coarse.target_image.shape[:2], fg,
                                     _generic_layer(predictor, coarse.source_image, coarse.target_image))
    if not layers:
        return None
    grid, matchability, _ = merge_layers(layers, predictor.settings.merge_threshold)
    return Prediction(grid=grid, matchability=matchability, foreground=fg,
                      source_size_hw=tuple(coarse.source_image.shape[:2]), target_size_hw=tuple(target_size_hw),
                      homographies=[layer.homography for layer in layers], num_inliers=first.num_inliers,
                      num_matches=first.num_matches, rotation=int(degrees), seconds=time.perf_counter() - start,
                      rotation_inliers=counts or None)


def predict_kitti(predictor: Predictor, source: np.ndarray, target: np.ndarray) -> Prediction | None:
    """KITTI prediction at the original resolution of ``target`` (§4.2); None when no homography is found."""
    start = time.perf_counter()
    settings = predictor.settings
    coarse = _Coarse.build(predictor, source, target)
    out_hw = tuple(target.shape[:2])
    if predictor.fine:
        height, width = out_hw
        t_1 = _resize_exact(target, kitti_fine_size(width, height, max(settings.fine_size // 2, 8)))
        t_2 = _resize_exact(target, kitti_fine_size(width, height, settings.fine_size))
        source_batch = jnp.asarray(source, jnp.float32)[None]

        def layer(H):
            grid, match = _kitti_layer(predictor.fine_variables, source_batch, jnp.asarray(t_1)[None],
                                       jnp.asarray(t_2)[None], jnp.asarray(H, jnp.float32), out_hw=out_hw)
            return np.asarray(grid), np.asarray(match, np.float32)
    else:
        def layer(H):
            grid = np.asarray(homography_grid(jnp.asarray(H, jnp.float32), *out_hw))
            return grid, _inside(grid)

    layers, first = _homography_loop(predictor, coarse, out_hw, np.ones(out_hw, bool), layer)
    if not layers:
        return None
    grid, matchability, _ = merge_layers(layers, settings.merge_threshold, interpolate=True)
    return Prediction(grid=grid, matchability=matchability, foreground=np.ones(out_hw, bool),
                      source_size_hw=tuple(source.shape[:2]), target_size_hw=out_hw,
                      homographies=[layer.homography for layer in layers], num_inliers=first.num_inliers,
                      num_matches=first.num_matches, seconds=time.perf_counter() - start)
