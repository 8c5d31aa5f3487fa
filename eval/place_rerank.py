"""Place recognition by re-ranking retrieval candidates with the SegSwap pair score: recall@N.

  python -m eval.place_rerank LISTS.json [--checkpoint hard_mining_neg5.pth|DIR | --random-weights] [--out DIR]
                              [--top-k 100] [--size 640 480] [--recall-at 1 5 10 100] [--release-normalisation]
                              [--max-queries N] [--cache-gb 4] [--quiet]

``LISTS.json`` (one file per benchmark, e.g. Tokyo 24/7 or Pitts30K-test with Patch-NetVLAD's candidates)::

  {"query_root": "query",                 # folders the image paths are relative to; relative to this file's
   "database_root": "database",           #   folder (default: that folder itself)
   "database": [{"image": "00/000001.jpg", "utm": [easting, northing]}, ...],
   "queries": [{"image": "q0001.jpg", "utm": [easting, northing],
                "candidates": [412, 9, 77, ...]}, ...],  # database indices, best first (the baseline's ranking)
   "nms_group": 12,                       # optional: Tokyo 24/7 (12 consecutive database images share a place)
   "distance_m": 25}                      # optional (default 25)

``lists_from_release`` builds it from the release's ``qry_list.npy``, ``qry_utm.npy``, ``db_list.npy``,
``db_utm.npy`` and the score matrix ``top100_patchVlad.npy`` (candidates = argsort of -score).

Protocol: every image resized to W×H = 640×480 (PIL bilinear) → 40×30 cells. Query: prior all ones refined by the
self-pair cycle mask, region P = every cell. The first ``--top-k`` (100) candidates are scored with S(query,
candidate) (batches of 32) and reordered by decreasing score (ties keep the baseline order); candidates after them
keep their places. Recall@N (``artdup_jax.segswap.metrics.recall_at``): a query is correct when one of its first N
candidates lies within ``distance_m`` (UTM, ``<=``). With ``nms_group`` g, the ranking first keeps only the first
candidate of each group ``index // g`` ("spatial NMS", as the release does for Tokyo). When a list holds fewer than
N entries, all are used.
Candidate features are kept in an LRU cache of ``--cache-gb`` (the release re-encodes them for every query).

Normalisation: by default both query and database are ImageNet-normalised (the method); ``--release-normalisation``
feeds the database what the release's loader fed (its inverse normalisation, a bug of the release).

Writes to ``--out``: ``place_rerank.json`` (settings, recall@N of the baseline and of the re-ranking, per-query
re-ranked lists) and ``place_rerank.md``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.data import outputs
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.segswap.inference import (
    collection_features,
    extract_features,
    refine_prior,
    release_inverse_normalisation,
    resize_rgb,
    score_against_collection,
)
from artdup_jax.segswap.metrics import RECALL_AT, recall_at
from artdup_jax.segswap.weights import load_segswap

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "place_rerank"


class ListsError(ValueError):
    """The lists file is malformed; the message says where."""


@dataclasses.dataclass(frozen=True)
class PlaceLists:
    query_paths: tuple[Path, ...]
    query_utm: np.ndarray  # (Q, 2) metres
    database_paths: tuple[Path, ...]
    database_utm: np.ndarray  # (N, 2) metres
    candidates: tuple[np.ndarray, ...]  # per query, int database indices, best first
    nms_group: int | None = None
    distance_m: float = 25.0


# -------------------------------------------------------------------------------------------------- lists


def _utm(item, where: str) -> list[float]:
    utm = item.get("utm") if isinstance(item, dict) else None
    if not (isinstance(utm, (list, tuple)) and len(utm) == 2):
        raise ListsError(f"{where}: 'utm' must be [easting, northing]")
    return [float(v) for v in utm]


def _image(item, where: str) -> str:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str):
        raise ListsError(f"{where}: expected an object with an 'image' path")
    return item["image"]


def parse_lists(data: dict, base: str | os.PathLike = ".", source: str = "lists") -> PlaceLists:
    """The JSON document (module docstring) -> ``PlaceLists``; paths resolved against ``base``."""
    if not (isinstance(data, dict) and all(isinstance(data.get(key), list) for key in ("queries", "database"))):
        raise ListsError(f"{source}: expected an object with 'queries' and 'database' lists")
    base = Path(base)
    query_root, database_root = base / data.get("query_root", "."), base / data.get("database_root", ".")
    database = data["database"]
    if not database:
        raise ListsError(f"{source}: empty database")
    database_paths = tuple(database_root / _image(d, f"{source}: database {k}") for k, d in enumerate(database))
    database_utm = np.array([_utm(d, f"{source}: database {k}") for k, d in enumerate(database)], np.float64)
    query_paths, query_utm, candidates = [], [], []
    for k, q in enumerate(data["queries"]):
        where = f"{source}: query {k}"
        query_paths.append(query_root / _image(q, where))
        query_utm.append(_utm(q, where))
        ranked = q.get("candidates")
        if not isinstance(ranked, list) or not ranked:
            raise ListsError(f"{where}: 'candidates' must be a non-empty list of database indices")
        ranked = np.asarray(ranked)
        if ranked.dtype.kind not in "iu" or ranked.min() < 0 or ranked.max() >= len(database):
            raise ListsError(f"{where}: candidates must be integers in [0, {len(database)})")
        if len(np.unique(ranked)) != len(ranked):
            raise ListsError(f"{where}: repeated candidates")
        candidates.append(ranked.astype(np.int64))
    group = data.get("nms_group")
    return PlaceLists(tuple(query_paths), np.array(query_utm, np.float64).reshape(-1, 2), database_paths,
                      database_utm, tuple(candidates), None if group is None else int(group),
                      float(data.get("distance_m", 25.0)))


def read_lists(path: str | os.PathLike) -> PlaceLists:
    path = Path(path)
    if not path.is_file():
        raise ListsError(f"{path}: no such lists file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ListsError(f"{path}: not valid JSON ({error})") from None
    return parse_lists(data, path.parent, str(path))


def lists_from_release(query_list: Sequence[str], query_utm: np.ndarray, database_list: Sequence[str],
                       database_utm: np.ndarray, score: np.ndarray, *, depth: int = 100, query_root: str = "query",
                       database_root: str = "database", nms_group: int | None = None) -> dict:
    """The lists document from the release's arrays: candidates = ``argsort(-score)[:, :depth]`` per query.

    Tokyo with ``nms_group=12`` needs ``depth`` of about 12 × 100 for a recall@100 after NMS.
    """
    ranked = np.argsort(-np.asarray(score), axis=1, kind="stable")[:, :depth]
    document = {"query_root": query_root, "database_root": database_root,
                "database": [{"image": str(n), "utm": [float(u) for u in utm]}
                             for n, utm in zip(database_list, database_utm)],
                "queries": [{"image": str(n), "utm": [float(u) for u in utm], "candidates": [int(c) for c in r]}
                            for n, utm, r in zip(query_list, query_utm, ranked)]}
    if nms_group:
        document["nms_group"] = int(nms_group)
    return document


# ---------------------------------------------------------------------------------------------- re-ranking


def rerank(candidates: np.ndarray, scores: np.ndarray, top_k: int = 100) -> np.ndarray:
    """The first ``top_k`` candidates by decreasing score (stable), the rest unchanged."""
    head = np.asarray(candidates)[:top_k]
    scores = np.asarray(scores)
    if len(scores) != len(head):
        raise ValueError(f"{len(scores)} scores for {len(head)} candidates")
    return np.concatenate([head[np.argsort(-scores, kind="stable")], np.asarray(candidates)[top_k:]])


Scorer = Callable[[int, np.ndarray], np.ndarray]  # (query index, candidate indices) -> scores


def evaluate(lists: PlaceLists, scorer: Scorer, *, top_k: int = 100, ns: Sequence[int] = RECALL_AT,
             max_queries: int | None = None, quiet: bool = True) -> dict:
    """Re-ranks every query's first ``top_k`` candidates by ``scorer`` and measures recall@N before and after."""
    count = len(lists.candidates) if max_queries is None else min(max_queries, len(lists.candidates))
    baseline, reranked = [], []
    start = time.perf_counter()
    for k in range(count):
        candidates = lists.candidates[k]
        scores = np.asarray(scorer(k, candidates[:top_k]), np.float64)
        baseline.append(candidates)
        reranked.append(rerank(candidates, scores, top_k))
        if not quiet and (k + 1) % 10 == 0:
            print(f"{k + 1}/{count} queries ({time.perf_counter() - start:.0f} s)", flush=True)
    kwargs = dict(distance_m=lists.distance_m, nms_group=lists.nms_group)
    utm = lists.query_utm[:count]
    return {"num_queries": count, "top_k": top_k, "nms_group": lists.nms_group, "distance_m": lists.distance_m,
            "recall_baseline": recall_at(baseline, utm, lists.database_utm, ns, **kwargs),
            "recall_reranked": recall_at(reranked, utm, lists.database_utm, ns, **kwargs),
            "seconds": time.perf_counter() - start,
            "reranked": [r[:top_k].tolist() for r in reranked]}


def segswap_scorer(variables: dict, lists: PlaceLists, *, size_wh: tuple[int, int] = (640, 480),
                   batch_size: int = 32, cache_gb: float = 4.0, release_normalisation: bool = False) -> Scorer:
    """S(query, candidate) with the self-pair-refined all-ones prior (module docstring)."""
    variables = jax.device_put(variables)
    cells = (size_wh[1] // 16, size_wh[0] // 16)
    capacity = max(1, int(cache_gb * 2**30 // (cells[0] * cells[1] * 1024 * 4)))
    cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def load(path: Path) -> np.ndarray:
        try:
            return resize_rgb(read_image(path), size_wh, Image.Resampling.BILINEAR)
        except ImageReadError as error:
            raise ListsError(str(error)) from None

    def database(indices: np.ndarray) -> np.ndarray:
        missing = [int(i) for i in indices if int(i) not in cache]
        for start in range(0, len(missing), batch_size):
            block = missing[start:start + batch_size]
            images = np.stack([load(lists.database_paths[i]) for i in block])
            if release_normalisation:
                images = release_inverse_normalisation(images)
            for i, feature in zip(block, collection_features(variables, images, batch_size=batch_size)):
                cache[i] = feature
        stacked = np.stack([cache[int(i)] for i in indices])
        for i in indices:
            cache.move_to_end(int(i))
        while len(cache) > max(capacity, len(indices)):
            cache.popitem(last=False)
        return stacked

    def score(query: int, candidates: np.ndarray) -> np.ndarray:
        features = extract_features(variables, jnp.asarray(load(lists.query_paths[query]))[None])[0]
        prior = refine_prior(variables, features, jnp.ones(features.shape[:2], jnp.float32))
        return score_against_collection(variables, features, database(candidates), prior=prior,
                                        batch_size=batch_size)["score"]

    return score


# ------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, variables: dict, lists: PlaceLists | None = None) -> dict:
    lists = read_lists(args.lists) if lists is None else lists
    scorer = segswap_scorer(variables, lists, size_wh=tuple(args.size), batch_size=args.batch_size,
                            cache_gb=args.cache_gb, release_normalisation=args.release_normalisation)
    result = evaluate(lists, scorer, top_k=args.top_k, ns=args.recall_at, max_queries=args.max_queries,
                      quiet=args.quiet)
    results = {"lists": str(Path(args.lists).resolve()),
               "settings": {k: v for k, v in vars(args).items() if k not in ("out", "quiet", "lists")},
               "normalisation": "release (database inverse-normalised, pitfall 6)" if args.release_normalisation
               else "ImageNet for query and database (the method)",
               **result}
    out = Path(args.out)
    outputs.save_json(os.fspath(out / "place_rerank.json"), results)
    (out / "place_rerank.md").write_text(markdown_report(results))
    return results


def markdown_report(results: dict) -> str:
    ns = list(results["recall_baseline"])
    nms = f", spatial NMS over groups of {results['nms_group']}" if results["nms_group"] else ""
    lines = [f"# Place recognition: SegSwap re-ranking of the top {results['top_k']}", "",
             f"{results['num_queries']} queries, correct within {results['distance_m']:g} m{nms}. "
             f"Normalisation: {results['normalisation']}.", "",
             "| ranking | " + " | ".join(f"R@{n}" for n in ns) + " |", "|---" * (len(ns) + 1) + "|"]
    for label, key in (("baseline", "recall_baseline"), ("SegSwap re-ranked", "recall_reranked")):
        lines.append(f"| {label} | " + " | ".join(f"{100 * results[key][n]:.1f}" for n in ns) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.place_rerank", description=__doc__.split("\n")[0])
    parser.add_argument("lists", help="lists JSON (format in the module docstring)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="SegSwap weights: hard_mining_neg5.pth or a converted directory")
    weights.add_argument("--random-weights", action="store_true", help="random network (smoke tests only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--top-k", type=int, default=100, help="candidates re-ranked per query")
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--recall-at", type=int, nargs="+", default=list(RECALL_AT))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-gb", type=float, default=4.0, help="memory for cached candidate features")
    parser.add_argument("--release-normalisation", action="store_true", help="reproduce the database loader bug")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lists = read_lists(args.lists)
        results = run(args, load_segswap(args.checkpoint, seed=args.seed), lists)
    except ListsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / 'place_rerank.json'} and place_rerank.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
