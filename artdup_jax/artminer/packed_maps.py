"""A collection's multi-scale feature maps stacked on the device in a few size buckets, for batched detection.

Every ``(image, scale)`` map is zero-padded (bottom/right) to its size rounded up to ``granularity`` cells;
maps of equal padded size, whatever their image or scale, form one bucket, an ``(M, Rp, Cp, 256)`` array with
the true sizes and the ``(image, scale)`` of each row. A detection then runs one compiled program over all
buckets (``detection.detect``): the number of buckets, not the number of images or scales, sets the work the
host does. Packing copies the maps once; ``packed_maps`` keeps the packed form on the ``FeatureCache`` (so a
warm cache serves it to every further query), which doubles the cache's memory.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.collection import FeatureCache


@dataclasses.dataclass(frozen=True)
class MapBucket:
    """Maps of one padded size.

    maps: ``(M, Rp, Cp, D)`` float32 raw features, zero beyond each map's true size.
    valid_hw: ``(M, 2)`` int32 true ``(rows, cols)``.
    image: ``(M,)`` int32 position of the map's image in the packed path list.
    scale: ``(M,)`` int32 position of its scale in the packed scale list.
    """

    maps: jnp.ndarray
    valid_hw: jnp.ndarray
    image: jnp.ndarray
    scale: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class PackedMaps:
    paths: tuple[str, ...]
    scales: tuple[int, ...]
    min_cells: int
    image_hw: np.ndarray  # (N, 2) int64 original (H, W) pixels
    buckets: tuple[MapBucket, ...]

    @property
    def nbytes(self) -> int:
        return sum(int(b.maps.nbytes) for b in self.buckets)


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def pack_maps(cache: FeatureCache, paths: Sequence[str], scales: Sequence[int], min_cells: int, *,
              granularity: int = 8) -> PackedMaps:
    """Computes the missing maps of ``paths`` x ``scales`` and stacks them by padded size."""
    cache.ensure(paths, scales, min_cells)
    groups: dict[tuple[int, int], list[tuple[int, int]]] = collections.defaultdict(list)
    for i, path in enumerate(paths):
        for s, scale in enumerate(scales):
            rows, cols = cache.map_size(path, scale, min_cells)
            groups[(_round_up(rows, granularity), _round_up(cols, granularity))].append((i, s))
    buckets = []
    for shape_hw, members in sorted(groups.items()):
        maps = [cache.get(paths[i], scales[s], min_cells) for i, s in members]
        stacked = jnp.stack([jnp.pad(m.astype(jnp.float32), ((0, shape_hw[0] - m.shape[0]),
                                                             (0, shape_hw[1] - m.shape[1]), (0, 0))) for m in maps])
        buckets.append(MapBucket(maps=stacked, valid_hw=jnp.asarray([m.shape[:2] for m in maps], jnp.int32),
                                 image=jnp.asarray([i for i, _ in members], jnp.int32),
                                 scale=jnp.asarray([s for _, s in members], jnp.int32)))
    image_hw = np.array([cache.image_size(p) for p in paths], np.int64).reshape(-1, 2)
    return PackedMaps(tuple(paths), tuple(int(s) for s in scales), int(min_cells), image_hw, tuple(buckets))


def packed_maps(cache: FeatureCache, paths: Sequence[str], scales: Sequence[int], min_cells: int, *,
                granularity: int = 8) -> PackedMaps:
    """``pack_maps``, memoised on an unbounded cache (``max_bytes=None``: it never evicts, so a pack stays
    valid); a bounded cache is packed afresh on every call (its maps may be evicted, and a copy would double
    it)."""
    if cache.max_bytes is not None:
        return pack_maps(cache, paths, scales, min_cells, granularity=granularity)
    key = (tuple(paths), tuple(int(s) for s in scales), int(min_cells), int(granularity))
    memo = cache.__dict__.setdefault("_packed", {})
    if key not in memo:
        memo[key] = pack_maps(cache, paths, scales, min_cells, granularity=granularity)
    return memo[key]
