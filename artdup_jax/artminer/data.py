"""ArtMiner's training data: the collection's images as per-step candidate batches, built on the host.

Each step gets ``N`` candidate images, a deterministic function of the step (seed, step) drawn without
replacement from the collection (``candidates_for_step``). Each image is decoded once (uint8, reduced to
``max_side`` pixels on its longer side with PIL NEAREST when larger; kept in a bounded cache) and shipped as
a *source* on a fixed canvas with, per scale, the PIL-NEAREST source row / column of every pixel of its
resized image (``resize_rule.nearest_indices``: the resize rule, exact when the source is the original). The
device builds the pyramid from these (``mining.canvas_images``), so the host never resizes. A plain Python
generator with a prefetch thread (``candidate_batches``): tf.data is only needed for the synthetic-pair
pipelines of the other methods.

Collections: a folder (``image_paths``: every image file in it, sorted) or a synthetic collection
(``synthetic_collection``: ``data.synthetic_collection.make_collection`` written to a temporary folder, the same
files for the same settings).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import itertools
import json
import os
import shutil
import tempfile
import threading
from typing import Callable, Iterator, Sequence

import numpy as np

from artdup_jax.artminer.mining import MiningConfig
from artdup_jax.artminer.resize_rule import STRIDE, cells_for_size, nearest_indices, resize_image, resized_hw
from artdup_jax.data.images import read_image, read_image_size
from artdup_jax.data.synthetic_collection import make_collection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".ppm", ".webp")


def _reduced_hw(height: int, width: int, max_side: int) -> tuple[int, int]:
    if not max_side or max(height, width) <= max_side:
        return height, width
    ratio = max_side / max(height, width)
    return max(1, round(height * ratio)), max(1, round(width * ratio))


class CandidateImages:
    """A collection's images as per-step candidate batches.

    Args:
      paths: image files.
      config: the mining settings (scales and shorter-side minimum fix the resize rule).
      max_side: sources longer than this many pixels are reduced (NEAREST) first; 0 keeps the originals
        (exact resize rule, more memory and transfer).
      cache_bytes: decoded sources kept in memory (least recently used evicted).
      read: ``path -> (H, W, 3)`` float32 RGB in [0, 1] (8-bit data).
    """

    def __init__(self, paths: Sequence[str], config: MiningConfig, *, max_side: int = 0,
                 cache_bytes: int = 2**30, read: Callable[[str], np.ndarray] = read_image):
        if not paths:
            raise ValueError("no training images")
        self.paths = [os.fspath(p) for p in paths]
        self.config = config
        self.max_side = max_side
        self.read = read
        self.cache_bytes = cache_bytes
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        header = (lambda p: tuple(read_image_size(p))) if read is read_image else (lambda p: read(p).shape[:2])
        self.sizes = [_reduced_hw(*header(p), max_side) for p in self.paths]  # (H, W) of each source
        self.source_hw = tuple(int(max(s[i] for s in self.sizes)) for i in range(2))
        self.canvas_pixels = STRIDE * max(config.scales) - 1

    def __len__(self) -> int:
        return len(self.paths)

    def source(self, index: int) -> np.ndarray:
        """``(H, W, 3)`` uint8, reduced to ``max_side``."""
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        image = np.round(np.clip(self.read(self.paths[index]), 0, 1) * 255).astype(np.uint8)
        if image.shape[:2] != self.sizes[index]:
            image = resize_image(image, self.sizes[index], resample="nearest")
        with self._lock:
            self._cache[index] = image
            total = sum(v.nbytes for v in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                total -= self._cache.popitem(last=False)[1].nbytes
        return image

    def indices(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per scale: source row / col of every canvas pixel (-1 beyond), and the map's cells.

        Returns ``rows (S, P)``, ``cols (S, P)`` int32 with ``P = 16 max(L) - 1`` and ``cells (S, 2)``.
        """
        config, size = self.config, self.canvas_pixels
        rows = np.full((len(config.scales), size), -1, np.int32)
        cols = np.full_like(rows, -1)
        cells = np.zeros((len(config.scales), 2), np.int32)
        for k, scale in enumerate(config.scales):
            out_h, out_w = resized_hw(width, height, scale, config.min_cells)
            rows[k, :out_h] = nearest_indices(height, out_h)
            cols[k, :out_w] = nearest_indices(width, out_w)
            cells[k] = cells_for_size(width, height, scale, config.min_cells)
        return rows, cols, cells

    def batch(self, image_indices: Sequence[int], map_fn=map) -> dict[str, np.ndarray]:
        """``source (n, Hs, Ws, 3)`` uint8 (top-left, zeros beyond), ``pixel_rows`` / ``pixel_cols (n, S, P)``,
        ``cells (n, S, 2)``, ``image (n,)`` collection index. ``map_fn`` decodes (e.g. a thread pool's map)."""
        source = np.zeros((len(image_indices), *self.source_hw, 3), np.uint8)
        rows, cols, cells = [], [], []
        for slot, image in enumerate(map_fn(self.source, [int(i) for i in image_indices])):
            source[slot, :image.shape[0], :image.shape[1]] = image
            r, c, n = self.indices(*image.shape[:2])
            rows.append(r), cols.append(c), cells.append(n)
        return {"source": source, "pixel_rows": np.stack(rows), "pixel_cols": np.stack(cols),
                "cells": np.stack(cells), "image": np.asarray(image_indices, np.int32)}


def candidates_for_step(step: int, *, seed: int, num_images: int, per_step: int) -> np.ndarray:
    """``(per_step,)`` distinct collection indices: a pure function of ``(seed, step)``."""
    if per_step > num_images:
        raise ValueError(f"{per_step} candidate images per step, but the collection holds {num_images}")
    return np.random.default_rng([seed, step]).choice(num_images, per_step, replace=False)


def candidate_batches(images: CandidateImages, *, seed: int, per_step: int, first_step: int,
                      process_index: int = 0, process_count: int = 1, threads: int = 2) -> Iterator[dict]:
    """Batches for steps ``first_step, first_step + 1, ...``; this process's contiguous share of the
    candidates. The next batch is assembled in the background while the current one trains."""
    if per_step % process_count:
        raise ValueError(f"{per_step} candidates per step do not split over {process_count} processes")
    share = per_step // process_count

    decode = concurrent.futures.ThreadPoolExecutor(max(1, threads), thread_name_prefix="artminer_decode")

    def make(step):
        chosen = candidates_for_step(step, seed=seed, num_images=len(images), per_step=per_step)
        return images.batch(chosen[process_index * share:(process_index + 1) * share], map_fn=decode.map)

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="artminer_batches")
    try:
        pending = pool.submit(make, first_step)
        for step in itertools.count(first_step + 1):
            following = pool.submit(make, step)
            yield pending.result()
            pending = following
    finally:  # also when the generator is dropped: never wait on a batch nobody will take
        pool.shutdown(wait=False, cancel_futures=True)
        decode.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------------------- collections

_synthetic_folders: dict[str, str] = {}


def synthetic_collection(settings: dict) -> str:
    """Folder of ``make_collection(**settings)`` (made once per process, removed at exit)."""
    key = json.dumps(settings, sort_keys=True)
    if key not in _synthetic_folders:
        folder = tempfile.mkdtemp(prefix="artminer_synthetic_")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        make_collection(folder, **{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        _synthetic_folders[key] = folder
    return _synthetic_folders[key]


def image_paths(folder: str) -> list[str]:
    """Every file of ``folder`` with an image extension, sorted by name."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]
