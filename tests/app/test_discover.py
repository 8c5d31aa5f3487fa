"""artdup_jax.app.discover end to end on a tiny synthetic collection with a broken file, its report, and the
planted-group metrics."""

import csv
import json
import re

import numpy as np
import pytest

from artdup_jax.app.discover import discover_folder, planted_metrics
from artdup_jax.app.reports import discovery_report
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.data.synthetic_collection import make_collection

# Random weights (init_variables(0)), exact copies on 128 x 160 px images; see tests/artminer/test_discovery.py
# for why saliency is off and the threshold is 0.15.
CONFIG = DiscoveryConfig(reference_cells=16, margin=2, scales=(20, 16, 12), descriptor_cells=12, saliency=False,
                         threshold=0.15, pairs_per_batch=8, top_k=5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    collection = make_collection(folder, seed=0, num_categories=2, instances_per_category=3, num_distractors=1,
                                 image_size=(128, 160), detail_fraction=(0.4, 0.5), aspect_jitter=0.1,
                                 style_strength=0.0, context=0.3, border=16)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path_factory.mktemp("out")
    return collection, out, discover_folder(folder, out, CONFIG)


def test_writes_groups_with_regions_and_lists_unreadable_files(run):
    collection, out, _ = run
    result = json.loads((out / "discovery.json").read_text())
    assert [u["file"] for u in result["unreadable"]] == ["broken.jpg"]
    assert "annotations.json" in result["skipped"]
    assert result["num_images"] == len(collection.images)
    planted = sorted(sorted(e["query"][0] for e in entries) for entries in collection.annotations.values())
    assert sorted(sorted(i["file"] for i in g["images"]) for g in result["groups"]) == planted
    for group in result["groups"]:
        for image in group["images"]:
            assert image["regions"], image
            for x1, y1, x2, y2 in image["regions"]:
                assert 0 <= x1 < x2 <= image["width"] and 0 <= y1 < y2 <= image["height"]
        assert all(p["score"] > 0.15 for p in group["pairs"])


def test_report_images_exist_and_regions_are_outlined(run):
    _, _, discovery = run
    index = discovery_report(discovery)
    page = index.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 6 + 1  # two groups of three, and the histogram of pair scores
    assert all((index.parent / s).is_file() for s in sources)
    assert page.count("<rect ") >= 6
    assert "broken.jpg" in page


def test_planted_metrics_by_hand():
    # Planted {0, 1, 2} and {3, 4}; found {0, 1} and {2, 3, 4}.
    pairs = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4], [1, 4]])
    scores = np.array([0.5, 0.0, 0.01, 0.3, 0.4, 0.2])
    metrics = planted_metrics(pairs, scores, 0.1, [[0, 1], [2, 3, 4]], [[0, 1, 2], [3, 4]])
    # Edges above 0.1: (0,1) yes, (2,3) no, (3,4) yes, (1,4) no -> precision 2/4; 4 true pairs -> recall 2/4.
    assert metrics["pair_precision"] == 0.5 and metrics["pair_recall"] == 0.5
    # Co-membership: found pairs (0,1), (2,3), (2,4), (3,4): true (0,1), (3,4) -> 2/4; recall 2/4.
    assert metrics["group_precision"] == 0.5 and metrics["group_recall"] == 0.5
    assert metrics["groups_exact"] == 0 and metrics["groups_found"] == 2


def test_csv_files_hold_every_scored_pair_and_every_grouped_image(run):
    _, out, discovery = run
    document = discovery.document
    with open(out / "pairs.csv", newline="") as f:
        pairs = list(csv.DictReader(f))
    with open(out / "groups.csv", newline="") as f:
        images = list(csv.DictReader(f))
    assert len(pairs) == document["num_pairs_scored"]
    linked = {frozenset((p["image_a"], p["image_b"])): p for p in pairs if p["group"]}
    expected = {frozenset((p["a"], p["b"])): (g["id"], p) for g in document["groups"] for p in g["pairs"]}
    assert linked.keys() == expected.keys() and linked
    for key, (gid, pair) in expected.items():
        row = linked[key]
        side = {row["image_a"]: "a_", row["image_b"]: "b_"}
        assert int(row["group"]) == gid and float(row["score"]) == pytest.approx(pair["score"], abs=1e-5)
        assert [float(row[side[pair["a"]] + c]) for c in ("x1", "y1", "x2", "y2")] == pair["box_a"]
        assert [float(row[side[pair["b"]] + c]) for c in ("x1", "y1", "x2", "y2")] == pair["box_b"]
    assert [(int(r["group"]), r["image"]) for r in images] == \
        [(g["id"], i["file"]) for g in document["groups"] for i in g["images"]]
