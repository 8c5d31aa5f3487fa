"""What ``artdup index build`` and ``add`` store: the features of the images an index lacks, one process or many.

The images to store are cut into chunks of ``images_per_shard``; each chunk is extracted and staged
(``index.staging``), then committed as the index's next shard, in order. In a job of many processes
(``index.processes``) process 0 plans and holds the writer lock, each process extracts and stages its
contiguous block of chunks, and process 0 commits every chunk: the ids, shards and state one process gives.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Sequence

import numpy as np

from artdup_jax.app.index.settings import DESCRIPTOR, NORM_FIELD, feature_settings, fingerprint, pooled_windows
from artdup_jax.artminer import FeatureCache
from artdup_jax.artminer.discovery import DiscoveryConfig, extract_features
from artdup_jax.data.progress import bar
from artdup_jax.index import atomic, manifest
from artdup_jax.index.processes import ProcessGroup
from artdup_jax.index.staging import CHUNK, ShardStaging
from artdup_jax.index.store import MapStore, write_shard

STAGING = "staging"  # chunks extracted but not yet committed (``index.staging``)


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


def _write_staged(folder: str, items, maps, norms, pooled) -> None:
    if items:
        write_shard(folder, 0, items, maps, cell_fields={NORM_FIELD: norms},
                    arrays={DESCRIPTOR: np.stack(pooled).astype(np.float32)})


def _staged(staging: ShardStaging, chunk: list[str], variables: dict, config: DiscoveryConfig) -> str:
    """The staged chunk of these images: found (staged by an earlier or another process), or extracted now."""
    found = staging.find(chunk)
    if found is not None:
        return found
    items, maps, norms, pooled, failed = _extract_shard(variables, chunk, config)
    return staging.stage(chunk, failed, lambda folder: _write_staged(folder, items, maps, norms, pooled))


def _plan(index_dir: str, paths: list[str], variables: dict, label: str, config: DiscoveryConfig) -> dict:
    """Process 0's part before any extraction: leftovers removed, header written or checked, gone files marked
    removed; the images to store, in order."""
    atomic.remove_leftovers(os.path.join(index_dir, "shards"))
    atomic.remove_leftovers(os.path.join(index_dir, STAGING))
    manifest.create_or_check(index_dir, fingerprint(variables), label, feature_settings(config))
    store = MapStore(index_dir)
    state = manifest.State.load(index_dir)
    live = manifest.live_ids(store.records, state.removed)
    changed_ids, removed_ids = manifest.file_changes(store.records, live)
    if removed_ids:
        state.removed |= set(removed_ids)
        state.save(index_dir)
    changed = [store.records[i]["path"] for i in changed_ids]
    return {"todo": list(dict.fromkeys([p for p in paths if p not in live] + changed)), "live": live,
            "changed": changed, "removed": [store.records[i]["path"] for i in removed_ids], "next_id": store.next_id}


def _index_size(index_dir: str, state: manifest.State) -> tuple[int, int]:
    """``(live images, bytes of the shards)``."""
    store = MapStore(index_dir)
    return len(manifest.live_ids(store.records, state.removed)), store.nbytes()


def _store_here(group: ProcessGroup, index_dir: str, paths: list[str], skipped, variables: dict, label: str,
                config: DiscoveryConfig, *, images_per_shard: int, progress: bool) -> IndexUpdate:
    start = time.perf_counter()
    staging = ShardStaging(os.path.join(index_dir, STAGING))
    plan_path = os.path.join(index_dir, STAGING, "plan.json")
    with group.main_holds(atomic.writer_lock(index_dir)):
        plan = group.decided_by_main("planning", lambda: _plan(index_dir, paths, variables, label, config),
                                     lambda decided: atomic.write_json(plan_path, decided),
                                     lambda: atomic.read_json(plan_path))
        todo = plan["todo"]
        chunks = [todo[begin:begin + images_per_shard] for begin in range(0, len(todo), images_per_shard)]
        if group.count > 1:  # each process stages its block of chunks; process 0 commits them all below
            mine = chunks[group.block(len(chunks))]

            def stage_mine() -> list[tuple[str, str]]:
                with bar(sum(map(len, mine)), f"features (process {group.index})", enabled=progress,
                         unit="img") as progress_bar:
                    for chunk in mine:
                        _staged(staging, chunk, variables, config)
                        progress_bar.update(len(chunk))
                return [tuple(f) for c in mine for f in atomic.read_json(os.path.join(staging.find(c),
                                                                                       CHUNK))["failed"]]

            failed = group.together("feature extraction", stage_mine)
            if not group.is_main:
                bad = {path for path, _ in failed}
                return IndexUpdate(index_dir, [p for c in mine for p in c if p not in bad], [], [], failed,
                                   skipped, 0, time.perf_counter() - start, 0)
        state = manifest.State.load(index_dir)
        live, next_id = plan["live"], plan["next_id"]
        added, unreadable = [], []
        with bar(len(todo), "features", enabled=progress and group.count == 1, unit="img") as progress_bar:
            for chunk in chunks:
                items, failed = staging.commit(_staged(staging, chunk, variables, config), index_dir, next_id)
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
        staging.clear()
        num_live, num_bytes = _index_size(index_dir, state)
        return IndexUpdate(index_dir, added, plan["changed"], plan["removed"], unreadable, skipped, num_live,
                           time.perf_counter() - start, num_bytes)


def store_images(index_dir: str | os.PathLike, paths: list[str], skipped, variables: dict, label: str,
                 config: DiscoveryConfig, *, images_per_shard: int, progress: bool) -> IndexUpdate:
    """Stores the ``paths`` that the index lacks or that changed (creating the index if needed) and marks the
    gone files removed. In a job of many processes, process 0 returns the update; the others what they
    extracted, with the index's size after the commit."""
    index_dir = os.path.abspath(os.fspath(index_dir))
    group = ProcessGroup.current()
    group.same_everywhere("images, weights or settings", {"paths": paths, "weights": fingerprint(variables),
                                                          "settings": feature_settings(config),
                                                          "images_per_shard": images_per_shard})
    update = group.together("the index update", lambda: _store_here(
        group, index_dir, paths, skipped, variables, label, config, images_per_shard=images_per_shard,
        progress=progress))
    if not group.is_main:
        update.num_images, update.bytes_on_disk = _index_size(index_dir, manifest.State.load(index_dir))
    return update


