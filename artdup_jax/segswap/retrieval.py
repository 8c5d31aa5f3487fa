"""One-shot retrieval on Brueghel with SegSwap: the query crop, the cached database features, the protocol.

  database = database_features(variables, paths, cache_dir=...)    # (N, 40, 40, 1024), once, cached on disk
  query = prepare_query(read_image(path), box)                     # 640² crop around the box, box prior
  result = retrieve(variables, query, database.features)           # S(query, image) for every image
  ap = metrics.average_precision(result["score"], relevant, exclude=index)
  summary = evaluate_retrieval(variables, queries, paths)          # the whole protocol, mAP per class

Protocol (``RetrievalProtocol``; the defaults are the release's):

* Database: every image resized to 640×640 (aspect ignored, PIL bilinear on 8-bit RGB), L2-normalised
  features computed once. Unlike the release's first run, features are always ImageNet-normalised.
* Query: the image is resized so that the box's longer side is about 64 px, each box side rounded to a
  multiple of 16 (x and y scaled separately, PIL bicubic: the default of ``Image.resize`` in Pillow >= 7), the
  image kept at least 640 on each side; then a 640×640 window centred on the box, shifted to stay inside. The
  release's window is 639 px wide when the box side is odd; here it is always 640 (one pixel at most).
* Box prior: the box in cells, ``round(x1/16 - 1)`` .. ``round(x2/16 + 1)`` (Python rounding, half to even),
  clipped to the grid: dilated by one cell. It is also the evaluation region P.
* Prior refinement: the query's self-pair, ``m_prior = a'`` of ``cycle_consistent_masks(box · O1[mask],
  O2[mask], O1[xy], O2[xy])`` (``inference.refine_prior``).
* Scores: ``inference.score_against_collection`` with that prior and region (query = source of every pair).
* AP (``metrics.average_precision``, the release's, image level): rank every image but the query's own by S
  (ties keep collection order), sum the precision at each relevant image, divide by the number of distinct
  relevant images. mAP: mean AP per class, then mean over classes (``mAP_per_class``); ``mAP_per_query`` is
  also given.

Images are ``(H, W, 3)`` float32 RGB in [0, 1] (``artdup_jax.data.images.read_image``); boxes are
``[x1, y1, x2, y2]`` pixels, x = column, x2 / y2 exclusive; cell maps are ``(h, w)`` row-major.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.data.images import read_image
from artdup_jax.segswap.inference import (
    collection_features,
    extract_features,
    refine_prior,
    resize_rgb,
    score_against_collection,
)
from artdup_jax.segswap.metrics import average_precision
from artdup_jax.segswap.model import STRIDE
from artdup_jax.segswap.transformer import SMALL, TransformerConfig


@dataclasses.dataclass(frozen=True)
class RetrievalProtocol:
    query_side: int = 64  # the box's longer side after resizing, pixels
    crop_size: int = 640  # query window, pixels (square)
    database_size: int = 640  # database images are resized to this square
    dilation: int = 1  # box prior dilation, cells
    batch_size: int = 32  # pairs per compiled call
    stride: int = STRIDE


BRUEGHEL = RetrievalProtocol()


# ------------------------------------------------------------------------------------------------- queries


@dataclasses.dataclass(frozen=True)
class QueryCrop:
    image: np.ndarray  # (crop, crop, 3) float32 RGB in [0, 1]
    box: tuple[int, int, int, int]  # the annotated box in crop pixels
    box_cells: np.ndarray  # (h, w) bool: the dilated box on the feature grid (prior and region P)


def box_prior(box: Sequence[float], cells_hw: tuple[int, int], *, stride: int = STRIDE,
              dilation: int = 1) -> np.ndarray:
    """``(h, w)`` bool: the box in cells, ``round(x1/stride - d)`` .. ``round(x2/stride + d)``, clipped."""
    height, width = cells_hw
    x1 = max(int(round(box[0] / stride - dilation)), 0)
    y1 = max(int(round(box[1] / stride - dilation)), 0)
    x2 = min(int(round(box[2] / stride + dilation)), width)
    y2 = min(int(round(box[3] / stride + dilation)), height)
    mask = np.zeros((height, width), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def prepare_query(image: np.ndarray, box: Sequence[int], protocol: RetrievalProtocol = BRUEGHEL) -> QueryCrop:
    """Resize so that the box's longer side is about ``query_side`` (sides multiples of ``stride``), then crop a
    ``crop_size`` square centred on the box (module docstring)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    stride, crop = protocol.stride, protocol.crop_size
    box_w, box_h = x2 - x1, y2 - y1
    if box_w <= 0 or box_h <= 0:
        raise ValueError(f"empty box {list(box)}")
    ratio = max(box_w, box_h) / protocol.query_side
    new_box_w = max(int(round(box_w / ratio / stride)), 1) * stride
    new_box_h = max(int(round(box_h / ratio / stride)), 1) * stride
    height, width = image.shape[:2]
    new_w = max(int(round(width / (box_w / new_box_w))), crop)
    new_h = max(int(round(height / (box_h / new_box_h))), crop)
    ratio_w, ratio_h = width / new_w, height / new_h
    bx1, by1 = int(round(x1 / ratio_w)), int(round(y1 / ratio_h))
    bx2, by2 = int(round(x2 / ratio_w)), int(round(y2 / ratio_h))
    resized = resize_rgb(image, (new_w, new_h), Image.Resampling.BICUBIC)
    left = min(max(bx1 - (crop - (bx2 - bx1)) // 2, 0), new_w - crop)
    top = min(max(by1 - (crop - (by2 - by1)) // 2, 0), new_h - crop)
    crop_box = (bx1 - left, by1 - top, bx2 - left, by2 - top)
    cells = (crop // stride, crop // stride)
    return QueryCrop(resized[top:top + crop, left:left + crop], crop_box,
                     box_prior(crop_box, cells, stride=stride, dilation=protocol.dilation))


# ------------------------------------------------------------------------------------------------ database


@dataclasses.dataclass(frozen=True)
class DatabaseFeatures:
    names: tuple[str, ...]  # file names, collection order
    sizes: np.ndarray  # (N, 2) int original (height, width)
    features: np.ndarray  # (N, h, w, C) float32 L2-normalised (a read-only memmap when cached)


def fingerprint(variables: dict) -> str:
    """A short hash of every leaf (to key feature caches to the weights that made them)."""
    digest = hashlib.sha1()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()[:16]


def _cache_key(paths: Sequence[str], protocol: RetrievalProtocol, weights: str) -> str:
    digest = hashlib.sha1(json.dumps([protocol.database_size, weights]).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.basename(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def database_features(variables: dict, paths: Sequence[str | os.PathLike], *,
                      protocol: RetrievalProtocol = BRUEGHEL, cache_dir: str | os.PathLike | None = None,
                      config: TransformerConfig = SMALL, quiet: bool = True) -> DatabaseFeatures:
    """Features of every image at ``database_size``², computed ``batch_size`` images at a time.

    With ``cache_dir`` the array is written once as ``segswap_database_<key>.npy`` (key: file names, sizes and
    times, the size and the weights) with a ``.json`` of names and sizes, and later memory-mapped (1,587
    Brueghel images take 10.4 GB in float32).
    """
    paths = [os.fspath(p) for p in paths]
    names = tuple(os.path.basename(p) for p in paths)
    side = protocol.database_size
    cells = side // protocol.stride
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"segswap_database_{_cache_key(paths, protocol, fingerprint(variables))}"
        npy, meta = cache.with_suffix(".npy"), cache.with_suffix(".json")
        if npy.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            if tuple(info["names"]) == names:
                return DatabaseFeatures(names, np.asarray(info["sizes"], np.int64), np.load(npy, mmap_mode="r"))
    variables = jax.device_put(variables)
    sizes = np.zeros((len(paths), 2), np.int64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f".tmp-{cache.name}.npy")
        features = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                             shape=(len(paths), cells, cells, 1024))
    else:
        features = np.zeros((len(paths), cells, cells, 1024), np.float32)
    start_time = time.perf_counter()
    for start in range(0, len(paths), protocol.batch_size):
        block = []
        for k, path in enumerate(paths[start:start + protocol.batch_size]):
            image = read_image(path)
            sizes[start + k] = image.shape[:2]
            block.append(resize_rgb(image, (side, side), Image.Resampling.BILINEAR))
        features[start:start + len(block)] = collection_features(variables, np.stack(block),
                                                                 batch_size=protocol.batch_size, config=config)
        if not quiet:
            print(f"database features {start + len(block)}/{len(paths)} "
                  f"({time.perf_counter() - start_time:.0f} s)", flush=True)
    if cache is None:
        return DatabaseFeatures(names, sizes, features)
    features.flush()
    del features
    os.replace(temporary, npy)
    meta.write_text(json.dumps({"names": list(names), "sizes": sizes.tolist(), "database_size": side}))
    return DatabaseFeatures(names, sizes, np.load(npy, mmap_mode="r"))


# --------------------------------------------------------------------------------------------- retrieval


def retrieve(variables: dict, query: QueryCrop, database: np.ndarray, *, protocol: RetrievalProtocol = BRUEGHEL,
             config: TransformerConfig = SMALL) -> dict:
    """S(query, image) for every database image.

    Args:
      query: from ``prepare_query``.
      database: ``(N, h, w, C)`` features (``DatabaseFeatures.features``).
    Returns:
      ``{"score": (N,), "location": (N, 2), "prior": (h, w)}`` NumPy: the scores, the mean predicted (x, y) over
      the region in [0, 1] of each database image ("coarse location"), and the refined prior.
    """
    features = extract_features(variables, jnp.asarray(query.image, jnp.float32)[None], config=config)[0]
    prior = refine_prior(variables, features, jnp.asarray(query.box_cells, jnp.float32), config=config)
    result = score_against_collection(variables, features, database, prior=prior, region=query.box_cells,
                                      batch_size=protocol.batch_size, config=config)
    return {**result, "prior": np.asarray(prior)}


def coarse_box(location: Sequence[float], image_hw: Sequence[int], box_fraction_wh: Sequence[float]) -> tuple[int, ...]:
    """A box centred on the coarse location (normalised (x, y)) with sides ``box_fraction_wh`` of the image,
    clipped to it: ``[x1, y1, x2, y2]`` pixels. The release stops at the coarse location; this box only
    lets the detection harness run (it assumes the detail has the same size in cells as in the query crop)."""
    height, width = image_hw
    cx, cy = location[0] * width, location[1] * height
    half_w, half_h = box_fraction_wh[0] * width / 2, box_fraction_wh[1] * height / 2
    x1, y1 = int(round(max(cx - half_w, 0))), int(round(max(cy - half_h, 0)))
    x2, y2 = int(round(min(cx + half_w, width))), int(round(min(cy + half_h, height)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


@dataclasses.dataclass(frozen=True)
class RetrievalQuery:
    category: str
    image: str  # file name in the collection
    box: tuple[int, int, int, int]  # pixels of the original image
    relevant: tuple[str, ...]  # file names of the images holding another instance


def evaluate_retrieval(variables: dict, queries: Sequence[RetrievalQuery], paths: Sequence[str | os.PathLike], *,
                       protocol: RetrievalProtocol = BRUEGHEL, cache_dir: str | os.PathLike | None = None,
                       config: TransformerConfig = SMALL, quiet: bool = True) -> dict:
    """The whole protocol over a collection (module docstring).

    Returns:
      ``{"mAP_per_class", "mAP_per_query", "per_class": {class: mean AP}, "per_query": [{"category", "image",
      "AP"}], "rankings": [{"order": (N - 1,) indices by decreasing score, "score": (N,), "location": (N, 2)}],
      "database": DatabaseFeatures, "seconds": {...}}``.
    """
    variables = jax.device_put(variables)
    start = time.perf_counter()
    database = database_features(variables, paths, protocol=protocol, cache_dir=cache_dir, config=config,
                                 quiet=quiet)
    feature_seconds = time.perf_counter() - start
    index = {name: k for k, name in enumerate(database.names)}
    folder = Path(os.fspath(paths[0])).parent if paths else Path(".")
    per_query, rankings = [], []
    start = time.perf_counter()
    for q in queries:
        query = prepare_query(read_image(folder / q.image), q.box, protocol)
        result = retrieve(variables, query, database.features, protocol=protocol, config=config)
        exclude = index.get(q.image)
        relevant = np.zeros(len(database.names), bool)
        relevant[[index[name] for name in set(q.relevant) if name in index]] = True
        ap = average_precision(result["score"], relevant, exclude=exclude)
        order = np.argsort(-result["score"], kind="stable")
        rankings.append({"order": order[order != exclude] if exclude is not None else order,
                         "score": result["score"], "location": result["location"],
                         "box_fraction": ((query.box[2] - query.box[0]) / protocol.crop_size,
                                          (query.box[3] - query.box[1]) / protocol.crop_size)})
        per_query.append({"category": q.category, "image": q.image, "AP": ap})
        if not quiet:
            print(f"{q.category:>6} {q.image[:40]:<40} retrieval AP {ap:.4f}", flush=True)
    per_class: dict[str, list[float]] = {}
    for record in per_query:
        per_class.setdefault(record["category"], []).append(record["AP"])
    class_means = {c: float(np.mean(v)) for c, v in per_class.items()}
    return {
        "mAP_per_class": float(np.mean(list(class_means.values()))) if class_means else 0.0,
        "mAP_per_query": float(np.mean([r["AP"] for r in per_query])) if per_query else 0.0,
        "per_class": class_means,
        "per_query": per_query,
        "rankings": rankings,
        "database": database,
        "seconds": {"database_features": feature_seconds, "queries": time.perf_counter() - start},
    }
