"""``artdup detect --index``: one-shot detection ranking every image of an index from its stored maps."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from artdup_jax.app.detect import DetectionRun, check_query_box
from artdup_jax.app.index.settings import NORM_FIELD, config_from_settings, fingerprint, weights_for
from artdup_jax.artminer import DetectionConfig, FeatureCache, Query, detect
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.artminer.model import EPS
from artdup_jax.artminer.resize_rule import cells_for_size
from artdup_jax.data import outputs
from artdup_jax.data.images import read_image
from artdup_jax.data.progress import bar
from artdup_jax.index import manifest
from artdup_jax.index.store import MapStore

class IndexedMaps:
    """The part of ``FeatureCache``'s interface ``artminer.detect`` uses, serving raw maps from the index
    (cells times their stored norm) and computing only the maps the index lacks (``fallback``)."""

    def __init__(self, store: MapStore, removed: set[int], config: DiscoveryConfig, variables: dict, *,
                 max_batch: int | None = None):
        self.store, self.variables, self.resample = store, variables, config.resample
        self.read = read_image
        self.max_bytes = 1 << 28  # bounded: ``packed_maps`` packs afresh instead of memoising whole collections
        self.scales = {int(s): 1 + i for i, s in enumerate(config.scales)}
        self.by_path = manifest.live_ids(store.records, removed)
        self.fallback = FeatureCache(variables, resample=config.resample, max_batch=max_batch,
                                     max_bytes=self.max_bytes)
        self.maps_computed = 0

    def image_size(self, path: str) -> tuple[int, int]:
        item = self.by_path.get(os.path.abspath(path))
        return (self.store.records[item]["height"], self.store.records[item]["width"]) if item is not None \
            else self.fallback.image_size(path)

    def map_size(self, path: str, longer_cells: int, min_cells: int) -> tuple[int, int]:
        height, width = self.image_size(path)
        return cells_for_size(width, height, longer_cells, min_cells)

    def _stored(self, path: str, longer_cells: int, min_cells: int) -> tuple[int, int] | None:
        item = self.by_path.get(os.path.abspath(path))
        map_index = self.scales.get(int(longer_cells))
        if item is None or map_index is None:
            return None
        stored = self.store.layout_of(item, map_index)
        return (item, map_index) if stored == self.map_size(path, longer_cells, min_cells) else None

    def ensure(self, paths, scales, min_cells) -> None:
        for scale in scales:
            missing = [p for p in paths if self._stored(p, scale, min_cells) is None]
            if missing:
                before = self.fallback.maps_computed
                self.fallback.ensure(missing, [scale], min_cells)
                self.maps_computed += self.fallback.maps_computed - before

    def get(self, path: str, longer_cells: int, min_cells: int):
        stored = self._stored(path, longer_cells, min_cells)
        if stored is None:
            return self.fallback.get(path, longer_cells, min_cells)
        item, map_index = stored
        cells = self.store.read(item, map_index)
        return cells * (self.store.read_field(item, map_index, NORM_FIELD) + EPS)[..., None]


def detect_in_index(image: str, box: Sequence[int], index_dir: str | os.PathLike, *, checkpoint: str | None = None,
                    seed: int = 0, scales: Sequence[int] | None = None, out: str | os.PathLike | None = None,
                    images_per_call: int = 256, progress: bool = True) -> DetectionRun:
    """Ranks every live image of the index by its best match of ``box`` in ``image`` (as ``detect_in_folder``);
    the collection's maps come from the index (the weights must be the index's). With ``out``:
    ``out/detections.json``."""
    index_dir = os.path.abspath(os.fspath(index_dir))
    check_query_box(image, list(box))
    header = manifest.read_header(index_dir)
    variables, label = weights_for(checkpoint, seed)
    header.check(index_dir, fingerprint(variables), weights_label=label)
    config = config_from_settings(header.settings)
    detection = DetectionConfig(scales=tuple(scales) if scales else tuple(config.scales), resample=config.resample,
                                images_per_step=16)
    store = MapStore(index_dir)
    state = manifest.State.load(index_dir)
    live = manifest.live_ids(store.records, state.removed)
    paths = [store.records[i]["path"] for i in sorted(live.values())]
    maps = IndexedMaps(store, state.removed, config, variables, max_batch=detection.max_batch)
    query = [Query(image, tuple(int(v) for v in box))]
    found = []
    with bar(len(paths), "detection", enabled=progress, unit="img") as progress_bar:
        for begin in range(0, len(paths), images_per_call):
            ranked = detect(variables, query, paths[begin:begin + images_per_call], detection, cache=maps)[0]
            found.append(ranked)
            progress_bar.update(len(paths[begin:begin + images_per_call]))
    scores = np.concatenate([r.scores for r in found]) if found else np.zeros(0, np.float32)
    order = np.argsort(-scores, kind="stable")[:detection.num_predictions]  # calls in collection order
    ranked_paths = [p for r in found for p in r.paths]
    boxes = np.concatenate([r.boxes for r in found]) if found else np.zeros((0, 4), np.int64)
    folder = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else index_dir
    detections = [{"file": os.path.relpath(ranked_paths[k], folder), "score": float(scores[k]),
                   "box": [int(v) for v in boxes[k]]} for k in order]
    skipped = [{"file": os.path.relpath(p, folder), "reason": r} for p, r in sorted(state.unreadable.items())]
    run = DetectionRun(image, [int(v) for v in box], folder, detections, skipped, len(paths), index_dir, 0,
                       maps.maps_computed)
    if out:
        outputs.save_json(os.path.join(out, "detections.json"), run.document())
    return run
