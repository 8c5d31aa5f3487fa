"""MegaDepth-1600 and RobotCar sparse-correspondence evaluation of RANSAC-Flow.

  python -m eval.megadepth --data IMAGE_DIR --csv test1600Pairs.csv [--robotcar] [--checkpoint FINE]
                           [--coarse-checkpoint MOCO [--coarse-family F]] [--max-pairs N] [--size 480] [--out DIR]

``--data``: the image folder (``Test/test1600Pairs`` for MegaDepth, ``img`` for RobotCar), images at
``DATA/<scene>/<name>`` (``DATA/<name>`` when the scene is ``/``). ``--csv``: ``test1600Pairs.csv`` or
``test6511.csv`` (columns ``scene, source_image, target_image, XA, YA, XB, YB``; A = source).

Prediction (``ransac_flow.inference_protocols.predict_pair``, the official settings): shorter side 480 (floored
to 16), 7 source scales (ratio 2), 10 000 RANSAC iterations, up to 11 homographies, region threshold 0.01,
mutual NN computed once and masked afterwards; merge at matchability ``>= 0.95``. Without
``--coarse-checkpoint`` the coarse stage is SIFT; without ``--checkpoint`` only one homography is predicted (the
output states which).

Scoring (``getResults.py --multiH``, ``matchabilityTH = 0``): both images resized to shorter side 480 floored
to 16 (``--size`` changes this resolution too, so pixel thresholds then refer to that size), keypoints scaled by
the same ratios; MegaDepth drops points not strictly inside either resized image (``--robotcar`` keeps all).
Both the target lookup and the GT source position are truncated to integers; a point is correct iff the error
is ``<=`` t px, t ∈ {1, 2, 3, 5, 8, 13, 22, 36}. PCK = correct / points pooled over the whole dataset; every
point is scored (no matchability rejection); a pair without prediction counts all its points as failures.

Writes ``<megadepth|robotcar>.json`` (settings, model, every pair, summary) and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from artdup_jax.data import outputs
from artdup_jax.data.datasets import megadepth
from artdup_jax.data.images import ImageDownscaledWarning, read_image
from artdup_jax.ransac_flow import metrics
from artdup_jax.ransac_flow import inference_protocols
from eval import ransac_flow_predict as rfp

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "megadepth"
REPORTED = (1, 3, 5)  # the paper's PCK-1/3/5


def _read(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageDownscaledWarning)
        return read_image(path)


def evaluate(args: argparse.Namespace) -> dict:
    benchmark = "robotcar" if args.robotcar else "megadepth"
    model = rfp.load_model(args, benchmark)
    size = model.predictor.settings.coarse.size
    pairs = list(megadepth.iter_sparse_pairs(args.csv, args.data))
    if args.max_pairs is not None:
        pairs = pairs[: args.max_pairs]
    if not args.quiet:
        print(f"{benchmark}: {len(pairs)} pairs; {model.description}", flush=True)
    thresholds = metrics.SPARSE_PCK_THRESHOLDS
    records, all_counts, all_totals = [], [], []
    for pair in pairs:
        source, target = _read(pair.source_path), _read(pair.target_path)
        prepared = megadepth.prepare_pair(pair, megadepth=not args.robotcar, min_size=size,
                                          source_size_hw=source.shape[:2], target_size_hw=target.shape[:2])
        prediction = inference_protocols.predict_pair(model.predictor, source, target)
        n = len(prepared["source_xy"])
        record = {"pair": pair.index, "scene": pair.scene, "source": pair.source_path.name,
                  "target": pair.target_path.name, "points": n, "points_in_csv": len(pair.source_xy),
                  "failed": prediction is None}
        if prediction is None:
            counts = np.zeros(len(thresholds), np.int64)
        else:
            if (tuple(prediction.grid.shape[:2]) != tuple(prepared["target_size_hw"])
                    or tuple(prediction.source_size_hw) != tuple(prepared["source_size_hw"])):
                raise ValueError(f"pair {pair.index}: prediction sizes {prediction.grid.shape[:2]} / "
                                 f"{prediction.source_size_hw} differ from the evaluation sizes "
                                 f"{prepared['target_size_hw']} / {prepared['source_size_hw']}")
            counts, _ = metrics.sparse_pck_counts(prediction.grid, prediction.source_size_hw, prepared["source_xy"],
                                                  prepared["target_xy"], thresholds)
            record.update(prediction.summary())
            record.pop("rotation"), record.pop("rotation_inliers")
        record["correct"] = {str(t): int(c) for t, c in zip(thresholds, counts)}
        records.append(record)
        all_counts.append(counts)
        all_totals.append(n)
        if not args.quiet:
            pcks = "/".join(f"{c / max(n, 1):.3f}" for t, c in zip(thresholds, counts) if t in REPORTED)
            print(f"{pair.index:5d} {pair.scene:>8} {n:5d} pts  PCK-1/3/5 {pcks}  "
                  f"H {record.get('homographies', 0)}", flush=True)
    pck = (metrics.pooled_pck(all_counts, all_totals) if records
           else np.full(len(thresholds), math.nan))
    summary = {"pairs": len(records), "failures": sum(r["failed"] for r in records),
               "points": int(np.sum(all_totals)) if records else 0,
               **{f"pck_{t}": float(v) for t, v in zip(thresholds, pck)},
               "mean_homographies": float(np.mean([r.get("homographies", 0) for r in records])) if records
               else math.nan}
    results = {
        "benchmark": "RobotCar" if args.robotcar else "MegaDepth",
        "csv": str(Path(args.csv).resolve()),
        "data": str(Path(args.data).resolve()),
        "model": model.as_dict(),
        "evaluation_size": f"shorter side {size}, floored to 16",
        "protocol": "sparse PCK: keypoints scaled to the evaluation size" +
                    ("" if args.robotcar else ", points outside either image dropped") +
                    ", both truncated to integers, correct iff error <= t px, pooled over all points; "
                    "pairs without prediction count as failures",
        "settings": {k: v for k, v in vars(args).items() if k not in ("quiet",)},
        "summary": summary,
        "pairs": records,
    }
    out = Path(args.out)
    outputs.save_json(str(out / f"{benchmark}.json"), results)
    (out / f"{benchmark}.md").write_text(markdown_report(results))
    return results


def _pct(value) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def markdown_report(results: dict) -> str:
    s = results["summary"]
    thresholds = metrics.SPARSE_PCK_THRESHOLDS
    lines = [f"# {results['benchmark']} sparse correspondences (PCK, %)", "",
             f"Model: {results['model']['description']}.", f"Evaluation size: {results['evaluation_size']}.", "",
             "| pairs | failures | points | " + " | ".join(f"PCK-{t}" for t in thresholds) + " |",
             "|---:|---:|---:|" + "---:|" * len(thresholds),
             f"| {s['pairs']} | {s['failures']} | {s['points']} | "
             + " | ".join(_pct(s[f"pck_{t}"]) for t in thresholds) + " |", "",
             f"Paper columns PCK-1/3/5: {' / '.join(_pct(s[f'pck_{t}']) for t in REPORTED)}.", "",
             results["protocol"] + ".", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.megadepth", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="image folder (Test/test1600Pairs, or RobotCar img/)")
    parser.add_argument("--csv", required=True, help="pair CSV (test1600Pairs.csv or test6511.csv)")
    parser.add_argument("--robotcar", action="store_true",
                        help="RobotCar protocol: keep keypoints outside the images (scored as failures)")
    parser.add_argument("--max-pairs", type=int, default=None, help="only the first N pairs (quick runs)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder for the JSON and Markdown")
    parser.add_argument("--quiet", action="store_true")
    rfp.add_model_arguments(parser, "megadepth")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stem = "robotcar" if args.robotcar else "megadepth"
    return rfp.run_main(args, evaluate, markdown_report, megadepth.SparseLayoutError, stem)


if __name__ == "__main__":
    sys.exit(main())
