"""A report directory written atomically: built in a hidden sibling folder, renamed into place when complete.

  with ReportDirectory("runs/demo") as out:
      out.save_image("align/blend.png", pixels)              # or out.path("x/y.npy") for files written elsewhere
      out.commit(Report("Demo", sections=[...]))             # index.html + report.json, then the rename

Until ``commit`` the previous contents of ``out_dir`` (if any) stay untouched; an exception inside the ``with``
(or a killed process) leaves them as they were and no half-written report. ``commit`` replaces an earlier report
(a folder whose ``report.json`` this package wrote); any other existing folder is kept, renamed to
``<name>.previous-<time>`` (``moved_aside`` says where), never deleted.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from artdup_jax.data import outputs
from artdup_jax.data.images import read_image
from artdup_jax.report.document import GENERATOR, Report, as_json
from artdup_jax.report.render import render_pages


def check_relative(relative: str) -> str:
    """``relative`` if it is a plain relative path inside the report (forward slashes, no ``..``, no scheme)."""
    path = PurePosixPath(relative)
    if (not relative or path.is_absolute() or "\\" in relative or ".." in path.parts
            or ":" in path.parts[0] or relative.startswith("~")):
        raise ValueError(f"report paths must be relative and stay inside the report, got {relative!r}")
    return path.as_posix()


def is_report_directory(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds a ``report.json`` written by this package."""
    try:
        with open(Path(folder) / "report.json", encoding="utf-8") as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


class ReportDirectory:
    """Files of a report being built; see the module docstring."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir).absolute()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise NotADirectoryError(f"{self.out_dir}: exists and is not a folder")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent))
        self.moved_aside: Path | None = None
        self.committed = False

    def __enter__(self) -> "ReportDirectory":
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()

    def discard(self) -> None:
        """Removes the unfinished report (nothing happens after ``commit``)."""
        if not self.committed:
            shutil.rmtree(self.root, ignore_errors=True)

    def path(self, relative: str) -> Path:
        """Absolute path of ``relative`` inside the report being built (its folder created)."""
        path = self.root / check_relative(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: str | os.PathLike) -> str | None:
        """``path`` relative to the report if it lies inside it, else None."""
        try:
            return Path(path).absolute().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def save_image(self, relative: str, pixels: np.ndarray, *, max_side: int | None = None) -> str:
        """``(H, W[, 3])`` float in [0, 1] as PNG or JPEG (by extension), shrunk to ``max_side`` if given."""
        pixels = np.asarray(pixels)
        if max_side is not None and max(pixels.shape[:2]) > max_side:
            image = Image.fromarray(outputs.to_uint8(pixels))
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, np.float32) / 255.0
        outputs.save_image(os.fspath(self.path(relative)), pixels)
        return check_relative(relative)

    def save_gif(self, relative: str, frames: list[np.ndarray], *, milliseconds: int = 500) -> str:
        outputs.save_gif(os.fspath(self.path(relative)), frames, milliseconds=milliseconds)
        return check_relative(relative)

    def include(self, file: str | os.PathLike, relative: str, *, max_side: int | None = None) -> str:
        """A file for the report: its own path if already inside the report, else a copy at ``relative``
        (a thumbnail of at most ``max_side`` pixels when given; ``read_image`` decodes it)."""
        inside = self.relative(file)
        if inside is not None and max_side is None:
            return inside
        if max_side is None:
            shutil.copyfile(file, self.path(relative))
            return check_relative(relative)
        thumbnail = _quick_thumbnail(file, max_side)
        if thumbnail is not None:
            thumbnail.save(self.path(relative), quality=85)
            return check_relative(relative)
        return self.save_image(relative, read_image(file), max_side=max_side)

    def commit(self, report: Report) -> Path:
        """Writes ``report.json``, ``index.html`` and any further pages (a large discovery's pages of groups),
        then renames the folder to ``out_dir``; returns index.html.

        Raises ValueError (and leaves ``out_dir`` alone) if the report names a file the folder does not hold.
        """
        if self.committed:
            raise RuntimeError("this report was already committed")
        missing = sorted({f.path for f in report.figures()
                          if not (self.root / check_relative(f.path)).is_file()})
        if missing:
            raise ValueError(f"the report shows files it does not contain: {', '.join(missing)}")
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        with open(self.root / "report.json", "w", encoding="utf-8") as f:
            json.dump(as_json(report, created), f, indent=2, default=_jsonable)
        for name, text in render_pages(report, created).items():
            (self.root / name).write_text(text, encoding="utf-8")
        self.moved_aside = _move_into_place(self.root, self.out_dir)
        self.committed = True
        return self.out_dir / "index.html"


_QUICK_MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr")


def _quick_thumbnail(file, max_side: int) -> Image.Image | None:
    """An 8-bit RGB thumbnail (EXIF orientation applied) decoded at reduced scale where the format allows
    (JPEG: 1/2 to 1/8), far faster than ``read_image`` on large scans; None for files it does not handle
    (16-bit or float pixels, unreadable files), which ``read_image`` then reads or reports."""
    try:
        with Image.open(file) as image:
            if image.mode not in _QUICK_MODES:
                return None
            image.draft(image.mode, (max_side, max_side))  # the smallest decode still >= max_side a side
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return image
    except Exception:  # noqa: BLE001 - read_image gives the one-line reason
        return None


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _move_into_place(staging: Path, out_dir: Path) -> Path | None:
    """Renames ``staging`` to ``out_dir``; an existing ``out_dir`` is deleted if it is a report, else kept aside."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return None
    if not any(out_dir.iterdir()):
        os.replace(staging, out_dir)  # rename(2) replaces an empty directory
        return None
    ours = is_report_directory(out_dir)
    if ours:
        aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = out_dir.with_name(f"{out_dir.name}.previous-{stamp}")
        suffix = 1
        while aside.exists():
            aside, suffix = out_dir.with_name(f"{out_dir.name}.previous-{stamp}-{suffix}"), suffix + 1
    os.replace(out_dir, aside)
    os.rename(staging, out_dir)
    if ours:
        shutil.rmtree(aside, ignore_errors=True)
        return None
    return aside
