"""Discovery over an image folder: groups of images sharing a region, with the regions (artminer.md §4).

  python -m artdup_jax.app.discover FOLDER [--checkpoint X.pth|DIR | --random-weights] [--top-k K] [--exhaustive]
                          [--out DIR] [--threshold T] [--reference-cells 40] [--margin 3] [--scales 80 74 ...]
                          [--iterations 1000] [--no-saliency] [--resample nearest] [--seed 0]

Features are computed once per image; candidate pairs come from the regional global descriptor (each image's
``--top-k`` nearest, so about N k pairs) or, with ``--exhaustive``, every pair; each candidate is scored in
both directions (the larger kept) in batches; pairs above ``--threshold`` are linked and connected components of
at least ``--min-group-images`` images are groups (§4.7). Files with an image extension that cannot be read
are listed in the output and skipped; the rest continues.

Writes to ``--out``: ``discovery.json`` (settings, unreadable files, groups with every image's matched regions
in original pixels, the pairs of each group, region groups, the highest-scoring pairs) and ``index.html`` with
``thumbs/`` (each group's images, regions outlined).

``planted_metrics`` scores groups against known ones (synthetic collections): pair-level precision / recall of
the thresholded pairs and co-membership precision / recall of the groups.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from artdup_jax.data import outputs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "discover"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".ppm", ".webp", ".gif")


def collection_files(folder: str | os.PathLike) -> list[str]:
    """Sorted file names in ``folder`` with an image extension (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(n for n in os.listdir(folder)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS) and (folder / n).is_file())


# ---------------------------------------------------------------------------------------------- metrics


def _pairs_within(groups: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for g in groups for a, b in itertools.combinations(g, 2)}


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 1.0


def planted_metrics(pairs: np.ndarray, scores: np.ndarray, threshold: float, groups: Sequence[Sequence[int]],
                    truth: Sequence[Sequence[int]]) -> dict:
    """How well discovered pairs and groups recover planted groups (image indices).

    ``pair_*``: pairs scoring above ``threshold`` vs pairs inside a planted group. ``group_*``: pairs of images
    put in the same discovered group vs in the same planted group (co-membership). ``groups_exact``: planted
    groups found exactly as one discovered group.
    """
    true_pairs = _pairs_within(truth)
    edges = {(int(min(a, b)), int(max(a, b))) for (a, b), s in zip(np.asarray(pairs).reshape(-1, 2), scores)
             if s > threshold}
    together = _pairs_within(groups)
    found = {tuple(sorted(g)) for g in groups}
    return {
        "pair_precision": _ratio(len(edges & true_pairs), len(edges)),
        "pair_recall": _ratio(len(edges & true_pairs), len(true_pairs)),
        "group_precision": _ratio(len(together & true_pairs), len(together)),
        "group_recall": _ratio(len(together & true_pairs), len(true_pairs)),
        "groups_exact": sum(tuple(sorted(g)) in found for g in truth),
        "groups_planted": len(truth),
        "groups_found": len(groups),
    }


# ----------------------------------------------------------------------------------------------- output


def result_json(result, folder: str | os.PathLike, settings: dict, seconds: float, skipped: Sequence[str] = (),
                top_pairs: int = 100) -> dict:
    """The JSON document of a ``DiscoveryResult`` (names relative to ``folder``, boxes in pixels)."""
    folder = os.path.abspath(os.fspath(folder))
    names = [os.path.relpath(p, folder) for p in result.paths]

    def box(b):
        return [round(float(v), 1) for v in b]

    groups = []
    for gid, (group, regions) in enumerate(zip(result.groups, result.region_groups)):
        by_image: dict[int, list] = {i: [] for i in group.images}
        for region in regions:
            for image, b in region.boxes.items():
                by_image[image].append(box(b))
        edge_boxes = group.regions()
        for image in group.images:  # an image in no region group shows its pairs' regions
            if not by_image[image]:
                by_image[image] = [box(b) for b in dict.fromkeys(tuple(b) for b in edge_boxes[image])]
        groups.append({
            "id": gid,
            "images": [{"file": names[i], "height": int(result.image_hw[i, 0]), "width": int(result.image_hw[i, 1]),
                        "regions": by_image[i]} for i in group.images],
            "pairs": [{"a": names[e.a], "b": names[e.b], "score": round(e.score, 5), "box_a": box(e.box_a),
                       "box_b": box(e.box_b)} for e in sorted(group.edges, key=lambda e: -e.score)],
            "region_groups": [{"images": [{"file": names[i], "box": box(b)} for i, b in r.boxes.items()],
                               "num_pairs": len(r.edges)} for r in regions],
        })
    order = np.argsort(-result.pair_scores, kind="stable")[:top_pairs]
    return {
        "folder": folder,
        "settings": settings,
        "num_images": len(names),
        "images": names,
        "unreadable": [{"file": os.path.relpath(p, folder), "error": e} for p, e in result.unreadable],
        "skipped": list(skipped),
        "num_pairs_scored": int(len(result.pairs)),
        "num_directional_pairs_scored": int(len(result.directional)),
        "seconds": seconds,
        "groups": groups,
        "top_pairs": [{"a": names[result.pairs[k, 0]], "b": names[result.pairs[k, 1]],
                       "score": round(float(result.pair_scores[k]), 5)} for k in order],
    }


# ------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from artdup_jax.artminer.features import RESAMPLE, SCALES

    parser = argparse.ArgumentParser(prog="python -m artdup_jax.app.discover", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="image folder (not recursive)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="ArtMiner weights: resnet18.pth, brueghelModel.pth, ltllModel.pth or a "
                                              "converted directory")
    weights.add_argument("--random-weights", action="store_true", help="random network (smoke tests only)")
    parser.add_argument("--top-k", type=int, default=10, help="candidate neighbours per image")
    parser.add_argument("--exhaustive", action="store_true", help="score every pair (N (N - 1) / 2)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--threshold", type=float, default=0.015,
                        help="pair score above which two images are linked (release default 0.015; "
                             "LTLLCluster.sh used 0.03)")
    parser.add_argument("--min-group-images", type=int, default=3)
    parser.add_argument("--reference-cells", type=int, default=40)
    parser.add_argument("--margin", type=int, default=3)
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES), help="target longer sides (cells)")
    parser.add_argument("--descriptor-cells", type=int, default=None,
                        help="map the global descriptor pools (default: the smallest scale)")
    parser.add_argument("--iterations", type=int, default=1000, help="RANSAC hypotheses per pair")
    parser.add_argument("--tolerance-cells", type=float, default=2.0)
    parser.add_argument("--no-saliency", action="store_true", help="no reference saliency weighting")
    parser.add_argument("--resample", default="nearest", choices=sorted(RESAMPLE))
    parser.add_argument("--pairs-per-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thumbnail-px", type=int, default=256)
    parser.add_argument("--cache", help="folder where feature maps persist between runs (default: OUT/cache; "
                        "a re-run, e.g. after an interruption or with another threshold, reuses them)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace):
    from artdup_jax.artminer.discovery import DiscoveryConfig

    return DiscoveryConfig(reference_cells=args.reference_cells, margin=args.margin, scales=tuple(args.scales),
                           tolerance_cells=args.tolerance_cells, iterations=args.iterations,
                           saliency=not args.no_saliency, resample=args.resample, threshold=args.threshold,
                           min_group_images=args.min_group_images, top_k=args.top_k, exhaustive=args.exhaustive,
                           descriptor_cells=args.descriptor_cells or min(args.scales),
                           pairs_per_batch=args.pairs_per_batch, seed=args.seed)


def run(args: argparse.Namespace) -> dict:
    from artdup_jax.artminer import init_variables, load_weights
    from artdup_jax.artminer.discovery import discover
    from artdup_jax.artminer.report import write_report

    variables = load_weights(args.checkpoint) if args.checkpoint else init_variables(args.seed)
    folder = Path(args.folder)
    names = collection_files(folder)
    skipped = sorted(set(os.listdir(folder)) - set(names))
    config = config_from_args(args)
    start = time.perf_counter()
    from artdup_jax.artminer import FeatureCache

    cache_dir = args.cache or os.fspath(Path(args.out) / "cache")
    cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch, directory=cache_dir)
    result = discover(variables, [str(folder / n) for n in names], config, cache=cache)
    if not args.quiet:
        print(f"feature maps: {cache.maps_loaded} read from {cache_dir}, {cache.maps_computed} computed")
    seconds = time.perf_counter() - start
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quiet", "folder")}
    settings["threshold"] = config.threshold
    document = result_json(result, folder, settings, seconds, skipped=[s for s in skipped if not s.startswith(".")])
    out = Path(args.out)
    outputs.save_json(os.fspath(out / "discovery.json"), document)
    write_report(document, folder, out, thumbnail_px=args.thumbnail_px)
    if not args.quiet:
        for u in document["unreadable"]:
            print(f"warning: skipped {u['error']}", file=sys.stderr)  # the error names the file
        print(f"{document['num_images']} images, {document['num_pairs_scored']} pairs scored in {seconds:.1f} s, "
              f"{len(document['groups'])} groups")
        for g in document["groups"]:
            print(f"  group {g['id']}: " + ", ".join(i["file"] for i in g["images"]))
        print(f"wrote {out / 'discovery.json'} and {out / 'index.html'}")
    return document


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
