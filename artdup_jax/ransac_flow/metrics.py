"""Evaluation metrics of the RANSAC-Flow protocols: AEPE, PCK, KITTI Fl, relative-pose error and accuracy.

Conventions:

* A *grid* is ``(H_t, W_t, 2)`` (or with leading batch dims): for every target pixel, the source location in
  normalised AC coordinates, x (column) first. It converts to source pixels with
  ``x = (g_x + 1) / 2 * (W_s - 1)``, ``y = (g_y + 1) / 2 * (H_s - 1)`` (:func:`grid_to_source_pixels`).
* A *flow* / displacement is in pixels: source pixel minus target pixel, x first (:func:`grid_to_displacement`;
  for equal image sizes this is the spec's ``(F - g) (W - 1) / 2``).
* Pixel ``i`` has its centre at ``i`` (OpenCV).

The dense metrics (:func:`endpoint_error`, :func:`aepe`, :func:`pck`, :func:`fl_outliers`, the grid
conversions) take NumPy or JAX arrays and return the same kind, so they also run under ``jax.jit``.
Relative pose uses OpenCV and NumPy float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

# PCK thresholds of the MegaDepth / RobotCar protocol: np.around(np.logspace(0, log10(36), 8)).
SPARSE_PCK_THRESHOLDS = (1, 2, 3, 5, 8, 13, 22, 36)
# PCK thresholds reported on HPatches (original resolution).
DENSE_PCK_THRESHOLDS = (1, 3, 5)
# Pose-accuracy thresholds (degrees) of the YFCC / OANet protocol.
POSE_THRESHOLDS = (5, 10, 15, 20)


def _xp(*arrays):
    """``jax.numpy`` if any argument is a JAX array (or tracer), else NumPy."""
    try:
        import jax
    except ImportError:  # pragma: no cover - jax is a hard dependency of the package
        return np
    if any(isinstance(a, jax.Array) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


# --------------------------------------------------------------------------------------------------
# Grid conversions


def grid_to_source_pixels(grid, source_size_hw):
    """Normalised AC grid -> source pixel coordinates.

    Args:
      grid: ``(..., 2)`` normalised [-1, 1] (AC), x first.
      source_size_hw: ``(H_s, W_s)`` of the source image at the evaluation resolution.
    Returns:
      ``(..., 2)`` source pixels, x first: ``(g + 1) / 2 * (n - 1)``.
    """
    xp = _xp(grid)
    height, width = source_size_hw
    scale = xp.asarray([(width - 1) / 2.0, (height - 1) / 2.0], dtype=xp.result_type(grid, xp.float32))
    return (grid + 1) * scale


def target_pixel_grid(height: int, width: int, dtype=np.float64):
    """``(height, width, 2)`` pixel coordinates of every target pixel, x first."""
    xs, ys = np.meshgrid(np.arange(width, dtype=dtype), np.arange(height, dtype=dtype))
    return np.stack([xs, ys], axis=-1)


def grid_to_displacement(grid, source_size_hw):
    """Optical flow in pixels: source location minus target pixel.

    Args:
      grid: ``(H_t, W_t, 2)`` normalised AC grid, x first.
      source_size_hw: ``(H_s, W_s)``.
    Returns:
      ``(H_t, W_t, 2)`` displacement in pixels, x first.
    """
    xp = _xp(grid)
    height, width = grid.shape[-3], grid.shape[-2]
    source_px = grid_to_source_pixels(grid, source_size_hw)
    return source_px - xp.asarray(target_pixel_grid(height, width), dtype=source_px.dtype)


# --------------------------------------------------------------------------------------------------
# Dense errors


def endpoint_error(predicted, expected):
    """Euclidean distance over the last axis (x, y): ``(..., 2)`` -> ``(...)``."""
    xp = _xp(predicted, expected)
    diff = predicted - expected
    return xp.sqrt(xp.sum(diff * diff, axis=-1))


def aepe(predicted, expected, valid=None):
    """Average end-point error over the valid entries.

    Args:
      predicted, expected: ``(..., 2)`` positions or displacements, in pixels.
      valid: optional boolean ``(...)``; ``None`` means all.
    Returns:
      Scalar mean error (NaN when nothing is valid).
    """
    xp = _xp(predicted, expected, valid)
    error = endpoint_error(predicted, expected)
    if valid is None:
        return xp.mean(error)
    valid = xp.asarray(valid, dtype=bool)
    count = xp.sum(valid)
    total = xp.sum(xp.where(valid, error, 0))
    return xp.where(count > 0, total / xp.maximum(count, 1), xp.nan)


def pck(predicted, expected, thresholds=DENSE_PCK_THRESHOLDS, valid=None):
    """Percentage of correct keypoints: fraction of valid entries with error ``<=`` each threshold.

    Args:
      predicted, expected: ``(..., 2)`` in pixels.
      thresholds: pixel thresholds; an error equal to the threshold counts as correct (as getResults).
      valid: optional boolean ``(...)``.
    Returns:
      ``(len(thresholds),)`` fractions in [0, 1] (NaN when nothing is valid).
    """
    xp = _xp(predicted, expected, valid)
    error = endpoint_error(predicted, expected)
    if valid is None:
        valid = xp.ones(error.shape, dtype=bool)
    valid = xp.asarray(valid, dtype=bool)
    count = xp.sum(valid)
    th = xp.asarray(thresholds, dtype=error.dtype)
    correct = (error[..., None] <= th) & valid[..., None]
    hits = xp.sum(correct.reshape(-1, th.shape[0]), axis=0)
    return xp.where(count > 0, hits / xp.maximum(count, 1), xp.nan)


def fl_outliers(predicted_flow, expected_flow, valid):
    """KITTI outliers: endpoint error > 3 px **and** > 5 % of the ground-truth flow magnitude.

    Args:
      predicted_flow, expected_flow: ``(H, W, 2)`` displacements in pixels.
      valid: ``(H, W)`` boolean ground-truth validity.
    Returns:
      ``(num_outliers, num_valid)``. Fl-all of a dataset = sum of outliers / sum of valid pixels
      (pooled over images, as the KITTI devkit), see :func:`fl_all`.
    """
    xp = _xp(predicted_flow, expected_flow, valid)
    error = endpoint_error(predicted_flow, expected_flow)
    magnitude = xp.sqrt(xp.sum(expected_flow * expected_flow, axis=-1))
    valid = xp.asarray(valid, dtype=bool)
    outlier = (error > 3.0) & (error > 0.05 * magnitude) & valid
    return xp.sum(outlier), xp.sum(valid)


def fl_all(num_outliers, num_valid):
    """Fl-all in percent from (possibly summed) :func:`fl_outliers` counts."""
    return 100.0 * float(num_outliers) / float(num_valid) if num_valid else math.nan


def sparse_pck_counts(grid, source_size_hw, source_xy, target_xy, thresholds=SPARSE_PCK_THRESHOLDS):
    """MegaDepth / RobotCar scoring of one pair.

    Keypoints are truncated to integers (``astype(int64)``, toward zero) both where the grid is read
    (target) and as the ground-truth source position; a point is correct iff its error is ``<=`` the
    threshold. Target points whose truncated position falls outside the grid cannot be read and count
    as incorrect.

    Args:
      grid: ``(H_t, W_t, 2)`` normalised AC grid (final merged flow) at the evaluation resolution.
      source_size_hw: ``(H_s, W_s)`` of the source at the evaluation resolution.
      source_xy, target_xy: ``(N, 2)`` ground-truth keypoints at the evaluation resolution, x first.
      thresholds: pixel thresholds.
    Returns:
      ``(counts, n)``: ``(len(thresholds),)`` int64 number of correct points, and ``n = N``. Pool over
      the dataset as ``sum(counts) / sum(n)``.
    """
    grid = np.asarray(grid)
    source_xy = np.asarray(source_xy)
    target_xy = np.asarray(target_xy)
    n = source_xy.shape[0]
    if n == 0:
        return np.zeros(len(thresholds), np.int64), 0
    height, width = grid.shape[:2]
    xa, ya = source_xy[:, 0].astype(np.int64), source_xy[:, 1].astype(np.int64)
    xb, yb = target_xy[:, 0].astype(np.int64), target_xy[:, 1].astype(np.int64)
    inside = (xb >= 0) & (xb < width) & (yb >= 0) & (yb < height)
    predicted = grid_to_source_pixels(grid[yb[inside], xb[inside]].astype(np.float32), source_size_hw)
    error = np.sqrt((predicted[:, 0] - xa[inside]) ** 2 + (predicted[:, 1] - ya[inside]) ** 2)
    counts = np.sum(error[:, None] <= np.asarray(thresholds, np.float64)[None, :], axis=0)
    return counts.astype(np.int64), n


def pooled_pck(counts, totals) -> np.ndarray:
    """Dataset PCK from per-pair :func:`sparse_pck_counts`: total correct / total points (not per image).

    A pair without prediction contributes its points to ``totals`` and zeros to ``counts``.
    """
    counts = np.asarray(counts, np.float64).reshape(-1, np.shape(counts)[-1])
    total = float(np.sum(totals))
    return counts.sum(0) / total if total else np.full(counts.shape[-1], math.nan)


def kitti_summary(per_image_aepe, outliers, valid) -> dict[str, float]:
    """KITTI 2015 dataset scores: AEPE = mean over images of the per-image AEPE; Fl-all (%) pooled over
    all valid pixels of all images (``sum(outliers) / sum(valid)``, as the KITTI devkit)."""
    return {"aepe": float(np.mean(per_image_aepe)) if len(per_image_aepe) else math.nan,
            "fl_all": fl_all(np.sum(outliers), np.sum(valid))}


def corner_error(H_estimated, H_expected, size_hw):
    """Mean distance between the four image corners mapped by two homographies.

    Args:
      H_estimated, H_expected: ``(3, 3)`` pixel homographies (source -> target); ``None`` gives NaN.
      size_hw: ``(H, W)`` of the image whose corners ``(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)`` are mapped.
    Returns:
      Mean Euclidean distance in (target) pixels.
    """
    if H_estimated is None:
        return math.nan
    height, width = size_hw
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]],
                       np.float64).T

    def project(H):
        p = np.asarray(H, np.float64) @ corners
        return (p[:2] / p[2]).T

    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.linalg.norm(project(H_estimated) - project(H_expected), axis=1)))


# --------------------------------------------------------------------------------------------------
# Relative pose (YFCC)


def estimate_relative_pose(points_a, points_b, *, threshold: float = 5e-4):
    """Essential matrix with OpenCV RANSAC on normalised points, then the cheirality-best decomposition.

    Args:
      points_a, points_b: ``(N, 2)`` matches in normalised camera coordinates (``K^-1 x``), A = source.
      threshold: RANSAC threshold in normalised units (the reference's 5e-4); OpenCV's default confidence.
    Returns:
      ``(R, t)`` with ``R`` ``(3, 3)`` and ``t`` ``(3,)`` mapping camera A to camera B, or ``None`` when
      fewer than 5 points or no candidate gives a positive cheirality count.
    """
    import cv2

    pts_a = np.ascontiguousarray(points_a, np.float64).reshape(-1, 2)
    pts_b = np.ascontiguousarray(points_b, np.float64).reshape(-1, 2)
    if pts_a.shape[0] < 5:
        return None
    identity = np.eye(3)
    E, mask = cv2.findEssentialMat(pts_a, pts_b, identity, method=cv2.RANSAC, threshold=threshold)
    if E is None:
        return None
    best, best_count = None, 0
    # OpenCV may stack several solutions. As in the reference the same RANSAC mask object is passed to
    # every candidate (recoverPose may narrow it in place to the cheirality inliers).
    for candidate in np.split(E, E.shape[0] // 3):
        count, R, t, _ = cv2.recoverPose(candidate, pts_a, pts_b, identity, mask=mask)
        if count > best_count:
            best, best_count = (R, t.reshape(3)), count
    return best


def rotation_error_deg(R_expected, R_estimated):
    """Angle of ``R_expected @ R_estimated.T`` in degrees, arccos **not** clipped (NaN just above 1)."""
    R = np.asarray(R_expected, np.float64) @ np.asarray(R_estimated, np.float64).T
    with np.errstate(invalid="ignore"):
        return float(np.degrees(np.arccos((np.trace(R) - 1.0) / 2.0)))


def translation_error_deg(t_expected, t_estimated):
    """Angle between translation directions in degrees; sign-sensitive and unclipped (as the reference)."""
    a = np.asarray(t_expected, np.float64).reshape(3)
    b = np.asarray(t_estimated, np.float64).reshape(3)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
        return float(np.degrees(np.arccos(cosine)))


def pose_error_deg(R_expected, t_expected, R_estimated, t_estimated):
    """``max(rotation error, translation error)`` in degrees, with the reference's NaN behaviour.

    Python's ``max(err_R, err_t)`` is used as in the reference: a NaN rotation error makes the result NaN
    (a failure at every threshold); a NaN translation error alone is ignored (the rotation error is
    returned), because ``nan > x`` is False.
    """
    return max(rotation_error_deg(R_expected, R_estimated), translation_error_deg(t_expected, t_estimated))


FAILED_POSE_ERROR_DEG = 180.0  # error recorded for a pair without prediction or without a pose


def pose_accuracy(errors_deg, thresholds=POSE_THRESHOLDS) -> dict[int, float]:
    """Acc@θ = fraction of pairs with error **strictly** below θ; NaN errors never pass.

    Args:
      errors_deg: per-pair errors (failures should be :data:`FAILED_POSE_ERROR_DEG`).
    Returns:
      ``{θ: accuracy}``.
    """
    errors = np.asarray(errors_deg, np.float64)
    if errors.size == 0:
        return {int(t): math.nan for t in thresholds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {int(t): float(np.mean(errors < t)) for t in thresholds}


def pose_map(accuracy: dict[int, float]) -> dict[str, float]:
    """OANet "mAP": mAP@5 = Acc@5, mAP@10 = mean(Acc@5, Acc@10), mAP@20 = mean(Acc@5, @10, @15, @20)."""
    return {
        "mAP@5": accuracy[5],
        "mAP@10": float(np.mean([accuracy[5], accuracy[10]])),
        "mAP@20": float(np.mean([accuracy[5], accuracy[10], accuracy[15], accuracy[20]])),
    }
