"""``artdup index build`` / ``add`` / ``info``: store a collection's features once, then only new images'."""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from artdup_jax.app.index.settings import IMAGES_PER_SHARD, config_from_settings, fingerprint, weights_for
from artdup_jax.app.index.update import IndexUpdate, store_images
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.data.folders import image_files
from artdup_jax.index import atomic, manifest
from artdup_jax.index.pairs import PairLog
from artdup_jax.index.store import MapStore


def _inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """Folders (their image files, sorted) and files, in the order given; ``skipped`` folder entries."""
    paths, skipped = [], []
    for entry in inputs:
        if os.path.isdir(entry):
            found, ignored = image_files(entry)
            paths += found
            skipped += ignored
        else:
            paths.append(os.fspath(entry))
    return list(dict.fromkeys(os.path.abspath(p) for p in paths)), skipped


def build_index(folder: str | os.PathLike, index_dir: str | os.PathLike,
                config: DiscoveryConfig = DiscoveryConfig(), *, checkpoint: str | None = None,
                images_per_shard: int = IMAGES_PER_SHARD, progress: bool = True) -> IndexUpdate:
    """Stores the features of every readable image of ``folder`` in ``index_dir`` (created if needed).

    Re-running continues an interrupted build and brings the index up to date with the folder (new images
    added, changed ones stored again, removed ones dropped); an index made with other weights or feature settings
    is an ``IndexMismatchError``. ``checkpoint``: ArtMiner weights (None: random from ``config.seed``).
    """
    variables, label = weights_for(checkpoint, config.seed)
    paths, skipped = _inputs([folder])
    return store_images(os.fspath(index_dir), paths, skipped, variables, label, config,
                   images_per_shard=images_per_shard, progress=progress)


def add_to_index(index_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], *,
                 checkpoint: str | None = None, seed: int = 0, images_per_shard: int = IMAGES_PER_SHARD,
                 progress: bool = True) -> IndexUpdate:
    """Stores the images of ``inputs`` (folders and files) that the index lacks, with the index's settings;
    changed files are stored again and removed ones dropped. Costs the new images' features only."""
    header = manifest.read_header(index_dir)
    variables, label = weights_for(checkpoint, seed)
    header.check(os.fspath(index_dir), fingerprint(variables), weights_label=label)
    config = config_from_settings(header.settings, seed=seed)
    paths, skipped = _inputs(inputs)
    return store_images(os.fspath(index_dir), paths, skipped, variables, label, config,
                   images_per_shard=images_per_shard, progress=progress)


@dataclasses.dataclass
class IndexInfo:
    index: str
    weights_label: str
    weights: str
    settings: dict
    num_images: int
    num_removed: int
    num_shards: int
    bytes_on_disk: int  # everything in the folder
    bytes_per_image: float  # the shards' bytes per stored image
    verified: dict[str, dict]  # pair-log key -> {"settings", "pairs"}
    changed: list[str]  # files changed since they were stored ('artdup index add' stores them again)
    removed: list[str]  # files gone
    unreadable: dict[str, str]


def _folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def index_info(index_dir: str | os.PathLike) -> IndexInfo:
    """What ``index_dir`` holds, and which of its files changed or disappeared since they were stored."""
    index_dir = os.path.abspath(os.fspath(index_dir))
    header = manifest.read_header(index_dir)
    store = MapStore(index_dir)
    state = manifest.State.load(index_dir)
    live = manifest.live_ids(store.records, state.removed)
    changed, removed = manifest.file_changes(store.records, live)
    verified = {}
    root = os.path.join(index_dir, "pairs")
    for key in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        verified[key] = {"settings": atomic.read_json(os.path.join(root, key, "settings.json"), {}),
                         "pairs": len(PairLog(os.path.join(root, key)))}
    return IndexInfo(index_dir, header.weights_label, header.weights, header.settings, len(live),
                     len(store) - len(live), store.num_shards, _folder_bytes(index_dir),
                     store.nbytes() / max(len(store), 1), verified, [store.records[i]["path"] for i in changed],
                     [store.records[i]["path"] for i in removed], state.unreadable)
