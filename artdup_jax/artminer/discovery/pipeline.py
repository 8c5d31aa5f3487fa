"""Discovery over a collection, end to end: feature bank, candidate pairs, pair scores, groups."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.discovery.bank import FeatureBank, extract_features
from artdup_jax.artminer.discovery.candidates import all_pairs, candidate_pairs, directed
from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.discovery.groups import Group, RegionGroup, group_pairs
from artdup_jax.artminer.discovery.verification import PairScores, score_pairs
from artdup_jax.data.host_memory import release_free_heap
from artdup_jax.data.progress import bar


@dataclasses.dataclass
class DiscoveryResult:
    """Everything ``discover`` found; image indices refer to ``paths`` (readable images, input order)."""

    paths: list[str]
    image_hw: np.ndarray  # (N, 2) pixels
    unreadable: list[tuple[str, str]]
    pairs: np.ndarray  # (M, 2) unordered candidate pairs i < j that were scored
    pair_scores: np.ndarray  # (M,) symmetric score (max over the two directions)
    directional: PairScores
    groups: list[Group]
    region_groups: list[list[RegionGroup]]  # per group
    config: DiscoveryConfig


PAIRS_PER_STEP = 256  # unordered pairs scored per progress step (every pair is scored as in one call)


def score_in_steps(bank: FeatureBank, pairs: np.ndarray, config: DiscoveryConfig, *, progress: bool = False,
                   pairs_per_step: int = PAIRS_PER_STEP) -> PairScores:
    """``score_pairs(bank, directed(pairs, config.symmetric), config)``, ``pairs_per_step`` unordered pairs a
    call with a progress bar; the rows in the same order (every forward row, then every backward one). A pair's
    score depends on its two images and the bank, not on the other pairs of its call, so the scores are those of
    one call. Freed heap pages go back to the system after each call (``release_free_heap``), so the resident
    set stays the bank's plus one call's working set."""
    parts = []
    with bar(len(pairs), "verification", enabled=progress, unit="pair") as progress_bar:
        for begin in range(0, len(pairs), pairs_per_step):
            chunk = pairs[begin:begin + pairs_per_step]
            parts.append((len(chunk), score_pairs(bank, directed(chunk, config.symmetric), config)))
            release_free_heap()  # a call's freed buffers (and the first call's compilation) leave the resident set
            progress_bar.update(len(chunk))
    if not parts:
        return score_pairs(bank, directed(pairs, config.symmetric), config)
    fields = [f.name for f in dataclasses.fields(PairScores)]
    halves = [[(getattr(s, f)[:m], getattr(s, f)[m:]) for f in fields] for m, s in parts]
    joined = {}
    for k, f in enumerate(fields):
        forward = [h[k][0] for h in halves]
        backward = [h[k][1] for h in halves] if config.symmetric else []
        joined[f] = np.concatenate(forward + backward)
    return PairScores(**joined)


def discover(variables: dict, paths: Sequence[str], config: DiscoveryConfig = DiscoveryConfig(), *,
             cache: FeatureCache | None = None, bank: FeatureBank | None = None,
             progress: bool = False) -> DiscoveryResult:
    """Discovery over a collection: features once per image, candidate pairs (top-k or all), batched pair
    scores in both directions, groups and region groups. ``progress``: a bar with an ETA per stage on stderr."""
    unreadable: list[tuple[str, str]] = []
    if bank is None:
        with bar(len(paths), "features", enabled=progress, unit="img") as features_bar:
            bank, unreadable = extract_features(variables, paths, config, cache=cache, on_images=features_bar.update)
    n = len(bank)
    pairs = all_pairs(n) if config.exhaustive else candidate_pairs(bank.descriptors, config.top_k)
    directional = score_in_steps(bank, pairs, config, progress=progress)
    with bar(1, "grouping", enabled=progress, unit="step") as grouping_bar:
        scores, groups, regions = group_pairs(pairs, directional, n, config)
        grouping_bar.update(1)
    return DiscoveryResult(bank.paths, bank.image_hw, unreadable, pairs, scores, directional, groups, regions,
                           config)
