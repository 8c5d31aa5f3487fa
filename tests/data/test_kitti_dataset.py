"""KITTI 2015 flow reader on a tiny training folder written by hand, and AEPE / Fl-all on it."""

import cv2
import numpy as np
import pytest

from artdup_jax.data.datasets import kitti
from artdup_jax.ransac_flow import metrics

H, W = 6, 8


def _flow(seed):
    rng = np.random.default_rng(seed)
    flow = np.round(rng.uniform(-20, 20, (H, W, 2)) * 64) / 64  # representable exactly
    valid = rng.random((H, W)) > 0.25
    return flow, valid


def _encode_by_hand(path, flow, valid):
    # KITTI: R = u * 64 + 2^15, G = v * 64 + 2^15, B = valid; OpenCV writes BGR.
    r = (flow[..., 0] * 64 + 32768).astype(np.uint16)
    g = (flow[..., 1] * 64 + 32768).astype(np.uint16)
    assert cv2.imwrite(str(path), np.stack([valid.astype(np.uint16), g, r], -1))


@pytest.fixture()
def kitti_root(tmp_path):
    training = tmp_path / "data_scene_flow" / "training"
    for sub in ("image_2", "flow_noc", "flow_occ"):
        (training / sub).mkdir(parents=True)
    for i in range(2):
        for frame in ("10", "11"):
            cv2.imwrite(str(training / "image_2" / f"{i:06d}_{frame}.png"), np.zeros((H, W, 3), np.uint8))
        flow, valid = _flow(i)
        _encode_by_hand(training / "flow_noc" / f"{i:06d}_10.png", flow, valid)
        _encode_by_hand(training / "flow_occ" / f"{i:06d}_10.png", flow, np.ones_like(valid))
    return tmp_path / "data_scene_flow"


def test_pairs_are_frame_10_target_and_frame_11_source(kitti_root):
    pairs = list(kitti.iter_kitti_flow_pairs(kitti_root))
    assert [p.name for p in pairs] == ["000000", "000001"]
    assert pairs[0].target_path.name == "000000_10.png" and pairs[0].source_path.name == "000000_11.png"
    assert pairs[0].flow_path.parent.name == "flow_noc"
    assert next(kitti.iter_kitti_flow_pairs(kitti_root / "training", occluded=True)).flow_path.parent.name == "flow_occ"


def test_flow_png_decoding(kitti_root):
    flow, valid = kitti.read_kitti_flow(kitti_root / "training" / "flow_noc" / "000001_10.png")
    expected_flow, expected_valid = _flow(1)
    np.testing.assert_array_equal(flow, expected_flow)
    np.testing.assert_array_equal(valid, expected_valid)


def test_writer_round_trips(tmp_path):
    flow, valid = _flow(3)
    kitti.write_kitti_flow(tmp_path / "f.png", flow, valid)
    decoded, decoded_valid = kitti.read_kitti_flow(tmp_path / "f.png")
    np.testing.assert_array_equal(decoded, flow)
    np.testing.assert_array_equal(decoded_valid, valid)


def test_missing_ground_truth_is_a_layout_error(kitti_root):
    (kitti_root / "training" / "flow_noc" / "000001_10.png").unlink()
    with pytest.raises(kitti.KittiLayoutError, match="000001_10.png: missing ground truth"):
        list(kitti.iter_kitti_flow_pairs(kitti_root))


def test_wrong_folder_is_a_layout_error(tmp_path):
    with pytest.raises(kitti.KittiLayoutError, match="expected KITTI 2015 layout"):
        list(kitti.iter_kitti_flow_pairs(tmp_path))


def test_aepe_per_image_then_mean_and_pooled_fl(kitti_root):
    per_image, outliers, valids = [], [], []
    expected_epe, expected_out, expected_valid = [], 0, 0
    for pair in kitti.iter_kitti_flow_pairs(kitti_root):
        gt, valid = kitti.read_kitti_flow(pair.flow_path)
        # A prediction as the network gives it: an AC grid on the target, converted back to pixels.
        error = np.zeros_like(gt)
        error[0, :, 0] = 4.0  # first row off by 4 px in x
        g = np.stack(np.meshgrid(np.linspace(-1, 1, W), np.linspace(-1, 1, H)), -1)
        grid = g + (gt + error) / np.array([(W - 1) / 2, (H - 1) / 2])
        predicted = metrics.grid_to_displacement(grid, (H, W))
        per_image.append(float(metrics.aepe(predicted, gt, valid)))
        n_out, n_valid = metrics.fl_outliers(predicted, gt, valid)
        outliers.append(n_out)
        valids.append(n_valid)
        # Float64 reference: 4 px on valid first-row pixels, 0 elsewhere.
        expected_epe.append(4.0 * valid[0].sum() / valid.sum())
        mag = np.linalg.norm(gt[0], axis=-1)
        expected_out += int(np.sum(valid[0] & (4.0 > 0.05 * mag)))
        expected_valid += int(valid.sum())
    np.testing.assert_allclose(per_image, expected_epe, atol=1e-9)
    summary = metrics.kitti_summary(per_image, outliers, valids)
    assert summary["aepe"] == pytest.approx(np.mean(expected_epe))
    assert summary["fl_all"] == pytest.approx(100.0 * expected_out / expected_valid)
