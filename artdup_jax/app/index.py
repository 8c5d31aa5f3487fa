"""``artdup index``: a collection's ArtMiner features stored once; discovery and detection that read them.

    build_index("collection/", "runs/index", DiscoveryConfig(), checkpoint="ltllModel.pth")
    add_to_index("runs/index", ["new_scans/"], checkpoint="ltllModel.pth")  # features of the new images only
    run = discover_in_index("runs/index", out="runs/discover")  # verifies only pairs never verified before
    detect_in_index("scan.jpg", [120, 40, 380, 300], "runs/index", checkpoint="ltllModel.pth")

The index folder (``artdup_jax.index`` holds the storage; this module says what goes in it)::

    index.json     format, weights fingerprint, the feature settings (``FEATURE_FIELDS``)
    state.json     ids removed or replaced, files that could not be read
    shards/        per image (``store.write_shard``): the discovery reference map (prepared: L2-normalised,
                   saliency-weighted, margin cropped) and the target map at every scale (L2-normalised), as
                   16-bit fixed point, the raw feature norm of every target cell (detection restores raw
                   features from it), the pooled regional descriptor (float32) and the file's record
    ann/           the IVF index, the mean descriptor and every image's nearest images (large collections)
    pairs/<key>/   verified pairs for one set of scoring settings (``SCORE_FIELDS``): scores and boxes

Image ids are given in the order images are stored: a build of a folder gives its readable images, sorted,
the ids 0, 1, ..., as ``discover_folder`` numbers them, so both verify every pair with the same RANSAC draws.
Memory: a build holds one shard's maps; discovery holds one batch of pairs' maps (``store.PaddedCells`` reads
them from the memory-mapped shards), the descriptors and the verified edges, never the whole collection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Sequence

import numpy as np

from artdup_jax.app.detect import DetectionRun, check_query_box
from artdup_jax.app.discover import DiscoveryRun, result_json
from artdup_jax.artminer import DetectionConfig, FeatureCache, Query, detect, init_variables, load_weights
from artdup_jax.artminer.discovery import (
    PAD_CELLS,
    DiscoveryConfig,
    DiscoveryResult,
    FeatureBank,
    PairScores,
    all_pairs,
    directed,
    extract_features,
    group_pairs,
    region_windows,
    score_pairs,
    symmetric_scores,
)
from artdup_jax.artminer.model import EPS
from artdup_jax.artminer.resize_rule import cells_for_size
from artdup_jax.data import outputs
from artdup_jax.data.folders import image_files
from artdup_jax.data.images import read_image
from artdup_jax.data.progress import bar
from artdup_jax.index import atomic, manifest
from artdup_jax.index.ann import EXACT_LIMIT
from artdup_jax.index.neighbours import NeighbourGraph
from artdup_jax.index.pairs import PairLog, pair_keys
from artdup_jax.index.store import MapStore, PaddedCells, PaddedValid, write_shard

FEATURE_FIELDS = ("reference_cells", "margin", "scales", "target_min_cells", "saliency", "resample",
                  "descriptor_cells")  # what the stored maps depend on (besides the weights)
SCORE_FIELDS = ("tolerance_cells", "iterations", "hough", "min_component", "symmetric", "seed")  # pair scores
IMAGES_PER_SHARD = 16  # a killed build loses at most this many images' features
PAIRS_PER_CHUNK = 128  # unordered pairs verified (both ways) per committed chunk; a killed discovery loses these
TOP_PAIRS = 100  # the document's list of best pairs (as ``result_json``)
NORM_FIELD = "norm"  # raw feature norm per target cell
DESCRIPTOR = "descriptor"
_DIRECTIONAL = ("rows", "scores", "num_matches", "reference_boxes", "target_boxes")  # logged per directional row


# ----------------------------------------------------------------------------------------------- settings


def feature_settings(config: DiscoveryConfig) -> dict:
    """The settings the stored features depend on, JSON-able."""
    return {f: (list(getattr(config, f)) if f == "scales" else getattr(config, f)) for f in FEATURE_FIELDS}


def config_from_settings(settings: dict, **overrides) -> DiscoveryConfig:
    """A ``DiscoveryConfig`` with the index's feature settings and ``overrides`` for the rest."""
    fields = {k: (tuple(v) if k == "scales" else v) for k, v in settings.items() if k in FEATURE_FIELDS}
    return DiscoveryConfig(**{**overrides, **fields})


def score_key(config: DiscoveryConfig) -> str:
    """Names the pair log of the settings that change a pair's score (grouping settings do not)."""
    fields = {f: getattr(config, f) for f in SCORE_FIELDS}
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def weights_for(checkpoint: str | None, seed: int = 0) -> tuple[dict, str]:
    """``(variables, label)``: the ArtMiner weights of ``checkpoint``, or random ones from ``seed``."""
    if checkpoint:
        return load_weights(checkpoint), os.path.abspath(os.fspath(checkpoint))
    return init_variables(seed), f"random weights (seed {seed})"


def fingerprint(variables: dict) -> str:
    return FeatureCache(variables).weights_fingerprint()


def pooled_windows(raw_map: np.ndarray) -> np.ndarray:
    """``(W, D)`` regional window means of a raw ``(R, C, D)`` map, L2-normalised: ``global_descriptors``
    before its collection mean is removed (same operations, so the same bits)."""
    raw_map = np.asarray(raw_map, np.float32)
    pooled = np.stack([raw_map[r0:r1, c0:c1].reshape(-1, raw_map.shape[-1]).mean(0)
                       for r0, c0, r1, c1 in region_windows(*raw_map.shape[:2])])
    return pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + EPS)


# ------------------------------------------------------------------------------------------ build / add


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


# ------------------------------------------------------------------------------------------------- info


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


# --------------------------------------------------------------------------------------------- discover


def stored_bank(store: MapStore, config: DiscoveryConfig, live: np.ndarray) -> FeatureBank:
    """A ``FeatureBank`` indexed by image id whose maps stay on disk: ``bank.reference[ids]`` and
    ``bank.targets[s][ids]`` read those images' cells from the memory-mapped shards (``store.PaddedCells``)."""
    slots = store.num_slots
    hw = [store.layout(m).astype(np.int32) for m in range(1 + len(config.scales))]
    length = [-(-max(1, int((h[live, 0] * h[live, 1]).max(initial=1))) // PAD_CELLS) * PAD_CELLS for h in hw]
    image_hw = np.zeros((slots, 2), np.int64)
    paths = [""] * slots
    for i in live:
        record = store.records[int(i)]
        image_hw[i] = record["height"], record["width"]
        paths[i] = record["path"]
    return FeatureBank(
        paths=paths, image_hw=image_hw,
        reference=PaddedCells(store, 0, length[0]), reference_valid=PaddedValid(hw[0][:, 0] * hw[0][:, 1], length[0]),
        reference_hw=hw[0],
        targets=[PaddedCells(store, m, length[m]) for m in range(1, len(hw))],
        target_valid=[PaddedValid(hw[m][:, 0] * hw[m][:, 1], length[m]) for m in range(1, len(hw))],
        target_hw=np.stack(hw[1:], 1), descriptors=np.zeros((slots, 1, 1), np.float32), margin=config.margin)


def _only(bank: FeatureBank, ids: np.ndarray) -> FeatureBank:
    """``bank`` whose valid masks show only the images ``ids``: code that takes a whole mask (``score_pairs``
    fits its screening basis on the bank's valid cells) then sees the images being scored, not the collection."""
    shown = np.zeros(len(bank.reference_valid), bool)
    shown[ids] = True

    def hide(valid: PaddedValid) -> PaddedValid:
        return PaddedValid(np.where(shown, valid.counts, 0), valid.length)

    return dataclasses.replace(bank, reference_valid=hide(bank.reference_valid),
                               target_valid=[hide(v) for v in bank.target_valid])


@dataclasses.dataclass
class IndexDiscovery:
    """A discovery over an index: the run the report reads, and what this call verified."""

    run: DiscoveryRun  # document, out_dir, folder (the images' common folder) as ``discover_folder``'s
    num_candidates: int  # candidate pairs of the live images now
    num_verified_now: int  # pairs this call verified (the others were in the index)
    num_stored: int  # candidate pairs with a score (all of them, after this call)
    changed: list[str]  # files changed since they were stored (their stored features are used)
    removed: list[str]  # files gone (left out)
    searched: int  # images whose nearest neighbours were searched


def _edges_and_top(log: PairLog, candidates: np.ndarray, config: DiscoveryConfig, top: int, progress_bar):
    """Streams the log: the current ``candidates`` (sorted keys) above the threshold plus the ``top`` best, with
    their directional rows; and how many candidates it holds. Memory: those pairs, not the log."""
    kept = []  # (key, forward row, backward row) arrays per chunk
    best = None  # (key, score) of the current top
    total = 0
    for chunk in log.chunks():
        pairs = chunk["pairs"]
        m = len(pairs)
        directional = PairScores(chunk["rows"], chunk["scores"], chunk["num_matches"], chunk["reference_boxes"],
                                 chunk["target_boxes"])
        scores, _ = symmetric_scores(pairs, directional, config.symmetric)
        keys = pair_keys(pairs)
        keep = np.isin(keys, candidates)
        total += int(keep.sum())
        contenders = np.nonzero(keep)[0]
        top_keys = np.concatenate([best[0], keys[contenders]]) if best is not None else keys[contenders]
        top_scores = np.concatenate([best[1], scores[contenders]]) if best is not None else scores[contenders]
        order = np.lexsort((top_keys, -top_scores))[:top]
        best = (top_keys[order], top_scores[order])
        take = keep & ((scores > config.threshold) | np.isin(keys, best[0]))
        rows = np.nonzero(take)[0]
        backward = rows + m if config.symmetric else rows
        kept.append((keys[rows], pairs[rows], {k: chunk[k][rows] for k in _DIRECTIONAL},
                     {k: chunk[k][backward] for k in _DIRECTIONAL}, scores[rows]))
        progress_bar.update(1)
    if not kept:
        return np.zeros((0, 2), np.int64), None, 0
    keys = np.concatenate([k[0] for k in kept])
    scores = np.concatenate([k[4] for k in kept])
    final = (scores > config.threshold) | np.isin(keys, best[0])
    order = np.argsort(keys[final], kind="stable")
    pairs = np.concatenate([k[1] for k in kept])[final][order]
    forward = {f: np.concatenate([k[2][f] for k in kept])[final][order] for f in _DIRECTIONAL}
    backward = {f: np.concatenate([k[3][f] for k in kept])[final][order] for f in _DIRECTIONAL}
    return pairs, (forward, backward), total


def discover_in_index(index_dir: str | os.PathLike, config: DiscoveryConfig | None = None, *,
                      out: str | os.PathLike | None = None, pairs_per_chunk: int = PAIRS_PER_CHUNK,
                      exact_limit: int = EXACT_LIMIT, progress: bool = True) -> IndexDiscovery:
    """Discovery over the images of an index.

    Candidate pairs come from the nearest-neighbour lists (``index.neighbours``); those never verified with
    ``config``'s scoring settings are verified (``score_pairs`` on maps read from the shards, ``pairs_per_chunk``
    pairs per committed chunk) and logged; groups are formed over every candidate pair, with the scores of
    this run and of earlier ones. A logged pair that is no longer a candidate (new images came closer) stays in
    the log, reused if it comes back, but does not count: an index gives the groups a fresh build of the same
    images would give, whatever its history. ``config``:
    None takes the index's feature settings and the defaults for the rest; a config whose feature settings
    differ from the index's is an ``IndexMismatchError``. With ``out``: ``out/discovery.json``, the document of
    ``discover_folder``.
    """
    start = time.perf_counter()
    index_dir = os.path.abspath(os.fspath(index_dir))
    header = manifest.read_header(index_dir)
    if config is None:
        config = config_from_settings(header.settings)
    header.check(index_dir, settings=feature_settings(config))
    with atomic.writer_lock(index_dir):
        store = MapStore(index_dir)
        state = manifest.State.load(index_dir)
        live_paths = manifest.live_ids(store.records, state.removed)
        changed, removed = manifest.file_changes(store.records, live_paths)
        live = np.array(sorted(set(live_paths.values()) - set(removed)), np.int64)

        graph = NeighbourGraph(os.path.join(index_dir, "ann"), store, array=DESCRIPTOR, eps=EPS,
                               exact_limit=exact_limit, progress=progress)
        candidates = live[all_pairs(len(live))] if config.exhaustive else graph.candidate_pairs(live, config.top_k)
        log_dir = os.path.join(index_dir, "pairs", score_key(config))
        if not os.path.exists(os.path.join(log_dir, "settings.json")):
            atomic.write_json(os.path.join(log_dir, "settings.json"), {f: getattr(config, f) for f in SCORE_FIELDS})
        atomic.remove_leftovers(log_dir)
        log = PairLog(log_dir)
        pending = candidates[~np.isin(pair_keys(candidates), log.keys())]
        if len(pending):
            bank = stored_bank(store, config, live)
            with bar(len(pending), "verification", enabled=progress, unit="pair") as progress_bar:
                for begin in range(0, len(pending), pairs_per_chunk):
                    chunk = pending[begin:begin + pairs_per_chunk]
                    scored = score_pairs(_only(bank, np.unique(chunk)), directed(chunk, config.symmetric), config)
                    log.append({"pairs": chunk, "rows": scored.pairs, "scores": scored.scores,
                                "num_matches": scored.num_matches, "reference_boxes": scored.reference_boxes,
                                "target_boxes": scored.target_boxes})
                    progress_bar.update(len(chunk))

    with bar(len(log.chunk_paths()), "grouping", enabled=progress, unit="chunk") as progress_bar:
        pairs, directional, num_stored = _edges_and_top(log, np.unique(pair_keys(candidates)), config, TOP_PAIRS,
                                                        progress_bar)
        def compact(ids):  # image id -> position among the live images (the document's numbering)
            return np.searchsorted(live, ids).astype(np.int64)

        pairs_compact = compact(pairs) if len(pairs) else np.zeros((0, 2), np.int64)
        if directional is None:
            scores_table = PairScores(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32),
                                      np.zeros((0, 4)), np.zeros((0, 4)))
        else:
            forward, backward = directional
            parts = [forward, backward] if config.symmetric else [forward]
            rows = np.concatenate([p["rows"] for p in parts])
            scores_table = PairScores(compact(rows) if len(rows) else rows,
                                      *(np.concatenate([p[f] for p in parts]) for f in _DIRECTIONAL[1:]))
        scores, groups, regions = group_pairs(pairs_compact, scores_table, len(live), config)
        paths = [store.records[int(i)]["path"] for i in live]
        image_hw = np.array([[store.records[int(i)]["height"], store.records[int(i)]["width"]] for i in live],
                            np.int64).reshape(-1, 2)
        result = DiscoveryResult(paths, image_hw, sorted(state.unreadable.items()), pairs_compact, scores,
                                 scores_table, groups, regions, config)
        folder = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else index_dir
        settings = {**dataclasses.asdict(config), "scales": list(config.scales), "checkpoint": header.weights_label,
                    "random_weights": header.weights_label.startswith("random"), "index": index_dir}
        document = result_json(result, folder, settings, time.perf_counter() - start)
        document["num_pairs_scored"] = num_stored
        document["num_directional_pairs_scored"] = num_stored * (2 if config.symmetric else 1)
        document["index"] = {"path": index_dir, "candidate_pairs": int(len(candidates)),
                             "verified_now": int(len(pending)),
                             "changed_files": [store.records[i]["path"] for i in changed],
                             "removed_files": [store.records[i]["path"] for i in removed]}
    out_dir = os.path.abspath(os.fspath(out)) if out is not None else index_dir
    if out is not None:
        outputs.save_json(os.path.join(out_dir, "discovery.json"), document)
    run = DiscoveryRun(folder, out_dir, document, [], index_dir, 0, 0)
    return IndexDiscovery(run, len(candidates), len(pending), num_stored,
                          [store.records[i]["path"] for i in changed], [store.records[i]["path"] for i in removed],
                          graph.searched)


# ----------------------------------------------------------------------------------------------- detect


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
