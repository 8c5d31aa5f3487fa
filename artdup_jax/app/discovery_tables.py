"""``pairs.csv`` and ``groups.csv`` beside a discovery's ``discovery.json`` (columns: ``report.tables``).

    write_tables(out_dir, document, scored_pair_rows(result.pairs, result.directional, ...))

The pair rows are a generator: ``artdup discover --index`` feeds it one chunk of the index's pair log at a
time, so the file grows with the collection and the memory does not.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from artdup_jax.artminer.discovery import PairScores, symmetric_scores
from artdup_jax.report.tables import GROUP_COLUMNS, PAIR_COLUMNS, group_rows, write_csv


def group_of_images(document: dict) -> dict[str, int]:
    """Image name -> id of the group holding it (an image is in at most one group)."""
    return {image["file"]: group["id"] for group in document.get("groups", []) for image in group["images"]}


def _box(prefix: str, box) -> dict:
    return {f"{prefix}{c}": round(float(v), 1) for c, v in zip(("x1", "y1", "x2", "y2"), box)}


def scored_pair_rows(pairs: np.ndarray, directional: PairScores, *, symmetric: bool, threshold: float,
                     names: Sequence[str] | Mapping[int, str], group_of: Mapping[str, int],
                     keep: np.ndarray | None = None) -> Iterator[dict]:
    """``pairs.csv`` rows of scored pairs.

    pairs: ``(M, 2)`` unordered image ids; directional: their scores in both directions (rows ``k`` and
    ``M + k`` when ``symmetric``), as ``artminer.discovery.score_pairs`` returns them; each pair reports the
    better direction, its boxes swapped into ``(image_a, image_b)`` order. ``names``: image id -> file name;
    ``keep``: ``(M,)`` bool, the pairs to write (None: all). A pair gets a group id when it scores above
    ``threshold`` and both images are in that group.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return
    scores, row = symmetric_scores(pairs, directional, symmetric)
    forward = directional.pairs[row, 0] == pairs[:, 0]  # the chosen direction's reference is image a
    box_a = np.where(forward[:, None], directional.reference_boxes[row], directional.target_boxes[row])
    box_b = np.where(forward[:, None], directional.target_boxes[row], directional.reference_boxes[row])
    for k in np.nonzero(keep)[0] if keep is not None else range(len(pairs)):
        a, b = names[int(pairs[k, 0])], names[int(pairs[k, 1])]
        group = group_of.get(a)
        linked = group is not None and group_of.get(b) == group and scores[k] > threshold
        yield {"image_a": a, "image_b": b, "score": round(float(scores[k]), 5),
               "num_matches": int(directional.num_matches[row[k]]), **_box("a_", box_a[k]), **_box("b_", box_b[k]),
               "group": group if linked else None}


def write_tables(out_dir: str | os.PathLike, document: dict, pair_rows: Iterable[dict]) -> dict[str, int]:
    """Writes ``out_dir/pairs.csv`` (from ``pair_rows``) and ``out_dir/groups.csv`` (from ``document``);
    returns the number of rows of each."""
    return {"pairs.csv": write_csv(os.path.join(out_dir, "pairs.csv"), PAIR_COLUMNS, pair_rows),
            "groups.csv": write_csv(os.path.join(out_dir, "groups.csv"), GROUP_COLUMNS, group_rows(document))}
