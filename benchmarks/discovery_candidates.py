"""The robust fits of weightless discovery, as the tool meets them: our batched MAGSAC++ vs sequential OpenCV.

The candidate pairs are those of ``artdup discover`` without weights on the demo's mixed collection
(``data.demo_collection``: unraphael's copies of the Bridgewater Madonna, scikit-image's photographs, planted
warped and pasted duplicates), with the tool's settings (``app.sift_discovery.SiftDiscoveryConfig``: mutual
ratio-test SIFT matches, at least 12 and at most 256 per pair, 4 px, at most 2,000 hypotheses, PROSAC by
ratio). The batch cycles through them to the requested size, each repetition with its own seed. Accuracy has
no ground-truth homography here, so it is read off the decisions the tool makes: a pair is verified with at
least ``min_inliers`` inliers within 4 px, and it is right when both images belong to one planted group.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.alternated_timing import time_alternated


@dataclasses.dataclass(frozen=True)
class Candidates:
    """src, dst: ``(C, M, 2)`` float32 pixels; valid ``(C, M)``; quality ``(C, M)``; related ``(C,)`` bool: both
    images in one planted group."""

    src: np.ndarray
    dst: np.ndarray
    valid: np.ndarray
    quality: np.ndarray
    related: np.ndarray


def demo_candidates(size: int = 400, seed: int = 0) -> tuple[Candidates, object]:
    """The candidate pairs of weightless discovery on the demo's collection, and the config used."""
    from artdup_jax.app.sift_discovery import SiftDiscoveryConfig, candidate_matches
    from artdup_jax.data.demo_collection import PLANTED, REFERENCE, build_collection, unraphael_folder
    from artdup_jax.data.embedded import EMBEDDED_NAMES

    config = SiftDiscoveryConfig(seed=seed)
    source = unraphael_folder()
    copies = sorted(n for n in os.listdir(source) if n.endswith(".jpg") and n != REFERENCE)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "collection"
        truth = build_collection(folder, source, [REFERENCE, *copies], list(EMBEDDED_NAMES), list(PLANTED),
                                 size, seed)
        found = candidate_matches(folder, sorted(os.listdir(folder)), config)
    group_of = {name: g for g, names in enumerate(truth) for name in names}
    related = np.array([group_of.get(found.readable[i], -1) == group_of.get(found.readable[j], -2)
                        for i, j in found.pairs], bool)
    return Candidates(found.src, found.dst, found.valid, found.quality, related), config


def verification_vs_sequential(count: int, seed: int = 0) -> dict:
    """One :func:`magsac_homographies` call on ``count`` candidate pairs vs as many sequential
    ``cv2.USAC_MAGSAC`` calls on the same matches (same threshold, budget and confidence); decisions for both."""
    import jax

    from artdup_jax.geometry.magsac import magsac_homographies

    candidates, config = demo_candidates(seed=seed)
    rows = np.arange(count) % len(candidates.related)
    src, dst, valid, quality = (candidates.src[rows], candidates.dst[rows], candidates.valid[rows],
                                candidates.quality[rows])
    seeds = np.arange(count, dtype=np.uint32)
    matches = [(src[p][valid[p]], dst[p][valid[p]]) for p in range(count)]

    def ours():
        result = magsac_homographies(src, dst, valid, quality, threshold=config.threshold_px,
                                     max_iterations=config.iterations, seed=seeds)
        return jax.device_get(result)

    def opencv():
        counts = []
        for a, b in matches:
            _, mask = cv2.findHomography(a, b, cv2.USAC_MAGSAC, config.threshold_px, maxIters=config.iterations,
                                         confidence=0.999)
            counts.append(0 if mask is None else int(mask.sum()))
        return np.array(counts)

    result, opencv_counts, times = time_alternated(ours, opencv)
    related = candidates.related[rows]
    ours_counts = np.where(result.found, result.num_inliers, 0)
    return {
        "pairs": count, "distinct_pairs": int(len(candidates.related)),
        "related_pairs": int(np.sum(candidates.related)), "padded_rows": int(src.shape[1]),
        "matches_min": int(valid.sum(1).min()), "matches_median": float(np.median(valid.sum(1))),
        "matches_max": int(valid.sum(1).max()), **times,
        "mean_iterations_drawn": float(np.mean(result.iterations)),
        "max_iterations_drawn": int(np.max(result.iterations)),
        "ours": decisions(ours_counts, related, config.min_inliers),
        "opencv": decisions(opencv_counts, related, config.min_inliers),
    }


def decisions(inlier_counts: np.ndarray, related: np.ndarray, min_inliers: int) -> dict:
    """Verified pairs (at least ``min_inliers`` inliers) against the planted truth, and the median count."""
    verified = inlier_counts >= min_inliers
    return {"verified_related": int(np.sum(verified & related)), "related": int(np.sum(related)),
            "verified_unrelated": int(np.sum(verified & ~related)), "unrelated": int(np.sum(~related)),
            "median_inliers_related": float(np.median(inlier_counts[related])) if related.any() else 0.0}


def markdown(batch: dict) -> str:
    rows = []
    for name, key, seconds, cpu in (("magsac_homographies (one call)", "ours", "ours_seconds", "ours_cpu_seconds"),
                                    (f"cv2.USAC_MAGSAC ({batch['pairs']} sequential calls)", "opencv",
                                     "opencv_seconds", "opencv_cpu_seconds")):
        d = batch[key]
        rows.append(f"| {name} | {batch[seconds]:.3f} | {batch[cpu]:.3f} | {d['verified_related']} / "
                    f"{d['related']} | {d['verified_unrelated']} / {d['unrelated']} | "
                    f"{d['median_inliers_related']:.0f} |")
    return "\n".join([
        f"### discovery verification (the tool's candidates): {batch['pairs']} pairs in one batched call "
        f"({batch['distinct_pairs']} distinct candidate pairs of the demo collection, {batch['related_pairs']} "
        f"of them related; {batch['matches_min']}-{batch['matches_max']} matches, median "
        f"{batch['matches_median']:.0f}, padded to {batch['padded_rows']} rows)", "",
        "| estimator | total s | CPU s | related pairs verified | unrelated pairs verified | median inliers "
        "(related) |", "|---|---|---|---|---|---|", *rows, "",
        f"Speed-up: {batch['speedup']:.1f}x wall, {batch['cpu_speedup']:.1f}x CPU time (first call, with "
        f"compilation: {batch['ours_first_call_seconds']:.1f} s; hypotheses drawn per pair: mean "
        f"{batch['mean_iterations_drawn']:.0f}, most {batch['max_iterations_drawn']}).", ""])
