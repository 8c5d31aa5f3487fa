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


def discover(variables: dict, paths: Sequence[str], config: DiscoveryConfig = DiscoveryConfig(), *,
             cache: FeatureCache | None = None, bank: FeatureBank | None = None) -> DiscoveryResult:
    """Discovery over a collection: features once per image, candidate pairs (top-k or all), batched pair
    scores in both directions, groups and region groups."""
    unreadable: list[tuple[str, str]] = []
    if bank is None:
        bank, unreadable = extract_features(variables, paths, config, cache=cache)
    n = len(bank)
    pairs = all_pairs(n) if config.exhaustive else candidate_pairs(bank.descriptors, config.top_k)
    directional = score_pairs(bank, directed(pairs, config.symmetric), config)
    scores, groups, regions = group_pairs(pairs, directional, n, config)
    return DiscoveryResult(bank.paths, bank.image_hw, unreadable, pairs, scores, directional, groups, regions,
                           config)
