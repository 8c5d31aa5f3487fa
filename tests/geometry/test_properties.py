"""Property-based tests (hypothesis) of the geometry over random homographies and correspondences.

Shapes are fixed (64 matches, padded by ``find_homography`` to 128 rows; a few image sizes), so the jitted
RANSAC compiles once for every example.
"""

import cv2
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from artdup_jax.geometry.homography import (
    apply_homography,
    compose,
    dlt_homography,
    homography_grid,
    invert,
    normalised_to_pixel_homography,
    pixel_to_normalised_homography,
)
from artdup_jax.geometry import ransac
from artdup_jax.geometry.ransac import find_homography
from artdup_jax.geometry.sampling import grid_sample, identity_grid, normalised_to_pixel, pixel_to_normalised

SIDE = 200.0  # pixels: the square whose corners the random homographies move
NUM_MATCHES = 64
SETTINGS = settings(max_examples=25, deadline=None)

corner_offsets = st.lists(st.floats(-0.15, 0.15), min_size=8, max_size=8)  # fractions of SIDE
seeds = st.integers(0, 2**31 - 1)
image_sizes = st.sampled_from([(5, 7), (8, 8), (16, 9), (1, 6)])


def homography_from_offsets(offsets) -> np.ndarray:
    """``(3, 3)`` float64 moving the corners of the ``SIDE`` square by ``offsets`` (well conditioned: every
    corner moves by at most 15% of the side, so the quadrilateral stays convex)."""
    corners = np.float32([[0, 0], [SIDE, 0], [SIDE, SIDE], [0, SIDE]])
    moved = corners + np.float32(offsets).reshape(4, 2) * SIDE
    return cv2.getPerspectiveTransform(corners, moved).astype(np.float64)


def project(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    homogeneous = np.concatenate([xy, np.ones((len(xy), 1))], 1) @ H.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


@SETTINGS
@given(offsets=corner_offsets, seed=seeds)
def test_find_homography_recovers_a_random_homography_from_exact_matches(offsets, seed):
    H = homography_from_offsets(offsets)
    src = np.random.default_rng(seed).uniform(0, SIDE, (NUM_MATCHES, 2))
    found, inliers = find_homography(src, project(H, src), threshold=1.0, iterations=200, seed=seed % 1000)
    assert found is not None and inliers.all()
    np.testing.assert_allclose(project(found, src), project(H, src), atol=0.05)


@SETTINGS
@given(offsets=corner_offsets, seed=seeds)
def test_find_homography_keeps_every_true_match_among_30_percent_outliers(offsets, seed):
    rng = np.random.default_rng(seed)
    H = homography_from_offsets(offsets)
    src = rng.uniform(0, SIDE, (NUM_MATCHES, 2))
    dst = project(H, src)
    outlier = np.arange(NUM_MATCHES) < int(0.3 * NUM_MATCHES)
    dst[outlier] += rng.uniform(20, 60, (outlier.sum(), 2)) * rng.choice([-1, 1], (outlier.sum(), 2))
    found, inliers = find_homography(src, dst, threshold=2.0, iterations=500, seed=seed % 1000)
    assert found is not None
    assert inliers[~outlier].all() and not inliers[outlier].any()
    np.testing.assert_allclose(project(found, src[~outlier]), dst[~outlier], atol=0.05)


@SETTINGS
@given(offsets=corner_offsets, seed=seeds)
def test_dlt_through_four_exact_correspondences_gives_the_homography_back(offsets, seed):
    H = homography_from_offsets(offsets)
    # Four points in general position: one in each quadrant of the square.
    quadrants = np.float64([[0, 0], [1, 0], [1, 1], [0, 1]]) * SIDE / 2
    src = quadrants + np.random.default_rng(seed).uniform(0.1, 0.9, (4, 2)) * SIDE / 2
    fitted = np.asarray(dlt_homography(jnp.asarray(src, jnp.float32), jnp.asarray(project(H, src), jnp.float32)))
    np.testing.assert_allclose(fitted / fitted[2, 2], H / H[2, 2], rtol=2e-3, atol=2e-4 * SIDE)


@SETTINGS
@given(offsets=corner_offsets, size=image_sizes, align_corners=st.booleans())
def test_pixel_and_normalised_homographies_round_trip_and_agree_on_points(offsets, size, align_corners):
    H = jnp.asarray(homography_from_offsets(offsets), jnp.float32)
    src_hw, dst_hw = size, (size[1] + 3, size[0] + 2)
    H_norm = pixel_to_normalised_homography(H, src_hw, dst_hw, align_corners=align_corners)
    back = normalised_to_pixel_homography(H_norm, src_hw, dst_hw, align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(back), np.asarray(H / H[2, 2]), rtol=1e-4, atol=1e-3)
    pixels = jnp.asarray([[0.0, 0.0], [src_hw[1] - 1, src_hw[0] - 1], [0.5, 0.25]])
    through_pixels = pixel_to_normalised(apply_homography(H, pixels), dst_hw, align_corners=align_corners)
    through_normalised = apply_homography(H_norm, pixel_to_normalised(pixels, src_hw, align_corners=align_corners))
    np.testing.assert_allclose(np.asarray(through_normalised), np.asarray(through_pixels), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(offsets=corner_offsets)
def test_a_homography_composed_with_its_inverse_is_the_identity(offsets):
    H = jnp.asarray(homography_from_offsets(offsets) / SIDE, jnp.float32)  # entries of order 1
    np.testing.assert_allclose(np.asarray(compose(H, invert(H))), np.eye(3), atol=1e-5)
    np.testing.assert_allclose(np.asarray(compose(invert(H), H)), np.eye(3), atol=1e-5)


@SETTINGS
@given(first=corner_offsets, second=corner_offsets, size=image_sizes)
def test_warp_grid_of_a_composition_is_the_first_applied_to_the_grid_of_the_second(first, second, size):
    # Normalised (AC) warp matrices: the pixel homographies re-expressed on a SIDE x SIDE image.
    to_normalised = lambda o: pixel_to_normalised_homography(  # noqa: E731
        jnp.asarray(homography_from_offsets(o), jnp.float32), (SIDE, SIDE), (SIDE, SIDE), align_corners=True)
    A, B = to_normalised(first), to_normalised(second)
    composed = homography_grid(compose(A, B), *size)
    chained = apply_homography(A, homography_grid(B, *size).reshape(-1, 2)).reshape(composed.shape)
    np.testing.assert_allclose(np.asarray(composed), np.asarray(chained), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(size=image_sizes, channels=st.sampled_from([1, 3]), align_corners=st.booleans(), seed=seeds)
def test_grid_sample_on_the_identity_grid_returns_the_image(size, channels, align_corners, seed):
    image = np.random.default_rng(seed).uniform(0, 1, (1, *size, channels)).astype(np.float32)
    grid = identity_grid(*size, align_corners=align_corners)[None]
    sampled = grid_sample(jnp.asarray(image), grid, align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(sampled), image, atol=1e-5)
    back = normalised_to_pixel(grid, size, align_corners=align_corners)[0]
    np.testing.assert_allclose(np.asarray(back[..., 0]), np.broadcast_to(np.arange(size[1]), size), atol=1e-4)
    np.testing.assert_allclose(np.asarray(back[..., 1]), np.broadcast_to(np.arange(size[0])[:, None], size),
                               atol=1e-4)


def test_random_match_sets_of_one_size_share_one_compiled_ransac():
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(3):
        src = rng.uniform(0, SIDE, (NUM_MATCHES, 2))
        find_homography(src, src + rng.uniform(-1, 1, 2), threshold=1.0, iterations=200)
        sizes.append(ransac._ransac_jit._cache_size())
    assert sizes[0] == sizes[1] == sizes[2]
