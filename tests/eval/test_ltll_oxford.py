"""LTLL and Oxford5K: readers of the official layouts, ranked lists, AP / accuracy by hand, and a tiny LTLL-style
run of the discovery ranking on planted copies."""

import json

import numpy as np
import pytest

from artdup_jax.artminer import init_variables
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.data.synthetic_collection import make_collection
from eval import ltll, oxford


def test_compute_ap_skips_junk_and_integrates_trapezoids():
    ranked = ["a", "x", "j", "b", "y"]
    # a: recall 1/2, precision 1 -> +1/2 * (1 + 1)/2; x: recall unchanged; j: junk, skipped;
    # b: recall 1, precision 2/3 -> +1/2 * (1/2 + 2/3)/2. Total 1/2 + 7/24 = 19/24.
    assert oxford.compute_ap({"a", "b"}, {"j"}, ranked) == pytest.approx(19 / 24)
    assert oxford.compute_ap({"a", "b"}, set(), ["a", "b", "x"]) == pytest.approx(1.0)
    # x: precision drops to 0 at recall 0; a: recall 1 at precision 1/2 -> 1 * (0 + 1/2) / 2.
    assert oxford.compute_ap({"a"}, set(), ["x", "a"]) == pytest.approx(0.25)


def test_artminer_ap_counts_junk_as_negative():
    # Positives at ranks 1 and 4 (the junk image at rank 3 counts): (1/1 + 2/4) / 2.
    assert oxford.artminer_ap({"a", "b"}, ["a", "x", "j", "b", "y"]) == pytest.approx(0.75)
    assert oxford.artminer_ap({"z"}, ["a", "b"]) == 0.0


def test_ranking_is_stable_so_zero_ties_keep_database_order():
    assert oxford.ranked(["p", "q", "r", "s"], [0.0, 0.2, 0.0, 0.2]) == ["q", "s", "p", "r"]
    assert ltll.ranked(["p", "q", "r"], [0, 0, 0]) == ["p", "q", "r"]


def test_artminer_json_with_boxes_and_plain_lists(tmp_path):
    box_file = tmp_path / "OxfordTestBB.json"
    box_file.write_text(json.dumps({
        "test": ["all_souls_000013.jpg", "radcliffe_camera_000519.jpg"], "val": ["all_souls_000013.jpg"],
        "searchImg": ["all_souls_000013.jpg", "all_souls_000026.jpg", "radcliffe_camera_000519.jpg", "x.jpg"],
        "annotation": {"all_souls_000013.jpg": {"gt": ["all_souls_000013.jpg", "all_souls_000026.jpg"],
                                                "bbox": [136, 34, 648, 955]},
                       "radcliffe_camera_000519.jpg": {"gt": ["radcliffe_camera_000519.jpg"],
                                                       "bbox": [10, 20, 30, 40]}}}))
    benchmark = oxford.read_artminer_json(box_file)
    assert [q.name for q in benchmark.queries] == ["all_souls_000013.jpg", "radcliffe_camera_000519.jpg"]
    assert benchmark.queries[0].box == (136, 34, 648, 955) and not benchmark.queries[0].junk
    assert len(oxford.read_artminer_json(box_file, split="val").queries) == 1
    rankings = [["all_souls_000013.jpg", "x.jpg", "all_souls_000026.jpg", "radcliffe_camera_000519.jpg"],
                ["radcliffe_camera_000519.jpg", "x.jpg", "all_souls_000013.jpg", "all_souls_000026.jpg"]]
    result = oxford.evaluate(benchmark, rankings)
    assert result["mAP_artminer"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    plain = tmp_path / "OxfordTest.json"
    plain.write_text(json.dumps({"test": ["q.jpg"], "searchImg": ["q.jpg"], "annotation": {"q.jpg": ["q.jpg"]}}))
    assert oxford.read_artminer_json(plain).queries[0].box is None
    plain.write_text(json.dumps({"test": ["q.jpg"], "searchImg": ["q.jpg"], "annotation": {}}))
    with pytest.raises(oxford.AnnotationError, match="no annotation"):
        oxford.read_artminer_json(plain)


def test_official_gt_files_and_ranked_list_round_trip(tmp_path):
    gt = tmp_path / "gt_files"
    gt.mkdir()
    (gt / "all_souls_1_query.txt").write_text("oxc1_all_souls_000013 136.5 34.1 648.5 955.7\n")
    (gt / "all_souls_1_good.txt").write_text("all_souls_000013\nall_souls_000026\n")
    (gt / "all_souls_1_ok.txt").write_text("oxford_003410\n")
    (gt / "all_souls_1_junk.txt").write_text("all_souls_000051\n")
    benchmark = oxford.read_gt_files(gt)
    (query,) = benchmark.queries
    assert query.name == "all_souls_1" and query.image == "all_souls_000013.jpg"
    assert query.box == (136.5, 34.1, 648.5, 955.7)
    assert query.positives == {"all_souls_000013.jpg", "all_souls_000026.jpg", "oxford_003410.jpg"}
    assert query.junk == {"all_souls_000051.jpg"}
    ranked = ["all_souls_000013.jpg", "all_souls_000051.jpg", "x.jpg", "all_souls_000026.jpg", "oxford_003410.jpg"]
    path = oxford.write_ranked_list(tmp_path / "ranked" / "all_souls_1.txt", ranked)
    assert oxford.read_ranked_list(path) == ranked
    # Without junk: hits at ranks 1, 3, 4 of 3 positives:
    # 1/3 (1 + 1)/2 + 0 + 1/3 (1/2 + 2/3)/2 + 1/3 (2/3 + 3/4)/2.
    expected = (1 / 3) * 1 + (1 / 3) * (1 / 2 + 2 / 3) / 2 + (1 / 3) * (2 / 3 + 3 / 4) / 2
    assert oxford.evaluate(benchmark, [ranked])["mAP_official"] == pytest.approx(expected)
    (gt / "all_souls_1_ok.txt").unlink()
    with pytest.raises(oxford.AnnotationError, match="missing"):
        oxford.read_gt_files(gt)


def _ltll_file(tmp_path):
    path = tmp_path / "ltllLabel.json"
    path.write_text(json.dumps({
        "annotation": {"LtllOld_1 a.jpg": "Arcdetriomphe ", "LtllOld_2.jpg": "BigBen",
                       "LtllNew_a.jpg": "Arcdetriomphe ", "LtllNew_b.jpg": "BigBen", "LtllNew_c.jpg": "Arcdetriomphe"},
        "searchImg": ["LtllNew_a.jpg", "LtllNew_b.jpg", "LtllNew_c.jpg"],
        "test": ["LtllOld_1 a.jpg", "LtllOld_2.jpg"], "val": ["LtllOld_2.jpg"]}))
    return path


def test_ltll_labels_top1_with_exact_labels_and_stable_ties(tmp_path):
    labels = ltll.read_labels(_ltll_file(tmp_path))
    assert labels.search == ("LtllNew_a.jpg", "LtllNew_b.jpg", "LtllNew_c.jpg")
    assert labels.splits["val"] == ("LtllOld_2.jpg",)
    scores = np.array([[0.1, 0.0, 0.2],   # best: new c, "Arcdetriomphe" != "Arcdetriomphe " -> wrong
                       [0.0, 0.3, 0.3]])  # tie: new b first (stable) -> BigBen, right
    rankings = [ltll.ranked(labels.search, row) for row in scores]
    result = ltll.top1_accuracy(labels, list(labels.splits["test"]), rankings)
    assert result["accuracy"] == 0.5 and result["predictions"] == ["Arcdetriomphe", "BigBen"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotation": {}, "searchImg": ["x.jpg"], "test": []}))
    with pytest.raises(ltll.LabelError, match="without a label"):
        ltll.read_labels(bad)


def test_ltll_protocol_ranks_planted_copies_first(tmp_path):
    """One instance of each planted detail is a query, the others and a distractor the labelled database."""
    collection = make_collection(tmp_path / "ltll", seed=0, num_categories=2, instances_per_category=3,
                                 num_distractors=1, image_size=(128, 160), detail_fraction=(0.4, 0.5),
                                 aspect_jitter=0.1, style_strength=0.0, context=0.3, border=16)
    label = {i.image: i.category for i in collection.instances}
    queries = [entries[0]["query"][0] for entries in collection.annotations.values()]
    database = [n for n in collection.images if n not in queries]
    labels = ltll.LtllLabels({n: label.get(n, "distractor") for n in collection.images}, tuple(database),
                             {"test": tuple(queries)})
    config = DiscoveryConfig(reference_cells=16, margin=2, scales=(20, 16, 12), saliency=False,
                             descriptor_cells=12, pairs_per_batch=8)
    scores = ltll.discovery_scores(init_variables(0), [str(collection.folder / q) for q in queries],
                                   [str(collection.folder / d) for d in database], config)
    rankings = [ltll.ranked(database, row) for row in scores]
    assert ltll.top1_accuracy(labels, queries, rankings)["accuracy"] == 1.0
    # And as retrieval: both copies of each query's detail come before everything else (AP 1).
    for q, r in zip(queries, rankings):
        assert oxford.artminer_ap({n for n in database if label.get(n) == label[q]}, r) == 1.0
