"""Robust image reading: every file becomes ``(H, W, 3)`` float32 RGB in [0, 1].

Conventions (one place, so every reader and evaluation agrees):

* EXIF orientation is applied (``PIL.ImageOps.exif_transpose``): the array is the image as a viewer shows it.
* Grayscale (1-bit, 8-bit, 16-bit, 32-bit integer, float) is replicated to three channels.
* 8-bit data is divided by 255, 16-bit data (PNG / TIFF, grayscale or colour) by 65535. Pillow truncates
  16-bit colour PNG / TIFF to 8 bits, so those are decoded with OpenCV instead. 32-bit integer ("I")
  images are taken to hold 16-bit data (older Pillow opened 16-bit PNGs that way) and clipped to 65535;
  float ("F") images are clipped to [0, 1].
* Palette and CMYK images go through Pillow's conversion to RGB.
* Alpha: ``alpha="drop"`` (default) keeps the stored colour and ignores transparency, exactly as
  ``Image.convert("RGB")`` does in the reference code (the RANSAC-Flow quick-start inputs are RGBA);
  ``alpha="white"`` composites onto a white background (``rgb * a + (1 - a)``).
* Multi-frame files (GIF, TIFF stacks) give their first frame.
* Size limits: an image of more than ``max_pixels`` pixels (default ``MAX_PIXELS`` = 40 megapixels, about
  480 MB as float32 RGB; the environment variable ``ARTDUP_MAX_PIXELS`` changes it) is downscaled, aspect
  ratio kept, with an ``ImageDownscaledWarning``; JPEGs are decoded at a reduced scale directly, other 8-bit
  images are shrunk before the float conversion, so the full-size float array never exists. Other files
  beyond Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` x 2) are refused (a JPEG is
  decoded at reduced scale, so it is read whatever its size). ``min_side`` rejects
  images too small to use. ``reading_limits`` sets both defaults for a block of code (the ``artdup`` tool
  rejects images smaller than one 16-pixel feature cell this way).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_ALPHA_MODES = ("drop", "white")
_EXIF_ORIENTATION_TAG = 0x0112
_EXIF_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
MAX_PIXELS = 40_000_000  # default downscaling limit (``ARTDUP_MAX_PIXELS`` overrides it)
_DEFAULT = object()  # "use the current default" (``reading_limits``), distinct from None = no limit
_limits = {"min_side": None, "min_side_reason": "", "max_pixels": None}


def default_max_pixels() -> int | None:
    """The pixel count above which images are downscaled: ``reading_limits``, else ``ARTDUP_MAX_PIXELS``, else
    ``MAX_PIXELS``."""
    if _limits["max_pixels"] is not None:
        return _limits["max_pixels"]
    value = os.environ.get("ARTDUP_MAX_PIXELS", "").strip()
    if value:
        try:
            return max(1, int(float(value)))
        except ValueError:
            raise ValueError(f"ARTDUP_MAX_PIXELS must be a number of pixels, got {value!r}") from None
    return MAX_PIXELS


@contextlib.contextmanager
def reading_limits(*, min_side: int | None = None, min_side_reason: str = "", max_pixels: int | None = None):
    """Within the block, ``read_image`` rejects images with a shorter side below ``min_side`` (saying
    ``min_side_reason``) and downscales images above ``max_pixels`` unless its caller says otherwise."""
    saved = dict(_limits)
    _limits.update(min_side=min_side, min_side_reason=min_side_reason, max_pixels=max_pixels)
    try:
        yield
    finally:
        _limits.update(saved)


class ImageReadError(ValueError):
    """A file that cannot be used as an image; the message is one line and names the file."""


class ImageDownscaledWarning(UserWarning):
    """``read_image`` shrank an image to respect ``max_side``."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")


def _open(path: Path, max_pixels: int | None) -> tuple[Image.Image, bool, tuple[int, int]]:
    """The decoded image, whether it stores 16-bit colour (known only before decoding) and its stored
    ``(H, W)`` as a viewer shows it (EXIF rotation applied; before any reduced-scale decoding).

    A JPEG of more than ``max_pixels`` is decoded at the smallest of 1/2, 1/4, 1/8 scale still above it.
    """
    image = None
    try:
        image = _open_lazily(path, max_pixels)
        is_16bit_colour = _is_16bit_colour(image)
        width, height = image.size
        stored_hw = (width, height) if _orientation(image) in _EXIF_TRANSPOSED else (height, width)
        if max_pixels is not None and width * height > max_pixels and image.format == "JPEG":
            scale = math.sqrt(max_pixels / (width * height))
            image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large for Pillow's safety limit "
                             f"(PIL.Image.MAX_IMAGE_PIXELS): {_one_line(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if image is not None:
            image.close()
        raise ImageReadError(f"{path}: not a readable image ({_one_line(exc)})") from None
    return image, is_16bit_colour, stored_hw


def _open_lazily(path: Path, max_pixels: int | None) -> Image.Image:
    """``Image.open`` (header only). Pillow refuses files beyond twice ``Image.MAX_IMAGE_PIXELS``; a JPEG that
    will be decoded at reduced scale (more than ``max_pixels``) is opened anyway: its decode stays small."""
    with warnings.catch_warnings():  # between 1x and 2x Pillow's limit: we downscale and say so ourselves
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            with open(path, "rb") as f:
                is_jpeg = f.read(2) == b"\xff\xd8"
            if max_pixels is None or not is_jpeg:
                raise
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # malformed EXIF: treat as unrotated, like a viewer would
        return None


def _is_16bit_colour(image: Image.Image) -> bool:
    """Pillow decodes 16-bit-per-channel colour to 8 bits; before decoding its raw mode says ``;16``."""
    if image.mode not in ("RGB", "RGBA", "RGBX"):
        return False
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _orient(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply an EXIF orientation to an ``(H, W, C)`` array as ``ImageOps.exif_transpose`` would."""
    if orientation in (None, 1):
        return array
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms[orientation](array)) if orientation in transforms else array


def _read_16bit_colour(path: Path, image: Image.Image) -> np.ndarray:
    import cv2

    data = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.ndim != 3 or data.dtype != np.uint16:
        # OpenCV could not do better than Pillow: fall back to Pillow's 8-bit decode.
        return _pil_to_float(ImageOps.exif_transpose(image))
    order = [2, 1, 0, 3] if data.shape[2] == 4 else [2, 1, 0]
    rgba = data[..., order].astype(np.float32) / 65535.0
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # malformed EXIF: treat as unrotated, like a viewer would
        orientation = None
    return _orient(rgba, orientation)


def _pil_to_float(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` or ``(H, W, 4)`` float32 in [0, 1] (4 channels only when the image has alpha)."""
    mode = image.mode
    if mode.startswith("I;16"):
        gray = np.asarray(image).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "I":
        gray = np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info)
    converted = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(converted, dtype=np.float32) / 255.0


def _within_pixels(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest ``(H, W)`` of the same aspect ratio (sides rounded down, at least 1) with at most
    ``max_pixels`` pixels."""
    scale = math.sqrt(max_pixels / (height * width))
    new_height, new_width = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
    while new_height * new_width > max_pixels:  # float rounding; max_pixels >= 1
        if new_height >= new_width:
            new_height -= 1
        else:
            new_width -= 1
    return new_height, new_width


def _reduced_size(size_hw: tuple[int, int], max_pixels: int | None) -> tuple[int, int]:
    """``size_hw`` itself within the limit, else the largest same-aspect size within it."""
    height, width = size_hw
    if max_pixels is None or height * width <= max_pixels:
        return size_hw
    return _within_pixels(height, width, max_pixels)


def _shrink_8bit(image: Image.Image, size_hw: tuple[int, int]) -> Image.Image | None:
    """The image resized in Pillow (8-bit modes only: no float copy of the full size); None otherwise."""
    if image.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return None
    has_alpha = image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info
    converted = image.convert("RGBA" if has_alpha else "RGB")
    return converted.resize((size_hw[1], size_hw[0]), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _resize(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Per-channel float Lanczos (Pillow "F" images), clipped back to [0, 1]."""
    height, width = size_hw
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F")
                           .resize((width, height), Image.Resampling.LANCZOS))
                for c in range(rgb.shape[-1])]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def read_image_size(path, *, max_pixels=_DEFAULT) -> tuple[int, int]:
    """``(height, width)`` as :func:`read_image` would return it (EXIF rotation and the ``max_pixels``
    downscaling included), from the header only."""
    max_pixels = default_max_pixels() if max_pixels is _DEFAULT else max_pixels
    path = Path(path)
    _check_file(path)
    try:
        with _open_lazily(path, max_pixels) as image:
            width, height = image.size
            orientation = _orientation(image)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large for Pillow's safety limit "
                             f"(PIL.Image.MAX_IMAGE_PIXELS): {_one_line(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({_one_line(exc)})") from None
    return _reduced_size((width, height) if orientation in _EXIF_TRANSPOSED else (height, width), max_pixels)


def read_image(path, *, max_side: int | None = None, min_side=_DEFAULT, max_pixels=_DEFAULT,
               alpha: str = "drop") -> np.ndarray:
    """Read any common image file as RGB.

    Args:
      path: file to read.
      max_side: if given and the longer side exceeds it, the image is shrunk (aspect ratio kept, Lanczos,
        sides rounded) so that the longer side equals ``max_side``, with an ``ImageDownscaledWarning``.
      min_side: if not None, an image whose shorter side (before any downscaling) is below it is rejected
        (default: none, or what ``reading_limits`` set).
      max_pixels: if not None, an image of more pixels is downscaled to at most that many (aspect ratio kept,
        Lanczos) with an ``ImageDownscaledWarning`` (default: ``default_max_pixels()``).
      alpha: "drop" (ignore transparency, as ``convert("RGB")``) or "white" (composite on white).
    Returns:
      ``(H, W, 3)`` float32 RGB in [0, 1], EXIF orientation applied.
    Raises:
      ImageReadError: missing, empty, truncated, non-image or too-small files (one-line message).
    """
    if alpha not in _ALPHA_MODES:
        raise ValueError(f"alpha must be one of {_ALPHA_MODES}, got {alpha!r}")
    min_side = _limits["min_side"] if min_side is _DEFAULT else min_side
    max_pixels = default_max_pixels() if max_pixels is _DEFAULT else max_pixels
    path = Path(path)
    _check_file(path)
    image, is_16bit_colour, stored_hw = _open(path, max_pixels)
    height, width = stored_hw  # as a viewer shows the file, before any downscaling
    reduced_hw = _reduced_size(stored_hw, max_pixels)
    try:
        if height == 0 or width == 0:
            raise ImageReadError(f"{path}: image has no pixels ({width}x{height})")
        if min_side is not None and min(height, width) < min_side:
            reason = f" ({_limits['min_side_reason']})" if _limits["min_side_reason"] else ""
            raise ImageReadError(f"{path}: image is {width}x{height} px, shorter side below min_side={min_side}"
                                 f"{reason}")
        if is_16bit_colour:
            pixels = _read_16bit_colour(path, image)
        else:
            try:
                image = ImageOps.exif_transpose(image)
            except Exception as exc:  # a corrupt EXIF block must not make the pixels unreadable
                warnings.warn(f"{path}: ignoring unreadable EXIF orientation ({_one_line(exc)})",
                              stacklevel=2)
            shrunk = _shrink_8bit(image, reduced_hw) if reduced_hw != (height, width) else None
            pixels = _pil_to_float(shrunk if shrunk is not None else image)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(f"{path}: cannot decode pixels ({_one_line(exc)})") from None
    finally:
        image.close()

    if pixels.shape[-1] == 4:
        rgb, a = pixels[..., :3], pixels[..., 3:]
        pixels = rgb * a + (1.0 - a) if alpha == "white" else rgb
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    if pixels.shape[:2] != reduced_hw:  # 16-bit and float images, or a reduced-scale JPEG decode
        pixels = _resize(pixels, reduced_hw)
    if reduced_hw != (height, width):
        warnings.warn(f"{path}: {width}x{height} image ({height * width / 1e6:.3g} MP) downscaled to "
                      f"{reduced_hw[1]}x{reduced_hw[0]} (limit max_pixels={max_pixels}; ARTDUP_MAX_PIXELS "
                      "sets it)", ImageDownscaledWarning, stacklevel=2)
    height, width = reduced_hw
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        new_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        warnings.warn(f"{path}: {width}x{height} image downscaled to {new_hw[1]}x{new_hw[0]} "
                      f"(max_side={max_side})", ImageDownscaledWarning, stacklevel=2)
        pixels = _resize(pixels, new_hw)
    return pixels
