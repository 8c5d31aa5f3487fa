"""The resize rule: cell counts, 16n-1 pixel sizes, independent x/y factors, PIL filters."""

import numpy as np
import pytest
from PIL import Image

from artdup_jax.artminer import (
    SCALES,
    cells_for_size,
    resize_factors,
    resize_image,
    resize_to_cells,
    resized_hw,
    scale_list,
)


def test_scale_list_is_the_release_pyramid():
    assert SCALES == scale_list(20, 2, 3) == (80, 74, 68, 60, 49, 36, 20)


@pytest.mark.parametrize("scale, expected_hw", [(80, (959, 1279)), (20, (239, 319))])
def test_worked_examples_for_a_4_3_image(scale, expected_hw):
    assert resized_hw(1600, 1200, scale, 8) == expected_hw  # (H, W) pixels
    assert resized_hw(1200, 1600, scale, 8) == expected_hw[::-1]  # portrait: rows get the longer side


def test_discovery_reference_grid_of_a_4_3_image():
    # 40 cells on the longer side, margin 3 cropped from each side: 34 x 24 reference cells.
    rows, cols = cells_for_size(1600, 1200, 40, 2 * 3 + 1)
    assert (cols - 6, rows - 6) == (34, 24)


def test_pixels_are_16n_minus_1():
    rows, cols = cells_for_size(1000, 700, 49, 13)
    assert (rows, cols) == (34, 49)  # round(49 * 0.7) = 34
    assert resized_hw(1000, 700, 49, 13) == (16 * 34 - 1, 16 * 49 - 1)


def test_shorter_side_minimum():
    assert cells_for_size(1000, 100, 20, 8) == (8, 20)  # round(2) lifted to the stage's minimum
    assert cells_for_size(100, 1000, 20, 13) == (20, 13)
    assert cells_for_size(1000, 100, 8, 1) == (1, 8)  # a query box: minimum one cell


def test_halves_round_away_from_zero_as_python_2():
    # A 16x9 box at 8 cells: 8 / (16 / 9) = 4.5 exactly; Python 3's round would give 4.
    assert round(8 / (16 / 9)) == 4
    assert cells_for_size(16, 9, 8, 1) == (5, 8)


def test_x_and_y_get_independent_scale_factors():
    height, width = resized_hw(1000, 700, 20, 8)
    assert (height, width) == (223, 319)
    assert resize_factors(1000, 700, 20, 8) == (223 / 700, 319 / 1000)  # 0.3186 vs 0.319


@pytest.mark.parametrize("size_hw", [(239, 319), (31, 47), (400, 500)])
@pytest.mark.parametrize("resample, pil_filter", [("nearest", Image.NEAREST), ("bilinear", Image.BILINEAR),
                                                  ("bicubic", Image.BICUBIC)])
def test_resize_equals_pil(size_hw, resample, pil_filter):
    image = np.random.default_rng(2).integers(0, 256, size=(300, 410, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize(size_hw[::-1], pil_filter))
    got = resize_image(image / np.float32(255), size_hw, resample=resample)
    assert got.shape == (*size_hw, 3)
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8), expected)


def test_nearest_is_the_default_and_keeps_uint8():
    image = np.random.default_rng(3).integers(0, 256, size=(100, 133, 3), dtype=np.uint8)
    got = resize_to_cells(image, 5, 1)
    assert got.dtype == np.uint8 and got.shape == (63, 79, 3)
    np.testing.assert_array_equal(got, np.asarray(Image.fromarray(image).resize((79, 63), Image.NEAREST)))


def test_unknown_filter_is_refused():
    with pytest.raises(ValueError, match="resample"):
        resize_image(np.zeros((4, 4, 3), np.float32), (2, 2), resample="area")
