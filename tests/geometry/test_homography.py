"""Homographies against OpenCV (float64) and NumPy float64 references."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.geometry.homography import (
    apply_homography,
    compose,
    dlt_homography,
    fit_homography_least_squares,
    homography_grid,
    invert,
    normalise_scale,
    normalised_to_pixel_homography,
    pixel_to_normalised_homography,
)
from artdup_jax.geometry.sampling import grid_sample, identity_grid, pixel_to_normalised

# A mild projective map on a ~64 px image (pixel coordinates, OpenCV convention).
H_PIX = np.array([[1.05, 0.08, 3.0], [-0.06, 0.97, 2.0], [4e-4, -3e-4, 1.0]])


def _random_homographies(n, seed):
    rng = np.random.default_rng(seed)
    H = np.eye(3) + np.concatenate([rng.normal(0, 0.1, (n, 2, 3)), rng.normal(0, 1e-3, (n, 1, 3))], 1)
    H[:, :2, 2] += rng.normal(0, 10, (n, 2))
    H[:, 2, 2] = 1.0
    return H


def _corner_error(H_est, H_ref, size=320.0):
    corners = np.array([[[0, 0], [size, 0], [size, size], [0, size]]], np.float64)
    a = cv2.perspectiveTransform(corners, np.asarray(H_est, np.float64))
    b = cv2.perspectiveTransform(corners, np.asarray(H_ref, np.float64))
    return np.abs(a - b).max()


def _weighted_dlt_float64(src, dst, w):
    """Independent reference: Hartley-normalised weighted DLT by SVD in float64."""
    def similarity(p):
        c = (w[:, None] * p).sum(0) / w.sum()
        s = np.sqrt(2) / ((w * np.linalg.norm(p - c, axis=1)).sum() / w.sum())
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    t_src, t_dst = similarity(src), similarity(dst)
    p = src @ t_src[:2, :2].T + t_src[:2, 2]
    q = dst @ t_dst[:2, :2].T + t_dst[:2, 2]
    rows = []
    for (x, y), (u, v), wi in zip(p, q, np.sqrt(w)):
        rows.append(wi * np.array([x, y, 1, 0, 0, 0, -u * x, -u * y, -u]))
        rows.append(wi * np.array([0, 0, 0, x, y, 1, -v * x, -v * y, -v]))
    h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
    H = np.linalg.inv(t_dst) @ h @ t_src
    return H / H[2, 2]


def test_apply_homography_matches_cv2_perspective_transform():
    H = _random_homographies(3, 0)
    xy = np.random.default_rng(1).uniform(0, 320, (3, 50, 2))
    expected = np.stack([cv2.perspectiveTransform(p[None], h)[0] for p, h in zip(xy, H)])
    out = apply_homography(jnp.asarray(H, jnp.float32), jnp.asarray(xy, jnp.float32))
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-3, rtol=1e-5)


def test_homography_grid_is_kornia_style_warp_of_ac_identity_grid():
    H = _random_homographies(2, 2)
    grid = np.asarray(homography_grid(jnp.asarray(H, jnp.float32), 4, 6))
    assert grid.shape == (2, 4, 6, 2)
    xs, ys = np.linspace(-1, 1, 6), np.linspace(-1, 1, 4)
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(1, -1, 2)
    for b in range(2):
        expected = cv2.perspectiveTransform(points, H[b])[0].reshape(4, 6, 2)
        np.testing.assert_allclose(grid[b], expected, atol=1e-4)
    single = homography_grid(jnp.asarray(H[0], jnp.float32), 4, 6)
    np.testing.assert_allclose(np.asarray(single), grid[0], atol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
def test_normalised_homography_warp_matches_cv2_warp_perspective(align_corners):
    size_s, size_t = (48, 64), (40, 56)  # (height, width) of source and target
    ys, xs = np.mgrid[0:size_s[0], 0:size_s[1]].astype(np.float32)
    source = (np.sin(xs / 7.0) + np.cos(ys / 5.0) + 0.02 * xs).astype(np.float32)  # smooth image
    # H_PIX maps target pixels -> source pixels (cv2.WARP_INVERSE_MAP convention).
    expected = cv2.warpPerspective(source, H_PIX, (size_t[1], size_t[0]),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    H_norm = pixel_to_normalised_homography(jnp.asarray(H_PIX, jnp.float32), size_t, size_s,
                                            align_corners=align_corners)
    if align_corners:
        grid = homography_grid(H_norm, *size_t)
    else:
        target_points = identity_grid(*size_t, align_corners=False).reshape(-1, 2)
        grid = apply_homography(H_norm, target_points).reshape(size_t + (2,))
    out = grid_sample(jnp.asarray(source)[None, :, :, None], grid[None], align_corners=align_corners)
    # Compare where the source location is safely inside the source image.
    src_pts = cv2.perspectiveTransform(np.stack(np.meshgrid(np.arange(size_t[1]), np.arange(size_t[0])),
                                                -1).reshape(1, -1, 2).astype(np.float64), H_PIX)[0]
    inside = ((src_pts[:, 0] > 1) & (src_pts[:, 0] < size_s[1] - 2)
              & (src_pts[:, 1] > 1) & (src_pts[:, 1] < size_s[0] - 2)).reshape(size_t)
    assert inside.mean() > 0.5
    # OpenCV 5.0 (pinned) samples at exact positions (measured error 2e-6). A half-pixel convention
    # mix-up gives about 3e-2 on this image; OpenCV builds that quantise positions to 1/32 px would
    # give up to ~6e-3.
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0][inside], expected[inside], atol=1e-3)


@pytest.mark.parametrize("align_corners", [True, False])
def test_pixel_normalised_homography_round_trip(align_corners):
    H = _random_homographies(4, 3)
    H_norm = pixel_to_normalised_homography(jnp.asarray(H, jnp.float32), (30, 40), (50, 20),
                                            align_corners=align_corners)
    back = normalised_to_pixel_homography(H_norm, (30, 40), (50, 20), align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(back), H, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("align_corners", [True, False])
def test_normalised_homography_maps_normalised_points_consistently(align_corners):
    src_hw, dst_hw = (30, 40), (50, 20)
    pix = np.random.default_rng(4).uniform(0, 30, (1, 20, 2))
    mapped = cv2.perspectiveTransform(pix, H_PIX)[0]
    H_norm = pixel_to_normalised_homography(jnp.asarray(H_PIX, jnp.float32), src_hw, dst_hw,
                                            align_corners=align_corners)
    norm_in = pixel_to_normalised(jnp.asarray(pix[0], jnp.float32), src_hw, align_corners=align_corners)
    expected = pixel_to_normalised(jnp.asarray(mapped, jnp.float32), dst_hw, align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(apply_homography(H_norm, norm_in)), np.asarray(expected),
                               atol=1e-5)


def test_compose_and_invert_match_numpy_float64():
    A, B = _random_homographies(2, 5)
    np.testing.assert_allclose(np.asarray(compose(jnp.asarray(A), jnp.asarray(B))), A @ B, rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_allclose(np.asarray(invert(jnp.asarray(A, jnp.float32))), np.linalg.inv(A),
                               rtol=1e-4, atol=1e-5)


def test_normalise_scale_divides_by_h22_and_keeps_zero_h22():
    H = jnp.asarray([[[2.0, 0, 4], [0, 2, 6], [0, 0, 2]], [[1.0, 0, 0], [0, 1, 0], [1, 0, 0]]])
    out = np.asarray(normalise_scale(H))
    np.testing.assert_allclose(out[0], [[1, 0, 2], [0, 1, 3], [0, 0, 1]])
    np.testing.assert_allclose(out[1], np.asarray(H[1]))


def test_dlt_homography_matches_cv2_get_perspective_transform():
    H_true = _random_homographies(16, 6)
    rng = np.random.default_rng(7)
    # Four points near the corners of a 320 px square, so no sample is degenerate.
    base = np.array([[20, 20], [300, 20], [300, 300], [20, 300]], np.float64)
    src = (base + rng.uniform(-15, 15, (16, 4, 2))).astype(np.float32)
    dst = np.stack([cv2.perspectiveTransform(s[None].astype(np.float64), h)[0]
                    for s, h in zip(src, H_true)]).astype(np.float32)
    est = np.asarray(jax.jit(jax.vmap(dlt_homography))(jnp.asarray(src), jnp.asarray(dst)))
    for e, s, d, h in zip(est, src, dst, H_true):
        ref = cv2.getPerspectiveTransform(s, d)
        assert _corner_error(e, ref) < 1e-2
        assert _corner_error(e, h) < 1e-2


def test_least_squares_fit_recovers_homography_from_noisy_points():
    rng = np.random.default_rng(8)
    H_true = _random_homographies(1, 9)[0]
    src = rng.uniform(0, 320, (200, 2))
    dst = cv2.perspectiveTransform(src[None], H_true)[0] + rng.normal(0, 0.3, (200, 2))
    weights = np.ones(200)
    est = jax.jit(fit_homography_least_squares)(jnp.asarray(src, jnp.float32),
                                                jnp.asarray(dst, jnp.float32),
                                                jnp.asarray(weights, jnp.float32))
    assert _corner_error(est, _weighted_dlt_float64(src, dst, weights)) < 1e-2
    assert _corner_error(est, H_true) < 0.5


def test_least_squares_fit_ignores_zero_weight_outliers():
    rng = np.random.default_rng(10)
    H_true = _random_homographies(1, 11)[0]
    src = rng.uniform(0, 320, (120, 2))
    dst = cv2.perspectiveTransform(src[None], H_true)[0]
    weights = np.ones(120)
    weights[:40] = 0.0
    dst[:40] += rng.uniform(-150, 150, (40, 2))  # gross outliers, masked out
    est = fit_homography_least_squares(jnp.asarray(src, jnp.float32), jnp.asarray(dst, jnp.float32),
                                       jnp.asarray(weights, jnp.float32))
    assert _corner_error(est, H_true) < 1e-2
