"""Robust homography estimation on SIFT matches: our MAGSAC++ (JAX) vs OpenCV and our RANSAC.

  python -m benchmarks.robust_estimation [--hpatches DIR] [--json PATH] [--batch-pairs 1000]
                                         [--batch-max-matches 512] [--discovery-pairs 1000]
                                         [--discovery-rows 160] [--quick]

Pairs: HPatches ``v_churchill`` (image 1 onto images 2..6, ground truth ``H_1_k``) and synthetic pairs: each
of a few scikit-image photographs warped by a known random homography (corners moved by up to a fifth of the
image size) with a little pixel noise. SIFT matches (``cv2.SIFT_create``, brute-force 2-NN, Lowe's ratio
0.8) are computed once per pair and shared by every estimator; the match quality for PROSAC is ``-ratio``.

Estimators, all with a 3 px threshold, at most 10 000 hypotheses and confidence 0.999:

* ``magsac++ (ours, PROSAC)`` / ``magsac++ (ours, uniform)``: :func:`find_homography_magsac` with / without
  the match quality;
* ``cv2.USAC_MAGSAC`` and ``cv2.RANSAC``: ``cv2.findHomography``;
* ``ransac (ours)``: :func:`artdup_jax.geometry.ransac.find_homography` with adaptive stopping.

Per estimator: pairs solved (mean corner error of image 1's corners < 3 px), median corner error (a failed
fit counts as +inf) and wall time per pair (median over pairs of the best of ``--repeats`` calls, after one
untimed call that compiles the JAX programs). Then two batched cases, each one call of
:func:`magsac_homographies` vs as many sequential ``cv2.USAC_MAGSAC`` calls on the same matches, with accuracy
for both:

* easy: ``--batch-pairs`` pairs, the synthetic pairs' matches reused (one seed per copy), each capped at its
  ``--batch-max-matches`` best matches (mostly inliers: both estimators stop after a few dozen samples);
* discovery regime: ``--discovery-pairs`` pairs of 30-150 matches padded to 160 rows with 20-50 % inliers
  (:func:`discovery_pairs`: true matches of a synthetic pair plus its real false matches and mismatched real
  keypoints), where OpenCV draws thousands of samples;
* the tool's candidates: ``--tool-pairs`` pairs cycling through the candidate pairs of weightless discovery on
  the demo collection, with the tool's settings (:mod:`benchmarks.discovery_candidates`).

Each batched case gives wall time and this process's CPU time (best of three, alternated): on a shared machine
other jobs inflate the CPU time less. Prints Markdown; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from artdup_jax.data.warped_photos import PHOTOS, warped_photo_pairs
from benchmarks import discovery_candidates
from benchmarks.alternated_timing import time_alternated

THRESHOLD = 3.0
MAX_ITERATIONS = 10_000
CONFIDENCE = 0.999
SOLVED_PX = 3.0
RATIO = 0.8
HPATCHES_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hpatches" / "v_churchill"


@dataclasses.dataclass(frozen=True)
class Pair:
    """SIFT matches of one image pair and its true homography.

    src, dst: ``(M, 2)`` float32 pixels, x first (image 1, image 2). quality: ``(M,)`` float32, ``-ratio``.
    H_true: ``(3, 3)`` float64 mapping image 1 pixels to image 2 pixels. size_hw: image 1's ``(H, W)``.
    """

    name: str
    src: np.ndarray
    dst: np.ndarray
    quality: np.ndarray
    H_true: np.ndarray
    size_hw: tuple[int, int]


# ----------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------


def sift_matches(grey_a: np.ndarray, grey_b: np.ndarray, ratio: float = RATIO):
    """SIFT (the library's front end, ``geometry.sift``) + Lowe's ratio test, a -> b, on ``(H, W)`` uint8 images:
    ``(src, dst, quality)``, ``(M, 2)`` float32 pixels and ``(M,)`` quality ``-d1/d2`` (higher is better)."""
    from artdup_jax.geometry.sift import ratio_matches, sift_features

    a, b = (sift_features(np.repeat(g[..., None], 3, axis=-1).astype(np.float32) / 255.0) for g in (grey_a, grey_b))
    rows, ratios = ratio_matches(a.descriptors, b.descriptors, ratio, return_ratios=True)
    return a.xy[rows[:, 0]], b.xy[rows[:, 1]], -ratios


def hpatches_pairs(folder: Path) -> list[Pair]:
    """Image 1 onto images 2..6 of one HPatches sequence folder."""
    from artdup_jax.data.datasets.hpatches import read_sequence

    sequence = read_sequence(folder)
    first = cv2.imread(str(sequence.image_paths[0]), cv2.IMREAD_GRAYSCALE)
    pairs = []
    for k, H_true in sorted(sequence.homographies.items()):
        other = cv2.imread(str(sequence.image_paths[k - 1]), cv2.IMREAD_GRAYSCALE)
        src, dst, quality = sift_matches(first, other)
        pairs.append(Pair(f"{sequence.name} 1-{k}", src, dst, quality, H_true, first.shape[:2]))
    return pairs


def synthetic_pairs(photos=PHOTOS, per_photo: int = 3, seed: int = 0) -> list[Pair]:
    """Each photo onto ``per_photo`` warped copies of itself (``data.warped_photos``: known homography, pixel
    noise sigma 2)."""
    pairs = []
    for warped in warped_photo_pairs(photos, per_photo, seed=seed):
        src, dst, quality = sift_matches(warped.source, warped.target)
        pairs.append(Pair(warped.name, src, dst, quality, warped.homography, warped.source.shape[:2]))
    return pairs


def corner_error(H, H_true, size_hw) -> float:
    """Mean distance (px) between image 1's corners mapped by ``H`` and by ``H_true``; inf for no model."""
    if H is None or not np.all(np.isfinite(H)):
        return float("inf")
    h, w = size_hw
    corners = np.float64([[[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]])
    a = cv2.perspectiveTransform(corners, np.asarray(H, np.float64))[0]
    b = cv2.perspectiveTransform(corners, H_true)[0]
    error = float(np.mean(np.linalg.norm(a - b, axis=-1)))
    return error if np.isfinite(error) else float("inf")


# ----------------------------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------------------------


def _opencv(method: int) -> Callable[[Pair], np.ndarray | None]:
    def estimate(pair: Pair):
        H, _ = cv2.findHomography(pair.src, pair.dst, method, THRESHOLD, maxIters=MAX_ITERATIONS,
                                  confidence=CONFIDENCE)
        return H

    return estimate


def _ours_magsac(with_quality: bool) -> Callable[[Pair], np.ndarray | None]:
    from artdup_jax.geometry.magsac import find_homography_magsac

    def estimate(pair: Pair):
        H, _ = find_homography_magsac(pair.src, pair.dst, quality=pair.quality if with_quality else None,
                                      threshold=THRESHOLD, max_iterations=MAX_ITERATIONS, confidence=CONFIDENCE)
        return H

    return estimate


def _ours_ransac(pair: Pair):
    from artdup_jax.geometry.ransac import find_homography

    H, _ = find_homography(pair.src, pair.dst, threshold=THRESHOLD, iterations=MAX_ITERATIONS,
                           confidence=CONFIDENCE)
    return H


def estimators() -> dict[str, Callable[[Pair], np.ndarray | None]]:
    return {
        "magsac++ (ours, PROSAC)": _ours_magsac(True),
        "magsac++ (ours, uniform)": _ours_magsac(False),
        "cv2.USAC_MAGSAC": _opencv(cv2.USAC_MAGSAC),
        "cv2.RANSAC": _opencv(cv2.RANSAC),
        "ransac (ours)": _ours_ransac,
    }


# ----------------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------------


def _timed(estimate, pair: Pair, repeats: int):
    """``(H, seconds)``: the best of ``repeats`` calls, after one untimed call (JAX compilation)."""
    H = estimate(pair)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        H = estimate(pair)
        best = min(best, time.perf_counter() - start)
    return H, best


def evaluate(pairs: list[Pair], named: dict, repeats: int) -> dict[str, dict]:
    """Per estimator: corner errors and seconds per pair (estimators interleaved pair by pair)."""
    out = {name: {"errors": [], "seconds": []} for name in named}
    for pair in pairs:
        for name, estimate in named.items():
            H, seconds = (None, 0.0) if len(pair.src) < 4 else _timed(estimate, pair, repeats)
            out[name]["errors"].append(corner_error(H, pair.H_true, pair.size_hw))
            out[name]["seconds"].append(seconds)
    return out


def summarise(errors, seconds=None) -> dict:
    errors = np.asarray(errors, np.float64)
    row = {"pairs": int(errors.size), "solved": int(np.sum(errors < SOLVED_PX)),
           "median_corner_error_px": float(np.median(errors))}
    if seconds is not None:
        row["median_ms_per_pair"] = 1e3 * float(np.median(seconds))
        row["mean_ms_per_pair"] = 1e3 * float(np.mean(seconds))
    return row


def _capped(pair: Pair, max_matches: int) -> Pair:
    """``pair`` with at most ``max_matches`` matches, the best ratios first (rows in decreasing quality)."""
    order = np.argsort(-pair.quality, kind="stable")[:max_matches]
    return dataclasses.replace(pair, src=pair.src[order], dst=pair.dst[order], quality=pair.quality[order])


def _padded_batch(pairs: list[Pair], rows: int):
    """src, dst ``(P, rows, 2)``, valid, quality ``(P, rows)`` of pairs holding at most ``rows`` matches."""
    src = np.zeros((len(pairs), rows, 2), np.float32)
    dst = np.zeros((len(pairs), rows, 2), np.float32)
    quality = np.full((len(pairs), rows), -np.inf, np.float32)
    valid = np.zeros((len(pairs), rows), bool)
    for i, pair in enumerate(pairs):
        n = len(pair.src)
        src[i, :n], dst[i, :n], quality[i, :n], valid[i, :n] = pair.src, pair.dst, pair.quality, True
    return src, dst, valid, quality


def discovery_pairs(pairs: list[Pair], count: int, seed: int = 0, max_matches: int = 150) -> list[Pair]:
    """``count`` hard pairs as discovery verification meets them: few matches and low inlier ratios.

    Pair ``i`` takes synthetic pair ``i mod len(pairs)`` (those with at least 8 true matches), a match count in
    30..``max_matches`` and an inlier ratio in 20-50 %: that many of its true matches (within 3 px of the true
    homography), then its real false matches, then wrong matches between its real keypoints (src of one match,
    dst of another, at least 20 px from where the true homography maps it) up to the ratio. Each match keeps
    a quality drawn from the pair's real ones regardless of whether it is true, so the PROSAC order carries no
    hint, and the rows are sorted by it, as :func:`_capped` sorts them.
    """
    rng = np.random.default_rng(seed)
    usable = []
    for pair in pairs:
        if len(pair.src) < 8:
            continue
        mapped = cv2.perspectiveTransform(pair.src[None].astype(np.float64), pair.H_true)[0]
        error = np.linalg.norm(mapped - pair.dst, axis=-1)
        if np.sum(error < SOLVED_PX) >= 8:
            usable.append((pair, mapped, error < SOLVED_PX))
    out = []
    for i in range(count):
        pair, mapped, true = usable[i % len(usable)]
        ratio = rng.uniform(0.2, 0.5)
        n_true = min(int(round(ratio * rng.integers(30, max_matches + 1))), int(true.sum()))
        n_false = max(int(round(n_true * (1.0 - ratio) / ratio)), 30 - n_true)
        keep = rng.choice(np.flatnonzero(true), n_true, replace=False)
        false_rows = rng.permutation(np.flatnonzero(~true))[:n_false]
        src, dst = [pair.src[keep], pair.src[false_rows]], [pair.dst[keep], pair.dst[false_rows]]
        missing = n_false - len(false_rows)
        while missing > 0:  # mismatched keypoints: src of one match, dst of another
            a, b = rng.integers(0, len(pair.src), (2, 4 * missing))
            wrong = (a != b) & (np.linalg.norm(mapped[a] - pair.dst[b], axis=-1) > 20.0)
            a, b = a[wrong][:missing], b[wrong][:missing]
            src.append(pair.src[a])
            dst.append(pair.dst[b])
            missing -= len(a)
        src, dst = np.concatenate(src), np.concatenate(dst)
        quality = rng.choice(pair.quality, len(src)).astype(np.float32)
        order = np.argsort(-quality, kind="stable")
        out.append(dataclasses.replace(pair, name=f"{pair.name} / {n_true} of {len(src)}", src=src[order],
                                       dst=dst[order], quality=quality[order]))
    return out


def batched_vs_sequential(chosen: list[Pair], rows: int | None = None) -> dict:
    """One :func:`magsac_homographies` call on ``chosen`` (padded to ``rows``, default: the largest pair) vs as
    many sequential cv2.USAC_MAGSAC calls on the same matches; accuracy for both."""
    import jax

    from artdup_jax.geometry.magsac import magsac_homographies

    count = len(chosen)
    src, dst, valid, quality = _padded_batch(chosen, rows or max(len(p.src) for p in chosen))
    seeds = np.arange(count, dtype=np.uint32)

    def ours():
        result = magsac_homographies(src, dst, valid, quality, threshold=THRESHOLD, max_iterations=MAX_ITERATIONS,
                                     confidence=CONFIDENCE, seed=seeds)
        return jax.device_get(result)

    def opencv():
        return [cv2.findHomography(p.src, p.dst, cv2.USAC_MAGSAC, THRESHOLD, maxIters=MAX_ITERATIONS,
                                   confidence=CONFIDENCE)[0] for p in chosen]

    result, opencv_H, times = time_alternated(ours, opencv)
    ours_errors = [corner_error(H if found else None, p.H_true, p.size_hw)
                   for H, found, p in zip(result.H.astype(np.float64), result.found, chosen)]
    opencv_errors = [corner_error(H, p.H_true, p.size_hw) for H, p in zip(opencv_H, chosen)]
    return {
        "pairs": count, "padded_rows": int(src.shape[1]), "matches_min": min(len(p.src) for p in chosen),
        "matches_max": max(len(p.src) for p in chosen), **times,
        "mean_iterations_drawn": float(np.mean(result.iterations)),
        "max_iterations_drawn": int(np.max(result.iterations)),
        "ours": summarise(ours_errors), "opencv": summarise(opencv_errors),
    }


def easy_batch(pairs: list[Pair], count: int, max_matches: int) -> list[Pair]:
    """``count`` pairs cycling through ``pairs``, each capped at its ``max_matches`` best matches (a batch pads
    every pair to the largest; a fixed budget keeps the padding small)."""
    distinct = [_capped(p, max_matches) for p in pairs if len(p.src) >= 4]
    return [distinct[i % len(distinct)] for i in range(count)]


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def markdown(per_set: dict[str, dict[str, dict]], batches: dict[str, dict]) -> str:
    lines = []
    for set_name, rows in per_set.items():
        count = next(iter(rows.values()))["pairs"]
        lines += [f"### {set_name} ({count} pairs)", "",
                  "| estimator | solved (< 3 px) | median corner error (px) | median ms / pair | mean ms / pair |",
                  "|---|---|---|---|---|"]
        for name, row in rows.items():
            lines.append(f"| {name} | {row['solved']} | {row['median_corner_error_px']:.3f} | "
                         f"{row['median_ms_per_pair']:.2f} | {row['mean_ms_per_pair']:.2f} |")
        lines.append("")
    for title, batch in batches.items():
        lines += [f"### {title}: {batch['pairs']} pairs in one batched call ({batch['matches_min']}-"
                  f"{batch['matches_max']} matches per pair, padded to {batch['padded_rows']} rows)", "",
                  "| estimator | total s | CPU s | solved | median corner error (px) |", "|---|---|---|---|---|",
                  f"| magsac_homographies (one call) | {batch['ours_seconds']:.3f} | {batch['ours_cpu_seconds']:.3f} | "
                  f"{batch['ours']['solved']} | {batch['ours']['median_corner_error_px']:.3f} |",
                  f"| cv2.USAC_MAGSAC ({batch['pairs']} sequential calls) | {batch['opencv_seconds']:.3f} | "
                  f"{batch['opencv_cpu_seconds']:.3f} | {batch['opencv']['solved']} | "
                  f"{batch['opencv']['median_corner_error_px']:.3f} |", "",
                  f"Speed-up: {batch['speedup']:.1f}x wall, {batch['cpu_speedup']:.1f}x CPU time (first call, with "
                  f"compilation: "
                  f"{batch['ours_first_call_seconds']:.1f} s; hypotheses drawn per pair: mean "
                  f"{batch['mean_iterations_drawn']:.0f}, most {batch['max_iterations_drawn']}).", ""]
    return "\n".join(lines)


def _environment() -> dict:
    import jax

    return {"python": platform.python_version(), "jax": jax.__version__, "opencv": cv2.__version__,
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hpatches", type=Path, default=HPATCHES_DEFAULT, help="an HPatches sequence folder")
    parser.add_argument("--per-photo", type=int, default=3, help="synthetic warps per scikit-image photo")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per pair and estimator (best kept)")
    parser.add_argument("--batch-pairs", type=int, default=1000)
    parser.add_argument("--batch-max-matches", type=int, default=512, help="matches kept per pair in the batch")
    parser.add_argument("--discovery-pairs", type=int, default=1000, help="pairs of the discovery-regime batch")
    parser.add_argument("--discovery-rows", type=int, default=160, help="rows the discovery-regime pairs pad to")
    parser.add_argument("--tool-pairs", type=int, default=1000,
                        help="pairs of the batch of the tool's discovery candidates (0: skip it)")
    parser.add_argument("--quick", action="store_true", help="2 photos, 1 warp each, 64 pairs per batch")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    photos = PHOTOS[:2] if args.quick else PHOTOS
    per_photo = 1 if args.quick else args.per_photo
    batch_pairs = 64 if args.quick else args.batch_pairs
    discovery_count = 64 if args.quick else args.discovery_pairs
    tool_count = min(64, args.tool_pairs) if args.quick else args.tool_pairs

    sets = {"synthetic (scikit-image photos, known homographies)": synthetic_pairs(photos, per_photo)}
    if args.hpatches.is_dir():
        sets = {f"HPatches {args.hpatches.name} (1 onto 2..6)": hpatches_pairs(args.hpatches), **sets}
    else:
        print(f"HPatches folder {args.hpatches} not found: synthetic pairs only", file=sys.stderr)
    named = estimators()
    results = {name: evaluate(pairs, named, args.repeats) for name, pairs in sets.items()}
    per_set = {name: {est: summarise(r["errors"], r["seconds"]) for est, r in rows.items()}
               for name, rows in results.items()}
    synthetic = list(sets.values())[-1]
    batches = {}
    if batch_pairs > 0:
        batches["easy"] = batched_vs_sequential(easy_batch(synthetic, batch_pairs, args.batch_max_matches))
    if discovery_count > 0:
        batches["discovery regime"] = batched_vs_sequential(discovery_pairs(synthetic, discovery_count),
                                                            args.discovery_rows)
    tool = discovery_candidates.verification_vs_sequential(tool_count) if tool_count > 0 else None
    print(markdown(per_set, batches))
    if tool:
        print(discovery_candidates.markdown(tool))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": {"threshold_px": THRESHOLD, "max_iterations": MAX_ITERATIONS,
                                "confidence": CONFIDENCE, "solved_px": SOLVED_PX, "ratio": RATIO,
                                "repeats": args.repeats, "quick": args.quick,
                                "batch_max_matches": args.batch_max_matches,
                                "discovery_rows": args.discovery_rows},
                   "environment": _environment(), "summary": per_set, "batches": batches,
                   "tool_candidates": tool,
                   "pairs": {name: {"names": [p.name for p in sets[name]], "matches": [len(p.src) for p in sets[name]],
                                    **{est: r["errors"] for est, r in rows.items()}}
                             for name, rows in results.items()}}
        args.json.write_text(json.dumps(payload, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
