"""Coarse stage: homographies between a pair from multi-scale deep-feature matches, or from SIFT.

Deep features: source at several scales, target at one; ResNet-50 ``layer3`` features, L2-normalised; mutual
nearest neighbours over all source scales at once; RANSAC-Flow's RANSAC (unnormalised DLT, tolerance in
normalised units, :mod:`artdup_jax.ransac_flow.official_ransac`) on pixel-centre (PC) coordinates. Every
homography maps **target-normalised to source-normalised coordinates** and is applied on the AC grid (as the
official code does, although the matches are in PC coordinates).

SIFT (``sift_homography``) needs no network weights: OpenCV SIFT matches and our RANSAC in pixels.

``CoarseConfig.estimator`` picks the robust estimator on either kind of match: ``"release"`` (the default,
for parity: the official routine's hypotheses and selection on deep-feature matches, our fixed-budget RANSAC
on SIFT matches) or ``"magsac"`` (MAGSAC++, :mod:`artdup_jax.geometry.magsac`, PROSAC sampling by match
quality: the cosine of a deep-feature match, minus the ratio of a SIFT match; adaptive stopping), which the
``artdup`` tool uses.

``CoarseSearch`` holds one pair's coarse stage (features computed once) and answers the homography loop's
requests for the next homography outside the already explained target region.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.geometry import matching, ransac, sift
from artdup_jax.geometry.homography import pixel_to_normalised_homography
from artdup_jax.geometry.magsac import find_homography_magsac, magsac_pair
from artdup_jax.geometry.magsac_scoring import sigma_quantile
from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import cell_centres
from artdup_jax.nn.normalise import imagenet_normalise
from artdup_jax.nn.resnet import resnet50
from artdup_jax.ransac_flow.model import l2_normalise
from artdup_jax.ransac_flow.official_ransac import official_hypotheses, official_ransac_flow_ransac

FEATURE_STRIDE = 16


@dataclasses.dataclass(frozen=True)
class CoarseConfig:
    """Defaults: the evaluation scripts' HPatches / MegaDepth settings (10 000 iterations as MegaDepth)."""

    size: int = 480  # the resize rule's target side
    rule: str = "shorter"  # "shorter" (evaluation scripts) or "longer" (quick start / demo)
    num_scales: int = 7
    scale_ratio: float = 2.0
    iterations: int = 10_000
    tolerance: float = 0.05  # normalised units
    mask_mode: str = "after"
    seed: int = 0
    estimator: str = "release"  # one of ESTIMATORS (see the module docstring)


ESTIMATORS = ("release", "magsac")
# MAGSAC++ on deep-feature matches: its noise scales are marginalised up to MAGSAC_MAX_THRESHOLD x tolerance
# (the ratio of the 8 px maximum to the 3 px reference threshold of its pixel default).
MAGSAC_MAX_THRESHOLD = 8.0 / 3.0

QUICK_START = CoarseConfig(size=400, rule="longer", num_scales=7, scale_ratio=1.2, mask_mode="before")
METHODS = ("deep", "sift", "identity")  # deep features (needs weights), SIFT, or none (images roughly aligned)


def scale_list(num_scales: int, scale_ratio: float) -> list[float]:
    """``linspace(r, 1, n//2+1) ++ linspace(1, 1/r, n//2+1)[1:]``; the middle entry is 1."""
    if num_scales == 1:
        return [1.0]
    half = num_scales // 2 + 1
    return list(np.linspace(scale_ratio, 1, half)) + list(np.linspace(1, 1 / scale_ratio, half)[1:])


def resized_size(width: int, height: int, size: int, rule: str) -> tuple[int, int]:
    """(width, height) after scaling the shorter (or longer) side to ``size`` and flooring each to 16."""
    reference = min(width, height) if rule == "shorter" else max(width, height)
    ratio = reference / size
    new_w = int(round(width / ratio)) // 16 * 16
    new_h = int(round(height / ratio)) // 16 * 16
    if new_w < 16 or new_h < 16:
        raise ValueError(f"image of {width}x{height} is too small for a {size}-pixel {rule}-side resize")
    return new_w, new_h


def resize_image(image: np.ndarray, size: int, rule: str) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] → resized with PIL LANCZOS per the rule (as the official code)."""
    height, width = image.shape[:2]
    return resize_exact(image, resized_size(width, height, size, rule))


def resize_exact(image: np.ndarray, size_wh) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → PIL LANCZOS to ``size_wh`` (as every image resize of the official code),
    via 8-bit RGB."""
    pil = Image.fromarray(np.clip(np.round(image * 255), 0, 255).astype(np.uint8))
    return np.asarray(pil.resize(tuple(int(v) for v in size_wh), Image.LANCZOS), np.float32) / 255.0


@jax.jit
def backbone_features(variables: dict, images: jnp.ndarray) -> jnp.ndarray:
    """(B, H, W, 3) in [0, 1] → L2-normalised ResNet-50 layer3 features (B, H/16, W/16, 1024)."""
    raw = resnet50(last_stage="layer3").apply(variables, imagenet_normalise(images), train=False)
    return l2_normalise(raw)


def _flatten_with_coordinates(features: jnp.ndarray):
    """(1, h, w, C) → (h·w, C) features and (h·w, 2) PC coordinates (x first)."""
    _, h, w, c = features.shape
    return features.reshape(h * w, c), cell_centres(h, w).reshape(h * w, 2)


@dataclasses.dataclass
class CoarseFeatures:
    """Everything the coarse stage needs about a pair, computed once (several homographies reuse it)."""

    source: jnp.ndarray  # (Ns, 1024), all scales concatenated
    source_xy: jnp.ndarray  # (Ns, 2) PC coordinates in each scale's own frame
    target: jnp.ndarray  # (Nt, 1024)
    target_xy: jnp.ndarray  # (Nt, 2)
    target_cells_hw: tuple[int, int]
    source_image: np.ndarray  # (H, W, 3) the scale-1 source (the one warped and refined)
    target_image: np.ndarray  # (H, W, 3)


def extract(variables: dict, source: np.ndarray, target: np.ndarray, config: CoarseConfig) -> CoarseFeatures:
    """Resizes per ``config`` and computes the source pyramid's and the target's features."""
    target_image = resize_image(target, config.size, config.rule)
    source_images = [resize_image(source, int(config.size * s), config.rule)
                     for s in scale_list(config.num_scales, config.scale_ratio)]
    flat = [_flatten_with_coordinates(backbone_features(variables, im[None])) for im in source_images]
    target_features = backbone_features(variables, target_image[None])
    target_flat, target_xy = _flatten_with_coordinates(target_features)
    return CoarseFeatures(
        source=jnp.concatenate([f for f, _ in flat]), source_xy=jnp.concatenate([xy for _, xy in flat]),
        target=target_flat, target_xy=target_xy, target_cells_hw=tuple(target_features.shape[1:3]),
        source_image=source_images[len(source_images) // 2], target_image=target_image)


@functools.partial(jax.jit, static_argnames=("iterations", "mask_mode"))
def _match_and_fit(key, source, source_xy, target, target_xy, excluded_target, *, iterations, tolerance,
                   mask_mode):
    matches = matching.mutual_nearest_neighbours(source, target, excluded_b=excluded_target,
                                                 mask_mode=mask_mode)
    hypotheses = official_hypotheses(key, jnp.maximum(matches.count, 1), iterations)
    result = official_ransac_flow_ransac(
        target_xy[matches.index_b], source_xy[matches.index_a], hypotheses, tolerance, matches.valid)
    return result, matches


@functools.partial(jax.jit, static_argnames=("mask_mode",))
def _match_and_fit_magsac(seed, source, source_xy, target, target_xy, excluded_target, iterations, tolerance, *,
                          mask_mode):
    """As :func:`_match_and_fit` with MAGSAC++ (PROSAC by match cosine); returns ``(MagsacResult, matches)``."""
    matches = matching.mutual_nearest_neighbours(source, target, excluded_b=excluded_target,
                                                 mask_mode=mask_mode)
    result = magsac_pair(target_xy[matches.index_b], source_xy[matches.index_a], matches.valid,
                         jnp.where(matches.valid, matches.similarity, -jnp.inf), threshold=tolerance,
                         sigma_max=MAGSAC_MAX_THRESHOLD * tolerance / sigma_quantile(), max_iterations=iterations,
                         seed=seed)
    return result, matches


@dataclasses.dataclass
class CoarseHomography:
    matrix: np.ndarray | None  # (3, 3) target-normalised → source-normalised, or None (no homography)
    num_inliers: int
    num_matches: int


def coarse_homography(features: CoarseFeatures, config: CoarseConfig,
                      excluded_target_cells: np.ndarray | None = None, *, seed: int | None = None) -> CoarseHomography:
    """One RANSAC homography; ``excluded_target_cells`` (h_t, w_t) bool masks already-explained cells."""
    h, w = features.target_cells_hw
    excluded = (np.zeros((h * w,), bool) if excluded_target_cells is None
                else np.asarray(excluded_target_cells, bool).reshape(h * w))
    seed = config.seed if seed is None else seed
    _check_estimator(config.estimator)
    if config.estimator == "magsac":
        result, matches = _match_and_fit_magsac(
            np.uint32(seed), features.source, features.source_xy, features.target, features.target_xy, excluded,
            np.int32(config.iterations), np.float32(config.tolerance), mask_mode=config.mask_mode)
        matrix = result.H
    else:
        result, matches = _match_and_fit(jax.random.key(seed), features.source, features.source_xy,
                                         features.target, features.target_xy, excluded, iterations=config.iterations,
                                         tolerance=config.tolerance, mask_mode=config.mask_mode)
        matrix = result.M
    found = bool(result.found)
    return CoarseHomography(matrix=np.asarray(matrix, np.float64) if found else None,
                            num_inliers=int(result.num_inliers), num_matches=int(matches.count))


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def sift_homography(source: np.ndarray, target: np.ndarray, *, allowed_target: np.ndarray | None = None,
                    ratio: float = 0.8, threshold_px: float = 3.0, iterations: int = 10_000, seed: int = 0,
                    min_inliers: int = 15, estimator: str = "release") -> CoarseHomography:
    """A homography from OpenCV SIFT matches (Lowe ratio test) and a robust fit, for when no weights exist.

    estimator: "release" (our RANSAC, ``iterations`` hypotheses) or "magsac" (MAGSAC++, PROSAC by ratio, at most
    ``iterations`` hypotheses, confidence 0.999).

    source, target: (H, W, 3) float32 in [0, 1]. allowed_target: optional (H_t, W_t) bool, target keypoints
    are detected only there (the SIFT counterpart of masking target feature cells). Returned in the same
    convention as the deep coarse stage (target-normalised → source-normalised, AC), so it plugs into
    ``refine`` unchanged. Fewer than ``min_inliers`` inliers, or a homography that folds or collapses the
    target frame, counts as no homography: SIFT on differently painted copies often yields a handful of
    chance inliers.
    """
    _check_estimator(estimator)
    mask = None if allowed_target is None or np.all(allowed_target) else allowed_target
    source_sift = sift.sift_features(source, rounded=False)
    target_sift = sift.sift_features(target, mask=mask, rounded=False)
    if (source_sift.descriptors is None or target_sift.descriptors is None or len(source_sift) < 4
            or len(target_sift) < 4):
        return CoarseHomography(None, 0, 0)
    matches, ratios = sift.ratio_matches(target_sift.descriptors, source_sift.descriptors, ratio,
                                         return_ratios=True)
    if len(matches) < max(4, min_inliers):
        return CoarseHomography(None, 0, len(matches))
    target_px, source_px = target_sift.xy[matches[:, 0]], source_sift.xy[matches[:, 1]]
    if estimator == "magsac":
        H_pixels, inliers = find_homography_magsac(target_px, source_px, quality=-ratios, threshold=threshold_px,
                                                   max_iterations=iterations, seed=seed)
    else:
        H_pixels, inliers = ransac.find_homography(target_px, source_px, threshold=threshold_px,
                                                   iterations=iterations, seed=seed)
    if H_pixels is None or inliers.sum() < min_inliers or not _plausible(H_pixels, target.shape[:2], source.shape[:2]):
        return CoarseHomography(None, int(inliers.sum()), len(matches))
    H = pixel_to_normalised_homography(jnp.asarray(H_pixels, jnp.float32), target.shape[:2], source.shape[:2],
                                       align_corners=True)
    return CoarseHomography(np.asarray(H, np.float64), int(inliers.sum()), len(matches))


def _plausible(H_pixels: np.ndarray, target_hw, source_hw, max_area_ratio: float = 16.0) -> bool:
    """The target frame maps to a convex, same-orientation quadrilateral of reasonable area in the source."""
    h, w = target_hw
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64)
    mapped = corners @ np.asarray(H_pixels, np.float64).T
    if np.any(mapped[:, 2] <= 0):
        return False
    quad = mapped[:, :2] / mapped[:, 2:]
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return False
    area = 0.5 * abs(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))
    reference = source_hw[0] * source_hw[1]
    return reference / max_area_ratio < area < reference * max_area_ratio


def downsample_mask(mask: np.ndarray, size_hw) -> np.ndarray:
    """Half-pixel bilinear (no antialiasing) resize of a 0/1 mask to ``size_hw``, thresholded at > 0.5."""
    resized = resize_bilinear(jnp.asarray(mask, jnp.float32)[None, :, :, None], tuple(size_hw), align_corners=False)
    return np.asarray(resized)[0, :, :, 0] > 0.5


class CoarseSearch:
    """The coarse stage of one pair (one target orientation): deep features or the resized images, computed
    once. Homographies are memoised per (index, excluded region), so a search repeated with the same request
    (the YFCC rotation trial's first homography) is not run twice.

    method: one of :data:`METHODS`. variables: the ResNet-50 / MoCo weights for "deep" (else None).
    source_image, target_image: (H, W, 3) the resized scale-1 images the homographies refer to.
    """

    def __init__(self, method: str, variables: dict | None, config: CoarseConfig, source_image: np.ndarray,
                 target_image: np.ndarray, features: CoarseFeatures | None):
        self.method, self.variables, self.config = method, variables, config
        self.source_image, self.target_image, self.features = source_image, target_image, features
        self._memo: dict = {}

    @classmethod
    def build(cls, method: str, variables: dict | None, config: CoarseConfig, source: np.ndarray,
              target: np.ndarray) -> "CoarseSearch":
        """Resizes ``source`` and ``target`` ((H, W, 3) float32 in [0, 1], any sizes) per ``config``."""
        if method == "deep":
            features = extract(variables, source, target, config)
            return cls(method, variables, config, features.source_image, features.target_image, features)
        return cls(method, variables, config, resize_image(source, config.size, config.rule),
                   resize_image(target, config.size, config.rule), None)

    def with_target(self, target: np.ndarray) -> "CoarseSearch":
        """The same source (its features reused) against another target (YFCC rotations)."""
        target_image = resize_image(target, self.config.size, self.config.rule)
        features = None
        if self.features is not None:
            target_features = backbone_features(self.variables, target_image[None])
            flat, xy = _flatten_with_coordinates(target_features)
            features = dataclasses.replace(self.features, target=flat, target_xy=xy,
                                           target_cells_hw=tuple(target_features.shape[1:3]),
                                           target_image=target_image)
        return CoarseSearch(self.method, self.variables, self.config, self.source_image, target_image, features)

    def homography(self, excluded: np.ndarray, index: int) -> CoarseHomography:
        """Homography number ``index`` avoiding the ``excluded`` target pixels (bool, any lattice size)."""
        excluded = np.asarray(excluded, bool)
        key = (index, excluded.shape, np.packbits(excluded).tobytes())
        if key not in self._memo:
            self._memo[key] = self._search(excluded, index)
        return self._memo[key]

    def _search(self, excluded: np.ndarray, index: int) -> CoarseHomography:
        seed = self.config.seed + index
        if self.method == "identity":
            return CoarseHomography(np.eye(3) if index == 0 else None, 0, 0)
        if self.method == "deep":
            cells = downsample_mask(excluded, self.features.target_cells_hw)
            return coarse_homography(self.features, self.config, cells, seed=seed)
        allowed = ~downsample_mask(excluded, self.target_image.shape[:2])
        return sift_homography(self.source_image, self.target_image, allowed_target=allowed, seed=seed,
                               iterations=self.config.iterations, estimator=self.config.estimator)
