"""Full-resolution outputs of ``artdup align``: a 3000 x 2000 pair made from an up-scaled photograph and a known
homography; the homography in original pixels, the tiled warp against ``cv2.warpPerspective``, the map in
original pixels, and the warp's memory bounded by its tiles."""

import json
import tracemalloc

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax.app import align
from artdup_jax.geometry.full_resolution import residual_from_grid, warp_full_resolution

TARGET_HW = (2000, 3000)
SOURCE_HW = (1600, 2400)


def _true_homography() -> np.ndarray:
    """Source → target pixels: enlarged 1.25 times, then a perspective (corners moved, target pixels)."""
    h, w = TARGET_HW
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    moved = corners + np.float32([[90, 40], [-120, 70], [-60, -100], [110, -30]])
    return cv2.getPerspectiveTransform(corners, moved).astype(np.float64) @ np.diag([1.25, 1.25, 1.0])


@pytest.fixture(scope="module")
def large_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    source = cv2.resize(skimage.data.coffee(), (SOURCE_HW[1], SOURCE_HW[0]), interpolation=cv2.INTER_CUBIC)
    target = cv2.warpPerspective(source, _true_homography(), (TARGET_HW[1], TARGET_HW[0]), flags=cv2.INTER_LINEAR)
    Image.fromarray(source).save(folder / "source.png")
    Image.fromarray(target).save(folder / "target.png")
    return folder, source


@pytest.fixture(scope="module")
def aligned(large_pair, tmp_path_factory):
    folder, _ = large_pair
    out = tmp_path_factory.mktemp("aligned")
    pair = align.align_images(str(folder / "source.png"), str(folder / "target.png"), str(out))
    return out, pair


def _corners_error(H, H_true) -> float:
    """Largest distance (target px) between where two homographies send the source frame's corners."""
    h, w = SOURCE_HW
    corners = np.float64([[[0, 0]], [[w - 1, 0]], [[w - 1, h - 1]], [[0, h - 1]]])
    return float(np.abs(cv2.perspectiveTransform(corners, H) - cv2.perspectiveTransform(corners, H_true)).max())


def test_the_homography_in_original_pixels_matches_the_known_one(aligned):
    out, pair = aligned
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] and summary["original_size_hw"] == {"source": list(SOURCE_HW), "target": list(TARGET_HW)}
    assert _corners_error(np.array(summary["homographies_pixels"][0]), _true_homography()) < 2.0  # of 3000 px


def test_the_warped_source_is_at_the_targets_resolution_and_matches_opencv(aligned, large_pair):
    out, pair = aligned
    _, source = large_pair
    warped = np.asarray(Image.open(out / "warped_full.png"))
    assert warped.shape == TARGET_HW + (3,)
    H = np.array(pair.summary["homographies_pixels"][0])
    reference = cv2.warpPerspective(source, H, (TARGET_HW[1], TARGET_HW[0]), flags=cv2.INTER_LINEAR)
    inside = cv2.erode(cv2.warpPerspective(np.ones(SOURCE_HW, np.uint8), H, (TARGET_HW[1], TARGET_HW[0])),
                       np.ones((5, 5), np.uint8)).astype(bool)
    difference = np.abs(warped.astype(np.int16) - reference)[inside]
    assert difference.mean() < 0.1 and difference.max() <= 3  # same warp; interpolation rounding only
    truth = cv2.warpPerspective(source, _true_homography(), (TARGET_HW[1], TARGET_HW[0]), flags=cv2.INTER_LINEAR)
    assert np.abs(warped.astype(np.int16) - truth)[inside].mean() < 3.0  # the known alignment, within a few px


def test_the_full_resolution_flow_maps_original_target_pixels_to_original_source_pixels(aligned):
    out, pair = aligned
    flow = np.load(out / "flow_full.npy", mmap_mode="r")
    assert flow.shape == TARGET_HW + (2,) and flow.dtype == np.float32
    rng = np.random.default_rng(0)
    xy = np.stack([rng.integers(0, TARGET_HW[1], 200), rng.integers(0, TARGET_HW[0], 200)], 1).astype(np.float64)
    H = np.array(pair.summary["homographies_pixels"][0])
    expected = cv2.perspectiveTransform(xy[:, None], np.linalg.inv(H))[:, 0]
    found = flow[xy[:, 1].astype(int), xy[:, 0].astype(int)]
    np.testing.assert_allclose(found, expected, atol=0.01)
    truth = cv2.perspectiveTransform(xy[:, None], np.linalg.inv(_true_homography()))[:, 0]
    assert np.abs(found - truth).max() < 2.0


def test_the_processing_size_outputs_stay_as_they_were(aligned):
    out, pair = aligned
    target = np.asarray(Image.open(out / "target.png"))
    assert max(target.shape[:2]) <= 400 and np.load(out / "flow.npy").shape == target.shape[:2] + (2,)
    for name in ("coarse.png", "blend.png", "blink.gif", "matchability.png"):
        assert (out / name).is_file(), name


def test_the_tiled_warp_needs_memory_for_its_tiles_not_for_the_whole_map(large_pair):
    _, source = large_pair
    H = _true_homography()
    tracemalloc.start()
    try:
        warped = warp_full_resolution(source, H, TARGET_HW, tile=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_map_bytes = TARGET_HW[0] * TARGET_HW[1] * 2 * 8  # one float64 (x, y) per target pixel: 96 MB
    assert peak - warped.nbytes < 8 * 2**20 and peak < full_map_bytes / 4
    reference = cv2.warpPerspective(source, H, (TARGET_HW[1], TARGET_HW[0]), flags=cv2.INTER_LINEAR)
    assert np.abs(warped.astype(np.int16) - reference).mean() < 0.1


def test_writing_the_full_resolution_outputs_needs_less_memory_than_one_full_size_map(aligned, large_pair, tmp_path):
    _, pair = aligned
    source = large_pair[1].astype(np.float32) / 255
    tracemalloc.start()
    try:
        align.write_full_resolution(pair.staged, source, str(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output image (uint8) and its PNG encoding, the source as uint8, tiles; the map goes to a memory map.
    assert peak < TARGET_HW[0] * TARGET_HW[1] * 2 * 8
    np.testing.assert_array_equal(np.load(tmp_path / "flow_full.npy"), np.load(aligned[0] / "flow_full.npy"))


def test_a_residual_moves_the_tiled_warp_as_it_says():
    source = cv2.resize(skimage.data.astronaut(), (700, 500))
    H = np.array([[1.1, 0.05, 12.0], [-0.03, 0.95, 7.0], [1e-5, 2e-5, 1.0]])
    residual = np.zeros((40, 60, 2), np.float32)
    residual[..., 0] = 3.0  # read 3 source pixels further right everywhere
    coordinates = np.zeros((520, 610, 2), np.float32)
    warp_full_resolution(source, H, (520, 610), residual=residual, tile=128, coordinates_out=coordinates)
    plain = np.zeros_like(coordinates)
    warp_full_resolution(source, H, (520, 610), tile=200, coordinates_out=plain)
    np.testing.assert_allclose(coordinates - plain, np.broadcast_to([3.0, 0.0], plain.shape), atol=1e-3)


def test_the_residual_of_a_homography_grid_is_zero():
    from artdup_jax.app.alignment_stages import pixel_to_grid_homography
    from artdup_jax.geometry.homography import homography_grid
    import jax.numpy as jnp

    H = np.array([[1.1, 0.05, 12.0], [-0.03, 0.95, 7.0], [1e-5, 2e-5, 1.0]])
    source_hw, target_hw, source_proc, target_proc = (500, 700), (520, 610), (272, 384), (320, 368)
    grid = np.asarray(homography_grid(jnp.asarray(pixel_to_grid_homography(H, source_proc, target_proc, source_hw,
                                                                             target_hw), jnp.float32), *target_proc))
    assert np.abs(residual_from_grid(grid, source_proc, H, source_hw, target_hw)).max() < 0.05
