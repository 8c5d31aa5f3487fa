"""Robust homography estimators side by side on the same SIFT matches (``eval.hpatches --robust-estimators``).

Match sets: the HPatches pairs of the run (the images the protocol reads, shrunk by ``--max-side`` if given)
and synthetic pairs (``artdup_jax.data.warped_photos``: scikit-image photographs onto copies warped by known
random homographies, with pixel noise). SIFT + Lowe's ratio test (``--ratio``) once per pair; every estimator
gets the same matches. Estimators, all with the ``--threshold`` (px), at most ``--iterations`` hypotheses and
confidence 0.999 (adaptive stopping), seeded with ``--seed``:

* ``magsac++ (ours)``: :func:`artdup_jax.geometry.magsac.find_homography_magsac`, PROSAC sampling by match
  quality ``-ratio``;
* ``cv2.USAC_MAGSAC`` and ``cv2.RANSAC``: ``cv2.findHomography``;
* ``ransac (ours)``: :func:`artdup_jax.geometry.ransac.find_homography`.

Per estimator and set: pairs solved (mean corner error < 3 px: image 1's corners mapped by the estimate vs the
ground truth, target pixels at the original resolution), the median corner error (a failed fit counts as
+inf) and the median wall time per pair (best of ``repeats`` calls after one untimed call, so JAX compilation
is excluded).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

SOLVED_PX = 3.0
CONFIDENCE = 0.999

Estimator = Callable[[np.ndarray, np.ndarray, np.ndarray], "np.ndarray | None"]


@dataclasses.dataclass(frozen=True)
class MatchSet:
    """One pair's matches. src, dst: ``(M, 2)`` float32 pixels, x first. quality: ``(M,)`` float32 ``-ratio``.
    corner_error: ``H -> float``, the mean corner error (target pixels, original resolution) of a ``(3, 3)``
    src -> dst estimate."""

    name: str
    src: np.ndarray
    dst: np.ndarray
    quality: np.ndarray
    corner_error: Callable[[np.ndarray], float]


def estimators(threshold: float, iterations: int, seed: int) -> dict[str, Estimator]:
    """``{name: estimate(src, dst, quality) -> (3, 3) H or None}``."""
    import cv2

    from artdup_jax.geometry.magsac import find_homography_magsac
    from artdup_jax.geometry.ransac import find_homography

    def magsac(src, dst, quality):
        return find_homography_magsac(src, dst, quality=quality, threshold=threshold, max_iterations=iterations,
                                      confidence=CONFIDENCE, seed=seed)[0]

    def opencv(flag):
        def estimate(src, dst, quality):
            cv2.setRNGSeed(seed)
            return cv2.findHomography(src, dst, flag, threshold, maxIters=iterations, confidence=CONFIDENCE)[0]

        return estimate

    def ransac(src, dst, quality):
        return find_homography(src, dst, threshold=threshold, iterations=iterations, confidence=CONFIDENCE,
                               seed=seed)[0]

    return {"magsac++ (ours)": magsac, "cv2.USAC_MAGSAC": opencv(cv2.USAC_MAGSAC), "cv2.RANSAC": opencv(cv2.RANSAC),
            "ransac (ours)": ransac}


def _timed(estimate: Estimator, match_set: MatchSet, repeats: int):
    """``(H, seconds)``: the best of ``repeats`` calls after one untimed call."""
    H = estimate(match_set.src, match_set.dst, match_set.quality)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        H = estimate(match_set.src, match_set.dst, match_set.quality)
        best = min(best, time.perf_counter() - start)
    return H, best


def compare(match_sets: list[MatchSet], named: dict[str, Estimator], repeats: int = 1) -> dict:
    """Per estimator: summary and per-pair corner errors (estimators interleaved pair by pair)."""
    errors = {name: [] for name in named}
    seconds = {name: [] for name in named}
    for match_set in match_sets:
        for name, estimate in named.items():
            H, took = (None, 0.0) if len(match_set.src) < 4 else _timed(estimate, match_set, repeats)
            error = math.inf if H is None or not np.all(np.isfinite(H)) else match_set.corner_error(H)
            errors[name].append(error if math.isfinite(error) else math.inf)
            seconds[name].append(took)
    return {"pairs": [m.name for m in match_sets], "matches": [len(m.src) for m in match_sets],
            "estimators": {name: {**summarise(errors[name], seconds[name]), "corner_errors": errors[name]}
                           for name in named}}


def summarise(errors, seconds) -> dict:
    errors = np.asarray(errors, np.float64)
    return {"pairs": int(errors.size), "solved": int(np.sum(errors < SOLVED_PX)),
            "median_corner_error": float(np.median(errors)) if errors.size else math.nan,
            "median_ms": 1e3 * float(np.median(seconds)) if len(seconds) else math.nan}


def markdown(per_set: dict[str, dict], settings: dict) -> list[str]:
    """The comparison as Markdown lines, one table per set of pairs."""
    lines = ["## Robust estimators on the same SIFT matches", "",
             f"SIFT ratio {settings['ratio']}, threshold {settings['threshold']} px, at most "
             f"{settings['iterations']} hypotheses, confidence {CONFIDENCE}; solved: mean corner error < "
             f"{SOLVED_PX:g} px (original resolution); a failed fit counts as +inf in the median; time: median "
             "over pairs of the best of the timed calls, compilation excluded.", ""]
    for set_name, result in per_set.items():
        lines += [f"### {set_name} ({len(result['pairs'])} pairs, median {np.median(result['matches']):.0f} "
                  "matches)" if result["pairs"] else f"### {set_name} (no pairs)", "",
                  "| estimator | solved | median corner err (px) | ms / pair |", "|---|---:|---:|---:|"]
        for name, row in result["estimators"].items():
            lines.append(f"| {name} | {row['solved']} / {row['pairs']} | {row['median_corner_error']:.3f} | "
                         f"{row['median_ms']:.1f} |")
        lines.append("")
    return lines
