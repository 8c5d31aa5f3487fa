"""The CSV files of a discovery, written beside ``discovery.json`` (Python's ``csv`` module, one header line).

``pairs.csv``, one row per verified (scored) pair, streamed from any iterable of rows:
  image_a, image_b        file names relative to the collection's folder
  score                   the pair's score (the better of its two directions)
  num_matches             matches that survived verification in that direction
  a_x1 a_y1 a_x2 a_y2     the matched region on image_a, original pixels ([x1, y1, x2, y2], x = column)
  b_x1 b_y1 b_x2 b_y2     the matched region on image_b
  group                   id of the group the pair links (above the threshold), empty if none

``groups.csv``, one row per (group, image):
  group, group_size, group_best_score   the group's id, its number of images, its best pair score
  image                                 file name relative to the collection's folder
  x1 y1 x2 y2                           box around the image's matched regions in the group, original pixels
  num_regions                           regions outlined on the image
  best_score                            the best score of the group's pairs that include the image
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Iterable

PAIR_COLUMNS = ("image_a", "image_b", "score", "num_matches", "a_x1", "a_y1", "a_x2", "a_y2",
                "b_x1", "b_y1", "b_x2", "b_y2", "group")
GROUP_COLUMNS = ("group", "group_size", "group_best_score", "image", "x1", "y1", "x2", "y2", "num_regions",
                 "best_score")


def write_csv(path: str | os.PathLike, columns: tuple[str, ...], rows: Iterable[dict]) -> int:
    """Writes ``rows`` (dicts keyed by ``columns``; None -> empty) as it reads them, into a temporary file
    renamed onto ``path`` at the end (an interrupted run leaves the earlier file); returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".csv")
    count = 0
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                count += 1
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


def group_rows(document: dict) -> Iterable[dict]:
    """``groups.csv`` rows of a discovery document (``app.discover.result_json``'s layout)."""
    for group in document.get("groups", []):
        best: dict[str, float] = {}
        for pair in group.get("pairs", []):
            for name in (pair["a"], pair["b"]):
                best[name] = max(best.get(name, float("-inf")), float(pair["score"]))
        group_best = max(best.values(), default=None)
        for image in group["images"]:
            regions = image.get("regions", [])
            box = ([min(r[0] for r in regions), min(r[1] for r in regions), max(r[2] for r in regions),
                    max(r[3] for r in regions)] if regions else [None] * 4)
            yield {"group": group["id"], "group_size": len(group["images"]), "group_best_score": group_best,
                   "image": image["file"], **dict(zip(("x1", "y1", "x2", "y2"), box)),
                   "num_regions": len(regions), "best_score": best.get(image["file"])}
