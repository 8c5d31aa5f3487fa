"""eval.hpatches: the SIFT baseline on real v_churchill pairs, scoring checks, and the dense-method hook."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from artdup_jax.data.datasets import hpatches
from eval import hpatches as hp_eval
from tests.data.test_hpatches_dataset import _write_csvs, _write_sequence

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hpatches"


@pytest.fixture()
def synthetic(tmp_path):
    root = tmp_path / "release"
    _write_sequence(root)
    _write_csvs(root, ["v_synthetic"])
    return root


def test_ground_truth_homography_is_exact_at_full_resolution(synthetic):
    pair = next(hpatches.iter_csv_pairs(synthetic, synthetic, levels=[3]))
    pred = hp_eval.Prediction("oracle", homography=pair.homography)
    record = hp_eval.score_prediction(pred, pair, pair.source_size_hw, pair.target_size_hw)
    assert record["pck_1"] == 1.0
    assert record["corner_error"] < 1e-9
    # At 240x240 only the protocol's floor remains (plain-scaled GT vs AC-rendered prediction).
    assert 0 < record["aepe_240"] < 1.0  # large here because the synthetic images are tiny


def test_homography_rendering_matches_opencv():
    H = np.array([[1.1, 0.05, 3.0], [-0.02, 0.95, -2.0], [3e-4, -1e-4, 1.0]])
    grid = hp_eval.homography_to_grid(H, (50, 70), (40, 60), (40, 60))
    lattice = np.stack(np.meshgrid(np.arange(60.0), np.arange(40.0)), -1).reshape(1, -1, 2)
    source_px = cv2.perspectiveTransform(lattice, np.linalg.inv(H)).reshape(40, 60, 2)
    np.testing.assert_allclose((grid + 1) / 2 * np.array([69, 49]), source_px, atol=2e-3)


def test_homography_of_downscaled_images_is_mapped_back(synthetic):
    pair = next(hpatches.iter_csv_pairs(synthetic, synthetic, levels=[2]))
    # The same map between images shrunk by 2 (pixel centres aligned, as read_image resizes).
    half_s = (pair.source_size_hw[0] // 2, pair.source_size_hw[1] // 2)
    half_t = (pair.target_size_hw[0] // 2, pair.target_size_hw[1] // 2)
    H_half = hp_eval.rescale_homography(pair.homography, pair.source_size_hw, pair.target_size_hw, half_s, half_t)
    record = hp_eval.score_prediction(hp_eval.Prediction("half", homography=H_half), pair, half_s, half_t)
    assert record["corner_error"] < 1e-9 and record["pck_1"] == 1.0


def test_failed_prediction_is_scored_as_identity(synthetic):
    pair = next(hpatches.iter_csv_pairs(synthetic, synthetic, levels=[6]))
    record = hp_eval.score_prediction(hp_eval.Prediction("none"), pair, pair.source_size_hw, pair.target_size_hw)
    identity = hp_eval.score_prediction(hp_eval.Prediction("id", homography=np.eye(3)), pair,
                                        pair.source_size_hw, pair.source_size_hw)
    assert record["failed"] and math.isnan(record["corner_error"])
    assert record["aepe_240"] == pytest.approx(identity["aepe_240"], rel=1e-4)


def test_dense_method_plugs_in_and_scores_like_the_homography(synthetic, tmp_path, monkeypatch):
    pair = next(hpatches.iter_csv_pairs(synthetic, synthetic, levels=[2]))

    def oracle_grid(source, target):  # knows the answer: the exact grid at the target's resolution
        return hp_eval.homography_to_grid(pair.homography, source.shape[:2], target.shape[:2], target.shape[:2])

    monkeypatch.setitem(hp_eval.METHODS, "oracle", lambda args: hp_eval.dense_method(oracle_grid, "oracle"))
    results = hp_eval.evaluate(hp_eval.build_parser().parse_args(
        ["--data", str(synthetic), "--method", "oracle", "--levels", "2", "--out", str(tmp_path / "out"),
         "--quiet"]))
    dense, floor = results["summary"]["oracle"]["I"], results["summary"][hp_eval.FLOOR_VARIANT]["I"]
    assert dense["pairs"] == 1 and dense["failures"] == 0
    assert dense["pck_1"] == 1.0
    # Resampling the 48x64 grid to 240x240 costs only interpolation error over the floor.
    assert abs(dense["aepe_240"] - floor["aepe_240"]) < 0.02
    assert (tmp_path / "out" / "hpatches_oracle.md").is_file()


@pytest.mark.skipif(not (REAL / "v_churchill").is_dir(), reason=f"real HPatches data not present at {REAL}")
def test_sift_baseline_on_churchill_reduced_size(tmp_path, capsys):
    out = tmp_path / "out"
    assert hp_eval.main(["--data", str(REAL), "--sequences", "v_churchill", "--levels", "2", "3",
                         "--max-side", "320", "--iterations", "2000", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "hpatches_sift-ransac.json").read_text())
    markdown = (out / "hpatches_sift-ransac.md").read_text()
    assert "| sift+ours |" in markdown and "AEPE on the 240x240 grid" in markdown
    assert results["ground_truth"].startswith("DGC-Net CSV") and results["num_pairs"] == 2
    variants = {"sift+ours", "sift+cv2-ransac", "sift+cv2-magsac"}
    assert set(results["summary"]) == variants | {hp_eval.FLOOR_VARIANT}
    for record in results["pairs"]:
        assert all(math.isfinite(record[k]) for k in ("aepe_240", "pck_1", "pck_3", "pck_5", "corner_error"))
    easy = [r for r in results["pairs"] if r["pair"] == "v_churchill/1-2" and r["variant"] in variants]
    assert {r["variant"] for r in easy} == variants
    for r in easy:
        assert r["aepe_240"] < 1.0, r
        assert r["corner_error"] < 15.0, r  # target pixels at 1024x768, images predicted at 320 px
        assert r["pck_5"] > 0.9, r
        assert r["num_inliers"] >= 50
