"""One-shot detection: a query box against every image of a collection (artminer.md §3).

  cache = FeatureCache(variables)                       # collection maps, reused by every query
  ranked = detect(variables, [Query(path, (x1, y1, x2, y2))], collection_paths, cache=cache)

1. Query (§3.1): the box's own resize rule (8 cells on its longer side, >= 1 on the shorter) gives separate
   x/y factors; the whole image is resized by them, up to 5 context cells per side are cropped with the box
   (as many whole cells as fit), the network runs, the context cells are removed and the ``(h, w, 256)``
   block is divided by its global L2 norm.
2. Collection (§3.2): raw maps at the 7 scales, shorter side >= 8 cells (``FeatureCache``).
3. Scores (§3.3): sliding cosine (``similarity.top_k_matches``); images are processed in steps, maps padded
   to a few canonical sizes and all queries correlated in one convolution per (step, scale, size).
4. Per image (§3.4): top ``k`` (= 8, the query's longer side) positions per scale, the best ``5 k`` over the
   scales, boxes ``top = r/R H``, ``bottom = min((r + h)/R, 1) H`` (R from the resize rule with the shorter
   side >= the kernel's larger side), greedy NMS where any intersection with a kept box suppresses (overlap =
   intersection / area of the other box > 0), on the float boxes as the release's ``FeatPos2ImgBB`` does.
5. Over the collection (§3.5): the query's own image is skipped, the rest is ranked by score (stable: ties
   keep collection order) and cut to ``num_predictions``. Boxes are truncated to int at the end.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original image (x = column, x2/y2 exclusive).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.features import (
    SCALES,
    STRIDE,
    as_float_image,
    cells_for_size,
    features,
    nearest_indices,
    resize_factors,
    resize_image,
    round_half_away,
)
from artdup_jax.artminer.similarity import normalise_query, pad_kernels, top_k_matches


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    scales: tuple[int, ...] = SCALES  # collection scales, longer-side cells
    image_min_cells: int = 8  # collection maps' shorter-side minimum
    query_longer_cells: int = 8
    query_min_cells: int = 1
    context_cells: int = 5
    per_scale: int | None = None  # positions kept per scale (None: query_longer_cells, the release's featMax)
    per_image: int | None = None  # candidates kept per image before NMS (None: 5 * per_scale)
    num_predictions: int = 1000
    resample: str = "nearest"  # PIL filter of every resize (the release ran Pillow <= 6: NEAREST)
    map_granularity: int = 8  # maps are zero-padded to multiples of this many cells (fewer compilations)
    images_per_step: int = 16
    max_batch: int = 8

    @property
    def k(self) -> int:
        return self.per_scale or self.query_longer_cells

    @property
    def keep_per_image(self) -> int:
        return self.per_image or 5 * self.k


@dataclasses.dataclass(frozen=True)
class Query:
    image: str  # path of the image that holds the query box
    box: tuple[int, int, int, int]  # [x1, y1, x2, y2] pixels


@dataclasses.dataclass
class RankedDetections:
    """One query's predictions over the collection, best first."""

    paths: list[str]  # image of each prediction
    scores: np.ndarray  # (N,) float32 cosine similarity
    boxes: np.ndarray  # (N, 4) int64 [x1, y1, x2, y2] original-image pixels
    scales: np.ndarray  # (N,) int longer-side cells of the scale that produced it
    cells: np.ndarray  # (N, 2) int top-left (row, col) of the window in that scale's map

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [os.path.basename(p) for p in self.paths]


def check_box(box: Sequence[float], image_hw: tuple[int, int], where: str = "box") -> tuple[int, int, int, int]:
    """The box as ints; ValueError unless ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``."""
    if len(box) != 4:
        raise ValueError(f"{where}: expected [x1, y1, x2, y2], got {list(box)}")
    x1, y1, x2, y2 = (int(v) for v in box)
    height, width = image_hw
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"{where}: box [{x1}, {y1}, {x2}, {y2}] is empty or outside its {width}x{height} image")
    return x1, y1, x2, y2


# ------------------------------------------------------------------------------------------------ query


@dataclasses.dataclass(frozen=True)
class QueryCrop:
    pixels: np.ndarray  # (Hc, Wc, 3) float32: box + context, in the box-resized image
    context: tuple[int, int, int, int]  # cells of context (top, bottom, left, right), removed after the network
    cells_hw: tuple[int, int]  # (h, w) cells of the box itself


def _resized_crop(image: np.ndarray, size_hw, crop, resample: str) -> np.ndarray:
    """``resize(image, size_hw)[y0:y1, x0:x1]`` with zeros outside (PIL's crop), without the full resize
    for NEAREST."""
    x0, y0, x1, y1 = crop
    ys, xs = np.arange(y0, y1), np.arange(x0, x1)
    in_y, in_x = (ys >= 0) & (ys < size_hw[0]), (xs >= 0) & (xs < size_hw[1])
    out = np.zeros((len(ys), len(xs), 3), np.float32)
    if resample == "nearest":
        rows = nearest_indices(image.shape[0], size_hw[0])[ys[in_y]]
        cols = nearest_indices(image.shape[1], size_hw[1])[xs[in_x]]
        out[np.ix_(in_y, in_x)] = image[np.ix_(rows, cols)]
    else:
        out[np.ix_(in_y, in_x)] = resize_image(image, size_hw, resample=resample)[np.ix_(ys[in_y], xs[in_x])]
    return out


def query_crop(image: np.ndarray, box: Sequence[int], config: DetectionConfig = DetectionConfig()) -> QueryCrop:
    """The network input for a query box (§3.1), with Python 2 integer semantics where the release has them."""
    image = as_float_image(image)
    height, width = image.shape[:2]
    x1, y1, x2, y2 = check_box(box, (height, width))
    rows, cols = cells_for_size(x2 - x1, y2 - y1, config.query_longer_cells, config.query_min_cells)
    y_ratio, x_ratio = resize_factors(x2 - x1, y2 - y1, config.query_longer_cells, config.query_min_cells)
    size_hw = (int(height * y_ratio), int(width * x_ratio))
    bx1, by1, bx2, by2 = x1 * x_ratio, y1 * y_ratio, x2 * x_ratio, y2 * y_ratio
    margin = config.context_cells
    # Whole cells between box and border (int() truncates, // floors); never negative.
    left = max(min(int(bx1) // STRIDE, margin), 0)
    top = max(min(int(by1) // STRIDE, margin), 0)
    right = max(min(int(size_hw[1] - bx2) // STRIDE, margin), 0)
    bottom = max(min(int(size_hw[0] - by2) // STRIDE, margin), 0)
    # PIL's crop rounds its float box (Python 2: halves away from zero).
    crop = (round_half_away(bx1 - STRIDE * left), round_half_away(by1 - STRIDE * top),
            round_half_away(bx2 + STRIDE * right), round_half_away(by2 + STRIDE * bottom))
    return QueryCrop(_resized_crop(image, size_hw, crop, config.resample), (top, bottom, left, right), (rows, cols))


def query_blocks(variables: dict, crops: Sequence[QueryCrop], *, max_batch: int = 8) -> list[np.ndarray]:
    """Each crop's ``(h, w, 256)`` block, context removed, divided by its global norm; equal-size crops are
    batched."""
    groups = collections.defaultdict(list)
    for index, crop in enumerate(crops):
        groups[crop.pixels.shape].append(index)
    blocks: list[np.ndarray | None] = [None] * len(crops)
    for indices in groups.values():
        for start in range(0, len(indices), max_batch):
            chunk = indices[start:start + max_batch]
            maps = np.asarray(features(variables, np.stack([crops[i].pixels for i in chunk])))
            for index, feature_map in zip(chunk, maps):
                top, bottom, left, right = crops[index].context
                block = feature_map[top:feature_map.shape[0] - bottom, left:feature_map.shape[1] - right]
                if block.shape[:2] != crops[index].cells_hw:
                    raise AssertionError(f"query block {block.shape[:2]} != box cells {crops[index].cells_hw}")
                blocks[index] = np.asarray(normalise_query(block))
    return blocks


# ------------------------------------------------------------------------------------- boxes and NMS


def suppress_overlaps(boxes: np.ndarray, valid: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Greedy NMS over candidates already sorted best first, batched over leading axes.

    A kept box removes every later box whose ``intersection / own area`` exceeds ``threshold`` (0: any
    overlap). Args: boxes ``(..., P, 4)`` [x1, y1, x2, y2]; valid ``(..., P)``. Returns keep ``(..., P)``.
    """
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))

    def intersection(low, high):  # [..., i, j] along one axis
        return np.maximum(0.0, np.minimum(high[..., :, None], high[..., None, :])
                          - np.maximum(low[..., :, None], low[..., None, :]))

    inter_w, inter_h = intersection(x1, x2), intersection(y1, y2)
    area = (x2 - x1) * (y2 - y1)
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter_w * inter_h / area[..., None, :]  # [i, j]: part of box j covered by box i
    suppressed = ~valid
    keep = np.zeros_like(valid)
    for i in range(boxes.shape[-2]):  # candidate rank, not feature cells: 40 steps vectorised over the rest
        keep[..., i] = ~suppressed[..., i]
        suppressed = suppressed | (keep[..., i, None] & (overlap[..., i, :] > threshold))
    return keep


def cells_to_boxes(rows, cols, kernel_hw, map_hw, image_hw) -> np.ndarray:
    """Windows (top-left cell, ``kernel_hw``) on an ``map_hw`` grid -> float64 boxes on the image, by equal
    fractions (ignores receptive-field offsets, as the release). All arguments broadcast; returns ``(..., 4)``."""
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    map_rows, map_cols = (np.asarray(a, np.float64) for a in map_hw)
    height, width = (np.asarray(a, np.float64) for a in image_hw)
    top = rows / map_rows * height
    left = cols / map_cols * width
    bottom = np.minimum((rows + kernel_hw[0]) / map_rows, 1.0) * height
    right = np.minimum((cols + kernel_hw[1]) / map_cols, 1.0) * width
    return np.stack(np.broadcast_arrays(left, top, right, bottom), axis=-1)


# --------------------------------------------------------------------------------------------- detection


def _pad_map(feature_map: jnp.ndarray, shape_hw) -> jnp.ndarray:
    rows, cols = feature_map.shape[:2]
    return jnp.pad(feature_map.astype(jnp.float32), ((0, shape_hw[0] - rows), (0, shape_hw[1] - cols), (0, 0)))


def _scale_candidates(cache, paths, scale, kernels, config):
    """Top-k per (image, query) at one scale: ``scores, rows, cols`` each ``(n, Q, k)``."""
    padded_kernels, kernel_hw, shapes, shape_index = kernels
    q = padded_kernels.shape[0]
    scores = np.full((len(paths), q, config.k), -np.inf, np.float32)
    rows = np.zeros((len(paths), q, config.k), np.int32)
    cols = np.zeros_like(rows)
    g = config.map_granularity
    maps = [cache.get(p, scale, config.image_min_cells) for p in paths]
    groups = collections.defaultdict(list)
    for index, feature_map in enumerate(maps):
        r, c = feature_map.shape[:2]
        groups[(-(-r // g) * g, -(-c // g) * g)].append(index)
    for shape_hw, indices in groups.items():
        for start in range(0, len(indices), config.max_batch):
            chunk = indices[start:start + config.max_batch]
            size = 1 << (len(chunk) - 1).bit_length()  # batch padded to a power of two: fewer compilations
            batch = jnp.stack([_pad_map(maps[i], shape_hw) for i in chunk]
                              + [jnp.zeros((*shape_hw, padded_kernels.shape[-1]), jnp.float32)] * (size - len(chunk)))
            valid_hw = np.array([maps[i].shape[:2] for i in chunk] + [(0, 0)] * (size - len(chunk)), np.int32)
            values, r, c = top_k_matches(batch, valid_hw, padded_kernels, kernel_hw, shape_index,
                                         shapes=shapes, k=config.k)
            scores[chunk], rows[chunk], cols[chunk] = (np.asarray(a)[: len(chunk)] for a in (values, r, c))
    return scores, rows, cols


def _image_candidates(cache, paths, kernels, excluded, config):
    """Per image and query: the best ``keep_per_image`` candidates over the scales, as boxes, after NMS."""
    _, kernel_hw, _, _ = kernels
    per_scale = [_scale_candidates(cache, paths, scale, kernels, config) for scale in config.scales]
    scores = np.concatenate([s for s, _, _ in per_scale], axis=-1)  # (n, Q, S k)
    rows = np.concatenate([r for _, r, _ in per_scale], axis=-1)
    cols = np.concatenate([c for _, _, c in per_scale], axis=-1)
    scale_index = np.broadcast_to(np.repeat(np.arange(len(config.scales)), config.k), scores.shape)
    order = np.argsort(-scores, axis=-1, kind="stable")[..., : config.keep_per_image]
    scores, rows, cols, scale_index = (np.take_along_axis(a, order, -1) for a in (scores, rows, cols, scale_index))

    # Map size for the box conversion: the resize rule with the shorter side >= the kernel's larger side.
    sizes = np.array([cache.image_size(p) for p in paths], np.float64)  # (n, 2) H, W
    larger = kernel_hw.max(axis=1)
    distinct, larger_index = np.unique(larger, return_inverse=True)
    table = np.array([[[cells_for_size(w, h, scale, int(m)) for m in distinct] for scale in config.scales]
                      for h, w in sizes], np.float64)  # (n, S, U, 2)
    image = np.arange(len(paths))[:, None, None]
    map_hw = (table[image, scale_index, larger_index[None, :, None], 0],
              table[image, scale_index, larger_index[None, :, None], 1])
    boxes = cells_to_boxes(rows, cols, (kernel_hw[None, :, None, 0], kernel_hw[None, :, None, 1]), map_hw,
                           (sizes[:, 0, None, None], sizes[:, 1, None, None]))
    valid = np.isfinite(scores) & (excluded[None, :, None] != np.arange(len(paths))[:, None, None])
    keep = suppress_overlaps(boxes, valid)
    return scores, boxes, keep, scale_index, np.stack([rows, cols], -1)


def detect(variables: dict, queries: Sequence[Query], paths: Sequence[str], config: DetectionConfig = DetectionConfig(),
           *, cache: FeatureCache | None = None) -> list[RankedDetections]:
    """Ranked detections of every query over the images ``paths`` (the query's own image is skipped)."""
    if cache is None:
        cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
    elif cache.resample != config.resample or cache.variables is not variables:
        raise ValueError("the cache was built with other variables or another resample filter")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    crops = [query_crop(cache.read(q.image), q.box, config) for q in queries]
    padded, kernel_hw, shapes, shape_index = pad_kernels(query_blocks(variables, crops, max_batch=config.max_batch))
    kernels = (jnp.asarray(padded), kernel_hw, shapes, jnp.asarray(shape_index))
    position = {p: i for i, p in enumerate(paths)}
    excluded_global = np.array([position.get(os.path.abspath(os.fspath(q.image)), -1) for q in queries])

    n_queries, top_n = len(queries), config.num_predictions
    best = {"score": np.full((n_queries, 0), -np.inf, np.float32), "image": np.zeros((n_queries, 0), np.int64),
            "box": np.zeros((n_queries, 0, 4)), "scale": np.zeros((n_queries, 0), np.int64),
            "cell": np.zeros((n_queries, 0, 2), np.int64)}
    for start in range(0, len(paths), config.images_per_step):
        step = paths[start:start + config.images_per_step]
        cache.ensure(step, config.scales, config.image_min_cells)
        scores, boxes, keep, scale_index, cells = _image_candidates(cache, step, kernels, excluded_global - start,
                                                                    config)
        image = np.broadcast_to(np.arange(start, start + len(step))[:, None, None], scores.shape)
        new = {"score": np.where(keep, scores, -np.inf), "image": image, "box": boxes,
               "scale": np.asarray(config.scales)[scale_index], "cell": cells}
        # (n, Q, P, ...) -> (Q, n P, ...), appended after the running list: ties keep collection order.
        merged = {k: np.concatenate([best[k], np.moveaxis(v, 1, 0).reshape(n_queries, -1, *v.shape[3:])], axis=1)
                  for k, v in new.items()}
        order = np.argsort(-merged["score"], axis=1, kind="stable")[:, :top_n]
        best = {k: np.take_along_axis(v, order.reshape(*order.shape, *[1] * (v.ndim - 2)), axis=1)
                for k, v in merged.items()}

    results = []
    for q in range(n_queries):
        found = np.isfinite(best["score"][q])
        results.append(RankedDetections(
            paths=[paths[i] for i in best["image"][q][found]],
            scores=best["score"][q][found].astype(np.float32),
            boxes=np.trunc(best["box"][q][found]).astype(np.int64),
            scales=best["scale"][q][found].astype(np.int64),
            cells=best["cell"][q][found].astype(np.int64)))
    return results
