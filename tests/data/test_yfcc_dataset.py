"""YFCC (OANet split) reader and pose scoring on a tiny scene written by the test."""

import pickle

import cv2
import h5py
import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.datasets import yfcc
from artdup_jax.ransac_flow import metrics

SIZE_WH = (640, 480)
K = np.array([[500.0, 0.0, 6.0], [0.0, 510.0, -4.0], [0.0, 0.0, 1.0]])  # principal point = centre offset


def _camera(seed):
    rng = np.random.default_rng(seed)
    R = cv2.Rodrigues(rng.normal(0, 0.08, 3))[0]
    T = rng.normal(0, 0.5, 3)
    return R, T


@pytest.fixture()
def scene_root(tmp_path):
    test = tmp_path / "images" / "reichstag" / "test"
    (test / "images").mkdir(parents=True)
    (test / "calibration").mkdir()
    names, calibs = [], []
    for i in range(3):
        Image.new("RGB", SIZE_WH).save(test / "images" / f"{i}.jpg")
        R, T = _camera(i)
        with h5py.File(test / "calibration" / f"calibration_{i}.h5", "w") as f:
            f["K"], f["R"], f["T"] = K, R, T.reshape(1, 3)
            f["imsize"] = np.array([SIZE_WH], np.float64)
        names.append(f"images/{i}.jpg")
        calibs.append(f"calibration/calibration_{i}.h5")
    (test / "images.txt").write_text("\n".join(names) + "\n")
    (test / "calibration.txt").write_text("\n".join(calibs) + "\n")
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    with open(pairs / "reichstag-te-1000-pairs.pkl", "wb") as f:
        pickle.dump([[0, 1], [2, 0]], f, protocol=3)
    return tmp_path


def test_pairs_paths_and_relative_pose(scene_root):
    pairs = list(yfcc.iter_yfcc_pairs(scene_root / "images", scene_root / "pairs"))
    assert [(p.scene, p.index) for p in pairs] == [("reichstag", 0), ("reichstag", 1)]
    p = pairs[1]
    assert p.source_path.name == "2.jpg" and p.target_path.name == "0.jpg"
    assert p.source_calibration.size_wh == SIZE_WH
    # x_B = R x_A + t for a world point seen by both cameras.
    (Ra, Ta), (Rb, Tb) = _camera(2), _camera(0)
    X = np.array([0.3, -0.2, 5.0])
    np.testing.assert_allclose(p.rotation @ (Ra @ X + Ta) + p.translation, Rb @ X + Tb, atol=1e-12)


def test_pair_pickle_with_objects_is_refused(tmp_path):
    import collections

    with open(tmp_path / "evil-te-1000-pairs.pkl", "wb") as f:
        pickle.dump([collections.OrderedDict()], f, protocol=3)
    with pytest.raises(yfcc.YFCCLayoutError, match="refusing to load"):
        yfcc.read_pairs(tmp_path / "evil-te-1000-pairs.pkl")


def test_missing_calibration_list_is_a_layout_error(scene_root):
    (scene_root / "images" / "reichstag" / "test" / "calibration.txt").unlink()
    with pytest.raises(yfcc.YFCCLayoutError, match="calibration.txt"):
        list(yfcc.iter_yfcc_pairs(scene_root / "images", scene_root / "pairs"))


def test_keypoint_normalisation_uses_centre_plus_offset_scaled():
    cal = yfcc.Calibration(K, np.eye(3), np.zeros(3), SIZE_WH)
    resized = yfcc.evaluation_size(SIZE_WH)  # (640, 480) -> unchanged
    assert resized == (640, 480)
    half = (320, 240)
    xy = np.array([[(639 / 2 + 6) / 2, (479 / 2 - 4) / 2], [(639 / 2 + 6) / 2 + 250, (479 / 2 - 4) / 2]])
    np.testing.assert_allclose(yfcc.normalise_keypoints(xy, cal, half), [[0, 0], [1, 0]], atol=1e-12)


def test_matches_from_grid_undo_the_target_rotation():
    wb, hb = 5, 3
    index = np.arange(wb * hb, dtype=np.uint8).reshape(hb, wb)
    rotated = np.asarray(Image.fromarray(index).rotate(90, expand=True))  # PIL: counter-clockwise
    grid = np.zeros(rotated.shape + (2,))
    mask = np.zeros(rotated.shape, bool)
    mask[1, 2] = mask[4, 0] = True
    _, target_px = yfcc.matches_from_grid(grid, mask, (7, 7), (wb, hb), rotation_deg=90)
    expected = [(int(v) % wb, int(v) // wb) for v in rotated[mask]]
    np.testing.assert_array_equal(target_px, expected)


def test_pose_accuracy_end_to_end_on_synthetic_matches(scene_root):
    rng = np.random.default_rng(0)
    errors = []
    for pair in yfcc.iter_yfcc_pairs(scene_root / "images", scene_root / "pairs"):
        (Ra, Ta) = (pair.source_calibration.R, pair.source_calibration.T)
        (Rb, Tb) = (pair.target_calibration.R, pair.target_calibration.T)
        X = rng.uniform([-2, -2, 6], [2, 2, 10], (300, 3))
        pixels = []
        for R, T in ((Ra, Ta), (Rb, Tb)):
            cam = X @ R.T + T
            centre = np.array([(SIZE_WH[0] - 1) / 2 + K[0, 2], (SIZE_WH[1] - 1) / 2 + K[1, 2]])
            px = cam[:, :2] / cam[:, 2:] * np.array([K[0, 0], K[1, 1]]) + centre
            pixels.append(px * 0.75)  # the images as scored: resized by 0.75
        resized = (480, 360)
        a = yfcc.normalise_keypoints(pixels[0], pair.source_calibration, resized)
        b = yfcc.normalise_keypoints(pixels[1], pair.target_calibration, resized)
        pose = metrics.estimate_relative_pose(a, b)
        errors.append(metrics.FAILED_POSE_ERROR_DEG if pose is None
                      else metrics.pose_error_deg(pair.rotation, pair.translation, *pose))
    errors.append(metrics.FAILED_POSE_ERROR_DEG)  # a pair without prediction
    acc = metrics.pose_accuracy(errors)
    assert acc[5] == pytest.approx(2 / 3)
    assert metrics.pose_map(acc)["mAP@20"] == pytest.approx(2 / 3)
