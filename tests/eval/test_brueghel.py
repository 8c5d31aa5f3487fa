"""eval.brueghel: the official annotation files, AP / mAP on hand-made rankings, input errors, end to end."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.synthetic_collection import make_collection
from eval import brueghel

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brueghel"
GT = [("a.jpg", (0, 0, 10, 10)), ("b.jpg", (5, 5, 25, 25)), ("c.jpg", (0, 0, 40, 20))]


def _real(name):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data folder is only in CI and the project checkout)")
    return path


def test_official_test_annotations_parse():
    queries = brueghel.read_annotations(_real("brueghelTest.json"))
    assert len(queries) == 273 and len({q.image for q in queries}) == 146
    assert Counter(q.category for q in queries) == {"11": 13, "0000": 50, "55": 11, "44": 28, "888": 57, "444": 28,
                                                     "5555": 27, "555": 13, "000": 24, "66": 22}
    for q in queries:
        assert len(q.gt) == Counter(x.category for x in queries)[q.category] - 1
        assert q.image not in {name for name, _ in q.gt}


def test_official_val_annotations_parse_and_are_test_queries():
    val = brueghel.read_annotations(_real("brueghelVal.json"))
    test = {(q.category, q.image, q.box) for q in brueghel.read_annotations(_real("brueghelTest.json"))}
    assert len(val) == 20 and Counter(q.category for q in val) == {c: 2 for c in {q.category for q in val}}
    assert {(q.category, q.image, q.box) for q in val} <= test


def test_perfect_ranking_has_ap_one():
    ap, matched = brueghel.average_precision([*GT, ("d.jpg", (0, 0, 5, 5))], GT)
    assert ap == 1.0 and matched == [1, 2, 3, 0]


def test_known_permutation_gives_the_hand_computed_ap():
    ranking = [("d.jpg", (0, 0, 5, 5)), GT[1], ("a.jpg", (50, 50, 60, 60)), GT[0]]  # TP at ranks 2 and 4
    ap, matched = brueghel.average_precision(ranking, GT)
    assert matched == [0, 2, 0, 1]
    assert ap == pytest.approx((1 / 2 + 2 / 4) / 3)  # divided by all 3 ground truths, not the 2 found


def test_iou_threshold_is_strict_and_each_ground_truth_counts_once():
    exactly_03 = ("a.jpg", (0, 0, 10, 3))  # IoU 30 / 100 = 0.3: not > 0.3
    assert brueghel.iou(exactly_03[1], np.array([GT[0][1]]))[0] == pytest.approx(0.3)
    assert brueghel.average_precision([exactly_03], GT[:1])[0] == 0.0
    ap, matched = brueghel.average_precision([GT[0], GT[0]], GT[:1])
    assert ap == 1.0 and matched == [1, 0]


def test_predictions_beyond_the_cut_do_not_count():
    assert brueghel.average_precision([("d.jpg", (0, 0, 1, 1)), GT[0]], GT[:1], num_predictions=1)[0] == 0.0


def test_both_averages():
    queries = [brueghel.AnnotatedQuery(c, i, "x.jpg", (0, 0, 1, 1), ()) for c, i in [("a", 0), ("a", 1), ("b", 0)]]
    summary = brueghel.summarise(queries, [1.0, 0.5, 0.0])
    assert summary["mAP_per_query"] == pytest.approx(0.5)
    assert summary["mAP_per_class"] == pytest.approx((0.75 + 0.0) / 2)
    assert summary["per_class"]["a"] == {"AP": 0.75, "queries": 2}


@pytest.fixture()
def small_folder(tmp_path):
    for name, size in [("a.jpg", (40, 30)), ("b.jpg", (30, 30))]:  # PIL sizes (W, H)
        Image.new("RGB", size).save(tmp_path / name)
    return tmp_path


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_missing_image_is_named(small_folder):
    annotations = _write(small_folder / "ann.json", {"7": [{"query": ["a.jpg", [0, 0, 10, 10]],
                                                            "gt": [["missing.jpg", [0, 0, 5, 5]]]}]})
    with pytest.raises(brueghel.AnnotationError, match=r"class '7' instance 0 gt 0: image 'missing.jpg' not found"):
        brueghel.check_against_images(brueghel.read_annotations(annotations), small_folder)


def test_box_outside_its_image_is_named(small_folder):
    annotations = _write(small_folder / "ann.json", {"7": [{"query": ["a.jpg", [0, 0, 41, 10]],
                                                            "gt": [["b.jpg", [0, 0, 5, 5]]]}]})
    with pytest.raises(brueghel.AnnotationError, match=r"query: box \[0, 0, 41, 10\] is empty or outside image "
                                                        r"'a.jpg' \(40x30\)"):
        brueghel.check_against_images(brueghel.read_annotations(annotations), small_folder)


def test_malformed_annotations_say_where(tmp_path):
    with pytest.raises(brueghel.AnnotationError, match=r"class '1' instance 0 query: expected \[image_name"):
        brueghel.parse_annotations({"1": [{"query": ["a.jpg", [1, 2, 3]], "gt": []}]})
    with pytest.raises(brueghel.AnnotationError, match="'gt' must be a non-empty list"):
        brueghel.parse_annotations({"1": [{"query": ["a.jpg", [1, 2, 3, 4]], "gt": []}]})


def test_command_reports_missing_images_without_a_traceback(small_folder, capsys):
    annotations = _write(small_folder / "ann.json", {"7": [{"query": ["gone.jpg", [0, 0, 10, 10]],
                                                            "gt": [["a.jpg", [0, 0, 5, 5]]]}]})
    code = brueghel.main(["--images", str(small_folder), "--annotations", str(annotations), "--random-weights",
                          "--out", str(small_folder / "out")])
    assert code == 2 and "image 'gone.jpg' not found" in capsys.readouterr().err


def test_end_to_end_on_a_tiny_synthetic_collection(tmp_path):
    collection = make_collection(tmp_path / "images", seed=0, num_categories=2, instances_per_category=3,
                                 num_distractors=2, image_size=(128, 160), detail_fraction=(0.4, 0.5),
                                 aspect_jitter=0.1, style_strength=0.0, context=0.3, border=16)
    out = tmp_path / "out"
    code = brueghel.main(["--images", str(collection.folder), "--annotations", str(collection.annotation_path),
                          "--random-weights", "--scales", "20", "16", "--out", str(out), "--max-queries", "4",
                          "--num-predictions", "30", "--quiet"])
    assert code == 0
    results = json.loads((out / "brueghel_artminer.json").read_text())
    assert results["num_queries"] == 4 and results["num_images"] == 8
    assert 0.0 <= results["mAP_per_class"] <= 1.0 and results["mAP_per_query"] > 0.5
    assert [r["category"] for r in results["per_query"]] == ["c0", "c0", "c0", "c1"]
    detections = json.loads((out / "detections_artminer.json").read_text())
    assert len(detections) == 4 and 0 < len(detections[0]["detections"]) <= 30
    image, box, score, matched = detections[0]["detections"][0]
    assert image in collection.images and len(box) == 4 and isinstance(score, float) and matched >= 0
    assert "mAP per query" in (out / "brueghel_artminer.md").read_text()


def test_rerank_by_discovery_score_end_to_end(tmp_path):
    collection = make_collection(tmp_path / "images", seed=0, num_categories=2, instances_per_category=3,
                                 num_distractors=2, image_size=(128, 160), detail_fraction=(0.4, 0.5),
                                 aspect_jitter=0.1, style_strength=0.0, context=0.3, border=16)
    out = tmp_path / "out"
    code = brueghel.main(["--images", str(collection.folder), "--annotations", str(collection.annotation_path),
                          "--random-weights", "--scales", "20", "16", "--out", str(out), "--max-queries", "2",
                          "--num-predictions", "30", "--rerank", "10", "--quiet"])
    assert code == 0
    results = json.loads((out / "brueghel_artminer.json").read_text())
    assert results["settings"]["rerank"] == 10 and results["mAP_per_query"] > 0.5
    detections = json.loads((out / "detections_artminer.json").read_text())
    assert all(0 < len(d["detections"]) <= 30 for d in detections)
