"""Input folders and images of the ``artdup`` command: what is used, what is skipped and why.

The tool's reading policy (``tool_reading_limits``): images whose shorter side is below one feature cell
(``FEATURE_CELL_PX`` = 16 pixels, the stride of the ResNet feature maps ArtMiner, SegSwap and RANSAC-Flow
match) are rejected; images above ``read_image``'s pixel limit (``MAX_PIXELS``, 40 megapixels, or the
environment variable ``ARTDUP_MAX_PIXELS``) are downscaled with a warning.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

from artdup_jax.data.images import ImageReadError, read_image, reading_limits

FEATURE_CELL_PX = 16
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".webp", ".gif")


class ImageFolderError(ValueError):
    """A folder that cannot be used as input (missing, not a folder, no image in it); one line, names it."""


def tool_reading_limits() -> contextlib.AbstractContextManager:
    """``reading_limits`` with the tool's policy (images smaller than one feature cell are refused)."""
    return reading_limits(min_side=FEATURE_CELL_PX,
                          min_side_reason=f"smaller than one {FEATURE_CELL_PX}-pixel feature cell")


def image_files(folder: str | os.PathLike) -> tuple[list[str], list[tuple[str, str]]]:
    """The image files of ``folder`` (sorted paths) and ``[(name, reason)]`` for the entries skipped.

    Hidden entries are ignored silently; folders and files without an image extension are skipped with a
    reason. Raises ``ImageFolderError`` if ``folder`` is missing, not a folder or holds no image file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ImageFolderError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ImageFolderError(f"{folder}: not a folder")
    paths, skipped = [], []
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        if (folder / name).is_dir():
            skipped.append((name, "a folder, not an image file (folders are not searched)"))
        elif not name.lower().endswith(IMAGE_EXTENSIONS):
            skipped.append((name, "not an image file name (extension not one of "
                                  f"{', '.join(IMAGE_EXTENSIONS)})"))
        elif not (folder / name).is_file():
            skipped.append((name, "a special file, not an image file"))
        else:
            paths.append(os.fspath(folder / name))
    if not paths:
        raise ImageFolderError(f"{folder}: no image files in this folder ({', '.join(IMAGE_EXTENSIONS)})")
    return paths, skipped


def readable_images(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The paths whose pixels decode (under the current reading limits) and ``[(path, reason)]`` for the rest.

    Each unusable file gets a one-line warning naming it; downscaling warnings pass through.
    """
    readable, failed = [], []
    for path in paths:
        try:
            read_image(path)
            readable.append(path)
        except ImageReadError as error:
            warnings.warn(f"skipping {error}", stacklevel=2)
            failed.append((path, str(error)))
    return readable, failed
