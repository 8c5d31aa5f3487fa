"""HPatches dense-alignment evaluation.

  python -m eval.hpatches [--data DIR] [--csv-dir DIR] [--sequences v_churchill ...] [--method sift-ransac]
                          [--robust-estimators [--synthetic-warps K]]
                          [--levels 2 3 4 5 6] [--max-side N] [--out DIR]

Pairs are image 1 (source) -> image k (target), viewpoint levels I..V = k = 2..6. For every pair and every
variant of the method this reports

* AEPE on the protocol's fixed 240x240 grid (DGC-Net / RANSAC-Flow ``getResults.py``): the prediction is
  rendered as an AC grid on the 240x240 lattice (a homography through kornia-style normalised coordinates, a
  dense grid by resampling), the ground truth is the CSV homography rescaled by plain pixel scaling
  (``hpatches.ground_truth_grid``); errors in 240-pixel units over GT-valid pixels. The two scalings differ
  slightly, so even the exact homography scores a small nonzero AEPE; it is reported as the variant
  ``gt-homography`` (the protocol's built-in offset, not a strict lower bound);
* PCK-1/3/5 at the original resolution: for every target pixel whose true source location lies inside the
  source image, whether the predicted source location is within 1/3/5 source pixels (``<=``); per pair the
  fraction of valid pixels, per level the mean over pairs;
* for homography variants: the mean corner error (the corners of image 1 mapped by the estimate vs the
  ground truth, target pixels), matches, inliers and the estimator's wall time.

A *method* maps ``(source, target)`` images (``(H, W, 3)`` float32 RGB in [0, 1], possibly shrunk by
``--max-side``) to a list of :class:`Prediction` (one per variant): a pixel homography of the given images,
or a dense grid, or a ``grid_fn``. Methods are registered by name with :func:`register_method`; a dense
predictor ``(source, target) -> grid`` is wrapped with :func:`dense_method`. A pair whose prediction fails is
scored with the identity grid, as the reference does.

Writes ``hpatches_<method>.json`` (settings, every pair, per-level summary) and ``hpatches_<method>.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from artdup_jax.data.datasets import hpatches
from artdup_jax.data.images import ImageDownscaledWarning, read_image
from artdup_jax.geometry.sampling import numpy_identity_grid
from artdup_jax.geometry.sift import ratio_matches, sift_features
from artdup_jax.ransac_flow import metrics
from eval import robust_estimators

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "hpatches"
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "hpatches"

FLOOR_VARIANT = "gt-homography"  # the exact homography scored like a prediction: the protocol's own offset
GridFn = Callable[[tuple[int, int]], np.ndarray]


@dataclasses.dataclass
class Prediction:
    """One variant's answer for one pair; give ``homography``, ``grid`` or ``grid_fn`` (None: failed).

    homography: ``(3, 3)`` mapping source pixels to target pixels *of the images the method was given*.
    grid: ``(h, w, 2)`` normalised AC source locations on the target lattice (any size; its residual to the
      identity is resampled with align-corners bilinear interpolation to the evaluation sizes).
    grid_fn: ``grid_fn(out_hw) -> (h, w, 2)`` normalised AC grid on an ``out_hw`` target lattice, for
      methods that render themselves at any size (e.g. RANSAC-Flow's own upsampling of its 1/8 flow).
    num_matches, num_inliers: optional counts for the report. seconds: the variant's own wall time.
    """

    name: str
    homography: np.ndarray | None = None
    grid: np.ndarray | None = None
    grid_fn: GridFn | None = None
    num_matches: int | None = None
    num_inliers: int | None = None
    seconds: float = math.nan
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.homography is None and self.grid is None and self.grid_fn is None


Method = Callable[[np.ndarray, np.ndarray], list[Prediction]]
METHODS: dict[str, Callable[[argparse.Namespace], Method]] = {}


def register_method(name: str):
    """Decorator registering ``factory(args) -> method`` under ``--method name``."""

    def decorate(factory):
        METHODS[name] = factory
        return factory

    return decorate


def dense_method(predict: Callable[[np.ndarray, np.ndarray], np.ndarray], name: str) -> Method:
    """Wrap a dense predictor ``(source, target) -> (H_t, W_t, 2) normalised AC grid`` as a method."""

    def method(source, target):
        start = time.perf_counter()
        grid = predict(source, target)
        grid = None if grid is None else np.asarray(grid, np.float32)
        return [Prediction(name, grid=grid, seconds=time.perf_counter() - start)]

    return method


# --------------------------------------------------------------------------------------------------
# SIFT + RANSAC baselines


def sift_matches(source, target, *, ratio: float = 0.8, max_features: int = 0, with_quality: bool = False):
    """SIFT keypoints + Lowe's ratio test (brute-force L2, 2-NN), source -> target.

    Returns ``(source_xy, target_xy)`` ``(M, 2)`` float32 pixel coordinates, x first; with ``with_quality``
    also the ``(M,)`` float32 match quality ``-ratio`` (higher is better).
    """
    source_sift = sift_features(source, max_features=max_features)
    target_sift = sift_features(target, max_features=max_features)
    if (source_sift.descriptors is None or target_sift.descriptors is None or len(source_sift) < 2
            or len(target_sift) < 2):
        empty = (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
        return (*empty, np.zeros((0,), np.float32)) if with_quality else empty
    matches, ratios = ratio_matches(source_sift.descriptors, target_sift.descriptors, ratio, return_ratios=True)
    xy = (source_sift.xy[matches[:, 0]], target_sift.xy[matches[:, 1]])
    return (*xy, -ratios) if with_quality else xy


@register_method("sift-ransac")
def sift_ransac(args: argparse.Namespace) -> Method:
    """SIFT + ratio test, then three robust estimators on the same matches.

    * ``sift+ours``: ``artdup_jax.geometry.ransac.find_homography`` (fixed budget of ``--iterations``
      hypotheses, least-squares refit), timed on a second call so that JIT compilation is excluded;
    * ``sift+cv2-ransac``: ``cv2.findHomography(RANSAC)``;
    * ``sift+cv2-magsac``: ``cv2.findHomography(USAC_MAGSAC)``;
    OpenCV runs with ``maxIters=--iterations`` and confidence 0.999 (it may stop early), seeded with ``--seed``.
    """
    import cv2

    from artdup_jax.geometry.ransac import find_homography

    threshold, iterations, seed = float(args.threshold), int(args.iterations), int(args.seed)

    def ours(src, dst):
        find_homography(src, dst, threshold=threshold, iterations=iterations, seed=seed)  # compile / warm up
        start = time.perf_counter()
        H, inliers = find_homography(src, dst, threshold=threshold, iterations=iterations, seed=seed)
        return H, inliers, time.perf_counter() - start

    def opencv(flag):
        def run(src, dst):
            cv2.setRNGSeed(seed)
            start = time.perf_counter()
            H, mask = cv2.findHomography(src, dst, flag, threshold, maxIters=iterations, confidence=0.999)
            seconds = time.perf_counter() - start
            inliers = np.zeros(len(src), bool) if mask is None else mask.reshape(-1).astype(bool)
            return H, inliers, seconds

        return run

    estimators = {"sift+ours": ours, "sift+cv2-ransac": opencv(cv2.RANSAC),
                  "sift+cv2-magsac": opencv(cv2.USAC_MAGSAC)}

    def method(source, target):
        start = time.perf_counter()
        src, dst = sift_matches(source, target, ratio=args.ratio, max_features=args.sift_features)
        matching_seconds = time.perf_counter() - start
        out = []
        for name, estimate in estimators.items():
            if len(src) < 4:
                out.append(Prediction(name, num_matches=len(src), num_inliers=0, seconds=0.0,
                                      extra={"matching_seconds": matching_seconds}))
                continue
            H, inliers, seconds = estimate(src, dst)
            if H is not None and not np.all(np.isfinite(H)):
                H = None
            out.append(Prediction(name, homography=None if H is None else np.asarray(H, np.float64),
                                  num_matches=len(src), num_inliers=int(np.sum(inliers)) if H is not None else 0,
                                  seconds=seconds, extra={"matching_seconds": matching_seconds}))
        return out

    return method


@register_method("ransac-flow")
def ransac_flow(args: argparse.Namespace) -> Method:
    """RANSAC-Flow with one homography (the HPatches README's ``--maxCoarse 0``), the
    official HPatches settings.

    Coarse: deep features when ``--coarse-checkpoint`` is given (ResNet-50 / MoCo), SIFT + our RANSAC
    otherwise. Variants: ``ransac-flow-coarse`` (homography grid) and, with ``--checkpoint``,
    ``ransac-flow-fine`` (fine flow composed with it). Grids are on the shorter-side-``--size`` target
    lattice; the scorer resamples their offsets to 240×240 with align-corners interpolation (the official
    result script upsamples the 1/8 flow with half-pixel interpolation: a sub-pixel difference).
    """
    from artdup_jax.checkpoints import load_weights
    from artdup_jax.ransac_flow.coarse import CoarseConfig
    from artdup_jax.ransac_flow.inference import align_pair
    from artdup_jax.ransac_flow.weights import FAMILY as FINE_FAMILY

    coarse = "deep" if args.coarse_checkpoint else "sift"
    coarse_variables = load_weights(args.coarse_checkpoint, args.coarse_family) if args.coarse_checkpoint else None
    fine_variables = load_weights(args.checkpoint, FINE_FAMILY) if args.checkpoint else None
    config = CoarseConfig(size=args.size, rule="shorter", num_scales=7, scale_ratio=2.0,
                          iterations=int(args.iterations), seed=int(args.seed))

    def method(source, target):
        start = time.perf_counter()
        try:
            alignment = align_pair(source, target, coarse=coarse, coarse_variables=coarse_variables,
                                   fine_variables=fine_variables, config=config, max_homographies=1)
        except ValueError:
            return [Prediction("ransac-flow-coarse", seconds=time.perf_counter() - start)]
        seconds = time.perf_counter() - start
        out = [Prediction("ransac-flow-coarse", grid=alignment.coarse_grid.astype(np.float32), seconds=seconds)]
        if alignment.fine:
            out.append(Prediction("ransac-flow-fine", grid=alignment.grid.astype(np.float32), seconds=seconds))
        return out

    return method


# --------------------------------------------------------------------------------------------------
# Scoring


def _resize_grid(grid: np.ndarray, size_hw) -> np.ndarray:
    """Resample a normalised AC grid to another target lattice: its residual to the AC identity is resized
    with align-corners bilinear interpolation (so that lattice points keep their normalised positions) and
    added to the identity of the new size. A method that must reproduce a particular upsampling (RANSAC-Flow
    resizes its 1/8 residual half-pixel style) should return a ``grid_fn`` instead."""
    if tuple(grid.shape[:2]) == tuple(size_hw):
        return grid
    from artdup_jax.geometry.resize import resize_bilinear

    residual = (grid - numpy_identity_grid(*grid.shape[:2], np.float32))[None].astype(np.float32)
    resized = np.asarray(resize_bilinear(residual, tuple(size_hw), align_corners=True)[0])
    return resized + numpy_identity_grid(*size_hw, np.float32)


def rescale_homography(H, from_source_hw, from_target_hw, to_source_hw, to_target_hw) -> np.ndarray:
    """Re-express a pixel homography of resized images (as :func:`read_image`'s ``max_side`` resizes them:
    pixel centres aligned, ``x' = (x + 0.5) s - 0.5``) in the pixels of the images at other sizes."""
    def scale(to_hw, from_hw):
        sx, sy = to_hw[1] / from_hw[1], to_hw[0] / from_hw[0]
        return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])

    return scale(to_target_hw, from_target_hw) @ np.asarray(H, np.float64) @ np.linalg.inv(
        scale(to_source_hw, from_source_hw))


def homography_to_grid(H, source_size_hw, target_size_hw, out_hw) -> np.ndarray:
    """Render a pixel homography (source -> target, original sizes) as an AC grid on an ``out_hw`` lattice.

    The matrix is re-expressed in AC-normalised coordinates (target -> source) and applied to the AC identity
    grid of ``out_hw``, as RANSAC-Flow renders every homography (kornia's warp grid), so that homography and
    dense predictions are scored alike. Returns ``(h, w, 2)`` float32.
    """
    import jax.numpy as jnp

    from artdup_jax.geometry.homography import homography_grid, pixel_to_normalised_homography

    target_to_source = jnp.asarray(np.linalg.inv(np.asarray(H, np.float64)), jnp.float32)
    M = pixel_to_normalised_homography(target_to_source, tuple(target_size_hw), tuple(source_size_hw),
                                       align_corners=True)
    return np.asarray(homography_grid(M, int(out_hw[0]), int(out_hw[1])), np.float32)


def _grid_function(pred: Prediction, pair: hpatches.HPatchesPair, homography_orig):
    """``out_hw -> (h, w, 2)`` AC grid for the prediction (identity when it failed, as the reference)."""
    if homography_orig is not None:
        return lambda out_hw: homography_to_grid(homography_orig, pair.source_size_hw, pair.target_size_hw,
                                                 out_hw)
    if pred.grid_fn is not None:
        return lambda out_hw: np.asarray(pred.grid_fn(tuple(out_hw)), np.float32)
    if pred.grid is not None:
        return lambda out_hw: _resize_grid(pred.grid, out_hw)
    return lambda out_hw: numpy_identity_grid(*out_hw, np.float32)


def score_prediction(pred: Prediction, pair: hpatches.HPatchesPair, processed_source_hw, processed_target_hw,
                     *, gt_240=None, gt_full=None) -> dict:
    """Per-pair metrics of one variant (see module docstring)."""
    homography_orig = None
    if pred.homography is not None:
        homography_orig = rescale_homography(pred.homography, processed_source_hw, processed_target_hw,
                                             pair.source_size_hw, pair.target_size_hw)
    grid_at = _grid_function(pred, pair, homography_orig)

    size = hpatches.EVAL_SIZE
    gt_grid, gt_valid = gt_240 if gt_240 is not None else hpatches.ground_truth_grid(pair)
    to_px = (size - 1) / 2.0
    aepe = metrics.aepe((grid_at((size, size)) + 1) * to_px, (gt_grid + 1) * to_px, gt_valid)

    gt_px, valid = gt_full if gt_full is not None else hpatches.full_resolution_ground_truth(pair)
    predicted_px = metrics.grid_to_source_pixels(
        grid_at(pair.target_size_hw).astype(np.float64), pair.source_size_hw)
    pck = metrics.pck(predicted_px, gt_px, metrics.DENSE_PCK_THRESHOLDS, valid)

    record = {
        "pair": pair.name, "sequence": pair.sequence, "level": pair.level, "variant": pred.name,
        "failed": pred.failed,
        "aepe_240": float(aepe),
        **{f"pck_{t}": float(v) for t, v in zip(metrics.DENSE_PCK_THRESHOLDS, pck)},
        "seconds": float(pred.seconds),
        "num_matches": pred.num_matches, "num_inliers": pred.num_inliers,
        **{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in pred.extra.items()},
    }
    if pred.homography is not None or pred.grid is None and pred.grid_fn is None:
        record["corner_error"] = metrics.corner_error(homography_orig, pair.homography, pair.source_size_hw)
    if homography_orig is not None:
        record["homography"] = homography_orig.tolist()
    return record


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def summarise(records: list[dict]) -> dict:
    """``{variant: {level or "all": averages}}``: per-pair metrics averaged over the pairs."""
    summary: dict[str, dict] = {}
    variants = list(dict.fromkeys(r["variant"] for r in records))
    for variant in variants:
        rows = [r for r in records if r["variant"] == variant]
        summary[variant] = {}
        groups = [(lvl, [r for r in rows if r["level"] == lvl]) for lvl in hpatches.LEVEL_NAMES.values()]
        for level, group in [g for g in groups if g[1]] + [("all", rows)]:
            corner = [r["corner_error"] for r in group if "corner_error" in r]
            summary[variant][level] = {
                "pairs": len(group),
                "failures": sum(bool(r["failed"]) for r in group),
                "aepe_240": _mean([r["aepe_240"] for r in group]),
                **{f"pck_{t}": _mean([r[f"pck_{t}"] for r in group]) for t in metrics.DENSE_PCK_THRESHOLDS},
                "corner_error": _mean([c for c in corner if math.isfinite(c)]) if corner else None,
                "num_matches": _mean([r["num_matches"] for r in group]),
                "num_inliers": _mean([r["num_inliers"] for r in group]),
                "seconds": _mean([r["seconds"] for r in group]),
            }
    return summary


def _fmt(value, digits=2, scale=1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * scale:.{digits}f}"


def markdown_report(results: dict) -> str:
    """The summary as two Markdown tables."""
    summary, levels = results["summary"], [lv for lv in hpatches.LEVEL_NAMES.values()]
    present = [lv for lv in levels if any(lv in s for s in summary.values())]
    lines = [f"# HPatches, method `{results['method']}`", "",
             f"Sequences: {', '.join(results['sequences'])} ({results['num_pairs']} pairs); ground truth: "
             f"{results['ground_truth']}; images {results['image_size']}.", "",
             "## AEPE on the 240x240 grid (px, lower is better)", "",
             "| variant | " + " | ".join(present) + " | mean |",
             "|---|" + "---:|" * (len(present) + 1)]
    for variant, per_level in summary.items():
        cells = [_fmt(per_level[lv]["aepe_240"]) if lv in per_level else "–" for lv in present]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {_fmt(per_level['all']['aepe_240'])} |")
    lines += ["", "## Per level: PCK at original resolution (%), corner error, matches, time", "",
              "| variant | level | pairs | PCK-1 | PCK-3 | PCK-5 | corner err (px) | inliers / matches "
              "| time (ms) | failures |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, per_level in summary.items():
        for level in present + ["all"]:
            if level not in per_level:
                continue
            s = per_level[level]
            counts = (f"{_fmt(s['num_inliers'], 0)} / {_fmt(s['num_matches'], 0)}"
                      if not math.isnan(s["num_matches"]) else "–")
            lines.append(f"| {variant} | {level} | {s['pairs']} | {_fmt(s['pck_1'], 1, 100)} | "
                         f"{_fmt(s['pck_3'], 1, 100)} | {_fmt(s['pck_5'], 1, 100)} | "
                         f"{_fmt(s['corner_error'])} | {counts} | {_fmt(s['seconds'], 1, 1000)} | "
                         f"{s['failures']} |")
    lines += ["", "AEPE: DGC-Net protocol (CSV homography rescaled to 240x240 for both images, AC normalisation, "
              f"valid = GT inside the source); predictions are rendered as AC grids, and `{FLOOR_VARIANT}` (the "
              "exact homography scored the same way) shows the offset this protocol builds in. PCK: per pair "
              "over target pixels whose true source location lies in the source image, error <= t source "
              "pixels, averaged over pairs. Corner error: mean distance "
              "between image 1's corners mapped by the estimated and the true homography. Time: the estimator "
              "only (ours excludes JIT compilation)."]
    if "robust_estimators" in results:
        lines += [""] + robust_estimators.markdown(results["robust_estimators"], results["settings"])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Driver


def _pairs(args) -> tuple[list[hpatches.HPatchesPair], str]:
    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"error: --data {data} is not a directory (HPatches hpatches-sequences-release)")
    sequences = args.sequences or hpatches.sequence_names(data)
    if not sequences:
        raise SystemExit(f"error: no v_* sequence folders in {data}")
    missing = [s for s in sequences if not (data / s).is_dir()]
    if missing:
        raise SystemExit(f"error: sequences not found in {data}: {', '.join(missing)}")
    csv_dir = args.csv_dir
    if csv_dir is None and args.ground_truth != "folder" and hpatches.csv_path(data, 2).is_file():
        csv_dir = data
    if args.ground_truth == "csv" and csv_dir is None:
        raise SystemExit("error: --ground-truth csv needs --csv-dir (no hpatches_1_k.csv next to the data)")
    if args.ground_truth != "folder" and csv_dir is not None:
        pairs = list(hpatches.iter_csv_pairs(csv_dir, data, sequences=sequences, levels=args.levels))
        return pairs, f"DGC-Net CSV ({Path(csv_dir)})"
    return list(hpatches.iter_pairs(data, sequences=sequences, levels=args.levels)), "sequence H_1_k files"


def _read(path, max_side):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageDownscaledWarning)
        return read_image(path, max_side=max_side)


def robust_estimator_sets(pairs: list[hpatches.HPatchesPair], args) -> dict[str, list]:
    """The match sets of the estimator comparison: the HPatches pairs (images read as the protocol reads them)
    and ``--synthetic-warps`` warped copies of each bundled photograph."""
    from artdup_jax.data.warped_photos import warped_photo_pairs

    def matched(name, source, target, corner_error):
        src, dst, quality = sift_matches(source, target, ratio=args.ratio, max_features=args.sift_features,
                                         with_quality=True)
        return robust_estimators.MatchSet(name, src, dst, quality, corner_error)

    def hpatches_error(pair, source_hw, target_hw):
        return lambda H: metrics.corner_error(rescale_homography(H, source_hw, target_hw, pair.source_size_hw,
                                                                 pair.target_size_hw),
                                              pair.homography, pair.source_size_hw)

    real = []
    for pair in pairs:
        source, target = _read(pair.source_path, args.max_side), _read(pair.target_path, args.max_side)
        real.append(matched(pair.name, source, target, hpatches_error(pair, source.shape[:2], target.shape[:2])))
    synthetic = []
    for pair in warped_photo_pairs(per_photo=args.synthetic_warps, seed=args.seed):
        rgb = [np.repeat(im[..., None], 3, -1).astype(np.float32) / 255.0 for im in (pair.source, pair.target)]
        synthetic.append(matched(pair.name, *rgb, functools.partial(metrics.corner_error, H_expected=pair.homography,
                                                                     size_hw=pair.source.shape)))
    sets = {f"HPatches {', '.join(sorted({p.sequence for p in pairs}))}": real}
    if synthetic:
        sets["synthetic: scikit-image photographs, known homographies"] = synthetic
    return sets


def compare_robust_estimators(pairs: list[hpatches.HPatchesPair], args) -> dict:
    """``{set name: robust_estimators.compare(...)}`` for ``--robust-estimators``."""
    named = robust_estimators.estimators(float(args.threshold), int(args.iterations), int(args.seed))
    return {name: robust_estimators.compare(sets, named, repeats=args.estimator_repeats)
            for name, sets in robust_estimator_sets(pairs, args).items()}


def evaluate(args: argparse.Namespace) -> dict:
    """Run ``args.method`` on the selected pairs; returns the results dict (also written to ``args.out``)."""
    if args.method not in METHODS:
        raise SystemExit(f"error: unknown --method {args.method!r}; known: {', '.join(sorted(METHODS))}")
    pairs, gt_source = _pairs(args)
    method = METHODS[args.method](args)
    records = []
    source_cache: dict[Path, np.ndarray] = {}
    for pair in pairs:
        if pair.source_path not in source_cache:
            source_cache = {pair.source_path: _read(pair.source_path, args.max_side)}
        source = source_cache[pair.source_path]
        target = _read(pair.target_path, args.max_side)
        predictions = method(source, target)
        gt_240 = hpatches.ground_truth_grid(pair)
        gt_full = hpatches.full_resolution_ground_truth(pair)
        floor = Prediction(FLOOR_VARIANT, homography=pair.homography, seconds=0.0)
        for pred in [floor, *predictions]:
            sizes = ((pair.source_size_hw, pair.target_size_hw) if pred is floor
                     else (source.shape[:2], target.shape[:2]))
            record = score_prediction(pred, pair, *sizes, gt_240=gt_240, gt_full=gt_full)
            records.append(record)
            if not args.quiet:
                print(f"{pair.name:>22} {pred.name:<16} AEPE240 {record['aepe_240']:8.3f}  "
                      f"PCK-1/3/5 {record['pck_1']:.3f}/{record['pck_3']:.3f}/{record['pck_5']:.3f}  "
                      f"corner {record.get('corner_error', math.nan):8.3f}  "
                      f"inl {record['num_inliers']}/{record['num_matches']}  {1000 * record['seconds']:.1f} ms",
                      flush=True)
    results = {
        "method": args.method,
        "data": str(Path(args.data).resolve()),
        "ground_truth": gt_source,
        "sequences": sorted({p.sequence for p in pairs}),
        "levels": [hpatches.LEVEL_NAMES[k] for k in args.levels],
        "num_pairs": len(pairs),
        "image_size": "original" if args.max_side is None else f"longer side <= {args.max_side}",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
        "summary": summarise(records),
        "pairs": records,
    }
    if args.robust_estimators:
        results["robust_estimators"] = compare_robust_estimators(pairs, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"hpatches_{args.method}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(markdown_report(results))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.hpatches", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="hpatches-sequences-release folder (default: ../shared/data/hpatches)")
    parser.add_argument("--csv-dir", default=None,
                        help="folder with hpatches_1_{2..6}.csv (default: --data when it holds them)")
    parser.add_argument("--ground-truth", choices=("auto", "csv", "folder"), default="auto",
                        help="homographies from the DGC-Net CSVs or the sequences' H_1_k files")
    parser.add_argument("--sequences", nargs="*", default=None, help="sequence names (default: all v_*)")
    parser.add_argument("--levels", nargs="*", type=int, default=list(hpatches.LEVELS), choices=hpatches.LEVELS,
                        help="target images k of the pairs 1->k (default 2..6 = levels I..V)")
    parser.add_argument("--method", default="sift-ransac", help=f"one of: {', '.join(sorted(METHODS))}")
    parser.add_argument("--max-side", type=int, default=None,
                        help="shrink images so the longer side is at most this before predicting")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder for the JSON and Markdown")
    parser.add_argument("--threshold", type=float, default=3.0, help="RANSAC reprojection threshold (px)")
    parser.add_argument("--iterations", type=int, default=10000, help="RANSAC hypotheses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratio", type=float, default=0.8, help="SIFT ratio test")
    parser.add_argument("--sift-features", type=int, default=0, help="SIFT keypoints per image (0: all)")
    parser.add_argument("--checkpoint", help="ransac-flow: fine network (.pth, converted dir or training workdir)")
    parser.add_argument("--coarse-checkpoint", help="ransac-flow: ResNet-50 / MoCo weights (.pth or converted dir)")
    parser.add_argument("--coarse-family", default="moco_resnet50", choices=("resnet50", "moco_resnet50"))
    parser.add_argument("--size", type=int, default=480, help="ransac-flow: shorter side of the resized images")
    parser.add_argument("--robust-estimators", action="store_true",
                        help="also compare our MAGSAC++, cv2 USAC_MAGSAC, cv2 RANSAC and our RANSAC on the same "
                             "SIFT matches (these pairs and synthetic ones): solved count, corner error, time")
    parser.add_argument("--synthetic-warps", type=int, default=3,
                        help="--robust-estimators: warped copies of each bundled photograph (0: none)")
    parser.add_argument("--estimator-repeats", type=int, default=1,
                        help="--robust-estimators: timed calls per pair and estimator (the best is kept)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = evaluate(args)
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / f'hpatches_{args.method}.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
