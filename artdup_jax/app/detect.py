"""``artdup detect IMAGE FOLDER --box X1 Y1 X2 Y2``: one-shot detection of a box over a folder (ArtMiner).

The query image and box are checked first (a box outside the image is an error naming the image and its
size); unusable files of FOLDER are skipped with a warning each and listed in the JSON under ``skipped``;
the rest is searched. With ``--out DIR``: DIR/detections.json and the report DIR/report/index.html.
"""

from __future__ import annotations

import argparse
import os

from artdup_jax.data import outputs
from artdup_jax.data.images import read_image
from artdup_jax.data.folders import ImageFolderError, image_files, readable_images
from artdup_jax.checkpoints.files import check_checkpoint

EXAMPLE = ("example: artdup detect scan.jpg collection/ --box 120 40 380 300 --checkpoint brueghelModel.pth "
           "--out runs/detect")


class QueryBoxError(ValueError):
    """A query box that is empty or not inside its image; one line, names the image."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup detect", epilog=EXAMPLE,
                                     description="One-shot detection (ArtMiner): the regions of FOLDER's images "
                                                 "most like a box of IMAGE, best first.")
    parser.add_argument("image", help="the image holding the query box")
    parser.add_argument("folder", help="the images searched (not recursive)")
    parser.add_argument("--box", nargs=4, type=int, required=True, metavar=("X1", "Y1", "X2", "Y2"),
                        help="query box in IMAGE's pixels as a viewer shows it (x = column; x2, y2 exclusive)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="ArtMiner weights: a .pth (brueghelModel.pth, resnet18.pth) or a "
                                              "converted folder")
    weights.add_argument("--random-weights", action="store_true", help="untrained network (smoke tests only)")
    parser.add_argument("--scales", type=int, nargs="+", default=None,
                        help="longer sides (feature cells) the collection is searched at (default: the release's)")
    parser.add_argument("--top", type=int, default=10, help="detections printed")
    parser.add_argument("--json", help="write every ranked detection (and the skipped files) to this file")
    parser.add_argument("--cache", help="folder where the collection's feature maps persist between runs "
                        "(default: OUT/cache with --out; a re-run or a new query over the same folder reuses them)")
    parser.add_argument("--out", help="also write OUT/detections.json and the report OUT/report/index.html "
                                      "(the query and the --top best detections outlined)")
    return parser


def check_query_box(image: str, box: list[int]) -> None:
    """Raises ``QueryBoxError`` unless ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H`` in ``image``."""
    height, width = read_image(image).shape[:2]
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        raise QueryBoxError(f"{image}: query box {box} is empty (need x1 < x2 and y1 < y2)")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise QueryBoxError(f"{image}: query box {box} is outside the {width}x{height} image (x from 0 to "
                            f"{width}, y from 0 to {height})")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.checkpoint:
        check_checkpoint(args.checkpoint, "artminer")
    check_query_box(args.image, args.box)
    paths, ignored = image_files(args.folder)

    from artdup_jax.artminer import DetectionConfig, Query, detect, init_variables, load_weights

    variables = init_variables() if args.random_weights else load_weights(args.checkpoint)
    paths, failed = readable_images(paths)
    if not paths:
        raise ImageFolderError(f"{args.folder}: none of its {len(failed)} image file(s) could be read")
    skipped = [{"file": name, "reason": reason} for name, reason in ignored] + [
        {"file": os.path.relpath(path, args.folder), "reason": reason.replace(path, os.path.basename(path))}
        for path, reason in failed]

    config = DetectionConfig(scales=tuple(args.scales)) if args.scales else DetectionConfig()
    from artdup_jax.artminer import FeatureCache

    cache_dir = args.cache or (os.path.join(args.out, "cache") if args.out else None)
    cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch, directory=cache_dir)
    ranked = detect(variables, [Query(args.image, tuple(args.box))], paths, config, cache=cache)[0]
    if cache_dir:
        print(f"feature maps: {cache.maps_loaded} read from {cache_dir}, {cache.maps_computed} computed")
    detections = [
        {"file": os.path.relpath(p, args.folder), "score": float(s), "box": [int(v) for v in b]}
        for p, s, b in zip(ranked.paths, ranked.scores, ranked.boxes)]
    if not detections:
        print(f"no detection: none of the {len(paths)} readable image(s) of {args.folder} has a match")
    for d in detections[: args.top]:
        print(f"{d['score']:.4f}  {d['file']}  {d['box']}")
    if skipped:
        print(f"skipped {len(skipped)} file(s) of {args.folder}: " + "; ".join(s["file"] for s in skipped))
    document = {"image": args.image, "box": args.box, "detections": detections, "skipped": skipped}
    if args.json:
        outputs.save_json(args.json, document)
    if args.out:
        from artdup_jax.app.reports import detection_report

        outputs.save_json(os.path.join(args.out, "detections.json"), document)
        index = detection_report(args.out, args.image, args.box, args.folder, detections, skipped, args.top)
        print(f"report: {index}")
    return 0
