"""ArtMiner at inference: the entry points a user (the tool, the paper protocols, the training task's evaluation)
calls, gathered from the modules that implement them.

  variables = load_weights("ltllModel.pth")        # or resnet18.pth (ImageNet); init_variables(seed): random
  features(variables, images)                      # (B, H, W, 3) in [0, 1] -> (B, ceil(H/16), ceil(W/16), 256)
  cache = FeatureCache(variables, directory=...)   # each image's maps computed once, shared by the calls below

  # One-shot detection: a query box against every image of a collection, one ranked list per query.
  ranked = detect(variables, [Query(path, (x1, y1, x2, y2))], paths, DetectionConfig(), cache=cache)
  reranked = rerank_detections(variables, queries, ranked, BOX_REFERENCE, top_n=100)   # by the discovery score

  # Discovery: pairs of images sharing a region, groups and region groups.
  result = discover(variables, paths, DiscoveryConfig(), cache=cache)
  bank, unreadable = extract_features(variables, paths, config)        # or the steps one at a time
  scores = score_pairs(bank, pairs, config)                            # (reference, target) rows of bank
  boxes = box_discovery_scores(variables, [(path, box)], paths, config)  # query boxes as references

Images are files (read with ``data.images.read_image``); boxes are ``[x1, y1, x2, y2]`` pixels of the original
image (x = column). Where each part lives: ``model`` (network, features), ``weights`` (checkpoints),
``collection`` (``FeatureCache``), ``detection`` (``detect``), ``rerank`` (re-ranking, box references),
``discovery`` (``discover`` and its steps).
"""

from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.detection import DetectionConfig, Query, RankedDetections, detect
from artdup_jax.artminer.discovery import (
    DiscoveryConfig,
    DiscoveryResult,
    FeatureBank,
    PairScores,
    discover,
    extract_features,
    score_pairs,
)
from artdup_jax.artminer.model import features, init_variables, pyramid
from artdup_jax.artminer.rerank import BOX_REFERENCE, BoxScores, Reranked, box_discovery_scores, rerank_detections
from artdup_jax.artminer.weights import load_weights

__all__ = [
    "BOX_REFERENCE",
    "BoxScores",
    "DetectionConfig",
    "DiscoveryConfig",
    "DiscoveryResult",
    "FeatureBank",
    "FeatureCache",
    "PairScores",
    "Query",
    "RankedDetections",
    "Reranked",
    "box_discovery_scores",
    "detect",
    "discover",
    "extract_features",
    "features",
    "init_variables",
    "load_weights",
    "pyramid",
    "rerank_detections",
    "score_pairs",
]
