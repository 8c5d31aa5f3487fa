"""``artdup discover --index``: candidate pairs from the nearest-neighbour lists, verified once, logged."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from artdup_jax.app.discover import DiscoveryRun, result_json
from artdup_jax.app.discovery_tables import group_of_images, scored_pair_rows, write_tables
from artdup_jax.app.index.candidates import shared_candidates, verify_pending
from artdup_jax.app.index.settings import (
    DIRECTIONAL_FIELDS,
    PAIRS_PER_CHUNK,
    TOP_PAIRS,
    config_from_settings,
    feature_settings,
    score_key,
)
from artdup_jax.artminer.discovery import (
    PAD_CELLS,
    DiscoveryConfig,
    DiscoveryResult,
    FeatureBank,
    PairScores,
    directed,
    group_pairs,
    score_pairs,
    symmetric_scores,
)
from artdup_jax.data import outputs
from artdup_jax.data.progress import bar
from artdup_jax.index import atomic, manifest
from artdup_jax.index.ann import EXACT_LIMIT
from artdup_jax.index.pairs import PairLog, pair_keys
from artdup_jax.index.processes import ProcessGroup
from artdup_jax.index.store import MapStore, PaddedCells, PaddedValid

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
        kept.append((keys[rows], pairs[rows], {k: chunk[k][rows] for k in DIRECTIONAL_FIELDS},
                     {k: chunk[k][backward] for k in DIRECTIONAL_FIELDS}, scores[rows]))
        progress_bar.update(1)
    if not kept:
        return np.zeros((0, 2), np.int64), None, 0
    keys = np.concatenate([k[0] for k in kept])
    scores = np.concatenate([k[4] for k in kept])
    final = (scores > config.threshold) | np.isin(keys, best[0])
    order = np.argsort(keys[final], kind="stable")
    pairs = np.concatenate([k[1] for k in kept])[final][order]
    forward = {f: np.concatenate([k[2][f] for k in kept])[final][order] for f in DIRECTIONAL_FIELDS}
    backward = {f: np.concatenate([k[3][f] for k in kept])[final][order] for f in DIRECTIONAL_FIELDS}
    return pairs, (forward, backward), total


def _logged_pair_rows(log: PairLog, candidates: np.ndarray, config: DiscoveryConfig, names: dict[int, str],
                      group_of: dict[str, int]):
    """``pairs.csv`` rows of the logged pairs that are current candidates (sorted keys), one chunk at a time."""
    for chunk in log.chunks():
        directional = PairScores(chunk["rows"], chunk["scores"], chunk["num_matches"], chunk["reference_boxes"],
                                 chunk["target_boxes"])
        yield from scored_pair_rows(chunk["pairs"], directional, symmetric=config.symmetric,
                                    threshold=config.threshold, names=names, group_of=group_of,
                                    keep=np.isin(pair_keys(chunk["pairs"]), candidates))


def discover_in_index(index_dir: str | os.PathLike, config: DiscoveryConfig | None = None, *,
                      out: str | os.PathLike | None = None, pairs_per_chunk: int = PAIRS_PER_CHUNK,
                      exact_limit: int = EXACT_LIMIT, progress: bool = True) -> IndexDiscovery | None:
    """Discovery over the images of an index.

    Candidate pairs come from the nearest-neighbour lists (``index.neighbours``); those never verified with
    ``config``'s scoring settings are verified (``score_pairs`` on maps read from the shards, ``pairs_per_chunk``
    pairs per committed chunk) and logged; groups are formed over every candidate pair, with the scores of
    this run and of earlier ones. A logged pair that is no longer a candidate (new images came closer) stays in
    the log, reused if it comes back, but does not count: an index gives the groups a fresh build of the same
    images would give, whatever its history. With ``out``, ``pairs.csv`` (every current candidate's logged
    scores, read from the log a chunk at a time) and ``groups.csv`` too. ``config``:
    None takes the index's feature settings and the defaults for the rest; a config whose feature settings
    differ from the index's is an ``IndexMismatchError``. With ``out``: ``out/discovery.json``, the document of
    ``discover_folder``. In a job of many processes (``index.processes``) each verifies its block of the pending
    pairs (``candidates.verify_pending``); process 0 groups and writes the result one process would, and
    returns it; the others return None.
    """
    group = ProcessGroup.current()
    return group.together("the discovery", lambda: _discover(
        group, index_dir, config, out=out, pairs_per_chunk=pairs_per_chunk, exact_limit=exact_limit,
        progress=progress))


def _discover(group: ProcessGroup, index_dir: str | os.PathLike, config: DiscoveryConfig | None, *,
              out: str | os.PathLike | None, pairs_per_chunk: int, exact_limit: int,
              progress: bool) -> IndexDiscovery | None:
    start = time.perf_counter()
    index_dir = os.path.abspath(os.fspath(index_dir))
    header = manifest.read_header(index_dir)
    if config is None:
        config = config_from_settings(header.settings)
    header.check(index_dir, settings=feature_settings(config))
    group.same_everywhere("discovery settings", {**dataclasses.asdict(config), "pairs_per_chunk": pairs_per_chunk,
                                                 "exact_limit": exact_limit})
    with group.main_holds(atomic.writer_lock(index_dir)):
        store = MapStore(index_dir)
        log = PairLog(os.path.join(index_dir, "pairs", score_key(config)))
        found = shared_candidates(group, index_dir, store, log, config, exact_limit=exact_limit, progress=progress)
        bank = stored_bank(store, config, found.live) if len(found.pending) else None

        def score(chunk: np.ndarray) -> dict[str, np.ndarray]:
            scored = score_pairs(_only(bank, np.unique(chunk)), directed(chunk, config.symmetric), config)
            return {"rows": scored.pairs, "scores": scored.scores, "num_matches": scored.num_matches,
                    "reference_boxes": scored.reference_boxes, "target_boxes": scored.target_boxes}

        if not verify_pending(group, log, found.pending, score, pairs_per_chunk=pairs_per_chunk, progress=progress):
            return None  # process 0 appends this process's chunks, groups and writes the result
        state, changed, removed = found.state, found.changed, found.removed
        live, candidates, pending = found.live, found.candidates, found.pending

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
                                      *(np.concatenate([p[f] for p in parts]) for f in DIRECTIONAL_FIELDS[1:]))
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
        names = dict(zip(live.tolist(), document["images"]))
        write_tables(out_dir, document, _logged_pair_rows(log, np.unique(pair_keys(candidates)), config, names,
                                                          group_of_images(document)))
    run = DiscoveryRun(folder, out_dir, document, [], index_dir, 0, 0)
    return IndexDiscovery(run, len(candidates), len(pending), num_stored,
                          [store.records[i]["path"] for i in changed], [store.records[i]["path"] for i in removed],
                          found.searched)
