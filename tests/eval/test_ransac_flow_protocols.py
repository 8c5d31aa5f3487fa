"""eval.kitti, eval.megadepth and eval.yfcc end to end on tiny datasets in the real layouts.

Every pair is a photograph and a copy warped by a known homography, so the SIFT coarse stage (no weights
needed) recovers the geometry and the protocol's numbers are predictable: KITTI flow error well below a
pixel, MegaDepth/RobotCar PCK-5 of 1 for every point that can be scored, YFCC poses that explain the
plane-induced homography. A "null" fine network (zero residual flow, saturated matchability) exercises the
fine-stage plumbing (KITTI's two levels) and must reproduce the coarse result.
"""

import json
import pickle

import cv2
import h5py
import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax.data.datasets import kitti as kitti_data
from artdup_jax.ransac_flow import inference, inference_protocols, metrics
from eval import kitti as kitti_eval
from eval import megadepth as megadepth_eval
from eval import ransac_flow_predict as rfp
from eval import yfcc as yfcc_eval

QUICK = ("--iterations", "2000", "--quiet")  # one RANSAC budget for every run: compiled once


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skimage.data.coffee()[::2, ::2])  # 200 x 300 RGB


def _homography(w, h, moves):
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.getPerspectiveTransform(corners, corners + np.float32(moves)).astype(np.float64)


def _apply(H, xy):
    p = np.c_[xy, np.ones(len(xy))] @ H.T
    return p[:, :2] / p[:, 2:]


# --------------------------------------------------------------------------------------------------
# KITTI


@pytest.fixture(scope="module")
def kitti_root(photo, tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    training = root / "training"
    for sub in ("image_2", "flow_noc"):
        (training / sub).mkdir(parents=True)
    h, w = photo.shape[:2]
    moves = ([[8, 5], [-6, 9], [-10, -7], [5, -4]], [[-4, 3], [7, -2], [3, 6], [-5, -6]])
    for i, move in enumerate(moves):
        H = _homography(w, h, move)  # source (frame 11) pixels -> target (frame 10) pixels
        target = cv2.warpPerspective(photo, H, (w, h), flags=cv2.INTER_LINEAR)
        Image.fromarray(photo).save(training / "image_2" / f"{i:06d}_11.png")
        Image.fromarray(target).save(training / "image_2" / f"{i:06d}_10.png")
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        lattice = np.stack([xs, ys], -1).reshape(-1, 2)
        source_xy = _apply(np.linalg.inv(H), lattice).reshape(h, w, 2)
        flow = source_xy - lattice.reshape(h, w, 2)
        valid = ((source_xy[..., 0] > 2) & (source_xy[..., 0] < w - 3) & (source_xy[..., 1] > 2)
                 & (source_xy[..., 1] < h - 3))
        kitti_data.write_kitti_flow(training / "flow_noc" / f"{i:06d}_10.png", flow, valid)
    return root


def test_kitti_sift_coarse_flow_is_subpixel(kitti_root, tmp_path):
    out = tmp_path / "out"
    assert kitti_eval.main(["--data", str(kitti_root), "--size", "192", "--out", str(out), *QUICK]) == 0
    results = json.loads((out / "kitti_noc.json").read_text())
    markdown = (out / "kitti_noc.md").read_text()
    assert "SIFT coarse stage" in results["model"]["description"] and "SIFT coarse stage" in markdown
    assert results["model"]["settings"]["coarse"]["num_scales"] == 3  # the KITTI row of §1.7
    assert results["model"]["settings"]["merge_threshold"] == 1.0
    summary = results["summary"]
    assert summary["pairs"] == 2 and summary["failures"] == 0
    per_pair = [r["aepe"] for r in results["pairs"]]
    assert max(per_pair) < 0.3, per_pair  # the exact homography would give ~0 (16-bit GT quantisation)
    assert summary["aepe"] == pytest.approx(np.mean(per_pair))  # per image, then over images
    assert summary["fl_all"] == 0.0
    assert all(r["homographies"] == 1 for r in results["pairs"])


def _null_fine_network(path):
    """Fine variables whose flow is exactly zero (uniform softmax) and whose matchability saturates at 1.

    Built from the variable shapes alone (no initialisation to compile): every weight zero, BN identity,
    then the matchability head's last BN shifted up and its last conv summing, so sigmoid(...) = 1.
    """
    import jax.numpy as jnp

    from artdup_jax.convert import save_variables
    from artdup_jax.ransac_flow import FineNetwork

    shapes = jax.eval_shape(lambda: FineNetwork().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))

    def fill(key_path, leaf):
        name = jax.tree_util.keystr(key_path)
        return (np.ones if ("'var'" in name or "'scale'" in name) else np.zeros)(leaf.shape, leaf.dtype)

    variables = jax.tree_util.tree_map_with_path(fill, shapes)
    match = variables["params"]["matchability_decoder"]
    match["bn3"]["bias"] = np.full_like(match["bn3"]["bias"], 10.0)
    match["conv4"]["kernel"] = np.ones_like(match["conv4"]["kernel"])
    return save_variables(variables, path)


def test_kitti_two_level_fine_stage_with_a_null_network_keeps_the_coarse_flow(kitti_root, tmp_path):
    checkpoint = _null_fine_network(tmp_path / "null_fine")
    coarse_out, fine_out = tmp_path / "coarse", tmp_path / "fine"
    common = ["--data", str(kitti_root), "--size", "192", "--max-pairs", "1", *QUICK]
    # --fine-size 8: both fine levels come out at 8x16 here (sides rounded to 8), so the network compiles once.
    assert kitti_eval.main(common + ["--out", str(coarse_out)]) == 0
    assert kitti_eval.main(common + ["--out", str(fine_out), "--checkpoint", checkpoint, "--fine-size", "8"]) == 0
    coarse = json.loads((coarse_out / "kitti_noc.json").read_text())
    fine = json.loads((fine_out / "kitti_noc.json").read_text())
    assert fine["model"]["fine"] and "fine network" in fine["model"]["description"]
    assert fine["summary"]["pairs"] == 1
    # Zero residual flow: level 1 ∘ level 2 is the identity, so the merged flow is the homography's.
    assert fine["pairs"][0]["aepe"] == pytest.approx(coarse["pairs"][0]["aepe"], abs=0.02)
    # Matchability 1 where the homography lands in the source explains it; the masked SIFT search for a
    # second homography finds nothing in the black border, so the unbounded loop stops at one.
    assert fine["pairs"][0]["homographies"] == 1


def test_kitti_fine_sizes_round_to_multiples_of_8():
    # KITTI 1242x375, fineSize 650 / 325 (rounded, not floored).
    assert inference_protocols.kitti_fine_size(1242, 375, 650) == (2152, 648)
    assert inference_protocols.kitti_fine_size(1242, 375, 325) == (1080, 328)


def test_kitti_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert kitti_eval.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "KITTI 2015 layout" in err


@pytest.mark.parametrize("evaluation, required", [
    (kitti_eval, []), (megadepth_eval, ["--csv", "pairs.csv"]), (yfcc_eval, ["--pairs", "pairs"])])
def test_every_protocol_refuses_zero_pairs_before_reading_anything(evaluation, required, tmp_path, capsys):
    argv = ["--data", str(tmp_path / "missing"), *required, "--max-pairs", "0", "--out", str(tmp_path / "o")]
    assert evaluation.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --max-pairs must be at least 1"
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------
# MegaDepth / RobotCar


def _list(values):
    return ";".join(repr(float(v)) for v in values)


@pytest.fixture(scope="module")
def sparse_root(photo, tmp_path_factory):
    root = tmp_path_factory.mktemp("megadepth")
    images = root / "test1600Pairs"
    (images / "0042").mkdir(parents=True)
    h, w = photo.shape[:2]
    H = _homography(w, h, [[12, 6], [-9, 10], [-14, -8], [6, -5]])
    Image.fromarray(photo).save(images / "0042" / "source.png")
    Image.fromarray(cv2.warpPerspective(photo, H, (w, h))).save(images / "0042" / "target.png")
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(images / "flat.png")  # nothing to match
    rng = np.random.default_rng(0)
    target_xy = rng.uniform([25, 25], [w - 25, h - 25], (40, 2))
    source_xy = _apply(np.linalg.inv(H), target_xy)
    # One extra point outside both images: dropped by MegaDepth, kept (and failed) by RobotCar.
    target_xy = np.vstack([target_xy, [w + 30.0, 20.0]])
    source_xy = np.vstack([source_xy, [w + 35.0, 22.0]])
    rows = ["scene,source_image,target_image,XA,YA,XB,YB",
            f"0042,source.png,target.png,{_list(source_xy[:, 0])},{_list(source_xy[:, 1])},"
            f"{_list(target_xy[:, 0])},{_list(target_xy[:, 1])}",
            f"/,0042/source.png,flat.png,{_list([50.0, 60.0])},{_list([40.0, 70.0])},{_list([55.0, 66.0])},"
            f"{_list([45.0, 72.0])}"]
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root


def test_megadepth_and_robotcar_sparse_pck(sparse_root, tmp_path):
    common = ["--data", str(sparse_root / "test1600Pairs"), "--csv", str(sparse_root / "pairs.csv"), "--size", "160",
              *QUICK]
    assert megadepth_eval.main(common + ["--out", str(tmp_path)]) == 0
    assert megadepth_eval.main(common + ["--out", str(tmp_path), "--robotcar"]) == 0
    md = json.loads((tmp_path / "megadepth.json").read_text())
    rc = json.loads((tmp_path / "robotcar.json").read_text())
    assert (tmp_path / "megadepth.md").is_file() and "PCK-1/3/5" in (tmp_path / "robotcar.md").read_text()
    assert md["model"]["settings"]["coarse"]["size"] == 160
    assert md["evaluation_size"] == "shorter side 160, floored to 16"
    good, flat = md["pairs"]
    assert not good["failed"] and flat["failed"]  # the flat image has no SIFT keypoints: no homography
    assert good["points"] == 40 and good["points_in_csv"] == 41 and flat["points"] == 2
    # The homography is recovered: every scoreable point is within 3 px after integer truncation (up to
    # 1.4 px by itself); the failed pair's 2 points count against the pooled PCK.
    assert good["correct"]["3"] == good["correct"]["5"] == 40
    assert md["summary"]["points"] == 42 and md["summary"]["failures"] == 1
    assert md["summary"]["pck_5"] == pytest.approx(40 / 42)
    assert md["summary"]["pck_1"] == pytest.approx(good["correct"]["1"] / 42)
    assert good["correct"]["1"] >= 32  # truncation leaves a few errors above 1 px, but not many
    # RobotCar keeps the outside point; its target position cannot be read, so it is a failure.
    assert rc["benchmark"] == "RobotCar" and rc["pairs"][0]["points"] == 41
    assert rc["pairs"][0]["correct"]["36"] == 40
    assert rc["summary"]["pck_5"] == pytest.approx(40 / 43)


def test_megadepth_missing_csv_is_a_one_line_error(tmp_path, capsys):
    assert megadepth_eval.main(["--data", str(tmp_path), "--csv", str(tmp_path / "x.csv"), "--out",
                                str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no such CSV" in err and "\n" not in err


# --------------------------------------------------------------------------------------------------
# YFCC

F = 300.0
OFFSET = np.array([4.0, -3.0])  # K's principal point = image centre + this offset
ROLL = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # camera rolled by np.rot90


def _plane_homography():
    """Camera B sees the plane z = 3 of camera A after a rotation and a translation: the normalised homography."""
    R = cv2.Rodrigues(np.array([0.0, 0.1, 0.0]))[0]
    t = np.array([0.2, 0.0, -0.3])
    return R, t, R + np.outer(t, [0.0, 0.0, 1.0]) / 3.0


def _write_calibration(path, size_wh, offset, R, T):
    with h5py.File(path, "w") as f:
        f["K"] = np.array([[F, 0, offset[0]], [0, F, offset[1]], [0, 0, 1.0]])
        f["R"], f["T"] = R, np.asarray(T, np.float64).reshape(1, 3)
        f["imsize"] = np.array([size_wh], np.float64)


@pytest.fixture(scope="module")
def yfcc_root(photo, tmp_path_factory):
    root = tmp_path_factory.mktemp("yfcc")
    test = root / "images" / "reichstag" / "test"
    (test / "images").mkdir(parents=True)
    (test / "calibration").mkdir()
    h, w = photo.shape[:2]
    K = np.array([[F, 0, (w - 1) / 2 + OFFSET[0]], [0, F, (h - 1) / 2 + OFFSET[1]], [0, 0, 1.0]])
    R, t, H_norm = _plane_homography()
    target = cv2.warpPerspective(photo, K @ H_norm @ np.linalg.inv(K), (w, h), flags=cv2.INTER_LINEAR)
    Image.fromarray(photo).save(test / "images" / "a.png")
    Image.fromarray(target).save(test / "images" / "b.png")
    # The same view taken with the camera rolled by 90 degrees (np.rot90 is counter-clockwise).
    Image.fromarray(np.ascontiguousarray(np.rot90(target))).save(test / "images" / "b_rolled.png")
    _write_calibration(test / "calibration" / "a.h5", (w, h), OFFSET, np.eye(3), np.zeros(3))
    _write_calibration(test / "calibration" / "b.h5", (w, h), OFFSET, R, t)
    _write_calibration(test / "calibration" / "b_rolled.h5", (h, w), (OFFSET[1], -OFFSET[0]), ROLL @ R, ROLL @ t)
    (test / "images.txt").write_text("images/a.png\nimages/b.png\nimages/b_rolled.png\n")
    (test / "calibration.txt").write_text("calibration/a.h5\ncalibration/b.h5\ncalibration/b_rolled.h5\n")
    (root / "pairs").mkdir()
    with open(root / "pairs" / "reichstag-te-1000-pairs.pkl", "wb") as f:
        pickle.dump([[0, 1], [0, 2]], f, protocol=3)
    masks = root / "masks" / "reichstag"
    masks.mkdir(parents=True)
    Image.fromarray(np.zeros((h, w), np.uint8)).save(masks / "b.png")  # constant: all foreground (§7 item 19)
    Image.fromarray(np.zeros((w, h), np.uint8)).save(masks / "b_rolled.png")
    return root


def _plane_pose_candidates(roll: bool):
    """Every (R, t) that explains the plane homography: points on one plane cannot tell the true pose from
    its homography-decomposition twin, so the essential matrix may return either."""
    _, _, H_norm = _plane_homography()
    if roll:
        H_norm = ROLL @ H_norm
    count, rotations, translations, _ = cv2.decomposeHomographyMat(H_norm, np.eye(3))
    return [(rotations[i], translations[i].reshape(3)) for i in range(count)]


def test_yfcc_pose_accuracy_with_rotation_trial_and_masks(yfcc_root, tmp_path):
    out = tmp_path / "out"
    assert yfcc_eval.main(["--data", str(yfcc_root / "images"), "--pairs", str(yfcc_root / "pairs"), "--size", "192",
                           "--rotations", "--mask-dir", str(yfcc_root / "masks"), "--out", str(out), *QUICK]) == 0
    results = json.loads((out / "yfcc.json").read_text())
    markdown = (out / "yfcc.md").read_text()
    assert "ADE20K" in markdown and "SIFT coarse stage" in markdown and "| reichstag | 2 |" in markdown
    assert results["model"]["settings"]["coarse"]["mask_mode"] == "before"  # the YFCC copy of §1.3
    for record, roll in zip(results["pairs"], (False, True)):
        assert not record["failed"] and record["matches"] > 10_000
        assert sorted(record["rotation_inliers"]) == ["0", "180", "270", "90"]
        assert record["rotation"] in (0, 90, 180, 270)
        # The recovered pose explains the plane homography: it is one of its decompositions. A wrong
        # principal point, focal scaling or un-rotation of the target lattice would miss them all.
        R, t = np.array(record["pose"]["R"]), np.array(record["pose"]["t"])
        closest = min(max(metrics.rotation_error_deg(R_c, R), metrics.translation_error_deg(t_c, t))
                      for R_c, t_c in _plane_pose_candidates(roll))
        assert closest < 1.5, record
        R_gt, t_gt = _ground_truth(roll)
        assert record["error"] == pytest.approx(metrics.pose_error_deg(R_gt, t_gt, R, t))
    errors = [r["error"] for r in results["pairs"]]
    summary = results["summary"]["all"]
    assert summary["pairs"] == 2 and results["summary"]["failures"] == 0
    for threshold in (5, 10, 15, 20):
        assert summary[f"acc@{threshold}"] == np.mean([e < threshold for e in errors])
    assert summary["mAP@20"] == pytest.approx(np.mean([summary[f"acc@{t}"] for t in (5, 10, 15, 20)]))
    assert results["summary"]["per_scene"]["reichstag"] == summary


def _ground_truth(roll):
    R, t, _ = _plane_homography()
    return (ROLL @ R, ROLL @ t) if roll else (R, t)


def test_yfcc_missing_mask_is_a_one_line_error(yfcc_root, tmp_path, capsys):
    assert yfcc_eval.main(["--data", str(yfcc_root / "images"), "--pairs", str(yfcc_root / "pairs"), "--mask-dir",
                           str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no foreground mask reichstag/b.png" in err and "\n" not in err


def test_constant_foreground_mask_becomes_all_foreground():
    assert inference_protocols.resize_foreground(np.zeros((10, 12), bool), (4, 6)).all()
    assert inference_protocols.resize_foreground(np.ones((10, 12), bool), (4, 6)).all()
    half = np.zeros((10, 12), bool)
    half[:, 6:] = True
    resized = inference_protocols.resize_foreground(half, (5, 6))
    assert not resized[:, :2].any() and resized[:, 4:].all()


def test_checkpoint_errors_are_one_line(sparse_root, tmp_path, capsys):
    assert megadepth_eval.main(["--data", str(sparse_root / "test1600Pairs"), "--csv", str(sparse_root / "pairs.csv"),
                                "--checkpoint", str(tmp_path / "missing.pth"), "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'missing.pth'}: no such checkpoint file or directory"

    def failing_loader(path, family):
        raise RuntimeError("bad magic number\nsecond line")

    with pytest.raises(ValueError, match=r"^x.pth: cannot load ransac_flow weights \(RuntimeError: bad magic number\)$"):
        rfp._load(failing_loader, "x.pth", "ransac_flow")


def test_merge_takes_later_layers_only_where_confident_and_new():
    shape = (4, 6)
    grids = [np.full(shape + (2,), v, np.float32) for v in (0.1, 0.5, 2.0)]
    first = np.zeros(shape, np.float32)
    first[:, :2] = 1.0  # layer 0 covers the left columns
    second = np.zeros(shape, np.float32)
    second[:, 1:3] = 0.97  # overlaps column 1 (already covered), new in column 2
    third = np.zeros(shape, np.float32)
    third[:, 2:4] = 0.99  # column 2 already taken; column 3 new; its grid is clamped to 1
    layers = [inference._Layer(np.eye(3), g, m) for g, m in zip(grids, (first, second, third))]
    grid, match, covered = inference.merge_layers(layers, 0.95)
    np.testing.assert_allclose(grid[0, :, 0], [0.1, 0.1, 0.5, 1.0, 0.1, 0.1])
    np.testing.assert_allclose(match[0], [1, 1, 0.97, 0.99, 0, 0])
    np.testing.assert_array_equal(covered[0], [1, 1, 1, 1, 0, 0])
    # KITTI: th = 1.0 and uncovered pixels copy the nearest covered pixel.
    grid, _, covered = inference.merge_layers(layers, 1.0, interpolate=True)
    np.testing.assert_array_equal(covered[0], [1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(grid[..., 0], 0.1)


def test_kitti_small_confident_components_are_removed():
    match = np.zeros((20, 30), np.float32)
    match[2:4, 2:3] = 1.0  # 2 px <= 1 % of 600 px: removed
    match[10:20, 10:30] = 0.995  # large: kept
    out = inference.remove_small_components(match)
    assert out[2:4, 2].sum() == 0 and out[10:20, 10:30].min() == pytest.approx(0.995)
