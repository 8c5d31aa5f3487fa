"""``artdup index build`` / ``add`` / ``info``: store a collection's features once, then only new images'."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Sequence

import numpy as np

from artdup_jax.app.index.settings import (
    DESCRIPTOR,
    IMAGES_PER_SHARD,
    NORM_FIELD,
    config_from_settings,
    feature_settings,
    fingerprint,
    pooled_windows,
    weights_for,
)
from artdup_jax.artminer import FeatureCache
from artdup_jax.artminer.discovery import DiscoveryConfig, extract_features
from artdup_jax.data.folders import image_files
from artdup_jax.data.progress import bar
from artdup_jax.index import atomic, manifest
from artdup_jax.index.pairs import PairLog
from artdup_jax.index.store import MapStore, write_shard

@dataclasses.dataclass
class IndexUpdate:
    """What a build or an add did."""

    index: str
    added: list[str]  # images stored by this call
    changed: list[str]  # images whose file changed since they were stored (stored again)
    removed: list[str]  # images whose file is gone (no longer in the index)
    unreadable: list[tuple[str, str]]  # (path, reason)
    skipped: list[tuple[str, str]]  # folder entries that are not image files
    num_images: int  # live images in the index now
    seconds: float
    bytes_on_disk: int  # the shards


def _extract_shard(variables: dict, paths: Sequence[str], config: DiscoveryConfig):
    """Features of one shard: ``(records, maps, norms, pooled descriptors, unreadable)``."""
    cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
    records, missing = {}, []
    for path in paths:  # hashed before reading: an edit made during the build is seen by the next one
        try:
            records[path] = manifest.file_record(path)
        except OSError as error:
            missing.append((path, f"{path}: {error.strerror or error}"))
    bank, unreadable = extract_features(variables, list(records), config, cache=cache)
    depth = bank.reference.shape[-1]
    items, maps, norms, pooled = [], [], [], []
    for i, path in enumerate(bank.paths):
        rows, cols = bank.reference_hw[i]
        item_maps = [bank.reference[i, :rows * cols].reshape(rows, cols, depth)]
        item_norms = [np.ones((rows, cols), np.float32)]  # unused: the reference is stored prepared
        for s, scale in enumerate(config.scales):
            rows, cols = bank.target_hw[i, s]
            item_maps.append(bank.targets[s][i, :rows * cols].reshape(rows, cols, depth))
            raw = np.asarray(cache.get(path, scale, config.target_min_cells), np.float32)
            item_norms.append(np.sqrt(np.sum(np.square(raw), axis=-1)))
        items.append({**records[path], "height": int(bank.image_hw[i, 0]), "width": int(bank.image_hw[i, 1])})
        maps.append(item_maps)
        norms.append(item_norms)
        pooled.append(pooled_windows(cache.get(path, config.descriptor_cells, config.target_min_cells)))
    return items, maps, norms, pooled, missing + unreadable


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


def _update(index_dir: str, paths: list[str], skipped, variables: dict, label: str, config: DiscoveryConfig, *,
            images_per_shard: int, progress: bool) -> IndexUpdate:
    start = time.perf_counter()
    index_dir = os.path.abspath(os.fspath(index_dir))
    with atomic.writer_lock(index_dir):
        atomic.remove_leftovers(os.path.join(index_dir, "shards"))
        manifest.create_or_check(index_dir, fingerprint(variables), label, feature_settings(config))
        store = MapStore(index_dir)
        state = manifest.State.load(index_dir)
        live = manifest.live_ids(store.records, state.removed)
        changed_ids, removed_ids = manifest.file_changes(store.records, live)
        if removed_ids:
            state.removed |= set(removed_ids)
            state.save(index_dir)
        changed = [store.records[i]["path"] for i in changed_ids]
        todo = list(dict.fromkeys([p for p in paths if p not in live] + changed))
        added, unreadable = [], []
        next_id = store.next_id
        with bar(len(todo), "features", enabled=progress, unit="img") as progress_bar:
            for begin in range(0, len(todo), images_per_shard):
                chunk = todo[begin:begin + images_per_shard]
                items, maps, norms, pooled, failed = _extract_shard(variables, chunk, config)
                if items:
                    write_shard(index_dir, next_id, items, maps, cell_fields={NORM_FIELD: norms},
                                arrays={DESCRIPTOR: np.stack(pooled).astype(np.float32)})
                    next_id += len(items)
                # After the shard is committed: the replaced ids and the unreadable files (a kill in between is
                # harmless: the newest id of a path is the live one).
                stored = {item["path"] for item in items}
                state.removed |= {live[p] for p in chunk if p in live}
                state.unreadable = {p: r for p, r in state.unreadable.items() if p not in stored}
                state.unreadable.update(dict(failed))
                state.save(index_dir)
                added += [item["path"] for item in items]
                unreadable += failed
                progress_bar.update(len(chunk))
        store = MapStore(index_dir)
        num_live = len(manifest.live_ids(store.records, state.removed))
        return IndexUpdate(index_dir, added, changed, [store.records[i]["path"] for i in removed_ids], unreadable,
                           skipped, num_live, time.perf_counter() - start, store.nbytes())


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
    return _update(os.fspath(index_dir), paths, skipped, variables, label, config,
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
    return _update(os.fspath(index_dir), paths, skipped, variables, label, config,
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
