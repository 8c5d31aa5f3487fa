"""Result files written atomically (temporary file + rename): an interrupted run never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from PIL import Image


def _atomic(path: str, write) -> str:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) float in [0, 1] → uint8 (uint8 is returned as it is)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image
    return np.clip(np.round(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)


def save_image(path: str, image: np.ndarray) -> str:
    """(H, W, 3) or (H, W) float in [0, 1] (or uint8) → PNG/JPEG by extension."""
    return _atomic(path, lambda tmp: Image.fromarray(to_uint8(image)).save(tmp, format=_format(path)))


def save_gif(path: str, frames: list[np.ndarray], *, milliseconds: int = 500) -> str:
    """An endlessly looping animation of (H, W, 3) float frames in [0, 1]."""
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    return _atomic(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                    duration=milliseconds, loop=0))


def save_npy(path: str, array: np.ndarray) -> str:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)

    return _atomic(path, write)


def save_npy_mapped(path: str, shape: tuple[int, ...], dtype, fill) -> str:
    """A .npy written in place through a memory map by ``fill(array)`` (arrays larger than memory)."""
    def write(tmp):
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        fill(array)
        array.flush()
        del array

    return _atomic(path, write)


def save_json(path: str, data) -> str:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, default=float)

    return _atomic(path, write)


def _format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(ext, "PNG")
