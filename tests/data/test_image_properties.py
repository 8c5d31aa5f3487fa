"""Property-based tests (hypothesis) of ``read_image``: whatever the shape, dtype, channel count, format or
EXIF orientation, the result is ``(H, W, 3)`` float32 in [0, 1] holding the stored values; whatever bytes a
file holds, the result is that or an ``ImageReadError`` of one line naming the file."""

import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from artdup_jax.data.images import ImageDownscaledWarning, ImageReadError, read_image, read_image_size

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sides = st.integers(1, 40)
# (dtype, channels, extension): what each encoder stores losslessly.
encodings = st.sampled_from([
    ("uint8", 1, ".png"), ("uint8", 2, ".png"), ("uint8", 3, ".png"), ("uint8", 4, ".png"),
    ("uint8", 1, ".tif"), ("uint8", 3, ".tif"), ("uint8", 3, ".bmp"), ("uint8", 3, ".ppm"),
    ("uint16", 1, ".png"), ("uint16", 3, ".png"), ("uint16", 4, ".png"), ("uint16", 1, ".tif"),
    ("uint16", 3, ".tif"),
])


def write(path: Path, pixels: np.ndarray) -> None:
    """Writes ``(H, W, C)`` uint8 / uint16 pixels (RGB(A) order) losslessly."""
    channels = pixels.shape[-1]
    if pixels.dtype == np.uint16 and channels >= 3:  # Pillow cannot write 16-bit colour
        cv2.imwrite(str(path), pixels[..., [2, 1, 0, 3][:channels]])
    elif pixels.dtype == np.uint16:
        Image.fromarray(pixels[..., 0]).save(path)  # mode I;16
    else:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode).save(path)


def expected_rgb(pixels: np.ndarray) -> np.ndarray:
    """What ``read_image`` must return: grey replicated, alpha dropped, divided by the dtype's maximum."""
    colour = pixels[..., :1] if pixels.shape[-1] <= 2 else pixels[..., :3]
    return np.broadcast_to(colour, pixels.shape[:2] + (3,)).astype(np.float32) / np.iinfo(pixels.dtype).max


@SETTINGS
@given(height=sides, width=sides, encoding=encodings, seed=st.integers(0, 2**31 - 1))
def test_any_shape_dtype_and_channel_count_reads_as_rgb_float_in_unit_range(height, width, encoding, seed):
    dtype, channels, extension = encoding
    pixels = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, (height, width, channels),
                                                  endpoint=True).astype(dtype)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{extension}"
        write(path, pixels)
        image = read_image(path)
        assert read_image_size(path) == (height, width)
    assert image.shape == (height, width, 3) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    np.testing.assert_allclose(image, expected_rgb(pixels), atol=1e-6)


@SETTINGS
@given(height=sides, width=sides, orientation=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_exif_orientation_gives_the_image_as_a_viewer_shows_it(height, width, orientation, seed):
    shown = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    # The stored pixels are what a viewer turns back into ``shown`` when it applies ``orientation``.
    undo = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, 1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
            8: lambda a: np.rot90(a, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rotated.png"
        Image.fromarray(np.ascontiguousarray(undo(shown))).save(path, exif=exif)
        image = read_image(path)
        assert read_image_size(path) == (height, width)
    np.testing.assert_allclose(image, shown / np.float32(255), atol=1e-6)


@SETTINGS
@given(height=st.integers(20, 300), width=st.integers(20, 300), limit=st.integers(100, 5000),
       extension=st.sampled_from([".png", ".jpg"]))
def test_images_above_the_pixel_limit_are_downscaled_within_it_keeping_the_aspect_ratio(height, width, limit,
                                                                                       extension):
    pixels = np.full((height, width, 3), 90, np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"large{extension}"
        Image.fromarray(pixels).save(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image(path, max_pixels=limit)
        assert read_image_size(path, max_pixels=limit) == image.shape[:2]
    if height * width <= limit:
        assert image.shape == (height, width, 3) and not caught
        return
    h, w = image.shape[:2]
    assert h * w <= limit and image.shape[2] == 3
    assert abs(w / h - width / height) <= width / height * (1 / h + 1 / w) + 1e-9  # one pixel of rounding
    assert h * w > limit * 0.7 or min(h, w) <= 3  # not shrunk more than needed
    assert len(caught) == 1 and issubclass(caught[0].category, ImageDownscaledWarning)
    assert str(caught[0].message).startswith(f"{path}: {width}x{height} image")
    np.testing.assert_allclose(image, 90 / 255, atol=2 / 255)


@SETTINGS
@given(data=st.binary(max_size=2000), extension=st.sampled_from([".png", ".jpg", ".tif", ".gif"]))
def test_arbitrary_bytes_give_an_image_or_a_one_line_error_naming_the_file(data, extension):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"file{extension}"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except ImageReadError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
            return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32
    assert np.isfinite(image).all() and 0.0 <= image.min() and image.max() <= 1.0


@SETTINGS
@given(height=sides, width=sides, cut=st.floats(0.0, 0.95), extension=st.sampled_from([".png", ".jpg"]))
def test_a_truncated_file_gives_an_image_or_a_one_line_error_naming_the_file(height, width, cut, extension):
    pixels = np.random.default_rng(height * 41 + width).integers(0, 256, (height, width, 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        whole, path = Path(folder) / f"whole{extension}", Path(folder) / f"cut{extension}"
        Image.fromarray(pixels).save(whole)
        data = whole.read_bytes()
        path.write_bytes(data[: int(cut * len(data))])
        try:
            image = read_image(path)
        except ImageReadError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
            return
        # Only trailing markers were cut (a PNG's IEND, a JPEG's EOI): the pixels are all there.
        np.testing.assert_allclose(image, read_image(whole), atol=1e-6)
