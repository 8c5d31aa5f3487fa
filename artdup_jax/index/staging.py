"""Work computed by one process of many (or by the only one), kept until it is committed in the one order::

    INDEX/staging/<name>/shards/000000000/   one chunk of images' shard, ids from 0 (``store.write_shard``)
    INDEX/staging/<name>/chunk.json          its image paths and the unreadable ones (written last: complete)
    INDEX/pairs/<key>/staging/<name>.npz     one chunk of verified pairs (``PairLog`` arrays)

A chunk's ``name`` is a checksum of what it holds (its image paths, its pairs), so a re-run that plans the same
chunks finds the ones already computed, whatever the number of processes of either run. Committing a shard
gives its items their ids and links (or copies, where the file system has no hard links) its files into a new
shard of the index, in one ``atomic.folder_commit``; a pair chunk is renamed into the log. Readers of the index
never look here; a killed process loses at most the chunk it was computing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Callable

import numpy as np

from artdup_jax.index import atomic
from artdup_jax.index.store import shard_name

CHUNK = "chunk.json"


def chunk_name(contents: bytes) -> str:
    return hashlib.sha1(contents).hexdigest()[:20]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class ShardStaging:
    """Staged shards under ``folder`` (``INDEX/staging``), one per chunk of image paths."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)

    def _path(self, paths: list[str]) -> str:
        return os.path.join(self.folder, chunk_name(json.dumps(paths).encode()))

    def find(self, paths: list[str]) -> str | None:
        """The staged chunk of exactly these ``paths``, if it is complete."""
        path = self._path(paths)
        return path if os.path.exists(os.path.join(path, CHUNK)) else None

    def stage(self, paths: list[str], failed: list[tuple[str, str]], write_shard: Callable[[str], None]) -> str:
        """Stages a chunk: ``write_shard(folder)`` writes its shard (first id 0) when it has readable images."""
        path = self._path(paths)
        shutil.rmtree(path, ignore_errors=True)  # an incomplete one (no chunk.json) of a killed run
        os.makedirs(path)
        write_shard(path)
        atomic.write_json(os.path.join(path, CHUNK), {"paths": paths, "failed": [list(f) for f in failed]})
        return path

    @staticmethod
    def commit(staged: str, index_dir: str, first_id: int) -> tuple[list[dict], list[tuple[str, str]]]:
        """Commits a staged chunk's shard as ``INDEX/shards/<first_id>`` (ids ``first_id ..``); removes the chunk.
        Returns its items' records and its unreadable ``(path, reason)``."""
        failed = [tuple(f) for f in atomic.read_json(os.path.join(staged, CHUNK))["failed"]]
        source = os.path.join(staged, "shards", shard_name(0))
        items = []
        if os.path.isdir(source):
            with open(os.path.join(source, "items.json")) as f:
                items = [{**item, "id": first_id + i} for i, item in enumerate(json.load(f))]
            with atomic.folder_commit(os.path.join(index_dir, "shards", shard_name(first_id))) as temporary:
                for name in os.listdir(source):
                    if name != "items.json":
                        _link_or_copy(os.path.join(source, name), os.path.join(temporary, name))
                with open(os.path.join(temporary, "items.json"), "w") as f:
                    json.dump(items, f)
        shutil.rmtree(staged)
        return items, failed

    def clear(self) -> None:
        """Removes every staged chunk (after an update that committed all it planned)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class PairStaging:
    """Staged chunks of verified pairs under ``folder`` (``INDEX/pairs/<key>/staging``)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)

    def _path(self, pairs: np.ndarray) -> str:
        name = chunk_name(np.ascontiguousarray(pairs, np.int64).tobytes())
        return os.path.join(self.folder, f"{name}.npz")

    def find(self, pairs: np.ndarray) -> str | None:
        path = self._path(pairs)
        return path if os.path.exists(path) else None

    def stage(self, arrays: dict[str, np.ndarray]) -> str:
        """Stages the verified chunk ``arrays`` (``arrays["pairs"]`` names it)."""
        return atomic.write_arrays(self._path(arrays["pairs"]), arrays)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
