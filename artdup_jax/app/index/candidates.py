"""The pairs a discovery over an index verifies, and their verification by one process or by many.

Process 0 finds the candidate pairs (``index.neighbours``) and the pending ones, never verified with these
scoring settings; the pending pairs are cut into chunks of ``pairs_per_chunk``, each verified and staged
(``index.staging``), then appended to the pair log in order. In a job of many processes (``index.processes``)
each process verifies its contiguous block of chunks and process 0 appends them all: the log (and so the groups
and scores) one process gives, since a chunk's scores depend only on its own pairs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from artdup_jax.app.index.settings import DESCRIPTOR, SCORE_FIELDS
from artdup_jax.artminer.discovery import DiscoveryConfig, all_pairs
from artdup_jax.artminer.model import EPS
from artdup_jax.data.progress import bar
from artdup_jax.index import atomic, manifest
from artdup_jax.index.neighbours import NeighbourGraph
from artdup_jax.index.pairs import PairLog, pair_keys
from artdup_jax.index.processes import ProcessGroup
from artdup_jax.index.staging import PairStaging
from artdup_jax.index.store import MapStore

STAGING = "staging"  # under the pair log: verified chunks not yet appended


@dataclasses.dataclass
class Candidates:
    """What process 0 found (the other processes know ``live`` and ``pending`` only; the rest is None)."""

    live: np.ndarray  # (N,) int64 ids of the live images whose files are still there, ascending
    pending: np.ndarray  # (Q, 2) int64 candidate pairs never verified with these scoring settings
    candidates: np.ndarray | None = None  # (P, 2) int64 every candidate pair (image ids)
    state: manifest.State | None = None
    changed: list[int] | None = None  # ids of files changed since they were stored
    removed: list[int] | None = None  # ids of files gone
    searched: int = 0  # images whose nearest neighbours were searched


def _find(index_dir: str, store: MapStore, log: PairLog, config: DiscoveryConfig, exact_limit: int,
          progress: bool) -> Candidates:
    state = manifest.State.load(index_dir)
    live_paths = manifest.live_ids(store.records, state.removed)
    changed, removed = manifest.file_changes(store.records, live_paths)
    live = np.array(sorted(set(live_paths.values()) - set(removed)), np.int64)
    graph = NeighbourGraph(os.path.join(index_dir, "ann"), store, array=DESCRIPTOR, eps=EPS,
                           exact_limit=exact_limit, progress=progress)
    candidates = live[all_pairs(len(live))] if config.exhaustive else graph.candidate_pairs(live, config.top_k)
    if not os.path.exists(os.path.join(log.folder, "settings.json")):
        atomic.write_json(os.path.join(log.folder, "settings.json"), {f: getattr(config, f) for f in SCORE_FIELDS})
    atomic.remove_leftovers(log.folder)
    atomic.remove_leftovers(os.path.join(log.folder, STAGING))
    pending = candidates[~np.isin(pair_keys(candidates), log.keys())]
    return Candidates(live, pending, candidates, state, changed, removed, graph.searched)


def shared_candidates(group: ProcessGroup, index_dir: str, store: MapStore, log: PairLog, config: DiscoveryConfig,
                      *, exact_limit: int, progress: bool) -> Candidates:
    """Process 0 finds the candidates (holding the writer lock); the others read its ``live`` and ``pending``."""
    plan = os.path.join(log.folder, STAGING, "plan.npz")
    return group.decided_by_main(
        "finding the candidate pairs", lambda: _find(index_dir, store, log, config, exact_limit, progress),
        lambda found: atomic.write_arrays(plan, {"live": found.live, "pending": found.pending}),
        lambda: Candidates(**dict(np.load(plan))))


def verify_pending(group: ProcessGroup, log: PairLog, pending: np.ndarray,
                   score: Callable[[np.ndarray], dict[str, np.ndarray]], *, pairs_per_chunk: int,
                   progress: bool) -> bool:
    """Verifies ``pending`` pairs: ``score(chunk)`` gives a ``(M, 2)`` chunk's log arrays. Returns whether this
    process then goes on (process 0, which appended every chunk to ``log``; the others are done)."""
    staging = PairStaging(os.path.join(log.folder, STAGING))
    chunks = [pending[begin:begin + pairs_per_chunk] for begin in range(0, len(pending), pairs_per_chunk)]

    def staged(chunk: np.ndarray) -> str:
        return staging.find(chunk) or staging.stage({"pairs": chunk, **score(chunk)})

    if group.count > 1:
        mine = chunks[group.block(len(chunks))]

        def verify_mine() -> None:
            with bar(sum(map(len, mine)), f"verification (process {group.index})", enabled=progress,
                     unit="pair") as progress_bar:
                for chunk in mine:
                    staged(chunk)
                    progress_bar.update(len(chunk))

        group.together("verification", verify_mine)
        if not group.is_main:
            return False
    with bar(len(pending), "verification", enabled=progress and group.count == 1, unit="pair") as progress_bar:
        for chunk in chunks:
            log.append_file(staged(chunk))
            progress_bar.update(len(chunk))
    staging.clear()
    return True
