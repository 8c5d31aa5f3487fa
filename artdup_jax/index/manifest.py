"""What an index holds and what it was made with: its header, its items' file identities, removals.

``index.json`` (written once, when the index is created) names the format, the weights' fingerprint and the
settings the stored features depend on; every later command compares its own with them and stops with an
``IndexMismatchError`` naming what differs, so features of two networks or two resize rules are never mixed.

Every stored item's record (in its shard's ``items.json``) holds the file's absolute path, size, modification
time and SHA-256. ``file_changes`` compares them with the file system: a file gone is *removed*; a file whose
size or time differs is hashed again and is *changed* only if its content differs. ``state.json`` (rewritten
atomically) keeps the ids that were removed or replaced and the files that could not be read. A path stored
twice (a changed file stored again, the old id not yet marked) counts once, with its newest id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Iterable

from artdup_jax.index import atomic

FORMAT = "artdup-index-1"
HEADER = "index.json"
STATE = "state.json"


class IndexMismatchError(ValueError):
    """An index used with other weights or settings than it was built with (one line, says what differs)."""


class NotAnIndexError(ValueError):
    """A folder that holds no index."""


def content_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a file (absolute path)."""
    path = os.path.abspath(os.fspath(path))
    stat = os.stat(path)
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": content_hash(path)}


def file_state(record: dict) -> str:
    """"same", "changed" or "removed": the file of ``record`` now."""
    try:
        stat = os.stat(record["path"])
    except OSError:
        return "removed"
    if stat.st_size == record["size"] and stat.st_mtime_ns == record["mtime_ns"]:
        return "same"
    if stat.st_size != record["size"]:
        return "changed"
    try:
        return "same" if content_hash(record["path"]) == record["sha256"] else "changed"
    except OSError:
        return "removed"


@dataclasses.dataclass
class Header:
    weights: str  # fingerprint of the network's variables
    weights_label: str  # how the user named them (checkpoint path, "random weights (seed 0)")
    settings: dict  # what the stored features depend on

    def check(self, folder: str, weights: str | None = None, settings: dict | None = None,
              weights_label: str = "") -> None:
        """Raises ``IndexMismatchError`` unless ``weights`` and ``settings`` (those given) equal the index's."""
        if weights is not None and weights != self.weights:
            raise IndexMismatchError(
                f"{folder}: the index was built with other weights ({self.weights_label}, fingerprint "
                f"{self.weights[:12]}) than {weights_label or 'these'} (fingerprint {weights[:12]}); use the same "
                f"weights, or build another index")
        if settings is not None:
            differ = [f"{k}={self.settings.get(k)!r} (asked: {settings.get(k)!r})"
                      for k in sorted(set(self.settings) | set(settings)) if self.settings.get(k) != settings.get(k)]
            if differ:
                raise IndexMismatchError(f"{folder}: the index was built with other settings: " + ", ".join(differ)
                                         + "; use the index's settings, or build another index")


def read_header(folder: str | os.PathLike) -> Header:
    data = atomic.read_json(os.path.join(folder, HEADER))
    if data is None:
        raise NotAnIndexError(f"{folder}: not an artdup index (no {HEADER}); create one with 'artdup index build'")
    if data.get("format") != FORMAT:
        raise IndexMismatchError(f"{folder}: index format {data.get('format')!r}, this version reads {FORMAT!r}")
    return Header(data["weights"], data.get("weights_label", ""), data["settings"])


def create_or_check(folder: str | os.PathLike, weights: str, weights_label: str, settings: dict) -> Header:
    """The index's header: written if the folder holds none yet, else checked against these."""
    folder = os.fspath(folder)
    if os.path.exists(os.path.join(folder, HEADER)):
        header = read_header(folder)
        header.check(folder, weights, settings, weights_label)
        return header
    atomic.write_json(os.path.join(folder, HEADER), {"format": FORMAT, "weights": weights,
                                                     "weights_label": weights_label, "settings": settings})
    return Header(weights, weights_label, settings)


@dataclasses.dataclass
class State:
    """Mutable facts about the stored items: ids no longer live, files that could not be read."""

    removed: set[int] = dataclasses.field(default_factory=set)
    unreadable: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> reason

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "State":
        data = atomic.read_json(os.path.join(folder, STATE), {})
        return cls(set(int(i) for i in data.get("removed", [])), dict(data.get("unreadable", {})))

    def save(self, folder: str | os.PathLike) -> None:
        atomic.write_json(os.path.join(folder, STATE), {"removed": sorted(self.removed),
                                                        "unreadable": dict(sorted(self.unreadable.items()))})


def live_ids(records: dict[int, dict], removed: Iterable[int]) -> dict[str, int]:
    """path -> its live id: the newest id of each path, unless that id was removed."""
    removed = set(removed)
    newest: dict[str, int] = {}
    for item_id in sorted(records):
        newest[records[item_id]["path"]] = item_id
    return {path: i for path, i in newest.items() if i not in removed}


def file_changes(records: dict[int, dict], live: dict[str, int]) -> tuple[list[int], list[int]]:
    """``(changed ids, removed ids)`` among the live items."""
    changed, removed = [], []
    for path, item_id in sorted(live.items(), key=lambda kv: kv[1]):
        state = file_state(records[item_id])
        if state == "changed":
            changed.append(item_id)
        elif state == "removed":
            removed.append(item_id)
    return changed, removed
