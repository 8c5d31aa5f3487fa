"""``read_image``'s size limits: the pixel limit (``MAX_PIXELS`` / ``ARTDUP_MAX_PIXELS``), Pillow's
decompression-bomb limit, and ``reading_limits``."""

import numpy as np
import pytest
from PIL import Image

from artdup_jax.data import images
from artdup_jax.data.images import ImageDownscaledWarning, ImageReadError, read_image, read_image_size, reading_limits


def _gradient(height: int, width: int) -> np.ndarray:
    rows = np.linspace(0, 255, height)[:, None, None]
    cols = np.linspace(0, 255, width)[None, :, None]
    return np.broadcast_to(np.concatenate([rows + 0 * cols, 0 * rows + cols, 128 + 0 * rows + 0 * cols], -1),
                           (height, width, 3)).astype(np.uint8)


def test_default_limit_is_max_pixels_and_the_environment_overrides_it(monkeypatch):
    monkeypatch.delenv("ARTDUP_MAX_PIXELS", raising=False)
    assert images.default_max_pixels() == images.MAX_PIXELS == 40_000_000
    monkeypatch.setenv("ARTDUP_MAX_PIXELS", "2.5e6")
    assert images.default_max_pixels() == 2_500_000
    monkeypatch.setenv("ARTDUP_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="ARTDUP_MAX_PIXELS must be a number of pixels, got 'lots'"):
        images.default_max_pixels()


def test_reading_limits_apply_inside_the_block_only(tmp_path):
    Image.fromarray(_gradient(12, 40)).save(tmp_path / "strip.png")
    with reading_limits(min_side=16, min_side_reason="smaller than one cell", max_pixels=200):
        with pytest.raises(ImageReadError, match=r"strip.png: image is 40x12 px, shorter side below "
                                                  r"min_side=16 \(smaller than one cell\)"):
            read_image(tmp_path / "strip.png")
        assert read_image(tmp_path / "strip.png", min_side=None, max_pixels=None).shape == (12, 40, 3)
    Image.fromarray(_gradient(30, 40)).save(tmp_path / "small.png")
    with reading_limits(max_pixels=300), pytest.warns(ImageDownscaledWarning, match="small.png: 40x30 image"):
        assert read_image(tmp_path / "small.png").shape == (15, 20, 3)
    assert read_image(tmp_path / "strip.png").shape == (12, 40, 3)  # the defaults are back


def test_a_jpeg_beyond_pillows_bomb_limit_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    pixels = _gradient(240, 320)
    Image.fromarray(pixels).save(tmp_path / "scan.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "scan.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # the files hold 76800 > 2 x 10000 pixels
    with pytest.warns(ImageDownscaledWarning, match=r"scan.jpg: 320x240 image \(0.0768 MP\) downscaled to 69x51"):
        image = read_image(tmp_path / "scan.jpg", max_pixels=3600)
    assert image.shape == (51, 69, 3) and read_image_size(tmp_path / "scan.jpg", max_pixels=3600) == (51, 69)
    expected = np.asarray(Image.fromarray(pixels).resize((69, 51), Image.Resampling.LANCZOS)) / 255.0
    np.testing.assert_allclose(image, expected, atol=0.06)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # restored
    with pytest.raises(ImageReadError, match=r"scan.png: image too large for Pillow's safety limit"):
        read_image(tmp_path / "scan.png", max_pixels=3600)


def test_an_image_within_the_limit_is_untouched(tmp_path):
    Image.fromarray(_gradient(30, 40)).save(tmp_path / "small.png")
    image = read_image(tmp_path / "small.png", max_pixels=1200)
    np.testing.assert_array_equal(np.round(image * 255).astype(np.uint8), _gradient(30, 40))
