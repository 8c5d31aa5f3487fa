"""Small files for every kind of input the ``artdup`` tool must cope with, written into a test's folder.

Each maker writes one file and returns its path. The "good" ones (``photo``, ``warped``) share content, so a
pair of them aligns; the awkward-but-valid ones (grayscale, RGBA, 16-bit, CMYK, EXIF-rotated) hold the same
photograph in another encoding; the bad ones cannot be used at all.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

PHOTO_SIDE = 128  # pixels of the longer side of the test photograph


def photograph() -> np.ndarray:
    """``(96, 128, 3)`` uint8: scikit-image's astronaut, cropped to 3:4 and shrunk (texture for SIFT)."""
    image = Image.fromarray(skimage.data.astronaut()[64:448]).resize((PHOTO_SIDE, 96), Image.Resampling.LANCZOS)
    return np.asarray(image)


OFFSETS = ((5, 3), (-4, 6), (-7, -5), (3, -2))


def warp_homography(hw: tuple[int, int], offsets=OFFSETS) -> np.ndarray:
    """(3, 3) pixels → pixels homography moving the corners of an (H, W) frame by ``offsets`` (pixels)."""
    h, w = hw
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.getPerspectiveTransform(corners, corners + np.float32(offsets))


def warp(pixels: np.ndarray, offsets=OFFSETS) -> np.ndarray:
    """``pixels`` under the homography moving its corners by ``offsets`` (pixels)."""
    h, w = pixels.shape[:2]
    return cv2.warpPerspective(pixels, warp_homography((h, w), offsets), (w, h))


def photo(folder: Path, name: str = "photo.png") -> Path:
    Image.fromarray(photograph()).save(folder / name)
    return folder / name


def warped(folder: Path, name: str = "warped.png") -> Path:
    Image.fromarray(warp(photograph())).save(folder / name)
    return folder / name


def grayscale(folder: Path, name: str = "grayscale.png") -> Path:
    Image.fromarray(photograph()).convert("L").save(folder / name)
    return folder / name


def rgba(folder: Path, name: str = "rgba.png") -> Path:
    pixels = photograph()
    alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
    alpha[:8] = 0  # a transparent band: the stored colour is kept ("drop")
    Image.fromarray(np.concatenate([pixels, alpha], -1), mode="RGBA").save(folder / name)
    return folder / name


def sixteen_bit(folder: Path, name: str = "sixteen_bit.png") -> Path:
    """16-bit-per-channel colour PNG (written with OpenCV: BGR order)."""
    pixels = photograph().astype(np.uint16) * 257
    cv2.imwrite(str(folder / name), pixels[..., ::-1])
    return folder / name


def cmyk_jpeg(folder: Path, name: str = "cmyk.jpg") -> Path:
    Image.fromarray(photograph()).convert("CMYK").save(folder / name, quality=95)
    return folder / name


def exif_rotated(folder: Path, name: str = "exif_rotated.jpg") -> Path:
    """The photograph stored rotated by 90 degrees, with EXIF orientation 6 (display: rotate back)."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(photograph(), 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(folder / name, quality=95, exif=exif)
    return folder / name


def tiny(folder: Path, name: str = "tiny.png", side: int = 8) -> Path:
    """An image smaller than one 16-pixel feature cell."""
    Image.fromarray(photograph()[:side, :side]).save(folder / name)
    return folder / name


def noise(folder: Path, name: str = "noise.png", seed: int = 0) -> Path:
    """Random pixels: matches nothing."""
    pixels = np.random.default_rng(seed).integers(0, 256, (96, PHOTO_SIDE, 3), np.uint8)
    Image.fromarray(pixels).save(folder / name)
    return folder / name


def empty_file(folder: Path, name: str = "empty.png") -> Path:
    (folder / name).write_bytes(b"")
    return folder / name


def text_file(folder: Path, name: str = "notes.jpg") -> Path:
    """Not an image, whatever its extension says."""
    (folder / name).write_text("a catalogue note, not an image\n")
    return folder / name


def truncated_jpeg(folder: Path, name: str = "truncated.jpg") -> Path:
    buffer = io.BytesIO()
    Image.fromarray(photograph()).save(buffer, format="JPEG", quality=90)
    (folder / name).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    return folder / name


def unreadable(folder: Path, name: str = "locked.png") -> Path:
    """A valid image without read permission (meaningless when the tests run as root: check ``os.access``)."""
    path = photo(folder, name)
    path.chmod(0)
    return path


def directory_named_like_an_image(folder: Path, name: str = "album.jpg") -> Path:
    (folder / name).mkdir()
    return folder / name


def corrupt_files(folder: Path) -> dict[str, str]:
    """The bad files of a collection and a word each one's reason must contain."""
    empty_file(folder)
    text_file(folder)
    truncated_jpeg(folder)
    tiny(folder)
    return {"empty.png": "empty file", "notes.jpg": "not a readable image", "truncated.jpg": "truncated",
            "tiny.png": "feature cell"}


def tool_lines(stderr: str) -> list[str]:
    """The ``error:`` / ``warning:`` lines of a command's stderr (JAX and absl start-up lines dropped)."""
    return [line for line in stderr.splitlines() if line.startswith(("error:", "warning:"))]
