"""SegSwap evaluations: Internet co-segmentation (P / J), place-recognition re-ranking (recall@N), and the
``segswap`` method of eval.brueghel. Metrics on hand-made cases; the model pipelines with random weights on tiny
folders (plumbing only). Sizes match tests/segswap so that compiled functions are shared."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.synthetic_collection import make_collection
from artdup_jax.segswap import metrics, retrieval, weights
from eval import brueghel, internet_coseg, place_rerank
from tests.segswap.test_retrieval import TINY, random_variables

# ----------------------------------------------------------------------------------------------- Internet


def test_precision_and_jaccard_on_hand_made_masks():
    truth = np.array([[1, 1, 0], [0, 0, 0]], bool)
    predicted = np.array([[1, 0, 0], [1, 0, 0]], bool)
    # Right on 4 of 6 pixels; intersection 1, union 3.
    assert metrics.mask_scores(predicted, truth) == pytest.approx((4 / 6, 1 / 3))
    assert metrics.mask_scores(predicted, np.zeros_like(truth)) == pytest.approx((4 / 6, None))


def internet_layout(root, name="Horse100", count=5, size_hw=(40, 56), seed=0):
    """Rubinstein layout: ``root/name/*.jpg`` and ``root/name/GroundTruth/*.png``; the last image has no object."""
    rng = np.random.default_rng(seed)
    folder = root / name
    (folder / "GroundTruth").mkdir(parents=True)
    height, width = size_hw
    for k in range(count):
        image = (rng.uniform(size=(height, width, 3)) * 80).astype(np.uint8)
        mask = np.zeros((height, width), np.uint8)
        if k < count - 1:
            top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
            mask[top:top + height // 2, left:left + width // 2] = 255
            image[mask > 0] = (200, 150, 60)
        Image.fromarray(image).save(folder / f"{k:03d}.jpg")
        Image.fromarray(mask).save(folder / "GroundTruth" / f"{k:03d}.png")
    return folder


def test_perfect_masks_have_precision_and_jaccard_one(tmp_path):
    entries = internet_coseg.class_entries(internet_layout(tmp_path))
    result = internet_coseg.evaluate_masks(entries, [internet_coseg.read_mask(gt) for _, _, gt in entries])
    assert result["P"] == 1.0 and result["J"] == 1.0
    assert result["num_images"] == 5 and result["num_with_object"] == 4  # J skips the empty ground truth


def test_grabcut_recovers_a_square_from_a_coarse_heat_map():
    image = np.full((64, 64, 3), 0.1, np.float32)
    image[16:48, 16:48] = (0.9, 0.8, 0.2)
    heat = np.zeros((4, 4), np.float32)
    heat[1:3, 1:3] = 1.0
    heat[1, 3] = 0.2  # a weak spill to the right: probable foreground only
    mask = internet_coseg.grabcut_mask(image, internet_coseg.upsample(heat, (64, 64)))
    truth = np.zeros((64, 64), bool)
    truth[16:48, 16:48] = True
    assert metrics.mask_scores(mask, truth)[1] > 0.9
    assert not internet_coseg.grabcut_mask(image, np.zeros((64, 64), np.float32)).any()


def test_missing_ground_truth_is_named(tmp_path, capsys):
    folder = internet_layout(tmp_path)
    (folder / "GroundTruth" / "002.png").unlink()
    code = internet_coseg.main(["--root", str(tmp_path), "--classes", "Horse100", "--random-weights",
                                "--out", str(tmp_path / "out")])
    assert code == 2 and "no ground truth 002.png for 002.jpg" in capsys.readouterr().err


def test_internet_coseg_runs_with_random_weights(tmp_path):
    internet_layout(tmp_path)
    args = internet_coseg.build_parser().parse_args(
        ["--root", str(tmp_path), "--classes", "Horse100", "--random-weights", "--size", "64", "--batch-size", "4",
         "--out", str(tmp_path / "out"), "--quiet"])
    results = internet_coseg.run(args, random_variables())
    record = results["per_class"][0]
    assert record["sigma"] == 1.2 and record["num_pairs"] == 10 and record["num_images"] == 5
    assert 0.0 <= record["P"] <= 1.0 and (record["J"] is None or 0.0 <= record["J"] <= 1.0)
    saved = json.loads((tmp_path / "out" / "internet_coseg.json").read_text())
    assert saved["mean"]["P"] == pytest.approx(record["P"]) and "ImageNet" in saved["normalisation"]
    assert cv2.imread(str(tmp_path / "out" / "masks" / "Horse100" / "004.png"), cv2.IMREAD_GRAYSCALE).shape == (40, 56)
    args.masks, args.refine = "pairwise", "threshold"
    assert 0.0 <= internet_coseg.run(args, random_variables())["mean"]["P"] <= 1.0


# ------------------------------------------------------------------------------------------ place re-ranking


def test_spatial_nms_and_recall_by_hand():
    ranking = np.array([25, 13, 26, 2, 14, 40])  # places (// 12): 2, 1, 2, 0, 1, 3
    np.testing.assert_array_equal(metrics.spatial_nms(ranking, 12), [25, 13, 2, 40])
    database_utm = np.zeros((48, 2))
    database_utm[:, 0] = np.arange(48) * 10.0  # index k at k · 10 m
    query_utm = np.array([[20.0, 0.0], [400.0, 0.0]])  # index 2 is 0 m from query 0; index 40 is 0 m from query 1
    recall = metrics.recall_at([ranking, ranking], query_utm, database_utm, (1, 3, 4), nms_group=12)
    assert recall == {1: 0.0, 3: 0.5, 4: 1.0}
    recall = metrics.recall_at([ranking, ranking], query_utm, database_utm, (1, 4, 6), distance_m=25)
    assert recall == {1: 0.0, 4: 0.5, 6: 1.0}


def _lists(tmp_path, *, with_images=False, queries=3, database=12):
    """Database k at (k · 100 m, 0); query q at database 3q's place; the baseline ranks it third."""
    if with_images:
        rng = np.random.default_rng(1)
        for folder, count in (("query", queries), ("database", database)):
            (tmp_path / folder).mkdir()
            for k in range(count):
                pixels = np.kron(rng.uniform(size=(4, 4, 3)), np.ones((16, 16, 1)))
                Image.fromarray((pixels * 255).astype(np.uint8)).save(tmp_path / folder / f"{k:02d}.png")
    document = {
        "query_root": "query", "database_root": "database",
        "database": [{"image": f"{k:02d}.png", "utm": [100.0 * k, 0.0]} for k in range(database)],
        "queries": [{"image": f"{q:02d}.png", "utm": [300.0 * q, 0.0],
                     "candidates": [(3 * q + 1) % database, (3 * q + 2) % database, 3 * q, (3 * q + 5) % database]}
                    for q in range(queries)],
    }
    path = tmp_path / "lists.json"
    path.write_text(json.dumps(document))
    return path


def test_forced_scores_put_the_planted_match_first(tmp_path):
    lists = place_rerank.read_lists(_lists(tmp_path))

    def planted(query, candidates):  # the true match (database 3q) scores highest
        return np.where(candidates == 3 * query, 5.0, 1.0)

    result = place_rerank.evaluate(lists, planted, top_k=3, ns=(1, 2, 3))
    assert result["recall_baseline"] == {1: 0.0, 2: 0.0, 3: 1.0}
    assert result["recall_reranked"] == {1: 1.0, 2: 1.0, 3: 1.0}
    assert result["reranked"][1] == [3, 4, 5]  # the others keep their order (stable)
    np.testing.assert_array_equal(place_rerank.rerank(lists.candidates[1], [1.0, 1.0, 5.0], 3), [3, 4, 5, 8])


def test_lists_from_release_arrays_round_trip(tmp_path):
    score = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    document = place_rerank.lists_from_release(["q0.jpg", "q1.jpg"], np.zeros((2, 2)), ["a.jpg", "b.jpg", "c.jpg"],
                                               np.ones((3, 2)), score, depth=2, nms_group=12)
    lists = place_rerank.parse_lists(json.loads(json.dumps(document)), tmp_path)
    assert [c.tolist() for c in lists.candidates] == [[1, 2], [0, 2]]
    assert lists.nms_group == 12 and lists.database_paths[2] == tmp_path / "database" / "c.jpg"


def test_malformed_lists_say_where(tmp_path, capsys):
    path = tmp_path / "lists.json"
    path.write_text(json.dumps({"database": [{"image": "a.jpg", "utm": [0, 0]}],
                                "queries": [{"image": "q.jpg", "utm": [0, 0], "candidates": [0, 3]}]}))
    assert place_rerank.main([str(path), "--random-weights", "--out", str(tmp_path / "out")]) == 2
    assert "query 0: candidates must be integers in [0, 1)" in capsys.readouterr().err


def test_place_rerank_runs_with_random_weights(tmp_path):
    path = _lists(tmp_path, with_images=True)
    args = place_rerank.build_parser().parse_args(
        [str(path), "--random-weights", "--size", "64", "64", "--top-k", "3", "--batch-size", "4", "--recall-at",
         "1", "3", "--out", str(tmp_path / "out"), "--quiet"])
    results = place_rerank.run(args, random_variables())
    lists = place_rerank.read_lists(path)
    for reranked, candidates in zip(results["reranked"], lists.candidates):
        assert sorted(reranked) == sorted(candidates[:3].tolist())
    assert results["recall_baseline"] == {1: 0.0, 3: 1.0} and results["recall_reranked"][3] == 1.0
    assert "R@1" in (tmp_path / "out" / "place_rerank.md").read_text()


# ------------------------------------------------------------------------------------------------ Brueghel


def test_brueghel_segswap_method_reports_retrieval_map(tmp_path, monkeypatch):
    collection = make_collection(tmp_path / "images", seed=0, num_categories=2, instances_per_category=2,
                                 num_distractors=1, image_size=(96, 128), detail_fraction=(0.3, 0.4),
                                 style_strength=0.0, context=0.3, border=8)
    monkeypatch.setattr(retrieval, "BRUEGHEL", TINY)  # 64² crops and database: the protocol at CPU test size
    monkeypatch.setattr(weights, "load_segswap", lambda checkpoint, seed: random_variables())
    out = tmp_path / "out"
    code = brueghel.main(["--images", str(collection.folder), "--annotations", str(collection.annotation_path),
                          "--method", "segswap", "--random-weights", "--out", str(out), "--max-queries", "3",
                          "--quiet"])
    assert code == 0
    report = json.loads((out / "brueghel_segswap_retrieval.json").read_text())
    assert report["num_images"] == 5 and len(report["per_query"]) == 3
    assert 0.0 <= report["mAP_per_class"] <= 1.0 and report["protocol"]["crop_size"] == 64
    detections = json.loads((out / "detections_segswap.json").read_text())
    for query, entry in zip(report["per_query"], detections):
        images = [d[0] for d in entry["detections"]]
        assert len(images) == 4 and query["image"] not in images
        scores = [d[2] for d in entry["detections"]]
        assert scores == sorted(scores, reverse=True)
        for _, (x1, y1, x2, y2), _, _ in entry["detections"]:
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96
    assert json.loads((out / "brueghel_segswap.json").read_text())["method"] == "segswap"
