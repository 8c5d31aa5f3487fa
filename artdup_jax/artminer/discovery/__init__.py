"""Discovery: spatially consistent matches between images, pair scores and groups.

  bank, unreadable = extract_features(variables, paths, config)  # features once per image (FeatureCache)
  pairs = candidate_pairs(bank.descriptors, config.top_k)        # or all_pairs(len(bank))
  scores = score_pairs(bank, directed(pairs), config)            # batched; only the pairs each phase needs
  result = discover(variables, paths, config)                    # all of it, plus groups and region groups

Modules:
  config.py        ``DiscoveryConfig``: every setting, with the release's defaults
  bank.py          ``FeatureBank`` and ``extract_features``: reference / target cells of every image, padded
  candidates.py    regional global descriptors and the candidate pairs they give (or every pair)
  matching.py      mutual nearest neighbours in a dense per-reference-cell layout, cell coordinates
  screening.py     the same mutual nearest neighbours from the few similarity rows that can hold one (bounds)
  hough.py         Hough initialisation: the vote peak over cell shifts and the sampling set near it
  affine.py        affine RANSAC hypotheses (enumerated subsets or hashed draws), fits and errors
  postprocess.py   one match per cell and removal of small connected components, on the device
  verification.py  the pair score (``score_pairs``): matching, Hough and RANSAC phases, each on the pairs needing it
  groups.py        symmetric scores, groups of images (union-find) and region groups
  pipeline.py      ``discover``: the whole collection, and its ``DiscoveryResult``
"""

from artdup_jax.artminer.discovery.bank import (
    PAD_CELLS,
    FeatureBank,
    extract_features,
    prepare_reference,
    prepare_target,
    saliency_weights,
)
from artdup_jax.artminer.discovery.candidates import (
    all_pairs,
    candidate_pairs,
    directed,
    global_descriptors,
    region_windows,
)
from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.discovery.groups import (
    Edge,
    Group,
    RegionGroup,
    box_iou,
    cluster,
    connected_components,
    group_pairs,
    region_groups,
    symmetric_scores,
)
from artdup_jax.artminer.discovery.matching import dense_mutual_matches, first_argmax
from artdup_jax.artminer.discovery.pipeline import DiscoveryResult, discover
from artdup_jax.artminer.discovery.postprocess import _remove_small_components
from artdup_jax.artminer.discovery.verification import PairScores, pair_score, score_pairs

__all__ = [
    "DiscoveryConfig",
    "DiscoveryResult",
    "Edge",
    "FeatureBank",
    "Group",
    "PAD_CELLS",
    "PairScores",
    "RegionGroup",
    "_remove_small_components",
    "all_pairs",
    "box_iou",
    "candidate_pairs",
    "cluster",
    "connected_components",
    "dense_mutual_matches",
    "directed",
    "discover",
    "extract_features",
    "first_argmax",
    "global_descriptors",
    "group_pairs",
    "pair_score",
    "prepare_reference",
    "prepare_target",
    "region_groups",
    "region_windows",
    "saliency_weights",
    "score_pairs",
    "symmetric_scores",
]
