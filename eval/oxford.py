"""Oxford5K retrieval: readers, ranked lists and AP (Table 2 of the ArtMiner paper).

  python -m eval.oxford --images DIR [--annotations OxfordTestBB.json | --gt-dir gt_files/]
                        [--checkpoint oxfordModel.pth | resnet18.pth | --random-weights] [--out DIR]

Two annotation formats:

* ArtMiner's JSON (``OxfordTest.json`` / ``OxfordTestBB.json``): ``test`` (55 query names), ``val``, ``searchImg``
  (the 5063 database names, queries included), ``annotation`` {query: [positive names]} or
  {query: {"gt": [positive names], "bbox": [x1, y1, x2, y2]}}. Positives are good and ok together and include
  the query image; junk images are not listed, so they count as negatives.
* The official Oxford Buildings ground truth (``gt_files_170407``): per query ``<q>_query.txt``
  (``oxc1_<image> x1 y1 x2 y2``), ``<q>_good.txt``, ``<q>_ok.txt``, ``<q>_junk.txt`` (one image name a line).

Two APs over a ranked list of database names (one name a line in ranked-list files, as the official tool reads):

* ``compute_ap``: the official ``compute_ap`` rule. Junk images are skipped; positives are good and ok; the
  precision-recall curve is integrated with trapezoids starting from (recall 0, precision 1).
* ``artminer_ap``: what ``dataset_discovery.py`` / ``oxford_retrieval.py`` report: the mean of the precisions at
  the ranks of the positives (non-interpolated, junk counted as negatives).

Protocol of the release: the query *box* is the discovery reference (longer side 25 cells, 5 context
cells added then removed, no saliency, Hough, 1000 iterations), every database image is scored one-directionally
and sorted stably; mAP over the 55 queries (README: ImageNet 85.0, Oxford-trained 85.7, with ``artminer_ap``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from artdup_jax.data import outputs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "oxford"


class AnnotationError(ValueError):
    """A malformed annotation file or folder; the message says where."""


@dataclasses.dataclass(frozen=True)
class OxfordQuery:
    name: str  # query id ("all_souls_1") or, in ArtMiner's JSON, the query image name
    image: str  # query image name as listed in the database
    box: tuple[float, float, float, float] | None  # [x1, y1, x2, y2] pixels, None for whole-image queries
    positives: frozenset[str]  # good | ok
    junk: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class OxfordBenchmark:
    queries: tuple[OxfordQuery, ...]
    database: tuple[str, ...]  # in file order (ties in the ranking keep it)


# ---------------------------------------------------------------------------------------------- readers


def parse_artminer_json(data, source: str = "annotations", split: str = "test") -> OxfordBenchmark:
    """``OxfordTest.json`` (positive lists) or ``OxfordTestBB.json`` ({"gt", "bbox"}) -> the ``split`` queries."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{source}: expected a JSON object")
    for key in (split, "searchImg", "annotation"):
        if key not in data:
            raise AnnotationError(f"{source}: missing key {key!r}")
    queries = []
    for name in data[split]:
        entry = data["annotation"].get(name)
        if entry is None:
            raise AnnotationError(f"{source}: query {name!r} has no annotation")
        if isinstance(entry, dict):
            if "gt" not in entry:
                raise AnnotationError(f"{source}: query {name!r}: expected 'gt' (and 'bbox')")
            positives, box = entry["gt"], entry.get("bbox")
        else:
            positives, box = entry, None
        if box is not None and len(box) != 4:
            raise AnnotationError(f"{source}: query {name!r}: bbox must be [x1, y1, x2, y2], got {box!r}")
        queries.append(OxfordQuery(name, name, None if box is None else tuple(float(v) for v in box),
                                   frozenset(positives)))
    return OxfordBenchmark(tuple(queries), tuple(data["searchImg"]))


def read_artminer_json(path: str | os.PathLike, split: str = "test") -> OxfordBenchmark:
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such annotation file")
    try:
        return parse_artminer_json(json.loads(path.read_text()), str(path), split)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from None


def _names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_gt_files(folder: str | os.PathLike, database: Iterable[str] | None = None,
                  extension: str = ".jpg") -> OxfordBenchmark:
    """The official ``<q>_{query,good,ok,junk}.txt`` files. Names are stored without extension in those files;
    ``extension`` is appended so they match image files. ``database``: names in ranking order (default: every
    name the ground truth mentions, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such ground-truth folder")
    queries, seen = [], set()
    for query_file in sorted(folder.glob("*_query.txt")):
        qid = query_file.name[: -len("_query.txt")]
        fields = query_file.read_text().split()
        if len(fields) != 5:
            raise AnnotationError(f"{query_file}: expected 'oxc1_<image> x1 y1 x2 y2', got {' '.join(fields)!r}")
        image = fields[0][len("oxc1_"):] if fields[0].startswith("oxc1_") else fields[0]
        sets = {}
        for kind in ("good", "ok", "junk"):
            path = folder / f"{qid}_{kind}.txt"
            if not path.is_file():
                raise AnnotationError(f"{path}: missing")
            sets[kind] = {n + extension for n in _names(path)}
        seen |= sets["good"] | sets["ok"] | sets["junk"] | {image + extension}
        queries.append(OxfordQuery(qid, image + extension, tuple(float(v) for v in fields[1:]),
                                   frozenset(sets["good"] | sets["ok"]), frozenset(sets["junk"])))
    if not queries:
        raise AnnotationError(f"{folder}: no *_query.txt files")
    return OxfordBenchmark(tuple(queries), tuple(database) if database is not None else tuple(sorted(seen)))


def read_ranked_list(path: str | os.PathLike) -> list[str]:
    """One database name a line (the official tool's input)."""
    return _names(Path(path))


def write_ranked_list(path: str | os.PathLike, names: Sequence[str]) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_text("".join(f"{n}\n" for n in names))
    os.replace(temporary, path)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------- metrics


def ranked(database: Sequence[str], scores: Sequence[float]) -> list[str]:
    """Database names by decreasing score; stable, so ties (zeros) keep database order."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return [database[i] for i in order]


def compute_ap(positives: Iterable[str], junk: Iterable[str], ranked_list: Sequence[str]) -> float:
    """The official Oxford ``compute_ap``: junk skipped, trapezoidal integration of precision over recall."""
    positives, junk = set(positives), set(junk)
    if not positives:
        return 0.0
    old_recall, old_precision, ap, hits, rank = 0.0, 1.0, 0.0, 0, 0
    for name in ranked_list:
        if name in junk:
            continue
        hits += name in positives
        recall, precision = hits / len(positives), hits / (rank + 1.0)
        ap += (recall - old_recall) * (old_precision + precision) / 2.0
        old_recall, old_precision = recall, precision
        rank += 1
    return ap


def artminer_ap(positives: Iterable[str], ranked_list: Sequence[str]) -> float:
    """The release's AP: mean precision at the ranks of the positives found (junk counts as negative)."""
    positives = set(positives)
    precisions = []
    for rank, name in enumerate(ranked_list):
        if name in positives:
            precisions.append((len(precisions) + 1) / (rank + 1.0))
    return float(np.mean(precisions)) if precisions else 0.0


def evaluate(benchmark: OxfordBenchmark, rankings: Sequence[Sequence[str]]) -> dict:
    """Both mAPs over the queries, and per-query APs."""
    official = [compute_ap(q.positives, q.junk, r) for q, r in zip(benchmark.queries, rankings)]
    release = [artminer_ap(q.positives, r) for q, r in zip(benchmark.queries, rankings)]
    return {"mAP_official": float(np.mean(official)), "mAP_artminer": float(np.mean(release)),
            "per_query": [{"query": q.name, "AP_official": a, "AP_artminer": b}
                          for q, a, b in zip(benchmark.queries, official, release)]}


# -------------------------------------------------------------------------------------------- discovery


def box_query_scores(variables, queries: Sequence[tuple[str, Sequence[float]]], database_paths: Sequence[str],
                     config) -> np.ndarray:
    """``(Q, N)`` one-directional discovery scores with each query box as the reference (unreadable: 0)."""
    from artdup_jax.artminer.inference import box_discovery_scores

    found = box_discovery_scores(variables, queries, database_paths, config)
    for path, error in found.unreadable:
        print(f"warning: {path}: {error}", file=sys.stderr)
    return found.scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.oxford", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="the 5063 Oxford images")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--annotations", help="ArtMiner's OxfordTestBB.json (box queries) or OxfordTest.json")
    source.add_argument("--gt-dir", help="official gt_files folder (box queries, junk ignored by compute_ap)")
    parser.add_argument("--split", default="test", choices=["test", "val"])
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="oxfordModel.pth, resnet18.pth or a converted directory")
    weights.add_argument("--random-weights", action="store_true")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from artdup_jax.artminer.inference import DiscoveryConfig, init_variables, load_weights
    from eval.ltll import discovery_scores

    args = build_parser().parse_args(argv)
    folder = Path(args.images)
    try:
        if args.annotations:
            benchmark = read_artminer_json(args.annotations, args.split)
        else:
            database = sorted(n for n in os.listdir(folder) if n.lower().endswith(".jpg"))
            benchmark = read_gt_files(args.gt_dir, database)
    except AnnotationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    variables = load_weights(args.checkpoint) if args.checkpoint else init_variables(args.seed)
    queries = benchmark.queries[: args.max_queries]
    benchmark = OxfordBenchmark(tuple(queries), benchmark.database)
    database_paths = [str(folder / n) for n in benchmark.database]
    start = time.perf_counter()
    if all(q.box is not None for q in queries):  # the release's protocol: box references, 25 cells, margin 5
        config = DiscoveryConfig(reference_cells=25, margin=5, saliency=False, iterations=args.iterations,
                                 seed=args.seed)
        scores = box_query_scores(variables, [(str(folder / q.image), q.box) for q in queries], database_paths,
                                  config)
    else:
        config = DiscoveryConfig(saliency=False, iterations=args.iterations, seed=args.seed)
        scores = discovery_scores(variables, [str(folder / q.image) for q in queries], database_paths, config)
    rankings = [ranked(benchmark.database, row) for row in scores]
    out = Path(args.out)
    for q, r in zip(queries, rankings):
        write_ranked_list(out / "ranked" / f"{q.name}.txt", r)
    results = {"num_queries": len(queries), "num_database": len(benchmark.database),
               "seconds": time.perf_counter() - start, **evaluate(benchmark, rankings),
               "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    path = outputs.save_json(os.fspath(out / "oxford.json"), results)
    print(f"Oxford5K: mAP {100 * results['mAP_artminer']:.1f} (release's AP), "
          f"{100 * results['mAP_official']:.1f} (official compute_ap); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
