"""One-shot detection: a query box against every image of a collection.

  cache = FeatureCache(variables)                       # collection maps, reused by every query
  ranked = detect(variables, [Query(path, (x1, y1, x2, y2))], collection_paths, cache=cache)

1. Query: the box's own resize rule (8 cells on its longer side, >= 1 on the shorter) gives separate
   x/y factors; the whole image is resized by them, up to 5 context cells per side are cropped with the box
   (as many whole cells as fit), the network runs, the context cells are removed and the ``(h, w, 256)``
   block is divided by its global L2 norm.
2. Collection: raw maps at the 7 scales, shorter side >= 8 cells (``FeatureCache``).
3. Scores: sliding cosine (``similarity.top_k_matches``). The maps of a step of images, every scale,
   are packed by padded size (``packed_maps``) and all of it runs as one compiled program per batch of queries
   (``ranking.rank_detections``): one convolution per size bucket, no Python loop over images or scales.
4. Per image, on the device: top ``k`` (= 8, the query's longer side) positions per scale, the best
   ``5 k`` over the scales, boxes ``top = r/R H``, ``bottom = min((r + h)/R, 1) H`` (R from the resize rule
   with the shorter side >= the kernel's larger side), greedy NMS where any intersection with a kept box
   suppresses (overlap = intersection / area of the other box > 0), ordered exactly as the release's float
   boxes (``ranking``).
5. Over the collection: the query's own image is skipped, the rest is ranked by score (stable: ties
   keep collection order) and cut to ``num_predictions``. Pixel boxes (float64 on the host, as the release's
   ``FeatPos2ImgBB``) are truncated to int at the end.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original image (x = column, x2/y2 exclusive).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.collection import FeatureCache, default_max_batch
from artdup_jax.artminer.model import features
from artdup_jax.artminer.packed_maps import packed_maps
from artdup_jax.artminer.ranking import rank_detections
from artdup_jax.artminer.resize_rule import (
    SCALES,
    STRIDE,
    as_float_image,
    cells_for_size,
    nearest_indices,
    resize_factors,
    resize_image,
    round_half_away,
)
from artdup_jax.artminer.similarity import normalise_query, pad_kernels


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
    images_per_step: int = 64  # images packed and ranked together (bounds the packed copy of their maps)
    queries_per_call: int = 16  # queries ranked by one compiled call
    max_batch: int | None = None  # images per network call (None: collection.default_max_batch())

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
    """The network input for a query box (step 1 above), with Python 2 integer semantics where the release has them."""
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


def query_blocks(variables: dict, crops: Sequence[QueryCrop], *, max_batch: int | None = None) -> list[np.ndarray]:
    """Each crop's ``(h, w, 256)`` block, context removed, divided by its global norm; equal-size crops are
    batched."""
    max_batch = max_batch or default_max_batch()
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


def _py2_round(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)  # halves away from zero, for the non-negative values here


def box_grids(image_hw: np.ndarray, scales: Sequence[int], min_cells: np.ndarray) -> np.ndarray:
    """``(N, S, Q, 2)`` float64 ``cells_for_size(W, H, scale, min_cells[q])`` for every image, scale and query,
    vectorised (the same float64 operations, so the same cells). image_hw ``(N, 2)``; min_cells ``(Q,)``."""
    height, width = (image_hw[:, i].astype(np.float64)[:, None, None] for i in (0, 1))
    longer = np.asarray(scales, np.float64)[None, :, None]
    minimum = np.asarray(min_cells, np.float64)[None, None, :]
    ratio = width / height
    portrait = ratio < 1
    rows = np.where(portrait, longer, np.maximum(_py2_round(longer / ratio), minimum))
    cols = np.where(portrait, np.maximum(_py2_round(ratio * longer), minimum), longer)
    return np.stack(np.broadcast_arrays(rows, cols), -1)


def _rank_chunk(packed, blocks, excluded, config):
    """One call of ``ranking.rank_detections`` for a few queries over one packed step of images; returns the
    queries' candidates as host arrays ``(Q, T)`` (score, image, scale index, row, col) and ``kernel_hw``."""
    padded, kernel_hw, shapes, shape_index = pad_kernels(blocks)
    grid = box_grids(packed.image_hw, packed.scales, kernel_hw.max(axis=1))
    num_images, num_scales = len(packed.paths), len(packed.scales)
    per_image = min(config.keep_per_image, num_scales * config.k)
    found = rank_detections(
        tuple((b.maps, b.valid_hw, b.image, b.scale) for b in packed.buckets), jnp.asarray(padded),
        jnp.asarray(kernel_hw), jnp.asarray(shape_index), jnp.asarray(excluded, jnp.int32),
        jnp.asarray(grid, jnp.float32), shapes=shapes, num_images=num_images, num_scales=num_scales, k=config.k,
        per_image=per_image, top_n=min(config.num_predictions, num_images * per_image))
    return [np.asarray(a) for a in found], kernel_hw, grid


def detect(variables: dict, queries: Sequence[Query], paths: Sequence[str], config: DetectionConfig = DetectionConfig(),
           *, cache: FeatureCache | None = None) -> list[RankedDetections]:
    """Ranked detections of every query over the images ``paths`` (the query's own image is skipped).

    The collection is processed ``config.images_per_step`` images at a time: their maps are computed (or taken
    from ``cache``), packed by size (``packed_maps``) and ranked for ``config.queries_per_call`` queries per
    compiled call (``ranking.rank_detections``); the steps' top lists are merged on the host.
    """
    if cache is None:
        cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
    elif cache.resample != config.resample or cache.variables is not variables:
        raise ValueError("the cache was built with other variables or another resample filter")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    crops = [query_crop(cache.read(q.image), q.box, config) for q in queries]
    blocks = query_blocks(variables, crops, max_batch=config.max_batch)
    position = {p: i for i, p in enumerate(paths)}
    excluded = np.array([position.get(os.path.abspath(os.fspath(q.image)), -1) for q in queries], np.int64)

    # Per query: the steps' candidates (score, image, scale, row, col, box), merged at the end.
    found: list[list[tuple]] = [[] for _ in queries]
    for start in range(0, len(paths), config.images_per_step):
        step = paths[start:start + config.images_per_step]
        packed = packed_maps(cache, step, config.scales, config.image_min_cells, granularity=config.map_granularity)
        for q0 in range(0, len(queries), config.queries_per_call):
            chunk = slice(q0, q0 + config.queries_per_call)
            (score, image, scale, row, col), kernel_hw, grid = _rank_chunk(packed, blocks[chunk],
                                                                            excluded[chunk] - start, config)
            for q in range(score.shape[0]):
                real = np.isfinite(score[q])
                i, s = image[q][real], scale[q][real]
                boxes = cells_to_boxes(row[q][real], col[q][real], kernel_hw[q], (grid[i, s, q, 0], grid[i, s, q, 1]),
                                       (packed.image_hw[i, 0], packed.image_hw[i, 1]))
                found[q0 + q].append((score[q][real], i + start, s, row[q][real], col[q][real], boxes))

    results = []
    for parts in found:
        score, image, scale, row, col, boxes = (np.concatenate([p[j] for p in parts]) if parts else None
                                                for j in range(6))
        if score is None:
            results.append(RankedDetections([], np.zeros(0, np.float32), np.zeros((0, 4), np.int64),
                                            np.zeros(0, np.int64), np.zeros((0, 2), np.int64)))
            continue
        order = np.argsort(-score, kind="stable")[: config.num_predictions]  # steps in collection order
        results.append(RankedDetections(
            paths=[paths[i] for i in image[order]],
            scores=score[order].astype(np.float32),
            boxes=np.trunc(boxes[order]).astype(np.int64),
            scales=np.asarray(config.scales)[scale[order]].astype(np.int64),
            cells=np.stack([row[order], col[order]], -1).astype(np.int64)))
    return results
