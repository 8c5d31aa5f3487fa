"""ArtMiner's self-supervised training: candidate batches on the host, the hard-positive loss on device
(artminer.md §2.3-§2.7).

Host (``CandidateImages``): each step gets ``N`` candidate images, a deterministic function of the step (seed,
step) drawn without replacement from the collection. Each image is decoded once (uint8, reduced to
``max_side`` pixels on its longer side with PIL NEAREST when larger; kept in a bounded cache) and shipped as
a *source* on a fixed canvas with, per scale, the PIL-NEAREST source row / column of every pixel of its
resized image (``features.nearest_indices``: the resize rule, exact when the source is the original). The
device builds the pyramid from these (``mining.canvas_images``), so the host never resizes. A plain Python
generator with a prefetch thread: tf.data is only needed for the synthetic-pair pipelines of the other
methods.

Device (``training_loss``): the pairs ``mining.mine`` kept are run again in **train mode** at their stored
scales, BN statistics per image and running statistics updated image by image (§2.7,
``mining.train_canvas_features``). For each pair and each corner ``j`` of the 12x12 training region
(top-left ``position - 5``; corners at offsets 0 and 11):

* ``s_pos``: max cosine between image 1's corner cell and the 3x3 neighbourhood (clipped) of image 2's;
* ``s_neg``: the larger of the two directions' mean top-10 cosine of a corner cell against every cell of the
  other image (the true match included, §2.4);
* ``l = max(0, s_neg - (1 - lambda)) + max(0, lambda - s_pos)`` (lambda = 0.8): the paper's
  ``max(s(P1, N1), 1 - lambda) - min(s(P1, P2), lambda)`` minus the constant ``2 lambda - 1``.

The loss is the mean over the ``4 B`` terms. Gradients flow through both images, the top-10 and the 3x3 max.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import threading
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer import mining
from artdup_jax.artminer.features import EPS, STRIDE, cells_for_size, nearest_indices, resize_image, resized_hw
from artdup_jax.data.images import read_image, read_image_size

# ------------------------------------------------------------------------------------------------- host


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

    def __init__(self, paths: Sequence[str], config: mining.MiningConfig, *, max_side: int = 0,
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


# ----------------------------------------------------------------------------------------------- device


def _normalise(x: jnp.ndarray) -> jnp.ndarray:
    """Per-cell ``x / (||x|| + 1e-7)`` with a finite gradient at 0 (cells beyond an image, dead cells)."""
    squares = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    positive = squares > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)
    return x / (norm + EPS)


def hard_positive_terms(maps: jnp.ndarray, cells: jnp.ndarray, position: jnp.ndarray, config: mining.MiningConfig,
                        *, threshold: float = 0.8, negatives_top_k: int = 10) -> dict[str, jnp.ndarray]:
    """The ``(B, 4)`` loss terms of §2.3-§2.5 and their parts.

    Args:
      maps: ``(B, 2, R, C, D)`` raw train-mode features of each pair's two images (0 beyond ``cells``).
      cells: ``(B, 2, 2)`` int valid ``(rows, cols)``; position: ``(B, 2, 2)`` the 2x2 block's top-left.
    Returns ``{"loss", "positive", "negative"}``, each ``(B, 4)``.
    """
    last = config.training_cells - 1
    corners = jnp.asarray([(0, 0), (0, last), (last, 0), (last, last)])
    corner = position[:, :, None, :] - config.training_offset + corners[None, None]  # (B, 2, 4, 2)
    unit = _normalise(maps)
    pair = jnp.arange(maps.shape[0])[:, None]
    corner_1 = unit[pair, 0, corner[:, 0, :, 0], corner[:, 0, :, 1]]  # (B, 4, D)
    corner_2 = unit[pair, 1, corner[:, 1, :, 0], corner[:, 1, :, 1]]
    to_2 = jnp.einsum("bjd,bhwd->bjhw", corner_1, unit[:, 1], precision=jax.lax.Precision.HIGHEST)
    to_1 = jnp.einsum("bjd,bhwd->bjhw", corner_2, unit[:, 0], precision=jax.lax.Precision.HIGHEST)
    row = jnp.arange(maps.shape[2])[None, None, :, None]
    col = jnp.arange(maps.shape[3])[None, None, None, :]

    def inside(side):  # (B, 1, R, C)
        return (row < cells[:, side, 0, None, None, None]) & (col < cells[:, side, 1, None, None, None])

    near = (jnp.abs(row - corner[:, 1, :, 0, None, None]) <= 1) & (jnp.abs(col - corner[:, 1, :, 1, None, None]) <= 1)
    positive = jnp.max(jnp.where(near & inside(1), to_2, -jnp.inf), axis=(-2, -1))

    def mean_top(cosine, side):
        flat = jnp.where(inside(side), cosine, -jnp.inf).reshape(*cosine.shape[:2], -1)
        values, _ = jax.lax.top_k(flat, negatives_top_k)
        return jnp.mean(values, axis=-1)

    negative = jnp.maximum(mean_top(to_2, 1), mean_top(to_1, 0))
    loss = jax.nn.relu(negative - (1.0 - threshold)) + jax.nn.relu(threshold - positive)
    return {"loss": loss, "positive": positive, "negative": negative}


def pair_inputs(batch: dict, mined: mining.MinedPairs):
    """Canvases ``(2 B, P, P, 3)`` and cells ``(2 B, 2)`` of the kept pairs' images at their scales, ordered
    pair 0 image 1, pair 0 image 2, pair 1 image 1, ..."""
    image, scale = mined.image.reshape(-1), mined.scale.reshape(-1)
    canvases = mining.canvas_images(batch["source"][image], batch["pixel_rows"][image, scale],
                                    batch["pixel_cols"][image, scale])
    return canvases, batch["cells"][image, scale]


def training_loss(variables: dict, batch: dict, rng, config: mining.MiningConfig, *, threshold: float = 0.8,
                  negatives_top_k: int = 10):
    """Mining with the current weights, then the loss on the kept pairs.

    Returns ``(loss, metrics, new batch_stats)`` (the harness's ``loss_fn`` contract).
    """
    mined = mining.mine(variables, batch, rng, config)
    canvases, cells = pair_inputs(batch, mined)
    maps, batch_stats = mining.train_canvas_features(variables, canvases, cells)
    pairs = mined.image.shape[0]
    terms = hard_positive_terms(maps.reshape(pairs, 2, *maps.shape[1:]), cells.reshape(pairs, 2, 2),
                                mined.position, config, threshold=threshold, negatives_top_k=negatives_top_k)
    loss = jnp.mean(terms["loss"])
    metrics = {"positive": jnp.mean(terms["positive"]), "negative": jnp.mean(terms["negative"]),
               "active_terms": jnp.mean((terms["loss"] > 0).astype(jnp.float32)),
               "kept_votes": jnp.mean(mined.votes.astype(jnp.float32)),
               "candidate_votes": jnp.mean(mined.candidate_votes.astype(jnp.float32))}
    return loss, metrics, batch_stats
