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
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_ALPHA_MODES = ("drop", "white")
_EXIF_ORIENTATION_TAG = 0x0112


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


def _open(path: Path) -> tuple[Image.Image, bool]:
    """The decoded image and whether it stores 16-bit colour (known only before decoding)."""
    try:
        image = Image.open(path)
        is_16bit_colour = _is_16bit_colour(image)
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large for Pillow's safety limit "
                             f"(PIL.Image.MAX_IMAGE_PIXELS): {_one_line(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({_one_line(exc)})") from None
    return image, is_16bit_colour


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


def _resize(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Per-channel float Lanczos (Pillow "F" images), clipped back to [0, 1]."""
    height, width = size_hw
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F")
                           .resize((width, height), Image.Resampling.LANCZOS))
                for c in range(rgb.shape[-1])]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def read_image_size(path) -> tuple[int, int]:
    """``(height, width)`` as :func:`read_image` would return it (EXIF rotation included), header only."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
            except Exception:
                orientation = None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({_one_line(exc)})") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def read_image(path, *, max_side: int | None = None, min_side: int | None = None,
               alpha: str = "drop") -> np.ndarray:
    """Read any common image file as RGB.

    Args:
      path: file to read.
      max_side: if given and the longer side exceeds it, the image is shrunk (aspect ratio kept, Lanczos,
        sides rounded) so that the longer side equals ``max_side``, with an ``ImageDownscaledWarning``.
      min_side: if given, an image whose shorter side (before any downscaling) is below it is rejected.
      alpha: "drop" (ignore transparency, as ``convert("RGB")``) or "white" (composite on white).
    Returns:
      ``(H, W, 3)`` float32 RGB in [0, 1], EXIF orientation applied.
    Raises:
      ImageReadError: missing, empty, truncated, non-image or too-small files (one-line message).
    """
    if alpha not in _ALPHA_MODES:
        raise ValueError(f"alpha must be one of {_ALPHA_MODES}, got {alpha!r}")
    path = Path(path)
    _check_file(path)
    image, is_16bit_colour = _open(path)
    try:
        if is_16bit_colour:
            pixels = _read_16bit_colour(path, image)
        else:
            try:
                image = ImageOps.exif_transpose(image)
            except Exception as exc:  # a corrupt EXIF block must not make the pixels unreadable
                warnings.warn(f"{path}: ignoring unreadable EXIF orientation ({_one_line(exc)})",
                              stacklevel=2)
            pixels = _pil_to_float(image)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot decode pixels ({_one_line(exc)})") from None
    finally:
        image.close()

    if pixels.shape[-1] == 4:
        rgb, a = pixels[..., :3], pixels[..., 3:]
        pixels = rgb * a + (1.0 - a) if alpha == "white" else rgb
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)

    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ImageReadError(f"{path}: image has no pixels ({width}x{height})")
    if min_side is not None and min(height, width) < min_side:
        raise ImageReadError(f"{path}: image is {width}x{height}, shorter side below min_side={min_side}")
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        new_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        warnings.warn(f"{path}: {width}x{height} image downscaled to {new_hw[1]}x{new_hw[0]} "
                      f"(max_side={max_side})", ImageDownscaledWarning, stacklevel=2)
        pixels = _resize(pixels, new_hw)
    return pixels
