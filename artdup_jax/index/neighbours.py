"""Each stored item's ``k`` most similar items, and the candidate pairs they give, kept up to date cheaply.

Items keep *pooled* regional descriptors ``(W, D)`` (window means, L2-normalised) in the store. Similarities
use them *centred*: the mean pooled window of the collection removed, then L2-normalised again (``centre``), as
``artminer.discovery.candidates.global_descriptors`` does. Candidate pairs are the unordered pairs ``(i, j)``
with ``j`` among ``i``'s ``k`` nearest (``ann.WindowIndex``) or ``i`` among ``j``'s.

* Up to ``exact_limit`` items: the mean is that of every live item, the exact index is rebuilt in memory on
  each call and every list searched again (seconds at that size); the candidates are exactly those of a fresh
  build, whatever was added or removed before.
* Beyond: the mean, the IVF index and the lists persist in ``folder``. A call adds the new items' windows,
  searches their lists, and inserts each new item into the list of every old item it now outranks (among the
  items its own search found); items whose lists held a removed item are searched again. The mean is frozen
  until the collection has doubled (or halved), then everything is rebuilt once: amortised, each item is
  searched a constant number of times. Persisted state is replaced atomically (a new version folder, then the
  pointer to it), so a killed call leaves the previous state.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from artdup_jax.data.progress import bar
from artdup_jax.index import atomic
from artdup_jax.index.ann import EXACT_LIMIT, WindowIndex
from artdup_jax.index.store import MapStore

POINTER = "graph.json"
QUERY_BATCH = 256  # items searched per faiss call
REFRESH_GROWTH = 2.0  # the frozen mean is recomputed once the live count has changed by this factor
TRAIN_PER_LIST = 64  # IVF training windows per list


def centre(pooled: np.ndarray, mean: np.ndarray | None, eps: float) -> np.ndarray:
    """``(n, W, D)`` pooled descriptors minus ``mean`` (None: none removed), L2-normalised: float32."""
    pooled = np.asarray(pooled, np.float32)
    if mean is not None:
        pooled = pooled - mean
    return (pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + eps)).astype(np.float32)


def stream_mean(chunks) -> tuple[np.ndarray | None, int]:
    """Mean window of ``(n, W, D)`` chunks as NumPy's ``mean(0)`` of the stacked ``(sum n W, D)`` float32 array
    (a running float32 sum in row order, so equal bits), and the number of items."""
    total, rows, items = None, 0, 0
    for chunk in chunks:
        flat = np.asarray(chunk, np.float32).reshape(-1, chunk.shape[-1])
        total = flat.sum(0) if total is None else np.concatenate([total[None], flat]).sum(0)
        rows += len(flat)
        items += len(chunk)
    if total is None:
        return None, 0
    return (total / np.float32(rows)).astype(np.float32), items


def _pairs_from_lists(ids: np.ndarray, lists: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Unordered sorted unique pairs ``(i, lists[i, r])`` over ``ids`` whose neighbour is live."""
    i = np.repeat(ids, lists.shape[1])
    j = lists.reshape(-1)
    keep = (j >= 0) & np.isin(j, live)
    i, j = i[keep], j[keep]
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], 1)
    return np.unique(pairs, axis=0).astype(np.int64) if len(pairs) else np.zeros((0, 2), np.int64)


class NeighbourGraph:
    """Candidate pairs of the items of ``store`` (module docstring); ``folder``: where the IVF state persists."""

    def __init__(self, folder: str | os.PathLike, store: MapStore, *, array: str = "descriptor",
                 eps: float = 1e-8, exact_limit: int = EXACT_LIMIT, progress: bool = False):
        self.folder = os.fspath(folder)
        self.store, self.array, self.eps = store, array, eps
        self.exact_limit = exact_limit
        self.progress = progress
        self.searched = 0  # items whose lists were searched by the last ``candidate_pairs`` (tests, benchmarks)

    def _stream(self, live: np.ndarray):
        """``(ids, pooled)`` of live items, shard by shard."""
        for ids, rows in self.store.iter_arrays(self.array):
            keep = np.isin(ids, live)
            if keep.any():
                yield ids[keep], rows[keep]

    def _search(self, index: WindowIndex, ids: np.ndarray, mean, k: int, lists: np.ndarray, sims: np.ndarray,
                stage: str) -> None:
        """Searches the lists of ``ids`` (rows of ``lists`` / ``sims`` indexed by id) in batches."""
        with bar(len(ids), stage, enabled=self.progress, unit="img") as progress:
            for start in range(0, len(ids), QUERY_BATCH):
                batch = ids[start:start + QUERY_BATCH]
                found, found_sims = index.neighbours(batch, centre(self.store.array(self.array, batch), mean,
                                                                   self.eps), k)
                lists[batch], sims[batch] = found, found_sims
                progress.update(len(batch))
        self.searched += len(ids)

    def candidate_pairs(self, live: np.ndarray, k: int) -> np.ndarray:
        """``(M, 2)`` unordered candidate pairs ``a < b`` of the ``live`` ids, sorted."""
        live = np.unique(np.asarray(live, np.int64))
        self.searched = 0
        if len(live) < 2 or k <= 0:
            return np.zeros((0, 2), np.int64)
        if len(live) <= self.exact_limit:
            return self._exact(live, k)
        return self._incremental(live, k)

    # ------------------------------------------------------------------------------------------ exact, small

    def _exact(self, live: np.ndarray, k: int) -> np.ndarray:
        chunks = list(self._stream(live))
        mean, _ = stream_mean(rows for _, rows in chunks)
        ids = np.concatenate([i for i, _ in chunks])
        pooled = np.concatenate([r for _, r in chunks])
        index = WindowIndex(pooled.shape[-1], pooled.shape[1], "flat")
        index.add(ids, centre(pooled, mean, self.eps))
        slots = int(live[-1]) + 1
        lists = np.full((slots, min(k, len(live) - 1)), -1, np.int64)
        sims = np.zeros(lists.shape, np.float32)
        self._search(index, live, mean, lists.shape[1], lists, sims, "neighbours (exact)")
        return _pairs_from_lists(live, lists[live], live)

    # ---------------------------------------------------------------------------------- persistent, large

    def _load(self):
        pointer = atomic.read_json(os.path.join(self.folder, POINTER))
        if pointer is None:
            return None
        version = os.path.join(self.folder, pointer["version"])
        arrays = {n: np.load(os.path.join(version, f"{n}.npy")) for n in ("mean", "lists", "sims", "covered")}
        index = WindowIndex.load(os.path.join(version, "index.faiss"), pointer["dim"], pointer["windows"], "ivf")
        return pointer, arrays, index

    def _save(self, pointer: dict, arrays: dict, index: WindowIndex) -> None:
        old = atomic.read_json(os.path.join(self.folder, POINTER))
        number = int(old["version"][1:]) + 1 if old else 0
        name = f"v{number:09d}"
        with atomic.folder_commit(os.path.join(self.folder, name)) as temporary:
            for key, value in arrays.items():
                np.save(os.path.join(temporary, f"{key}.npy"), value)
            index.save(os.path.join(temporary, "index.faiss"))
        atomic.write_json(os.path.join(self.folder, POINTER), {**pointer, "version": name})
        for entry in os.listdir(self.folder):
            if entry.startswith("v") and entry != name:
                shutil.rmtree(os.path.join(self.folder, entry), ignore_errors=True)
        atomic.remove_leftovers(self.folder)

    def _rebuild(self, live: np.ndarray, k: int):
        mean, count = stream_mean(rows for _, rows in self._stream(live))
        dim, windows = mean.shape[-1], self.store.array(self.array, live[:1]).shape[1]
        lists_count = WindowIndex.lists_for(count * windows)
        index = WindowIndex(dim, windows, "ivf", num_lists=lists_count)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(live, min(len(live), -(-TRAIN_PER_LIST * lists_count // windows)), replace=False))
        index.train(centre(self.store.array(self.array, sample), mean, self.eps))
        with bar(len(live), "neighbours: index", enabled=self.progress, unit="img") as progress:
            for ids, rows in self._stream(live):
                index.add(ids, centre(rows, mean, self.eps))
                progress.update(len(ids))
        slots = self.store.num_slots
        arrays = {"mean": mean, "lists": np.full((slots, k), -1, np.int64),
                  "sims": np.full((slots, k), -np.inf, np.float32), "covered": np.zeros(slots, bool)}
        arrays["covered"][live] = True
        self._search(index, live, mean, k, arrays["lists"], arrays["sims"], "neighbours (ivf)")
        pointer = {"kind": "ivf", "mean_count": int(count), "k": int(k), "dim": int(dim), "windows": int(windows)}
        return pointer, arrays, index

    def _incremental(self, live: np.ndarray, k: int) -> np.ndarray:
        loaded = self._load()
        if loaded is not None:
            pointer, arrays, index = loaded
            grown = len(live) / max(pointer["mean_count"], 1)
            if pointer["k"] != k or not (1 / REFRESH_GROWTH < grown < REFRESH_GROWTH):
                loaded = None
        if loaded is None:
            pointer, arrays, index = self._rebuild(live, k)
            self._save(pointer, arrays, index)
            return _pairs_from_lists(live, arrays["lists"][live], live)
        slots = self.store.num_slots
        if len(arrays["covered"]) < slots:  # new id slots
            grow = slots - len(arrays["covered"])
            arrays["covered"] = np.concatenate([arrays["covered"], np.zeros(grow, bool)])
            arrays["lists"] = np.concatenate([arrays["lists"], np.full((grow, k), -1, np.int64)])
            arrays["sims"] = np.concatenate([arrays["sims"], np.full((grow, k), -np.inf, np.float32)])
        covered, lists, sims, mean = arrays["covered"], arrays["lists"], arrays["sims"], arrays["mean"]
        is_live = np.zeros(slots, bool)
        is_live[live] = True
        gone = np.nonzero(covered & ~is_live)[0]
        new = np.nonzero(is_live & ~covered)[0]
        index.remove(gone)
        covered[gone] = False
        lists[gone], sims[gone] = -1, -np.inf
        for start in range(0, len(new), QUERY_BATCH):
            batch = new[start:start + QUERY_BATCH]
            index.add(batch, centre(self.store.array(self.array, batch), mean, self.eps))
        covered[new] = True
        touched = np.isin(lists, gone).any(1) & is_live
        again = np.union1d(new, np.nonzero(touched)[0])
        self._search(index, again, mean, k, lists, sims, "neighbours (ivf)")
        # A new item enters the list of each old item it outranks there (among the items it found).
        for n in new:
            for i, s in zip(lists[n], sims[n]):
                if i < 0 or i in again or s <= sims[i, -1]:
                    continue
                position = int(np.searchsorted(-sims[i], -s, side="right"))
                lists[i] = np.insert(lists[i], position, n)[:k]
                sims[i] = np.insert(sims[i], position, s)[:k]
        if len(gone) or len(new):
            self._save(pointer, arrays, index)
        return _pairs_from_lists(live, lists[live], live)
