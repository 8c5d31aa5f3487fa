"""What an index stores and under which settings: feature and scoring fields, weights, pooled descriptors."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from artdup_jax.artminer import FeatureCache, init_variables, load_weights
from artdup_jax.artminer.discovery import DiscoveryConfig, region_windows
from artdup_jax.artminer.model import EPS

FEATURE_FIELDS = ("reference_cells", "margin", "scales", "target_min_cells", "saliency", "resample",
                  "descriptor_cells")  # what the stored maps depend on (besides the weights)
SCORE_FIELDS = ("tolerance_cells", "iterations", "hough", "min_component", "symmetric", "seed")  # pair scores
IMAGES_PER_SHARD = 16  # a killed build loses at most this many images' features
PAIRS_PER_CHUNK = 128  # unordered pairs verified (both ways) per committed chunk; a killed discovery loses these
TOP_PAIRS = 100  # the document's list of best pairs (as ``result_json``)
NORM_FIELD = "norm"  # raw feature norm per target cell
DESCRIPTOR = "descriptor"
# logged per directional row of a verified pair
DIRECTIONAL_FIELDS = ("rows", "scores", "num_matches", "reference_boxes", "target_boxes")


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
