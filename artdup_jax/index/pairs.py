"""A log of verified pairs: append-only chunk files, each written atomically, read back as a whole.

``folder/chunk-000000007.npz`` holds one verification step: ``pairs`` ``(M, 2)`` int64 unordered item ids
``a < b`` and, per directional row, whatever the verifier returns (scores, boxes). A killed run loses at most
the chunk it was computing; ``keys`` tells a re-run which pairs are done.
"""

from __future__ import annotations

import os
import re

import numpy as np

from artdup_jax.index import atomic

_CHUNK = re.compile(r"chunk-(\d+)\.npz$")


def pair_keys(pairs: np.ndarray) -> np.ndarray:
    """``(M, 2)`` unordered ids -> ``(M,)`` int64 keys ``a * 2^31 + b``, ``a < b`` (ids below 2^31)."""
    pairs = np.sort(np.asarray(pairs, np.int64).reshape(-1, 2), axis=1)
    return pairs[:, 0] * (1 << 31) + pairs[:, 1]


class PairLog:
    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)

    def chunk_paths(self) -> list[str]:
        if not os.path.isdir(self.folder):
            return []
        names = sorted(n for n in os.listdir(self.folder) if _CHUNK.match(n))
        return [os.path.join(self.folder, n) for n in names]

    def _next_path(self) -> str:
        existing = self.chunk_paths()
        number = int(_CHUNK.search(existing[-1]).group(1)) + 1 if existing else 0
        return os.path.join(self.folder, f"chunk-{number:09d}.npz")

    def append(self, arrays: dict[str, np.ndarray]) -> str:
        """Writes the next chunk (``arrays`` must hold ``pairs``); single writer (``atomic.writer_lock``)."""
        return atomic.write_arrays(self._next_path(), arrays)

    def append_file(self, path: str | os.PathLike) -> str:
        """Renames a complete chunk file (written atomically, on the log's file system) in as the next chunk."""
        target = self._next_path()
        os.makedirs(self.folder, exist_ok=True)
        os.replace(path, target)
        atomic.fsync_folder(self.folder)
        return target

    def chunks(self):
        """Every chunk's arrays, in the order they were written."""
        for path in self.chunk_paths():
            with np.load(path) as data:
                yield {k: data[k] for k in data.files}

    def keys(self) -> np.ndarray:
        """Sorted keys (``pair_keys``) of every pair in the log."""
        found = []
        for path in self.chunk_paths():
            with np.load(path) as data:
                found.append(pair_keys(data["pairs"]))
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.keys())
