"""Nearest items by regional descriptors: faiss over every window of every item, aggregated per item.

An item (an image) has ``W`` unit descriptors (its regional windows); the similarity of two items is the largest
inner product between a window of one and a window of the other (as ``artminer.discovery.candidate_pairs``).
faiss holds each window as a vector with id ``item * W + window``; a query searches each of its windows'
``K = (k + 2) W`` nearest windows and keeps, per item found, the largest similarity. With the exact index that
is exactly the ``k`` most similar items: an item outranked by ``k`` others has at most ``k W`` windows of other
items and ``W`` of the query above its best window.

``kind``: ``"flat"`` (``IndexFlatIP``: exact, ``4 D`` bytes a window, a query's time grows with N, so
searching every item's list grows with N^2) up to ``EXACT_LIMIT`` items, then ``"ivf"`` (an inverted file of
``4 sqrt(N W)`` lists, ``SQfp16`` codes of ``2 D`` bytes a window, ``nprobe`` lists searched).

Measured (2 shared CPU cores, ``W = 10``, ``D = 256``, descriptors of real ArtMiner features of a synthetic
collection, random weights): searching every item's list takes 4.8 s (flat) / 2.6 s (IVF, training included)
at 1k items, 17 s / 12 s at 2k, 110 s / 43 s at 5k, 330 s / 56 s at 10k. An index up to ``EXACT_LIMIT`` = 2k
items searches all lists again on every discovery, exactly (so its candidates are exactly a fresh build's);
an add then costs at most ~20 s of search, about its own features. Beyond, the IVF index persists and an add
searches only the new images (15-30 ms each). IVF recall of the exact top-10 lists at 2k items: 0.999 with
``SQfp16`` codes at ``nprobe`` 8, 16 or 32 (0.9996 with float32 ``Flat`` codes; 0.75 with ``SQ8``, whose 8-bit
rounding scrambles these close-together descriptors, so fp16 codes it is).
"""

from __future__ import annotations

import math
import os

import numpy as np

from artdup_jax.index import atomic

EXACT_LIMIT = 2_000  # items; see the module docstring
IVF_NPROBE = 16
IVF_CODES = "SQfp16"
IVF_MIN_TRAIN = 39  # faiss's own minimum of training points per list


def _faiss():
    import faiss  # a heavy import, only for the commands that search

    return faiss


def choose_kind(num_items: int, exact_limit: int = EXACT_LIMIT) -> str:
    return "flat" if num_items <= exact_limit else "ivf"


class WindowIndex:
    """A faiss index of item windows (module docstring). ``dim``: descriptor length; ``windows``: W."""

    def __init__(self, dim: int, windows: int, kind: str = "flat", *, num_lists: int | None = None,
                 nprobe: int = IVF_NPROBE):
        faiss = _faiss()
        self.dim, self.windows, self.kind, self.nprobe = int(dim), int(windows), kind, int(nprobe)
        if kind == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        elif kind == "ivf":
            self.num_lists = int(num_lists or 1)
            self.index = faiss.index_factory(self.dim, f"IVF{self.num_lists},{IVF_CODES}", faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"unknown index kind {kind!r} (flat or ivf)")
        self._set_nprobe()

    def _set_nprobe(self) -> None:
        if self.kind == "ivf":
            _faiss().extract_index_ivf(self.index).nprobe = min(self.nprobe, self.num_lists)

    @staticmethod
    def lists_for(num_vectors: int) -> int:
        """Inverted lists for ``num_vectors`` windows: ``4 sqrt(n)`` (faiss's guideline), at most ``n / 39``."""
        return max(1, min(int(4 * math.sqrt(num_vectors)), num_vectors // IVF_MIN_TRAIN))

    @property
    def trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        """IVF only: the lists' centroids (and the SQ8 ranges) from ``(n, W, D)`` descriptors."""
        self.index.train(np.ascontiguousarray(sample.reshape(-1, self.dim), np.float32))

    @property
    def num_vectors(self) -> int:
        return int(self.index.ntotal)

    def add(self, item_ids: np.ndarray, descriptors: np.ndarray) -> None:
        """``descriptors``: ``(n, W, D)`` unit windows of items ``item_ids``."""
        item_ids = np.asarray(item_ids, np.int64)
        ids = (item_ids[:, None] * self.windows + np.arange(self.windows)[None]).reshape(-1)
        self.index.add_with_ids(np.ascontiguousarray(descriptors.reshape(-1, self.dim), np.float32), ids)

    def remove(self, item_ids) -> None:
        item_ids = np.asarray(list(item_ids), np.int64)
        if len(item_ids):
            ids = (item_ids[:, None] * self.windows + np.arange(self.windows)[None]).reshape(-1)
            self.index.remove_ids(ids)

    def neighbours(self, query_ids: np.ndarray, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar other items of each query item.

        Args:
          query_ids: ``(Q,)`` the queries' own item ids (excluded from their results; -1 for outside items).
          descriptors: ``(Q, W, D)`` their windows.
        Returns ``(ids (Q, k) int64, sims (Q, k) float32)``, best first (ties: lower id first), ``-1`` / ``-inf``
        where fewer than ``k`` items exist.
        """
        query_ids = np.asarray(query_ids, np.int64)
        q = len(query_ids)
        out_ids = np.full((q, k), -1, np.int64)
        out_sims = np.full((q, k), -np.inf, np.float32)
        if q == 0 or self.num_vectors == 0 or k <= 0:
            return out_ids, out_sims
        depth = min((k + 2) * self.windows, self.num_vectors)
        sims, ids = self.index.search(np.ascontiguousarray(descriptors.reshape(-1, self.dim), np.float32), depth)
        query = np.repeat(query_ids, self.windows * depth)
        found = ids.reshape(-1) // self.windows
        sims = sims.reshape(-1)
        keep = (ids.reshape(-1) >= 0) & (found != query)
        row = np.repeat(np.arange(q), self.windows * depth)[keep]
        found, sims = found[keep], sims[keep]
        # Per (query, item): the largest similarity; then per query the k best (ties: lower item id).
        order = np.lexsort((-sims, found, row))
        row, found, sims = row[order], found[order], sims[order]
        first = np.ones(len(row), bool)
        first[1:] = (row[1:] != row[:-1]) | (found[1:] != found[:-1])
        row, found, sims = row[first], found[first], sims[first]
        order = np.lexsort((found, -sims, row))
        row, found, sims = row[order], found[order], sims[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        take = rank < k
        out_ids[row[take], rank[take]] = found[take]
        out_sims[row[take], rank[take]] = sims[take]
        return out_ids, out_sims

    def save(self, path: str | os.PathLike) -> None:
        faiss = _faiss()
        atomic.write_file(path, lambda f: f.write(faiss.serialize_index(self.index).tobytes()))

    @classmethod
    def load(cls, path: str | os.PathLike, dim: int, windows: int, kind: str, *, nprobe: int = IVF_NPROBE):
        faiss = _faiss()
        self = cls.__new__(cls)
        self.dim, self.windows, self.kind, self.nprobe = int(dim), int(windows), kind, int(nprobe)
        self.index = faiss.deserialize_index(np.fromfile(path, np.uint8))
        if kind == "ivf":
            self.num_lists = int(faiss.extract_index_ivf(self.index).nlist)
        self._set_nprobe()
        return self
