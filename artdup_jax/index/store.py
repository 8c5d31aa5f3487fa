"""A chunked, memory-mapped store of per-item feature maps: shards written once, read a few rows at a time.

Each item (an image) has a fixed number ``M`` of maps, ``(rows, cols, D)`` grids of ``D``-vectors whose sizes
differ from item to item, plus fixed-shape per-item arrays (a global descriptor). Items are written in shards,
one folder each, committed by an atomic rename (``atomic.folder_commit``), so a killed writer loses at most the
shard it was writing::

    shards/000000016/            first item id 16, ids 16 .. 16 + n - 1
      items.json                 one record per item (its "id" and whatever the caller keeps: path, size, hash)
      codes.npy   (C, D) uint16  every cell of every map of the shard, row-major, map after map
      low.npy     (C,) float32   per cell: value = low + code * step
      step.npy    (C,) float32
      layout.npy  (n, M, 3) int64  per item and map: first cell, rows, cols
      <field>.npy (C,) float32   optional per-cell values (the raw feature norm)
      <array>.npy (n, ...)       optional per-item arrays (descriptors)

Compact cells (``quantise``): each cell is stored as 16-bit fixed point between its own minimum (0 for
non-negative cells) and maximum, 2 bytes a value plus 8 bytes a cell, about half of float32. The error of a
value is at most ``(max - min) / 131070`` of its cell. float16 has the same size but a relative error of up to
2^-11 on every value, and discovery is sensitive to it: mutual nearest neighbours of near-tied cells flip.
Measured (``artdup_jax.index`` docstring), float16 moved pair scores by up to 0.05 and changed the groups;
16-bit fixed point moved them by at most 3e-7, as little as float32 noise of relative size 1e-5.

Reading memory-maps a shard's files and copies out only the cells asked for; at most ``open_bytes`` of shard
files stay mapped (least recently used shards are unmapped first), so the memory a reader holds does not grow
with the number of items.
"""

from __future__ import annotations

import bisect
import collections
import functools
import json
import os
from typing import Sequence

import numpy as np

from artdup_jax.index import atomic

CODE_LEVELS = 65535  # uint16 fixed point
SHARD_DIGITS = 9


def quantise(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(C, D)`` float -> ``(codes (C, D) uint16, low (C,) float32, step (C,) float32)`` with
    ``low + codes * step`` within ``step / 2`` of the input; a cell that is >= 0 everywhere gets ``low = 0``, so
    exact zeros stay exact."""
    cells = np.asarray(cells, np.float32)
    if cells.size == 0:
        return np.zeros(cells.shape, np.uint16), np.zeros(len(cells), np.float32), np.zeros(len(cells), np.float32)
    low = np.minimum(cells.min(axis=1), 0.0).astype(np.float32)
    step = ((cells.max(axis=1) - low) / CODE_LEVELS).astype(np.float32)
    safe = np.where(step > 0, step, 1.0).astype(np.float32)
    codes = np.clip(np.rint((cells - low[:, None]) / safe[:, None]), 0, CODE_LEVELS).astype(np.uint16)
    return codes, low, step


def dequantise(codes: np.ndarray, low: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Inverse of ``quantise``: ``(C, D)`` float32."""
    return codes.astype(np.float32) * step[:, None] + low[:, None]


def shard_name(first_id: int) -> str:
    return f"{first_id:0{SHARD_DIGITS}d}"


def write_shard(folder: str | os.PathLike, first_id: int, records: Sequence[dict],
                maps: Sequence[Sequence[np.ndarray]], *, cell_fields: dict[str, Sequence[Sequence[np.ndarray]]] = None,
                arrays: dict[str, np.ndarray] | None = None) -> str:
    """Commits one shard of ``len(records)`` items with ids ``first_id ..`` under ``folder/shards``.

    Args:
      records: per item, a JSON-able dict; its ``"id"`` is set here.
      maps: per item, its ``M`` maps ``(rows, cols, D)`` (the same ``M`` and ``D`` for every item).
      cell_fields: name -> per item, per map ``(rows, cols)`` float values kept beside the cells.
      arrays: name -> ``(n, ...)`` per-item array.
    Returns the shard's folder.
    """
    n = len(records)
    if len(maps) != n or any(len(m) != len(maps[0]) for m in maps):
        raise ValueError("every item needs the same number of maps")
    depth = maps[0][0].shape[-1] if n else 0
    flat = [np.asarray(m, np.float32).reshape(-1, depth) for item in maps for m in item]
    sizes = np.array([len(f) for f in flat], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    hw = np.array([m.shape[:2] for item in maps for m in item], np.int64).reshape(-1, 2)
    layout = np.concatenate([starts[:, None], hw], 1).reshape(n, -1, 3)
    codes, low, step = quantise(np.concatenate(flat) if flat else np.zeros((0, depth), np.float32))
    target = os.path.join(os.fspath(folder), "shards", shard_name(first_id))
    with atomic.folder_commit(target) as temporary:
        def save(name, value):
            np.save(os.path.join(temporary, f"{name}.npy"), np.ascontiguousarray(value))

        save("codes", codes)
        save("low", low)
        save("step", step)
        save("layout", layout)
        for name, values in (cell_fields or {}).items():
            save(name, np.concatenate([np.asarray(v, np.float32).reshape(-1) for item in values for v in item]))
        for name, value in (arrays or {}).items():
            if len(value) != n:
                raise ValueError(f"array {name!r}: {len(value)} rows for {n} items")
            save(name, value)
        items = [{**r, "id": first_id + i} for i, r in enumerate(records)]
        with open(os.path.join(temporary, "items.json"), "w") as f:
            json.dump(items, f)
    return target


class _OpenShard:
    """A shard's cell files, memory-mapped (nothing is read until a cell is asked for)."""

    def __init__(self, folder: str):
        self.codes = np.load(os.path.join(folder, "codes.npy"), mmap_mode="r")
        self.low = np.load(os.path.join(folder, "low.npy"), mmap_mode="r")
        self.step = np.load(os.path.join(folder, "step.npy"), mmap_mode="r")
        self.folder = folder
        self.fields: dict[str, np.ndarray] = {}
        self.nbytes = int(self.codes.nbytes)

    def field(self, name: str) -> np.ndarray:
        if name not in self.fields:
            self.fields[name] = np.load(os.path.join(self.folder, f"{name}.npy"), mmap_mode="r")
        return self.fields[name]


class MapStore:
    """Read access to the committed shards of ``folder`` (a shard being written is invisible until committed).

    ``ids``: every stored id, ascending. ``records[id]``: the item's record. ``layout(map_index)``: ``(S, 2)``
    rows, cols of that map for every id slot ``0 .. S - 1`` (zeros where no item has the id).
    """

    def __init__(self, folder: str | os.PathLike, *, open_bytes: int = 256 << 20):
        self.folder = os.fspath(folder)
        self.open_bytes = open_bytes
        root = os.path.join(self.folder, "shards")
        names = sorted(n for n in os.listdir(root) if not n.startswith(atomic.TMP_PREFIX)) if os.path.isdir(root) \
            else []
        self._folders: list[str] = []
        self._first: list[int] = []
        self._layouts: list[np.ndarray] = []
        self.records: dict[int, dict] = {}
        for name in names:
            folder_path = os.path.join(root, name)
            with open(os.path.join(folder_path, "items.json")) as f:
                items = json.load(f)
            self._folders.append(folder_path)
            self._first.append(int(name))
            self._layouts.append(np.load(os.path.join(folder_path, "layout.npy")))
            for item in items:
                self.records[int(item["id"])] = item
        self.ids = np.array(sorted(self.records), np.int64)
        self._open: collections.OrderedDict[int, _OpenShard] = collections.OrderedDict()
        self.shards_opened = 0  # how often a shard's files were mapped (tests: nothing is read wholesale)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_shards(self) -> int:
        return len(self._folders)

    @property
    def next_id(self) -> int:
        return int(self.ids[-1]) + 1 if len(self.ids) else 0

    @property
    def num_slots(self) -> int:
        return self.next_id

    def nbytes(self) -> int:
        """Bytes of every committed shard file on disk."""
        return sum(os.path.getsize(os.path.join(f, n)) for f in self._folders for n in os.listdir(f))

    def _where(self, item_id: int) -> tuple[int, int]:
        shard = bisect.bisect_right(self._first, item_id) - 1
        local = item_id - self._first[shard]
        if shard < 0 or local >= len(self._layouts[shard]):
            raise KeyError(f"no item {item_id} in the store {self.folder}")
        return shard, local

    def _shard(self, shard: int) -> _OpenShard:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        opened = _OpenShard(self._folders[shard])
        self.shards_opened += 1
        self._open[shard] = opened
        while len(self._open) > 1 and sum(s.nbytes for s in self._open.values()) > self.open_bytes:
            self._open.popitem(last=False)  # unmapped once no copy refers to it
        return opened

    def layout(self, map_index: int) -> np.ndarray:
        """``(num_slots, 2)`` int64 rows, cols of map ``map_index`` for every id slot (zeros for missing ids)."""
        out = np.zeros((self.num_slots, 2), np.int64)
        for first, layout in zip(self._first, self._layouts):
            out[first:first + len(layout)] = layout[:, map_index, 1:]
        return out

    def layout_of(self, item_id: int, map_index: int) -> tuple[int, int]:
        """``(rows, cols)`` of one item's map."""
        shard, local = self._where(int(item_id))
        return int(self._layouts[shard][local, map_index, 1]), int(self._layouts[shard][local, map_index, 2])

    def _span(self, item_id: int, map_index: int) -> tuple[_OpenShard, int, int, int]:
        shard, local = self._where(int(item_id))
        start, rows, cols = (int(v) for v in self._layouts[shard][local, map_index])
        return self._shard(shard), start, rows, cols

    def read(self, item_id: int, map_index: int) -> np.ndarray:
        """The ``(rows, cols, D)`` float32 map."""
        opened, start, rows, cols = self._span(item_id, map_index)
        stop = start + rows * cols
        cells = dequantise(np.asarray(opened.codes[start:stop]), np.asarray(opened.low[start:stop]),
                           np.asarray(opened.step[start:stop]))
        return cells.reshape(rows, cols, -1)

    def read_field(self, item_id: int, map_index: int, name: str) -> np.ndarray:
        """The ``(rows, cols)`` float32 per-cell field ``name`` of a map."""
        opened, start, rows, cols = self._span(item_id, map_index)
        return np.array(opened.field(name)[start:start + rows * cols], np.float32).reshape(rows, cols)

    def read_cells(self, item_id: int, map_index: int, cells: np.ndarray) -> np.ndarray:
        """``(len(cells), D)`` float32: the cells of one map at flat (row-major) positions ``cells``; positions
        past the map's end give zeros (padding). Reads only those cells."""
        opened, start, rows, cols = self._span(item_id, map_index)
        cells = np.asarray(cells, np.int64)
        inside = cells < rows * cols
        out = np.zeros((len(cells), self.depth), np.float32)
        at = start + cells[inside]
        out[inside] = dequantise(np.asarray(opened.codes[at]), np.asarray(opened.low[at]), np.asarray(opened.step[at]))
        return out

    def read_rows(self, ids: Sequence[int], map_index: int, length: int) -> np.ndarray:
        """``(len(ids), length, D)`` float32: each map's cells row-major, zeros after (missing ids: all zeros)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        depth = self.depth
        out = np.zeros((len(ids), length, depth), np.float32)
        for row, item_id in enumerate(ids):
            if item_id in self.records:
                cells = self.read(int(item_id), map_index).reshape(-1, depth)
                if len(cells) > length:
                    raise ValueError(f"map {map_index} of item {item_id} has {len(cells)} cells, more than {length}")
                out[row, :len(cells)] = cells
        return out

    @functools.cached_property
    def depth(self) -> int:
        """``D``, the length of a cell's vector (0 for an empty store)."""
        if not self._folders:
            return 0
        return int(np.load(os.path.join(self._folders[0], "codes.npy"), mmap_mode="r").shape[1])

    def array(self, name: str, ids: Sequence[int]) -> np.ndarray:
        """Rows of the per-item array ``name`` for ``ids`` (read from each shard's file, memory-mapped)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        where = np.array([self._where(int(i)) for i in ids], np.int64).reshape(-1, 2)
        out = None
        for shard in np.unique(where[:, 0]):
            data = np.load(os.path.join(self._folders[shard], f"{name}.npy"), mmap_mode="r")
            if out is None:
                out = np.zeros((len(ids), *data.shape[1:]), data.dtype)
            rows = np.nonzero(where[:, 0] == shard)[0]
            out[rows] = data[where[rows, 1]]
        return out if out is not None else np.zeros((0,))

    def iter_arrays(self, name: str):
        """``(ids, rows)`` shard by shard for the per-item array ``name`` (streaming over the store)."""
        for first, folder, layout in zip(self._first, self._folders, self._layouts):
            yield np.arange(first, first + len(layout)), np.load(os.path.join(folder, f"{name}.npy"))


def _row_ids(key, size: int) -> np.ndarray:
    if isinstance(key, slice):
        return np.arange(*key.indices(size))
    ids = np.asarray(key)
    return np.nonzero(ids)[0] if ids.dtype == bool else ids.astype(np.int64)


class PaddedCells:
    """Array-like ``(num_slots, length, D)`` float32 view of map ``map_index`` of every item, cells row-major and
    zero-padded to ``length``: ``view[ids]`` (or ``view[ids, ...]``) reads only those items, ``view[ids, cells]``
    (two integer arrays) only those cells. Converting the whole view to an array is refused (it would read the
    whole store)."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, store: MapStore, map_index: int, length: int):
        self.store, self.map_index, self.length = store, map_index, int(length)
        self.shape = (store.num_slots, self.length, store.depth)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            if len(key) == 2 and not isinstance(key[1], slice) and np.ndim(key[1]) > 0:
                return self._points(*np.broadcast_arrays(np.asarray(key[0]), np.asarray(key[1])))
            key, rest = key[0], key[1:]
        ids = _row_ids(key, len(self))
        out = self.store.read_rows(np.atleast_1d(ids), self.map_index, self.length)
        if ids.ndim == 0:
            return out[0][rest] if rest else out[0]
        return out[(slice(None), *rest)] if rest else out

    def _points(self, ids: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """``view[ids, cells]`` for integer arrays of one shape: ``ids.shape + (D,)``."""
        flat_ids, flat_cells = ids.reshape(-1).astype(np.int64), cells.reshape(-1).astype(np.int64)
        out = np.zeros((len(flat_ids), self.shape[2]), np.float32)
        for item_id in np.unique(flat_ids):
            where = np.flatnonzero(flat_ids == item_id)
            if int(item_id) in self.store.records:
                out[where] = self.store.read_cells(int(item_id), self.map_index, flat_cells[where])
        return out.reshape(*ids.shape, self.shape[2])

    def __array__(self, *args, **kwargs):
        raise TypeError("PaddedCells reads rows on demand (view[ids]); it is never converted whole")


class PaddedValid:
    """Array-like ``(num_slots, length)`` bool: ``view[ids][i, c]`` is True for the real cells of item ``ids[i]``
    (``counts``: cells per id slot). ``np.asarray(view)`` gives the whole mask: ``num_slots x length`` bytes."""

    dtype = np.dtype(bool)
    ndim = 2

    def __init__(self, counts: np.ndarray, length: int):
        self.counts, self.length = np.asarray(counts, np.int64), int(length)
        self.shape = (len(self.counts), self.length)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        ids = _row_ids(key, len(self))
        out = np.arange(self.length) < self.counts[ids][..., None]
        if not rest:
            return out
        return out[rest] if ids.ndim == 0 else out[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        mask = np.arange(self.length)[None, :] < self.counts[:, None]
        return mask if dtype is None else mask.astype(dtype)
