"""KITTI 2015 optical-flow evaluation of RANSAC-Flow.

  python -m eval.kitti --data DIR [--occ] [--checkpoint FINE] [--coarse-checkpoint MOCO [--coarse-family F]]
                       [--max-pairs N] [--size 800] [--fine-size 650] [--out DIR]

``--data``: the KITTI 2015 root holding ``training/image_2/*_10.png, *_11.png`` and ``training/flow_noc``
(``flow_occ`` with ``--occ``). Frame 10 is the target, frame 11 the source; the flow is target pixel → source.

Prediction (``ransac_flow.inference_protocols.predict_kitti``, KITTI's official settings): coarse stage at
shorter side 800 with 3 scales (ratio 1.2), 50 000 RANSAC iterations, seed 1000, an unbounded homography loop
with KITTI's acceptance rule (components of ``match > 0.99`` of at most 1 % of the image removed, a new
homography kept iff ``mean([match > 0.9999] · (1 − explained)) > 0.005``); with ``--checkpoint`` the two-level
fine stage (target at shorter sides 325 and 650, rounded to multiples of 8). Without ``--coarse-checkpoint`` the
coarse stage is SIFT; without ``--checkpoint`` only one homography is predicted. The output states which.

Scoring (``getResults.py --multiH --noc --interpolate``): at the original resolution, layers merged at
``th = 1.0``, pixels covered by no layer take the flow of the nearest covered pixel; displacement = source
location − target pixel. **AEPE** = mean over images of each image's mean endpoint error over GT-valid pixels.
**Fl-all** (not computed by the official script) = percentage of GT-valid pixels, pooled over the images, whose
error exceeds both 3 px and 5 % of the GT magnitude (the KITTI devkit definition). A pair without any
homography is scored with zero flow and counted as a failure.

Writes ``kitti_<noc|occ>.json`` (settings, model, every pair, summary) and ``kitti_<noc|occ>.md`` to ``--out``.
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
from artdup_jax.data.datasets import kitti
from artdup_jax.data.images import ImageDownscaledWarning, read_image
from artdup_jax.geometry.sampling import numpy_identity_grid
from artdup_jax.ransac_flow import metrics
from artdup_jax.ransac_flow import inference_protocols
from eval import ransac_flow_predict as rfp

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "kitti"


def _read(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageDownscaledWarning)
        return read_image(path)


def score_pair(grid: np.ndarray, source_size_hw, gt_flow: np.ndarray, valid: np.ndarray) -> dict:
    """AEPE and Fl counts of one predicted grid (original resolution) against the KITTI ground truth."""
    displacement = metrics.grid_to_displacement(np.asarray(grid, np.float64), source_size_hw)
    outliers, num_valid = metrics.fl_outliers(displacement, gt_flow, valid)
    return {"aepe": float(metrics.aepe(displacement, gt_flow, valid)), "fl_outliers": int(outliers),
            "valid": int(num_valid)}


def evaluate(args: argparse.Namespace) -> dict:
    model = rfp.load_model(args, "kitti")
    pairs = list(kitti.iter_kitti_flow_pairs(args.data, occluded=args.occ))
    if args.max_pairs is not None:
        pairs = pairs[: args.max_pairs]
    if not args.quiet:
        print(f"KITTI 2015 ({'flow_occ' if args.occ else 'flow_noc'}), {len(pairs)} pairs; {model.description}",
              flush=True)
    records = []
    for pair in pairs:
        source, target = _read(pair.source_path), _read(pair.target_path)
        gt_flow, valid = kitti.read_kitti_flow(pair.flow_path)
        if gt_flow.shape[:2] != target.shape[:2]:
            raise kitti.KittiLayoutError(f"{pair.flow_path}: ground truth is {gt_flow.shape[:2]}, image "
                                         f"{pair.target_path} is {target.shape[:2]}")
        prediction = inference_protocols.predict_kitti(model.predictor, source, target)
        if prediction is None:
            h, w = target.shape[:2]
            grid = numpy_identity_grid(h, w)
            record = {"pair": pair.name, "failed": True, "homographies": 0, "seconds": math.nan}
        else:
            grid = prediction.grid
            record = {"pair": pair.name, "failed": False, **prediction.summary()}
            record.pop("rotation"), record.pop("rotation_inliers")
        record.update(score_pair(grid, source.shape[:2], gt_flow, valid))
        records.append(record)
        if not args.quiet:
            fl_percent = 100 * record["fl_outliers"] / max(record["valid"], 1)
            print(f"{pair.name}  AEPE {record['aepe']:8.3f}  Fl {fl_percent:6.2f}%  H {record['homographies']}"
                  f"  {record['seconds']:.1f} s", flush=True)
    scored = [r for r in records if r["valid"] > 0]
    summary = {"pairs": len(records), "scored_pairs": len(scored),
               "failures": sum(r["failed"] for r in records),
               **metrics.kitti_summary([r["aepe"] for r in scored], [r["fl_outliers"] for r in scored],
                                       [r["valid"] for r in scored]),
               "mean_homographies": float(np.mean([r["homographies"] for r in records])) if records else math.nan}
    results = {
        "benchmark": "KITTI 2015 training, " + ("flow_occ (all)" if args.occ else "flow_noc (non-occluded)"),
        "data": str(Path(args.data).resolve()),
        "model": model.as_dict(),
        "protocol": "AEPE: per-image mean over GT-valid pixels, then mean over images; Fl-all: pooled over all "
                    "valid pixels, error > 3 px and > 5 % of |GT| (KITTI devkit; not in the official script). "
                    "Layers merged at th = 1.0, uncovered pixels filled from the nearest covered pixel.",
        "settings": {k: v for k, v in vars(args).items() if k not in ("quiet",)},
        "summary": summary,
        "pairs": records,
    }
    out = Path(args.out)
    stem = f"kitti_{'occ' if args.occ else 'noc'}"
    outputs.save_json(str(out / f"{stem}.json"), results)
    (out / f"{stem}.md").write_text(markdown_report(results))
    return results


def _fmt(value, digits=3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_report(results: dict) -> str:
    s = results["summary"]
    lines = [f"# {results['benchmark']}", "", f"Model: {results['model']['description']}.", "",
             "| pairs | failures | AEPE (px) | Fl-all (%) | homographies / pair |", "|---:|---:|---:|---:|---:|",
             f"| {s['pairs']} | {s['failures']} | {_fmt(s['aepe'])} | {_fmt(s['fl_all'], 2)} | "
             f"{_fmt(s['mean_homographies'], 2)} |", "", results["protocol"], ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.kitti", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="KITTI 2015 root (with training/image_2, training/flow_noc)")
    parser.add_argument("--occ", action="store_true", help="score against flow_occ (all pixels) instead of flow_noc")
    parser.add_argument("--max-pairs", type=int, default=None, help="only the first N pairs (quick runs)")
    parser.add_argument("--fine-size", type=int, default=None,
                        help=f"KITTI fineSize: level 2 shorter side (default {rfp.BENCHMARKS['kitti'].fine_size}), "
                             "level 1 at half")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder for the JSON and Markdown")
    parser.add_argument("--quiet", action="store_true")
    rfp.add_model_arguments(parser, "kitti")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stem = f"kitti_{'occ' if args.occ else 'noc'}"
    return rfp.run_main(args, evaluate, markdown_report, kitti.KittiLayoutError, stem)


if __name__ == "__main__":
    sys.exit(main())
