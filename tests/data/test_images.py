"""read_image against files written by PIL / OpenCV with known pixel values."""

import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.images import ImageDownscaledWarning, ImageReadError, read_image, read_image_size


def _rgb8(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_is_float_in_unit_range(tmp_path):
    rgb = _rgb8()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (6, 5, 3)
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-7)


def test_grayscale_is_replicated_to_three_channels(tmp_path):
    gray = _rgb8()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    np.testing.assert_allclose(out, np.repeat(gray[..., None] / 255.0, 3, -1), atol=1e-7)


def test_rgba_alpha_dropped_by_default_like_convert_rgb(tmp_path):
    rgba = np.concatenate([_rgb8(), np.full((6, 5, 1), 0, np.uint8)], -1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(out, rgba[..., :3] / 255.0, atol=1e-7)


def test_rgba_composited_on_white(tmp_path):
    rgb = _rgb8()
    alpha = np.zeros((6, 5), np.uint8)
    alpha[:, :2] = 255
    alpha[:, 2] = 51  # 0.2
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png", alpha="white")
    a = (alpha / 255.0)[..., None]
    np.testing.assert_allclose(out, rgb / 255.0 * a + (1 - a), atol=1e-6)
    assert np.allclose(out[:, 3:], 1.0)  # fully transparent -> white


def test_palette_image_matches_its_rgb_conversion(tmp_path):
    image = Image.fromarray(_rgb8(8, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.save(tmp_path / "p.png")
    expected = np.asarray(image.convert("RGB"), np.float32) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "p.png"), expected, atol=1e-7)


def test_palette_with_transparency_composited_on_white(tmp_path):
    image = Image.new("P", (4, 3), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 1
    image.save(tmp_path / "t.png", transparency=1)
    out = read_image(tmp_path / "t.png", alpha="white")
    np.testing.assert_allclose(out[0, 0], [1, 1, 1])
    np.testing.assert_allclose(out[1, 1], [1, 0, 0])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grayscale_scaled_by_65535(tmp_path, suffix):
    gray = np.array([[0, 1, 256], [32768, 65534, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / f"g{suffix}"), gray)
    out = read_image(tmp_path / f"g{suffix}")
    np.testing.assert_allclose(out, np.repeat(gray[..., None] / 65535.0, 3, -1), atol=1e-7)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_keeps_full_precision(tmp_path, suffix):
    rgb = np.random.default_rng(1).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"c{suffix}"), rgb[..., ::-1])  # OpenCV writes BGR
    out = read_image(tmp_path / f"c{suffix}")
    np.testing.assert_allclose(out, rgb / 65535.0, atol=1e-7)


def test_cmyk_jpeg_matches_pillow_rgb_conversion(tmp_path):
    cmyk = Image.fromarray(_rgb8(16, 16)).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
        expected = np.asarray(im.convert("RGB"), np.float32) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "c.jpg"), expected, atol=1e-7)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(tmp_path, orientation):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = 255  # mark the stored top-left pixel
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif.tobytes())
    out = read_image(tmp_path / "o.png")
    expected = {3: np.rot90(rgb, 2), 6: np.rot90(rgb, -1), 8: np.rot90(rgb, 1)}[orientation]
    np.testing.assert_allclose(out, expected / 255.0)
    assert read_image_size(tmp_path / "o.png") == out.shape[:2]


def test_exif_orientation_applied_to_16bit_colour(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint16)
    rgb[0, 0] = 65535
    # A 16-bit colour PNG with an eXIf chunk: Pillow can write the chunk only for 8-bit data, so splice it.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "e.png", exif=exif.tobytes())
    ok, encoded = cv2.imencode(".png", rgb)
    assert ok
    chunk = _png_chunk(tmp_path / "e.png", b"eXIf")
    data = encoded.tobytes()
    end_of_ihdr = 8 + 8 + 13 + 4
    (tmp_path / "c.png").write_bytes(data[:end_of_ihdr] + chunk + data[end_of_ihdr:])
    out = read_image(tmp_path / "c.png")
    np.testing.assert_allclose(out, np.rot90(rgb, -1) / 65535.0)


def _png_chunk(path, name):
    data = path.read_bytes()
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == name:
            return data[pos:pos + 12 + length]
        pos += 12 + length
    raise AssertionError(f"no {name} chunk")


def test_empty_file_raises_one_line_error_naming_it(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png: empty file") as info:
        read_image(tmp_path / "empty.png")
    assert "\n" not in str(info.value)


def test_non_image_raises(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes.jpg: not a readable image") as info:
        read_image(tmp_path / "notes.jpg")
    assert "\n" not in str(info.value)


def test_truncated_image_raises(tmp_path):
    Image.fromarray(_rgb8(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: no such file"):
        read_image(tmp_path / "nope.png")


def test_image_below_min_side_rejected(tmp_path):
    Image.fromarray(_rgb8(6, 40)).save(tmp_path / "thin.png")
    with pytest.raises(ImageReadError, match=r"thin.png: image is 40x6.*min_side=8"):
        read_image(tmp_path / "thin.png", min_side=8)
    assert read_image(tmp_path / "thin.png", min_side=6).shape == (6, 40, 3)


def test_large_image_downscaled_with_warning(tmp_path):
    rgb = np.full((60, 1200, 3), 128, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    with pytest.warns(ImageDownscaledWarning, match=r"wide.png: 1200x60 .* 300x15"):
        out = read_image(tmp_path / "wide.png", max_side=300)
    assert out.shape == (15, 300, 3)
    np.testing.assert_allclose(out, 128 / 255.0, atol=1e-5)


def test_image_within_max_side_untouched_and_silent(tmp_path):
    Image.fromarray(_rgb8(10, 20)).save(tmp_path / "s.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "s.png", max_side=20).shape == (10, 20, 3)
