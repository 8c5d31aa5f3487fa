"""Metric conventions against hand-computed float64 values and OpenCV."""

import math

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.geometry.sampling import identity_grid
from artdup_jax.ransac_flow import metrics


def test_grid_to_source_pixels_uses_align_corners():
    grid = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    px = metrics.grid_to_source_pixels(grid, (11, 21))  # H=11, W=21
    np.testing.assert_allclose(px, [[0, 0], [20, 10], [10, 5]])


def test_identity_grid_has_zero_displacement():
    grid = np.asarray(identity_grid(7, 9, align_corners=True))
    np.testing.assert_allclose(metrics.grid_to_displacement(grid, (7, 9)), 0, atol=1e-5)


def test_displacement_matches_spec_formula_for_equal_sizes():
    rng = np.random.default_rng(0)
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 5)), -1)  # AC, float64
    F = g + rng.uniform(-0.2, 0.2, g.shape)
    expected = (F - g) * np.array([(8 - 1) / 2, (5 - 1) / 2])
    np.testing.assert_allclose(metrics.grid_to_displacement(F, (5, 8)), expected, atol=1e-12)


def test_aepe_averages_over_valid_pixels_only():
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 1.0]], [[100.0, 0.0], [0.0, 0.0]]])
    valid = np.array([[True, True], [False, True]])
    assert float(metrics.aepe(pred, gt, valid)) == pytest.approx((5 + 1 + 0) / 3)
    assert float(metrics.aepe(pred, gt)) == pytest.approx((5 + 1 + 100 + 0) / 4)
    assert math.isnan(float(metrics.aepe(pred, gt, np.zeros((2, 2), bool))))


def test_dense_metrics_run_under_jit_and_match_numpy():
    rng = np.random.default_rng(1)
    pred, gt = rng.normal(size=(6, 5, 2)), rng.normal(size=(6, 5, 2))
    valid = rng.random((6, 5)) > 0.3

    @jax.jit
    def f(p, g, v):
        return metrics.aepe(p, g, v), metrics.pck(p, g, (1, 3, 5), v), metrics.fl_outliers(p, g, v)

    aepe_j, pck_j, (out_j, n_j) = f(jnp.asarray(pred), jnp.asarray(gt), jnp.asarray(valid))
    np.testing.assert_allclose(aepe_j, metrics.aepe(pred, gt, valid), rtol=1e-6)
    np.testing.assert_allclose(pck_j, metrics.pck(pred, gt, (1, 3, 5), valid), rtol=1e-6)
    assert int(out_j) == int(metrics.fl_outliers(pred, gt, valid)[0]) and int(n_j) == valid.sum()


def test_pck_counts_error_equal_to_threshold_as_correct():
    gt = np.zeros((4, 2))
    pred = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 3.0001], [6.0, 0.0]])
    np.testing.assert_allclose(metrics.pck(pred, gt, (1, 3, 5)), [1 / 4, 2 / 4, 3 / 4])


def test_fl_outlier_needs_both_3px_and_5_percent():
    gt = np.array([[[100.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 0.0]]])
    pred = gt + np.array([[[4.0, 0.0], [4.0, 0.0], [2.9, 0.0], [0.0, 9.0]]])
    valid = np.array([[True, True, True, False]])
    outliers, n = metrics.fl_outliers(pred, gt, valid)
    # 4 px on a 100 px flow: 4% < 5% -> inlier; 4 px on 10 px -> outlier; 2.9 px -> inlier; invalid ignored.
    assert (int(outliers), int(n)) == (1, 3)
    assert metrics.fl_all(outliers, n) == pytest.approx(100 / 3)


def test_sparse_pck_truncates_keypoints_to_integers():
    # Grid of a pure translation by (+2.0, +0.0) source pixels on a 10x10 source/target.
    size = 10
    g = np.asarray(identity_grid(size, size, align_corners=True), np.float64)
    grid = g + np.array([2.0 * 2 / (size - 1), 0.0])
    target_xy = np.array([[3.9, 4.7], [0.2, 0.9], [5.5, 5.5]])
    # Truncated target (3, 4) -> prediction (5, 4). GT source truncated: (5.99 -> 5, 4.2 -> 4): exact.
    # (0, 0) -> (2, 0); GT (3.7 -> 3, 0): error 1.  (5, 5) -> (7, 5); GT (9.9 -> 9, 5): error 2.
    source_xy = np.array([[5.99, 4.2], [3.7, 0.5], [9.9, 5.9]])
    counts, n = metrics.sparse_pck_counts(grid, (size, size), source_xy, target_xy, thresholds=(0.5, 1.5, 2.5))
    assert n == 3
    np.testing.assert_array_equal(counts, [1, 2, 3])


def test_sparse_pck_counts_unreadable_target_points_as_wrong():
    grid = np.zeros((4, 4, 2))
    counts, n = metrics.sparse_pck_counts(grid, (4, 4), np.array([[1.5, 1.5]]), np.array([[7.0, 1.0]]))
    assert n == 1 and counts.sum() == 0


def test_default_sparse_thresholds_are_the_rounded_logspace():
    assert metrics.SPARSE_PCK_THRESHOLDS == tuple(np.around(np.logspace(0, np.log10(36), 8)).astype(int))


def test_corner_error_of_a_translation():
    H_gt = np.eye(3)
    H_est = np.array([[1.0, 0, 3.0], [0, 1.0, 4.0], [0, 0, 1]])
    assert metrics.corner_error(H_est, H_gt, (10, 20)) == pytest.approx(5.0)
    assert math.isnan(metrics.corner_error(None, H_gt, (10, 20)))


def _rotation(axis, degrees):
    return cv2.Rodrigues(np.asarray(axis, np.float64) / np.linalg.norm(axis) * np.radians(degrees))[0]


def test_rotation_and_translation_errors_in_degrees():
    R = _rotation([0.3, -1.0, 0.2], 25.0)
    assert metrics.rotation_error_deg(R, R @ _rotation([1, 2, 3], 7.0)) == pytest.approx(7.0, abs=1e-6)
    assert metrics.translation_error_deg([1, 0, 0], [0, 3, 0]) == pytest.approx(90.0)
    # Not sign-invariant: the opposite direction is 180 degrees off.
    assert metrics.translation_error_deg([1, 2, 3], [-2, -4, -6]) == pytest.approx(180.0)


def test_pose_error_is_max_with_reference_nan_semantics(monkeypatch):
    R, t = np.eye(3), np.array([0.0, 0.0, 1.0])
    assert metrics.pose_error_deg(R, t, _rotation([0, 0, 1], 4.0), [0, 1, 0]) == pytest.approx(90.0)
    monkeypatch.setattr(metrics, "translation_error_deg", lambda *a: math.nan)
    assert metrics.pose_error_deg(R, t, _rotation([0, 0, 1], 4.0), t) == pytest.approx(4.0)
    monkeypatch.setattr(metrics, "rotation_error_deg", lambda *a: math.nan)
    assert math.isnan(metrics.pose_error_deg(R, t, R, t))


def test_pose_accuracy_is_strict_and_nan_fails():
    errors = [0.0, 5.0, 9.9, 14.0, math.nan, metrics.FAILED_POSE_ERROR_DEG]
    acc = metrics.pose_accuracy(errors)
    assert acc == {5: 1 / 6, 10: 3 / 6, 15: 4 / 6, 20: 4 / 6}


def test_pose_map_follows_oanet_convention():
    acc = {5: 0.2, 10: 0.4, 15: 0.5, 20: 0.7}
    assert metrics.pose_map(acc) == pytest.approx({"mAP@5": 0.2, "mAP@10": 0.3, "mAP@20": 0.45})


def test_relative_pose_recovered_from_exact_matches():
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -2, 4], [2, 2, 8], (100, 3))
    R, t = _rotation([0.2, 1.0, 0.1], 8.0), np.array([1.0, 0.2, -0.1])
    in_b = points @ R.T + t
    pose = metrics.estimate_relative_pose(points[:, :2] / points[:, 2:], in_b[:, :2] / in_b[:, 2:])
    assert pose is not None
    assert metrics.pose_error_deg(R, t, *pose) < 0.1


def test_relative_pose_needs_five_points():
    assert metrics.estimate_relative_pose(np.zeros((4, 2)), np.zeros((4, 2))) is None
