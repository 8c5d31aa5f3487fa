"""YFCC100M two-view geometry evaluation of RANSAC-Flow: relative-pose accuracy / "mAP".

  python -m eval.yfcc --data IMAGES_DIR --pairs PAIRS_DIR [--scenes S ...] [--rotations] [--mask-dir DIR]
                      [--checkpoint FINE] [--coarse-checkpoint MOCO [--coarse-family F]] [--max-pairs N]
                      [--size 480] [--out DIR]

``--data``: the OANet YFCC folder holding ``<scene>/test/images.txt``, ``calibration.txt`` and the files they
list; ``--pairs``: the folder with ``<scene>-te-1000-pairs.pkl`` (the release's ``data/YFCC/pairs``).
Source = ``pair[0]``, target = ``pair[1]``.

Prediction (``ransac_flow.inference_protocols.predict_pair``, YFCC's official settings): shorter side 480,
7 scales (ratio 2), 10 000 RANSAC iterations, target features masked *before* mutual NN, up to 11 homographies,
region threshold 0.01, merge at matchability ``>= 0.95``. Optional parts of the reference run:

* ``--rotations``: the target is tried at 0/90/180/270° (counter-clockwise, canvas expanded) and the rotation
  whose first coarse homography has the most inliers is kept (off by default). With the SIFT coarse stage the
  count is SIFT inliers, and SIFT is rotation invariant anyway, so the trial matters mostly for deep features.
* ``--mask-dir DIR``: foreground (building) masks of the targets, ``DIR/<scene>/<image stem>.png`` (or
  ``DIR/<image stem>.png``), nonzero = foreground. **The ADE20K segmentation network of the reference is not
  implemented**: without ``--mask-dir`` every pixel is foreground. Masks are converted as the reference's
  ``scipy.misc.imresize`` did (a constant mask becomes all foreground).

Scoring (``getResults.py --multiH --ransac``): dense matches = every target pixel of the 480-resized target
(rotated back to its original orientation) whose merged matchability is ``>= 0.95`` and that is foreground,
matched to the merged flow's source location (AC, 480-resized source). Both point sets are normalised with the
intrinsics (principal point = image centre + K's offset, all scaled by the resize ratio); essential matrix by
OpenCV RANSAC (threshold 5e-4, default confidence) and the cheirality-best pose. Error = max(rotation error,
translation-direction error) in degrees (unclipped arccos, sign-sensitive, as the reference); pairs without
prediction or pose count as 180°. Acc@θ = share of pairs with error < θ; mAP@5 = Acc@5, mAP@10 = mean(Acc@5,
Acc@10), mAP@20 = mean(Acc@5, @10, @15, @20) (OANet convention), per scene and over all pairs.

Writes ``yfcc.json`` (settings, model, every pair, per-scene and total summaries) and ``yfcc.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from artdup_jax.data import outputs
from artdup_jax.data.datasets import yfcc
from artdup_jax.data.images import ImageDownscaledWarning, read_image
from artdup_jax.ransac_flow import metrics
from artdup_jax.ransac_flow import inference_protocols
from eval import ransac_flow_predict as rfp

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "yfcc"
NOT_IMPLEMENTED = ("ADE20K segmentation network (--segNet YFCC): replaced by optional --mask-dir masks; "
                   "without them every pixel is foreground")


def _read(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageDownscaledWarning)
        return read_image(path)


def mask_path(mask_dir: Path, pair: yfcc.YFCCPair) -> Path:
    stem = Path(pair.target_path).stem
    for candidate in (mask_dir / pair.scene / f"{stem}.png", mask_dir / f"{stem}.png"):
        if candidate.is_file():
            return candidate
    raise yfcc.YFCCLayoutError(f"{mask_dir}: no foreground mask {pair.scene}/{stem}.png (or {stem}.png) for "
                               f"{pair.target_path}")


def read_mask(path: Path, size_hw) -> np.ndarray:
    """A foreground mask (nonzero = foreground) as bool at the target's original size."""
    try:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L")) > 0
    except OSError as exc:
        raise yfcc.YFCCLayoutError(f"{path}: not a readable mask image ({exc})") from None
    if mask.shape != tuple(size_hw):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size_hw[1], size_hw[0]),
                                                                             Image.NEAREST)) > 0
    return mask


def pose_of_prediction(prediction: inference_protocols.Prediction, pair: yfcc.YFCCPair, *, match_threshold: float,
                       ransac_threshold: float):
    """Dense matches of the merged prediction → ``(error_deg, R_error, t_error, num_matches, pose)``; ``pose`` is
    the estimated ``(R, t)`` (camera A → B) or None."""
    source_wh = (prediction.source_size_hw[1], prediction.source_size_hw[0])
    target_wh = (prediction.target_size_hw[1], prediction.target_size_hw[0])
    keep = (prediction.matchability >= match_threshold) & prediction.foreground
    source_px, target_px = yfcc.matches_from_grid(prediction.grid, keep, source_wh, target_wh,
                                                  rotation_deg=prediction.rotation)
    a = yfcc.normalise_keypoints(source_px, pair.source_calibration, source_wh)
    b = yfcc.normalise_keypoints(target_px, pair.target_calibration, target_wh)
    pose = metrics.estimate_relative_pose(a, b, threshold=ransac_threshold)
    if pose is None:
        return metrics.FAILED_POSE_ERROR_DEG, math.nan, math.nan, len(a), None
    R, t = pose
    return (metrics.pose_error_deg(pair.rotation, pair.translation, R, t),
            metrics.rotation_error_deg(pair.rotation, R), metrics.translation_error_deg(pair.translation, t), len(a),
            pose)


def _summary(errors) -> dict:
    accuracy = metrics.pose_accuracy(errors)
    return {"pairs": len(errors), **{f"acc@{t}": v for t, v in accuracy.items()},
            **(metrics.pose_map(accuracy) if errors else {})}


def evaluate(args: argparse.Namespace) -> dict:
    model = rfp.load_model(args, "yfcc")
    scenes = args.scenes or None
    pairs = []
    per_scene_taken: dict[str, int] = {}
    for pair in yfcc.iter_yfcc_pairs(args.data, args.pairs, scenes=scenes):
        if args.max_pairs is not None and per_scene_taken.get(pair.scene, 0) >= args.max_pairs:
            continue
        per_scene_taken[pair.scene] = per_scene_taken.get(pair.scene, 0) + 1
        pairs.append(pair)
    mask_dir = Path(args.mask_dir) if args.mask_dir else None
    if mask_dir is not None and not mask_dir.is_dir():
        raise yfcc.YFCCLayoutError(f"{mask_dir}: mask folder not found")
    rotations = (0, 90, 180, 270) if args.rotations else (0,)
    if not args.quiet:
        print(f"YFCC: {len(pairs)} pairs ({', '.join(per_scene_taken)}); {model.description}", flush=True)
    records = []
    for pair in pairs:
        source, target = _read(pair.source_path), _read(pair.target_path)
        foreground = read_mask(mask_path(mask_dir, pair), target.shape[:2]) if mask_dir is not None else None
        prediction = inference_protocols.predict_pair(model.predictor, source, target, foreground=foreground,
                                                      rotations=rotations)
        record = {"scene": pair.scene, "pair": pair.index, "source": pair.source_path.name,
                  "target": pair.target_path.name, "failed": prediction is None}
        if prediction is None:
            record.update(error=metrics.FAILED_POSE_ERROR_DEG, rotation_error=math.nan,
                          translation_error=math.nan, matches=0, pose=None)
        else:
            error, r_err, t_err, count, pose = pose_of_prediction(
                prediction, pair, match_threshold=args.match_threshold, ransac_threshold=args.threshold)
            record.update(prediction.summary())
            record.update(error=error, rotation_error=r_err, translation_error=t_err, matches=count,
                          pose=None if pose is None else {"R": np.asarray(pose[0]).tolist(),
                                                          "t": np.asarray(pose[1]).tolist()})
        records.append(record)
        if not args.quiet:
            print(f"{pair.scene:>24} {pair.index:4d}  err {record['error']:7.2f} deg  matches {record['matches']:7d}"
                  f"  rot {record.get('rotation', 0):3d}  H {record.get('homographies', 0)}", flush=True)
    by_scene = {scene: _summary([r["error"] for r in records if r["scene"] == scene])
                for scene in dict.fromkeys(r["scene"] for r in records)}
    results = {
        "benchmark": "YFCC100M (OANet test pairs), relative pose",
        "data": str(Path(args.data).resolve()),
        "pairs_dir": str(Path(args.pairs).resolve()),
        "model": model.as_dict(),
        "foreground": (f"masks from {mask_dir}" if mask_dir is not None
                       else "all pixels (no segmentation network; no --mask-dir)"),
        "rotation_trial": bool(args.rotations),
        "not_implemented": [NOT_IMPLEMENTED],
        "protocol": f"dense matches with merged matchability >= {args.match_threshold} and foreground; essential "
                    f"matrix by OpenCV RANSAC, threshold {args.threshold} (normalised); error = max(R, t angle); "
                    "failures 180 deg; Acc@t: error < t; mAP@10 = mean(Acc@5, Acc@10), mAP@20 = mean(Acc@5..20)",
        "settings": {k: v for k, v in vars(args).items() if k not in ("quiet",)},
        "summary": {"all": _summary([r["error"] for r in records]), "per_scene": by_scene,
                    "failures": sum(r["failed"] for r in records)},
        "pairs": records,
    }
    out = Path(args.out)
    outputs.save_json(str(out / "yfcc.json"), results)
    (out / "yfcc.md").write_text(markdown_report(results))
    return results


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def markdown_report(results: dict) -> str:
    lines = [f"# {results['benchmark']}", "", f"Model: {results['model']['description']}.",
             f"Foreground: {results['foreground']}; rotation trial: {'on' if results['rotation_trial'] else 'off'}.",
             "", "| scene | pairs | Acc@5 | Acc@10 | Acc@15 | Acc@20 | mAP@5 | mAP@10 | mAP@20 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = list(results["summary"]["per_scene"].items()) + [("**all**", results["summary"]["all"])]
    for scene, s in rows:
        lines.append(f"| {scene} | {s['pairs']} | " + " | ".join(_pct(s.get(k)) for k in (
            "acc@5", "acc@10", "acc@15", "acc@20", "mAP@5", "mAP@10", "mAP@20")) + " |")
    lines += ["", f"Failures (no homography): {results['summary']['failures']}.", "", results["protocol"] + ".",
              "", "Not implemented: " + "; ".join(results["not_implemented"]) + ".", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.yfcc", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="YFCC folder with <scene>/test/images.txt, calibration.txt")
    parser.add_argument("--pairs", required=True, help="folder with <scene>-te-1000-pairs.pkl")
    parser.add_argument("--scenes", nargs="*", default=None, help="scenes (default: every pair file in --pairs)")
    parser.add_argument("--max-pairs", type=int, default=None, help="only the first N pairs of each scene")
    parser.add_argument("--rotations", action="store_true", help="try the target at 0/90/180/270 degrees")
    parser.add_argument("--mask-dir", default=None, help="foreground masks <scene>/<stem>.png (default: none)")
    parser.add_argument("--match-threshold", type=float, default=0.95, help="matchability of a dense match")
    parser.add_argument("--threshold", type=float, default=5e-4, help="essential-matrix RANSAC threshold")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder for the JSON and Markdown")
    parser.add_argument("--quiet", action="store_true")
    rfp.add_model_arguments(parser, "yfcc")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return rfp.run_main(args, evaluate, markdown_report, yfcc.YFCCLayoutError, "yfcc")


if __name__ == "__main__":
    sys.exit(main())
