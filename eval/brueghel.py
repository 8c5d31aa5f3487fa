"""Brueghel one-shot detection benchmark (Table 1 of the ArtMiner paper).

  python -m eval.brueghel --images DIR --annotations brueghelTest.json [--checkpoint X.pth|DIR | --random-weights]
                          [--method artminer] [--out DIR] [--max-queries N] [--scales 80 74 ...] [--resample nearest]

Every annotated instance is a query: the method ranks boxes over every image of ``--images`` (the query's
own image excluded) and keeps ``--num-predictions`` (1000). A prediction is a true positive if it lies in the
image of a not-yet-matched ground truth of the class with IoU > 0.3 (strict; widths x2 - x1); AP is the sum of
the precisions at the true positives divided by the number of ground truths (non-interpolated, the query
itself not counted). Two averages, as the release prints them:

* ``mAP_per_query``: the mean over all queries (273 for brueghelTest.json);
* ``mAP_per_class``: the mean over the classes of each class's mean AP.

The release README's numbers (58.0 ImageNet, 75.3 Brueghel-trained) are expected to be ``mAP_per_query``;
this is unverified, and the output says so.

A *method* is registered by name (``register_method``); its factory takes the parsed arguments and returns
``method(queries, image_paths) -> [[Prediction, ...] per query]``. ``artminer`` (the default) is the sliding
cosine of ``artdup_jax.artminer.detect``; SegSwap can register ``segswap`` the same way.

Writes to ``--out``: ``brueghel_<method>.json`` (settings, both mAPs, per-class and per-query AP),
``detections_<method>.json`` (every query's ranked boxes, with the ground truth each one matched) and
``brueghel_<method>.md``.

Images are read with ``artdup_jax.data.images.read_image``, which applies EXIF orientation; the release used
``PIL.Image.open(...).convert("RGB")``, which does not. The two agree unless a file carries an EXIF rotation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


from artdup_jax.artminer.annotations import (  # noqa: F401  (re-exported: the evaluation's public names)
    AnnotatedQuery,
    AnnotationError,
    parse_annotations,
    read_annotations,
)
from artdup_jax.artminer.metrics import PAPER_METRIC, average_precision, iou, summarise  # noqa: F401
from artdup_jax.data import outputs
from artdup_jax.data.images import ImageReadError, read_image_size

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ANNOTATIONS = REPO_ROOT.parent / "shared" / "data" / "brueghel" / "brueghelTest.json"
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "brueghel"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".ppm", ".webp")


@dataclasses.dataclass(frozen=True)
class Prediction:
    image: str  # file name
    box: tuple[int, int, int, int]
    score: float


# ------------------------------------------------------------------------------------------- annotations


def check_against_images(queries: Sequence[AnnotatedQuery], folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Every referenced image exists and every box lies inside its image; returns name -> (H, W)."""
    folder = Path(folder)
    sizes: dict[str, tuple[int, int]] = {}
    for q in queries:
        for role, (name, box) in [("query", (q.image, q.box))] + [(f"gt {k}", g) for k, g in enumerate(q.gt)]:
            where = f"class {q.category!r} instance {q.index} {role}"
            if name not in sizes:
                path = folder / name
                if not path.is_file():
                    raise AnnotationError(f"{where}: image {name!r} not found in {folder}")
                try:
                    sizes[name] = read_image_size(path)
                except ImageReadError as error:
                    raise AnnotationError(f"{where}: {error}") from None
            height, width = sizes[name]
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise AnnotationError(f"{where}: box {list(box)} is empty or outside image {name!r} "
                                      f"({width}x{height})")
    return sizes


# ------------------------------------------------------------------------------------------------ scoring


# ------------------------------------------------------------------------------------------------ methods

Method = Callable[[Sequence[AnnotatedQuery], Sequence[str]], list[list[Prediction]]]
METHODS: dict[str, Callable[[argparse.Namespace], Method]] = {}


def register_method(name: str):
    """Decorator: ``@register_method("segswap") def factory(args) -> Method``."""

    def decorate(factory):
        METHODS[name] = factory
        return factory

    return decorate


@register_method("artminer")
def artminer_method(args: argparse.Namespace) -> Method:
    """Sliding cosine of ArtMiner features (the cosine column of Table 1)."""
    from artdup_jax.artminer.inference import DetectionConfig, FeatureCache, Query, detect, init_variables, load_weights

    variables = load_weights(args.checkpoint) if args.checkpoint else init_variables(args.seed)
    config = DetectionConfig(scales=tuple(args.scales), num_predictions=args.num_predictions,
                             resample=args.resample, images_per_step=args.images_per_step, max_batch=args.max_batch)
    # Every map is used once per run (all queries go through each image together): bound the cache.
    cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch,
                         max_bytes=int(args.cache_gb * 2**30))

    def method(queries, image_paths):
        folder = Path(image_paths[0]).parent if image_paths else Path(".")
        detection_queries = [Query(str(folder / q.image), q.box) for q in queries]
        ranked = detect(variables, detection_queries, image_paths, config, cache=cache)
        if args.rerank:  # the discovery-score column of Table 1 (our reconstruction)
            from artdup_jax.artminer.inference import BOX_REFERENCE, rerank_detections

            rerank_config = dataclasses.replace(BOX_REFERENCE, scales=tuple(args.scales), resample=args.resample,
                                                seed=args.seed)
            ranked = [r.detections for r in rerank_detections(variables, detection_queries, ranked, rerank_config,
                                                              top_n=args.rerank)]
        return [[Prediction(os.path.basename(p), tuple(int(v) for v in b), float(s))
                 for p, b, s in zip(r.paths, r.boxes, r.scores)] for r in ranked]

    return method


@register_method("segswap")
def segswap_method(args: argparse.Namespace) -> Method:
    """SegSwap one-shot retrieval (``artdup_jax.segswap.retrieval``).

    Every image is ranked by S(query crop, image); the spec's metric, image-level *retrieval* mAP, is written to
    ``brueghel_segswap_retrieval.json`` / ``.md`` in ``--out`` and printed. For this harness each image also gets
    one box centred on the coarse location with the query's size in cells (the release has no box step),
    so the detection mAP it reports is only a stand-in. ``--checkpoint``: hard_mining_neg5.pth or a converted
    directory. Database features are cached under ``--out``/segswap_cache.
    """
    from artdup_jax.segswap import retrieval, weights

    variables = weights.load_segswap(args.checkpoint or None, seed=args.seed)
    protocol = retrieval.BRUEGHEL

    def method(queries, image_paths):
        summary = retrieval.evaluate_retrieval(
            variables, [retrieval.RetrievalQuery(q.category, q.image, q.box, tuple(name for name, _ in q.gt))
                        for q in queries],
            image_paths, protocol=protocol, cache_dir=Path(args.out) / "segswap_cache", quiet=args.quiet)
        database = summary["database"]
        report = {k: summary[k] for k in ("mAP_per_class", "mAP_per_query", "per_class", "per_query", "seconds")}
        report.update(metric="image-level retrieval AP; mAP_per_class is the release's mean",
                      protocol=dataclasses.asdict(protocol), num_images=len(database.names))
        out = Path(args.out)
        outputs.save_json(os.fspath(out / "brueghel_segswap_retrieval.json"), report)
        lines = ["# Brueghel one-shot retrieval: segswap", "",
                 f"- retrieval mAP per class (release): **{100 * report['mAP_per_class']:.2f}**",
                 f"- retrieval mAP per query: {100 * report['mAP_per_query']:.2f}", "", "| class | AP |", "|---|---|"]
        lines += [f"| {c} | {100 * ap:.2f} |" for c, ap in report["per_class"].items()]
        _write_text(out / "brueghel_segswap_retrieval.md", "\n".join(lines) + "\n")
        print(f"segswap retrieval mAP per class {100 * report['mAP_per_class']:.2f}, per query "
              f"{100 * report['mAP_per_query']:.2f} (detection mAP below uses stand-in boxes)", flush=True)
        ranked = []
        for ranking in summary["rankings"]:
            predictions = []
            for k in ranking["order"][: args.num_predictions]:
                box = retrieval.coarse_box(ranking["location"][k], database.sizes[k], ranking["box_fraction"])
                predictions.append(Prediction(database.names[k], box, float(ranking["score"][k])))
            ranked.append(predictions)
        return ranked

    return method


# -------------------------------------------------------------------------------------------------- main


def collection_paths(folder: str | os.PathLike) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such image folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise AnnotationError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [str(folder / n) for n in names]


def evaluate(args: argparse.Namespace) -> dict:
    if args.method not in METHODS:
        raise SystemExit(f"error: unknown --method {args.method!r}; known: {', '.join(sorted(METHODS))}")
    queries = read_annotations(args.annotations)
    if args.max_queries is not None:
        queries = queries[: args.max_queries]
    check_against_images(queries, args.images)
    paths = collection_paths(args.images)
    method = METHODS[args.method](args)
    start = time.perf_counter()
    ranked = method(queries, paths)
    seconds = time.perf_counter() - start

    records, detections, aps = [], [], []
    for q, predictions in zip(queries, ranked):
        ap, matched = average_precision([(p.image, p.box) for p in predictions], q.gt, iou_threshold=args.iou,
                                        num_predictions=args.num_predictions)
        aps.append(ap)
        records.append({"category": q.category, "index": q.index, "image": q.image, "box": list(q.box), "AP": ap,
                        "num_gt": len(q.gt), "true_positive_ranks": [j + 1 for j, m in enumerate(matched) if m]})
        detections.append({"category": q.category, "index": q.index, "query": [q.image, list(q.box)],
                           "detections": [[p.image, list(p.box), p.score, m] for p, m in zip(predictions, matched)]})
        if not args.quiet:
            print(f"{q.category:>6} #{q.index:<3} {q.image[:40]:<40} AP {ap:.4f}", flush=True)
    results = {
        "method": args.method,
        "annotations": str(Path(args.annotations).resolve()),
        "images": str(Path(args.images).resolve()),
        "num_images": len(paths),
        "num_queries": len(queries),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
        "seconds": seconds,
        **summarise(queries, aps),
        "per_query": records,
    }
    out = Path(args.out)
    outputs.save_json(os.fspath(out / f"brueghel_{args.method}.json"), results)
    # One line per query: 273 queries x 1000 boxes stay a few MB.
    _write_text(out / f"detections_{args.method}.json",
                "[\n" + ",\n".join(json.dumps(d, separators=(",", ":")) for d in detections) + "\n]\n")
    _write_text(out / f"brueghel_{args.method}.md", markdown_report(results))
    return results


def _write_text(path: Path, text: str) -> None:
    """Atomic, like ``artdup_jax.data.outputs``: a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_text(text)
    os.replace(temporary, path)


def markdown_report(results: dict) -> str:
    lines = [f"# Brueghel one-shot detection: {results['method']}", "",
             f"{results['num_queries']} queries over {results['num_images']} images, "
             f"IoU > {results['settings']['iou']}, {results['settings']['num_predictions']} predictions per query.", "",
             f"- mAP per query: **{100 * results['mAP_per_query']:.2f}**",
             f"- mAP per class: {100 * results['mAP_per_class']:.2f}",
             f"- paper metric: {results['paper_metric']}", "", "| class | queries | AP |", "|---|---|---|"]
    lines += [f"| {c} | {v['queries']} | {100 * v['AP']:.2f} |" for c, v in results["per_class"].items()]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    from artdup_jax.artminer.resize_rule import RESAMPLE, SCALES

    parser = argparse.ArgumentParser(prog="python -m eval.brueghel", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder of the collection (e.g. the 1,587 Brueghel images)")
    parser.add_argument("--annotations", default=str(DEFAULT_ANNOTATIONS),
                        help="official-format JSON (default: ../shared/data/brueghel/brueghelTest.json)")
    parser.add_argument("--method", default="artminer", help=f"one of: {', '.join(sorted(METHODS))}")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="weights for --method: resnet18.pth or brueghelModel.pth (artminer), "
                                              "hard_mining_neg5.pth (segswap), or a converted directory")
    weights.add_argument("--random-weights", action="store_true", help="random network (smoke tests only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N queries")
    parser.add_argument("--num-predictions", type=int, default=1000)
    parser.add_argument("--iou", type=float, default=0.3, help="IoU threshold (strict >)")
    parser.add_argument("--rerank", type=int, default=0, metavar="N",
                        help="artminer: re-order each query's top N detections by the discovery score (0: off)")
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES), help="longer-side cells")
    parser.add_argument("--resample", default="nearest", choices=sorted(RESAMPLE),
                        help="PIL filter of every resize (nearest = the release under Pillow <= 6)")
    parser.add_argument("--images-per-step", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="images per network call (default: 1 on CPU, 8 on GPU)")
    parser.add_argument("--cache-gb", type=float, default=4.0, help="memory for cached feature maps")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = evaluate(args)
    except AnnotationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / f'brueghel_{args.method}.json'}, detections_{args.method}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
