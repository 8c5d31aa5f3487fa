"""LTLL cross-domain classification with the discovery score (Table 2 of the ArtMiner paper).

  python -m eval.ltll --images DIR [--labels ltllLabel.json] [--split test|val]
                      [--checkpoint ltllModel.pth | resnet18.pth | --random-weights] [--out DIR]

``ltllLabel.json`` (the release's format)::

    {"annotation": {file name: class label}, "searchImg": [279 modern photos], "test": [209 historical photos],
     "val": [50 historical photos, all also in test]}

File names contain spaces; some labels end in a space ("Arcdetriomphe "): labels are compared exactly, as the
release does. Protocol: every query (``test`` or ``val``) is the reference I1 of one-directional discovery
against every ``searchImg`` image (40 cells, margin 3, saliency, Hough, 1000 iterations); the database is
ranked by score with a stable sort (ties keep ``searchImg`` order, so an all-zero row predicts the first image)
and the query takes the label of the first. Metric: top-1 accuracy (README: ImageNet 80.9, LTLL-trained 88.5).

Writes ``ltll_<split>.json`` (settings, accuracy, per query the prediction and the ranked database) to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from artdup_jax.data import outputs

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = REPO_ROOT.parent / "shared" / "data" / "ltll" / "ltllLabel.json"
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "ltll"


class LabelError(ValueError):
    """The label file is malformed; the message says where."""


@dataclasses.dataclass(frozen=True)
class LtllLabels:
    annotation: dict[str, str]  # file name -> class label (exact, trailing spaces kept)
    search: tuple[str, ...]  # the labelled database, in file order
    splits: dict[str, tuple[str, ...]]  # "test", "val" -> queries


def parse_labels(data, source: str = "labels") -> LtllLabels:
    if not isinstance(data, dict):
        raise LabelError(f"{source}: expected a JSON object")
    for key in ("annotation", "searchImg", "test"):
        if key not in data:
            raise LabelError(f"{source}: missing key {key!r}")
    annotation = data["annotation"]
    if not isinstance(annotation, dict) or not all(isinstance(v, str) for v in annotation.values()):
        raise LabelError(f"{source}: 'annotation' must map file names to label strings")
    splits = {k: tuple(data[k]) for k in ("test", "val") if k in data}
    search = tuple(data["searchImg"])
    for where, names in [("searchImg", search)] + list(splits.items()):
        missing = [n for n in names if n not in annotation]
        if missing:
            raise LabelError(f"{source}: {where} names without a label, e.g. {missing[0]!r}")
    return LtllLabels(dict(annotation), search, splits)


def read_labels(path: str | os.PathLike) -> LtllLabels:
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: no such label file")
    try:
        return parse_labels(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}: not valid JSON ({error})") from None


def ranked(database: Sequence[str], scores: Sequence[float]) -> list[str]:
    """Database names by decreasing score; a stable sort, so ties keep database order."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return [database[i] for i in order]


def top1_accuracy(labels: LtllLabels, queries: Sequence[str], rankings: Sequence[Sequence[str]]) -> dict:
    """Top-1 accuracy: a query is right when its label equals that of its first-ranked database image."""
    predictions = [labels.annotation[r[0]] if len(r) else None for r in rankings]
    correct = [p == labels.annotation[q] for q, p in zip(queries, predictions)]
    return {"accuracy": float(np.mean(correct)) if correct else 0.0, "correct": int(sum(correct)),
            "queries": len(queries), "predictions": predictions, "per_query_correct": correct}


# -------------------------------------------------------------------------------------------- discovery


def discovery_scores(variables, query_paths: Sequence[str], database_paths: Sequence[str], config) -> np.ndarray:
    """``(Q, N)`` one-directional discovery scores, each query the reference (features once per image)."""
    from artdup_jax.artminer.inference import extract_features, score_pairs

    paths = list(dict.fromkeys(list(query_paths) + list(database_paths)))
    bank, unreadable = extract_features(variables, paths, config)
    index = {p: i for i, p in enumerate(bank.paths)}
    scores = np.zeros((len(query_paths), len(database_paths)), np.float32)
    q_ok = [k for k, p in enumerate(query_paths) if os.path.abspath(p) in index]
    d_ok = [k for k, p in enumerate(database_paths) if os.path.abspath(p) in index]
    pairs = np.array([(index[os.path.abspath(query_paths[q])], index[os.path.abspath(database_paths[d])])
                      for q in q_ok for d in d_ok], np.int64).reshape(-1, 2)
    result = score_pairs(bank, pairs, config)
    scores[np.ix_(q_ok, d_ok)] = result.scores.reshape(len(q_ok), len(d_ok))
    for path, error in unreadable:  # an unreadable image scores 0 everywhere (the release returns 0.)
        print(f"warning: {error}", file=sys.stderr)
    return scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.ltll", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="the LTLL folder (old and new photos together)")
    parser.add_argument("--labels", default=str(DEFAULT_LABELS))
    parser.add_argument("--split", default="test", choices=["test", "val"])
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="ltllModel.pth, resnet18.pth or a converted directory")
    weights.add_argument("--random-weights", action="store_true")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--no-saliency", action="store_true")
    parser.add_argument("--scales", type=int, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from artdup_jax.artminer.inference import DiscoveryConfig, init_variables, load_weights

    args = build_parser().parse_args(argv)
    try:
        labels = read_labels(args.labels)
    except LabelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.split not in labels.splits:
        print(f"error: {args.labels} has no {args.split!r} split", file=sys.stderr)
        return 2
    variables = load_weights(args.checkpoint) if args.checkpoint else init_variables(args.seed)
    config = DiscoveryConfig(iterations=args.iterations, saliency=not args.no_saliency, seed=args.seed,
                             **({"scales": tuple(args.scales)} if args.scales else {}))
    queries = list(labels.splits[args.split])[: args.max_queries]
    folder = Path(args.images)
    start = time.perf_counter()
    scores = discovery_scores(variables, [str(folder / q) for q in queries], [str(folder / d) for d in labels.search],
                              config)
    rankings = [ranked(labels.search, row) for row in scores]
    metrics = top1_accuracy(labels, queries, rankings)
    results = {"split": args.split, "num_queries": len(queries), "num_database": len(labels.search),
               "accuracy": metrics["accuracy"], "seconds": time.perf_counter() - start,
               "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "per_query": [{"query": q, "label": labels.annotation[q], "predicted": p, "correct": c,
                              "ranked": r[:10]} for q, p, c, r in zip(queries, metrics["predictions"],
                                                                      metrics["per_query_correct"], rankings)]}
    path = outputs.save_json(os.fspath(Path(args.out) / f"ltll_{args.split}.json"), results)
    print(f"LTLL {args.split}: top-1 accuracy {100 * metrics['accuracy']:.1f} "
          f"({metrics['correct']}/{len(queries)}); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
