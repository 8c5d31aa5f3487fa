"""pairs.csv and groups.csv: the better direction's boxes in (image_a, image_b) order, group ids, region boxes."""

import csv

import numpy as np

from artdup_jax.app.discovery_tables import group_of_images, scored_pair_rows, write_tables
from artdup_jax.artminer.discovery import PairScores
from artdup_jax.report.tables import GROUP_COLUMNS, PAIR_COLUMNS

DOCUMENT = {"groups": [{"id": 4, "images": [
    {"file": "a.jpg", "width": 100, "height": 80, "regions": [[10, 10, 30, 30], [20, 5, 60, 25]]},
    {"file": "b.jpg", "width": 100, "height": 80, "regions": [[1, 2, 3, 4]]}],
    "pairs": [{"a": "b.jpg", "b": "a.jpg", "score": 0.9}]}]}


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_each_pair_reports_its_better_direction_with_boxes_in_its_own_order(tmp_path):
    # Pairs (0, 1) and (0, 2), both directions: rows 0-1 forward, rows 2-3 backward. Pair (0, 1) scores
    # better backward (1 -> 0): its reference box is image 1's, so image_a (0) gets the target box.
    pairs = np.array([[0, 1], [0, 2]])
    directional = PairScores(
        pairs=np.array([[0, 1], [0, 2], [1, 0], [2, 0]]), scores=np.array([0.2, 0.05, 0.9, 0.01], np.float32),
        num_matches=np.array([5, 2, 40, 1]),
        reference_boxes=np.array([[0, 0, 1, 1], [2, 2, 3, 3], [1, 2, 3, 4], [4, 4, 5, 5]], np.float64),
        target_boxes=np.array([[6, 6, 7, 7], [8, 8, 9, 9], [10, 10, 30, 30], [9, 9, 9, 9]], np.float64))
    rows = list(scored_pair_rows(pairs, directional, symmetric=True, threshold=0.1,
                                 names=["a.jpg", "b.jpg", "c.jpg"], group_of=group_of_images(DOCUMENT)))
    counts = write_tables(tmp_path, DOCUMENT, iter(rows))
    columns, written = _read(tmp_path / "pairs.csv")
    assert tuple(columns) == PAIR_COLUMNS and counts == {"pairs.csv": 2, "groups.csv": 2}
    first, second = written
    assert (first["image_a"], first["image_b"], float(first["score"]), first["num_matches"]) == \
        ("a.jpg", "b.jpg", 0.9, "40")
    assert [float(first[c]) for c in ("a_x1", "a_y1", "a_x2", "a_y2")] == [10, 10, 30, 30]
    assert [float(first[c]) for c in ("b_x1", "b_y1", "b_x2", "b_y2")] == [1, 2, 3, 4]
    assert first["group"] == "4"
    assert (second["image_b"], float(second["score"]), second["group"]) == ("c.jpg", 0.05, "")
    assert [float(second[c]) for c in ("a_x1", "b_x1")] == [2, 8]


def test_group_rows_hold_the_union_of_each_images_regions(tmp_path):
    write_tables(tmp_path, DOCUMENT, [])
    columns, rows = _read(tmp_path / "groups.csv")
    assert tuple(columns) == GROUP_COLUMNS and len(rows) == 2
    assert {k: rows[0][k] for k in ("group", "group_size", "image", "num_regions")} == \
        {"group": "4", "group_size": "2", "image": "a.jpg", "num_regions": "2"}
    assert [float(rows[0][c]) for c in ("x1", "y1", "x2", "y2")] == [10, 5, 60, 30]
    assert float(rows[1]["best_score"]) == float(rows[1]["group_best_score"]) == 0.9
    assert _read(tmp_path / "pairs.csv") == (list(PAIR_COLUMNS), [])
