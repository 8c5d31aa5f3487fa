"""Multi-scale RootSIFT matching, guided re-matching and one robust estimator.

Steps: grey images resized to a working size (up-sampled when the shorter side is under
``min_shorter_side``: SIFT finds few stable keypoints on small scans), contrast-equalised (CLAHE), SIFT
(``cv2.SIFT_create``) at several image scales with RootSIFT descriptors (Arandjelović & Zisserman 2012: L1
normalise, square root), mutual nearest neighbours that pass Lowe's ratio test. A seed similarity is fitted
to them; guided matching then re-matches every source keypoint only against the target keypoints within
``guided_radius`` of where the seed (later the homography) sends it, with the ratio test among those
neighbours, and a homography and a similarity are fitted to the guided matches (``guided_rounds`` times).
Several seeds are tried in turn (``rootsift_homographies``).

The robust estimator is ``robust_fit`` alone (homographies: OpenCV's USAC MAGSAC++, or our MAGSAC++,
``geometry.magsac``, with PROSAC sampling by the guided matches' descriptor ratios when
``homography_estimator="magsac"``; similarities: OpenCV RANSAC), so it can be swapped. OpenCV's stays the
default: on the painted copies of the demo ours verified the same copies but its homography candidates scored
slightly lower. Homographies map source pixels to target pixels (OpenCV convention, pixel centres at integers).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy.spatial import cKDTree

from artdup_jax.geometry.classical import preprocess
from artdup_jax.geometry.magsac import find_homography_magsac

HOMOGRAPHY_ESTIMATORS = ("magsac", "cv2")  # our MAGSAC++ (JAX) or cv2.USAC_MAGSAC


@dataclasses.dataclass(frozen=True)
class RootSiftConfig:
    min_shorter_side: int = 512  # up-sample below this
    max_longer_side: int = 800  # down-sample above this (the shorter-side rule wins)
    scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # extra detections on down-sampled copies: coarse, stable shapes
    max_features: int = 3000  # per scale
    ratio: float = 0.95  # Lowe's ratio (with the mutual check, a loose ratio keeps more true matches)
    threshold: float = 0.01  # inlier tolerance, fraction of the working image's longer side
    guided_radius: float = 0.03  # guided matching radius, fraction of the longer side
    guided_ratio: float = 0.9
    guided_rounds: int = 2
    min_inliers: int = 8  # of a seed similarity
    hypotheses: int = 5  # seeds tried in turn (see rootsift_homographies)
    homography_estimator: str = "cv2"  # one of HOMOGRAPHY_ESTIMATORS (see robust_fit)


@dataclasses.dataclass
class Keypoints:
    xy: np.ndarray  # (N, 2) float32 pixel coordinates in the working image
    descriptors: np.ndarray  # (N, 128) float32 RootSIFT, unit L2 norm


@dataclasses.dataclass
class RootSiftResult:
    """One hypothesis: a homography and a similarity fitted on the same guided matches (inputs' pixels)."""

    homography: np.ndarray | None  # (3, 3) source → target; None if no plausible fit
    similarity: np.ndarray | None  # (3, 3) rotation, uniform scale and translation, source → target
    num_inliers: int  # of the homography
    num_similarity_inliers: int
    num_matches: int  # guided matches the fits saw


def working_size(hw: tuple[int, int], config: RootSiftConfig) -> tuple[int, int]:
    """(H, W) at which keypoints are detected: shorter side ≥ ``min_shorter_side``, longer ≤ ``max_longer_side``."""
    factor = max(1.0, config.min_shorter_side / min(hw))
    factor = min(factor, config.max_longer_side / max(hw))
    return max(1, round(hw[0] * factor)), max(1, round(hw[1] * factor))


def rootsift(grey: np.ndarray, config: RootSiftConfig = RootSiftConfig()) -> Keypoints:
    """(H, W) float32 grey in [0, 1] → RootSIFT keypoints from every scale, in ``grey``'s pixel coordinates."""
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    sift = cv2.SIFT_create(nfeatures=config.max_features)
    all_xy, all_desc = [], []
    for scale in config.scales:
        hw = (max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale)))
        image = clahe.apply(preprocess.to_uint8(preprocess.resize(grey, hw)))
        keypoints, descriptors = sift.detectAndCompute(image, None)
        if descriptors is None or not keypoints:
            continue
        xy = np.float32([k.pt for k in keypoints])
        back = np.linalg.inv(preprocess.scale_matrix(grey.shape[:2], hw))
        all_xy.append(preprocess.apply(back, xy).astype(np.float32))
        descriptors = descriptors / (np.abs(descriptors).sum(1, keepdims=True) + 1e-7)
        all_desc.append(np.sqrt(descriptors).astype(np.float32))
    if not all_xy:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    return Keypoints(np.concatenate(all_xy), np.concatenate(all_desc))


def mutual_ratio_matches(desc_a: np.ndarray, desc_b: np.ndarray, ratio: float, chunk: int = 2048) -> np.ndarray:
    """(M, 2) int indices (a, b): mutual nearest neighbours (L2) whose ratio to the second best is < ``ratio``.

    desc_a (Na, D), desc_b (Nb, D): unit-norm rows (RootSIFT is), so ``|a - b|² = 2 - 2 a·b`` and one
    matrix product per chunk of rows replaces a brute-force matcher (BLAS; several times faster).
    """
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2), np.int64)
    best_b = np.empty(len(desc_a), np.int64)
    passes = np.empty(len(desc_a), bool)
    column_best = np.full(len(desc_b), -np.inf, np.float32)
    column_arg = np.zeros(len(desc_b), np.int64)
    for start in range(0, len(desc_a), chunk):
        similarity = desc_a[start: start + chunk] @ desc_b.T  # (n, Nb) cosine
        rows = (desc_b @ desc_a[start: start + chunk].T).argmax(1)  # faster than an argmax over axis 0
        values = similarity[rows, np.arange(len(desc_b))]
        better = values > column_best
        column_best[better], column_arg[better] = values[better], rows[better] + start
        first = similarity.argmax(1)
        lines = np.arange(len(first))
        first_value = similarity[lines, first]
        similarity[lines, first] = -np.inf
        second_value = similarity.max(1)
        distance_1 = np.sqrt(np.maximum(2.0 - 2.0 * first_value, 0.0))
        distance_2 = np.sqrt(np.maximum(2.0 - 2.0 * second_value, 0.0))
        best_b[start: start + chunk] = first
        passes[start: start + chunk] = distance_1 < ratio * distance_2
    a_index = np.flatnonzero(passes & (column_arg[best_b] == np.arange(len(desc_a))))
    return np.stack([a_index, best_b[a_index]], 1).astype(np.int64)


def guided_matches(a: Keypoints, b: Keypoints, H: np.ndarray, radius: float, ratio: float,
                   neighbours: int = 8, *, return_ratios: bool = False):
    """(M, 2) indices (a, b): for each a, the best descriptor among the b within ``radius`` px of H·a.

    The ratio test runs among those neighbours only (the prior removes far-away look-alikes: repeated motifs,
    hatching); each b keeps its best a (one-to-one). ``return_ratios``: also the (M,) descriptor distance
    ratios (best / second best among the neighbours; 0 when there is no second), as ``(indices, ratios)``.
    """
    if len(a.xy) == 0 or len(b.xy) == 0:
        empty = np.zeros((0, 2), np.int64)
        return (empty, np.zeros((0,), np.float32)) if return_ratios else empty
    projected = preprocess.apply(H, a.xy)
    k = min(neighbours, len(b.xy))
    distance, index = cKDTree(b.xy).query(projected, k=k, distance_upper_bound=radius)
    distance, index = distance.reshape(len(a.xy), k), index.reshape(len(a.xy), k)
    present = np.isfinite(distance)
    safe = np.where(present, index, 0)
    cosine = np.einsum("nkd,nd->nk", b.descriptors[safe], a.descriptors)
    descriptor_distance = np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))  # unit-norm descriptors
    descriptor_distance = np.where(present, descriptor_distance, np.inf)
    order = np.argsort(descriptor_distance, axis=1)
    rows = np.arange(len(a.xy))
    best = descriptor_distance[rows, order[:, 0]]
    second = descriptor_distance[rows, order[:, 1]] if k > 1 else np.full(len(a.xy), np.inf)
    keep = np.isfinite(best) & (best < ratio * second)
    a_index, b_index, cost = rows[keep], safe[rows, order[:, 0]][keep], best[keep]
    by_cost = np.argsort(cost, kind="stable")
    _, first = np.unique(b_index[by_cost], return_index=True)
    chosen = by_cost[first]
    indices = np.stack([a_index[chosen], b_index[chosen]], 1).astype(np.int64)
    if not return_ratios:
        return indices
    best, second = best[keep][chosen], second[keep][chosen]  # best is finite here; second may be inf
    ratios = np.divide(best, second, out=np.zeros_like(best), where=np.isfinite(second) & (second > 0))
    return indices, ratios.astype(np.float32)


def robust_fit(source_xy: np.ndarray, target_xy: np.ndarray, threshold_px: float,
               model: str = "homography", seed: int = 0, *, quality: np.ndarray | None = None,
               estimator: str = "cv2") -> tuple[np.ndarray | None, np.ndarray]:
    """The one robust estimator: (N, 2) source and target pixels → ((3, 3) source → target or None, (N,) inliers).

    ``model``: ``"homography"`` (MAGSAC++: ``estimator`` "magsac", ours, or "cv2", OpenCV's USAC_MAGSAC) or
    ``"similarity"`` (rotation, uniform scale, translation; OpenCV RANSAC), the latter for copies with few
    true matches (2 points define it). ``quality``: optional (N,) match quality, higher is better (PROSAC
    order for our MAGSAC++; e.g. minus the descriptor ratio). At most 5000 hypotheses, confidence 0.999.
    """
    if estimator not in HOMOGRAPHY_ESTIMATORS:
        raise ValueError(f"estimator must be one of {HOMOGRAPHY_ESTIMATORS}, got {estimator!r}")
    minimum = 4 if model == "homography" else 2
    inliers = np.zeros(len(source_xy), bool)
    if len(source_xy) < minimum:
        return None, inliers
    cv2.setRNGSeed(seed)
    src, dst = np.float32(source_xy), np.float32(target_xy)
    if model == "homography" and estimator == "magsac":
        H, mask = find_homography_magsac(src, dst, quality=quality, threshold=threshold_px, max_iterations=5000,
                                         confidence=0.999, seed=seed)
    elif model == "homography":
        H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold_px, maxIters=5000, confidence=0.999)
    elif model == "similarity":
        A, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold_px,
                                              maxIters=5000, confidence=0.999)
        H = None if A is None else np.vstack([A, [0, 0, 1]])
    else:
        raise ValueError(f"unknown model {model!r}")
    if H is None or mask is None:
        return None, inliers
    return np.asarray(H, np.float64), mask.ravel().astype(bool)


def rootsift_homographies(source: np.ndarray, target: np.ndarray, config: RootSiftConfig = RootSiftConfig(), *,
                          features: tuple[Keypoints, Keypoints] | None = None) -> list[RootSiftResult]:
    """Up to ``config.hypotheses`` source → target hypotheses (inputs' pixels), most inliers first.

    source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1]. ``features``: keypoints already
    computed by ``rootsift_features``. Between differently painted copies often under 10% of the matches are
    right, and repeated texture (foliage, drapery) forms its own chance clusters; so seeds are drawn in turn
    (a 2-point similarity, since a 4-point homography sample is hopeless at such inlier ratios; its inliers
    removed; the next one), each seed guides the matching, and the verification score picks among them.
    """
    grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
    hw_s, hw_t = working_size(grey_s.shape, config), working_size(grey_t.shape, config)
    a, b = features if features is not None else rootsift_features(source, target, config)
    matches = mutual_ratio_matches(a.descriptors, b.descriptors, config.ratio)
    threshold = config.threshold * max(hw_t)
    to_inputs = (np.linalg.inv(preprocess.scale_matrix(grey_s.shape, hw_s)),
                 np.linalg.inv(preprocess.scale_matrix(grey_t.shape, hw_t)))
    remaining = np.ones(len(matches), bool)
    results = []
    for _ in range(config.hypotheses):
        pool = matches[remaining]
        seed, inliers = robust_fit(a.xy[pool[:, 0]], b.xy[pool[:, 1]], 2 * threshold, "similarity")
        if seed is None or inliers.sum() < config.min_inliers:
            break
        remaining[np.flatnonzero(remaining)[inliers]] = False
        if not preprocess.plausible(seed, hw_s, hw_t):
            continue
        fits = _guided_fits(a, b, seed, int(inliers.sum()), threshold, config.guided_radius * max(hw_t), config,
                            (hw_s, hw_t))
        results.append(RootSiftResult(
            *[None if fits[m][0] is None else preprocess.change_frames(fits[m][0], *to_inputs)
              for m in ("homography", "similarity")],
            num_inliers=fits["homography"][1], num_similarity_inliers=fits["similarity"][1],
            num_matches=fits["matches"]))
    return sorted(results, key=lambda r: -max(r.num_inliers, r.num_similarity_inliers))


def _guided_fits(a: Keypoints, b: Keypoints, seed: np.ndarray, seed_inliers: int, threshold: float, radius: float,
                 config: RootSiftConfig, working_hws) -> dict:
    """Guided re-matching rounds around a seed similarity (working pixels); the best homography and
    similarity fitted on the guided matches, as {model: (H or None, inliers)} and {"matches": count}."""
    best = {"homography": (None, 0), "similarity": (seed, seed_inliers), "matches": 0}
    prior = seed
    for _ in range(config.guided_rounds):
        guided, ratios = guided_matches(a, b, prior, radius, config.guided_ratio, return_ratios=True)
        source_xy, target_xy = a.xy[guided[:, 0]], b.xy[guided[:, 1]]
        improved = False
        for model in ("homography", "similarity"):
            H, inliers = robust_fit(source_xy, target_xy, threshold, model, quality=-ratios,
                                    estimator=config.homography_estimator)
            if H is not None and inliers.sum() > best[model][1] and preprocess.plausible(H, *working_hws):
                best[model], improved, best["matches"] = (H, int(inliers.sum())), True, len(guided)
        if not improved:
            break
        prior = best["homography"][0] if best["homography"][0] is not None else best["similarity"][0]
    return best


def rootsift_homography(source: np.ndarray, target: np.ndarray, config: RootSiftConfig = RootSiftConfig()
                        ) -> np.ndarray | None:
    """The (3, 3) source → target pixels homography of the first ``rootsift_homographies`` hypothesis, or None."""
    results = rootsift_homographies(source, target, config)
    return results[0].homography if results else None


def rootsift_features(source: np.ndarray, target: np.ndarray, config: RootSiftConfig = RootSiftConfig()
                      ) -> tuple[Keypoints, Keypoints]:
    """RootSIFT keypoints of both images at their working sizes (``working_size``)."""
    out = []
    for image in (source, target):
        grey = preprocess.to_grey(image)
        out.append(rootsift(preprocess.resize(grey, working_size(grey.shape, config)), config))
    return out[0], out[1]
