"""Discovery without weights: SIFT + MAGSAC++ pair verification (the demo's default; not the ArtMiner method).

SIFT matches for every pair (mutual ratio test); pairs with enough matches are candidates; all candidates are
verified by one batched robust homography fit: MAGSAC++ with PROSAC sampling by descriptor ratio
(``geometry.magsac.magsac_homographies``; ``estimator="ransac"``: the plain RANSAC of
``geometry.ransac.find_homographies``); verified pairs are linked, and connected components are the groups.
The document has ``artdup_jax.app.discover``'s layout.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from artdup_jax.artminer.discovery import connected_components
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.geometry.magsac import magsac_homographies
from artdup_jax.geometry.ransac import find_homographies
from artdup_jax.geometry.sift import mutual_ratio_matches, sift_features

SIFT_METHOD = ("SIFT + MAGSAC++ pair verification (fallback: no ArtMiner weights given; not the ArtMiner "
               "method, which needs --artminer-checkpoint)")


@dataclasses.dataclass(frozen=True)
class SiftDiscoveryConfig:
    ratio: float = 0.8  # Lowe's ratio test
    features: int = 1500  # SIFT keypoints per image at most
    min_matches: int = 12  # ratio-test matches that make a pair a candidate
    max_matches: int = 256  # matches per pair given to the estimator (best ratios first): a static shape
    threshold_px: float = 4.0
    iterations: int = 2000  # hypotheses at most (MAGSAC++ stops earlier once confident; RANSAC draws them all)
    min_inliers: int = 15  # a candidate with fewer inliers (within threshold_px) is not verified
    min_box_fraction: float = 0.01  # inliers must spread over this fraction of each image's area
    pairs_per_batch: int = 32
    seed: int = 0
    estimator: str = "magsac"  # "magsac" (MAGSAC++, PROSAC by ratio) or "ransac" (geometry.ransac)


def _box(xy: np.ndarray) -> list[float]:
    return [round(float(v), 1) for v in (*xy.min(0), *xy.max(0))]


def _merge_boxes(boxes: list[list[float]], iou: float = 0.5) -> list[list[float]]:
    """Greedy union of boxes overlapping by more than ``iou`` (one outline per region, not per pair)."""
    merged: list[list[float]] = []
    for box in boxes:
        for k, other in enumerate(merged):
            iw = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
            ih = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
            union = ((box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
                     - iw * ih)
            if union > 0 and iw * ih / union > iou:
                merged[k] = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]),
                             max(box[3], other[3])]
                break
        else:
            merged.append(list(box))
    return merged


@dataclasses.dataclass(frozen=True)
class CandidateMatches:
    """The readable images of a folder and the SIFT matches of its candidate pairs, padded for the estimator.

    images: ``(H, W, 3)`` float32 per readable image (``readable``: their file names; ``unreadable``: the
    others, each ``{"file", "error"}``). pairs: ``(i, j)`` image indices, ``i < j``, one per candidate.
    src, dst: ``(C, M, 2)`` float32 pixels (image i, image j), best ratio first; valid: ``(C, M)`` bool;
    quality: ``(C, M)`` float32 ``-ratio`` (``-inf`` on padding); ``M`` = ``config.max_matches``.
    """

    images: list
    readable: list
    unreadable: list
    pairs: list
    src: np.ndarray
    dst: np.ndarray
    valid: np.ndarray
    quality: np.ndarray


def candidate_matches(folder: Path, names: list[str], config: SiftDiscoveryConfig) -> CandidateMatches:
    """Reads the images, matches every pair (mutual ratio test) and keeps the pairs with enough matches."""
    images, unreadable, readable = [], [], []
    for name in names:
        try:
            images.append(read_image(folder / name))
            readable.append(name)
        except ImageReadError as error:
            unreadable.append({"file": name, "error": str(error).replace(os.fspath(folder / name), name)})
    keypoints = [sift_features(image, max_features=config.features) for image in images]
    pairs, matched = [], []
    for i in range(len(readable)):  # descriptor matching: OpenCV, one call per pair; the fit is batched
        for j in range(i + 1, len(readable)):
            indices, ratios = mutual_ratio_matches(keypoints[i].descriptors, keypoints[j].descriptors,
                                                   config.ratio)
            if len(indices) >= config.min_matches:
                pairs.append((i, j))
                matched.append((indices[: config.max_matches], ratios[: config.max_matches]))
    n = config.max_matches
    src = np.zeros((len(pairs), n, 2), np.float32)
    dst = np.zeros((len(pairs), n, 2), np.float32)
    valid = np.zeros((len(pairs), n), bool)
    quality = np.full((len(pairs), n), -np.inf, np.float32)  # -ratio, best first; padding last
    for p, ((i, j), (indices, ratios)) in enumerate(zip(pairs, matched)):
        src[p, : len(indices)] = keypoints[i].xy[indices[:, 0]]
        dst[p, : len(indices)] = keypoints[j].xy[indices[:, 1]]
        valid[p, : len(indices)] = True
        quality[p, : len(indices)] = -ratios
    return CandidateMatches(images, readable, unreadable, pairs, src, dst, valid, quality)


def verify_candidates(candidates: CandidateMatches, config: SiftDiscoveryConfig):
    """The batched robust fit of every candidate: ``(inliers (C, M) bool, found (C,) bool)``."""
    c = candidates
    inliers = np.zeros(c.valid.shape, bool)
    found = np.zeros(c.valid.shape[:1], bool)
    size = config.pairs_per_batch
    for start in range(0, len(c.pairs), size):  # equal batch shapes: one compilation
        take = np.arange(start, start + size) % len(c.pairs)
        if config.estimator == "magsac":
            batch = magsac_homographies(c.src[take], c.dst[take], c.valid[take], c.quality[take],
                                        threshold=config.threshold_px, max_iterations=config.iterations,
                                        seed=config.seed)
        else:
            batch = find_homographies(c.src[take], c.dst[take], c.valid[take], threshold=config.threshold_px,
                                      iterations=config.iterations, seed=config.seed)
        real = min(size, len(c.pairs) - start)
        inliers[start: start + real], found[start: start + real] = batch.inliers[:real], batch.found[:real]
    return inliers, found


def sift_discovery(folder: Path, names: list[str], config: SiftDiscoveryConfig = SiftDiscoveryConfig()):
    """Groups of images related by a homography; returns (document in artdup_jax.app.discover's layout, scores).

    ``scores``: the inlier count of every candidate pair, for the histogram.
    """
    if config.estimator not in ("magsac", "ransac"):
        raise ValueError(f"estimator must be 'magsac' or 'ransac', got {config.estimator!r}")
    candidates = candidate_matches(folder, names, config)
    images, readable, unreadable, pairs = (candidates.images, candidates.readable, candidates.unreadable,
                                           candidates.pairs)
    src, dst = candidates.src, candidates.dst
    inliers, found = verify_candidates(candidates, config)
    scores = inliers.sum(1)
    edges = []
    for p, (i, j) in enumerate(pairs):
        if not found[p] or scores[p] < config.min_inliers:
            continue
        box_a, box_b = _box(src[p][inliers[p]]), _box(dst[p][inliers[p]])
        spread = [(b[2] - b[0]) * (b[3] - b[1]) / (im.shape[0] * im.shape[1])
                  for b, im in ((box_a, images[i]), (box_b, images[j]))]
        if min(spread) >= config.min_box_fraction:
            edges.append({"a": i, "b": j, "score": int(scores[p]), "box_a": box_a, "box_b": box_b})
    groups = []
    components = connected_components(len(readable), [(e["a"], e["b"]) for e in edges])  # members ascending
    for members in sorted((c for c in components if len(c) >= 2), key=lambda c: (-len(c), c[0])):
        inside = [e for e in edges if e["a"] in members]
        regions = {m: [] for m in members}
        for e in inside:
            regions[e["a"]].append(e["box_a"])
            regions[e["b"]].append(e["box_b"])
        groups.append({
            "id": len(groups),
            "images": [{"file": readable[m], "height": images[m].shape[0], "width": images[m].shape[1],
                        "regions": _merge_boxes(regions[m])} for m in members],
            "pairs": [{"a": readable[e["a"]], "b": readable[e["b"]], "score": e["score"], "box_a": e["box_a"],
                       "box_b": e["box_b"]} for e in sorted(inside, key=lambda e: -e["score"])],
        })
    settings = {"method": f"sift-{config.estimator}", **dataclasses.asdict(config)}
    document = {"folder": os.fspath(folder), "settings": settings,
                "num_images": len(readable), "images": readable, "unreadable": unreadable,
                "num_pairs_scored": len(pairs), "groups": groups,
                "top_pairs": [{"a": readable[pairs[p][0]], "b": readable[pairs[p][1]], "score": int(scores[p])}
                              for p in np.argsort(-scores, kind="stable")[:100]]}
    return document, scores.tolist()
