"""ArtMiner (Shen, Efros, Aubry, CVPR 2019): style-invariant ResNet-18 conv4 features and what uses them.

  variables = load_weights("brueghelModel.pth")   # or resnet18.pth (ImageNet); init_variables(seed): random
  features(variables, images)            -> (B, h, w, 256) raw layer3 activations
  detect(variables, queries, paths)      -> one ranked list of boxes per query
  discover(variables, paths, config)     -> pair scores, groups and region groups
  python -m train.main --config configs/artminer.py:brueghel|smoke

Modules:
  model.py        the feature network (ResNet-18 cut after layer3): features, pyramid, L2 normalisation
  resize_rule.py  the resize rule: cells per side, 16 n - 1 pixel sizes, PIL filters, the scale pyramid
  losses.py       the hard-positive training loss on mined pairs
  data.py         training data: per-step candidate batches, training collections (folder or synthetic)
  mining.py       on-device mining of hard positives: canvas features, queries, retrieval, verification
  task.py         the training task (model, loss, input pipeline, detection mAP during training)
  inference.py    the entry points a user calls: detection, re-ranking, discovery
  metrics.py      detection AP and both mAPs, as the release's evaluation
  weights.py      the checkpoint family and load_weights
  collection.py   FeatureCache: a collection's multi-scale maps, batched, cached in memory and on disk
  similarity.py   sliding cosine as a convolution, per-shape top-k
  packed_maps.py  a collection's maps stacked by padded size on the device
  ranking.py      detection's compiled ranking: top-k, NMS, collection top-N
  detection.py    one-shot detection: query crops and blocks, boxes, NMS, detect
  rerank.py       query boxes as discovery references; re-ranking detections by the discovery score
  annotations.py  the official one-shot detection annotation format
  discovery/      discovery: feature bank, candidate pairs, pair verification, groups (its own module list)
"""

from artdup_jax.artminer.annotations import AnnotatedQuery, AnnotationError, parse_annotations, read_annotations
from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.data import CandidateImages, candidate_batches
from artdup_jax.artminer.detection import (
    DetectionConfig,
    Query,
    QueryCrop,
    RankedDetections,
    check_box,
    detect,
    query_blocks,
    query_crop,
    suppress_overlaps,
)
from artdup_jax.artminer.discovery import DiscoveryConfig, DiscoveryResult, discover, extract_features, score_pairs
from artdup_jax.artminer.losses import training_loss
from artdup_jax.artminer.metrics import average_precision, summarise
from artdup_jax.artminer.mining import MinedPairs, MiningConfig, canvas_features, mine, train_canvas_features
from artdup_jax.artminer.model import CHANNELS, features, init_variables, l2_normalise, pyramid
from artdup_jax.artminer.resize_rule import (
    SCALES,
    STRIDE,
    cells_for_size,
    pixels_for_cells,
    resize_factors,
    resize_image,
    resize_to_cells,
    resized_hw,
    round_half_away,
    scale_list,
)
from artdup_jax.artminer.similarity import normalise_query, sliding_cosine, top_k_matches
from artdup_jax.artminer.weights import load_weights

__all__ = [
    "AnnotatedQuery",
    "AnnotationError",
    "CHANNELS",
    "CandidateImages",
    "DetectionConfig",
    "DiscoveryConfig",
    "DiscoveryResult",
    "FeatureCache",
    "MinedPairs",
    "MiningConfig",
    "Query",
    "QueryCrop",
    "RankedDetections",
    "SCALES",
    "STRIDE",
    "candidate_batches",
    "canvas_features",
    "cells_for_size",
    "average_precision",
    "check_box",
    "detect",
    "discover",
    "extract_features",
    "features",
    "init_variables",
    "l2_normalise",
    "load_weights",
    "mine",
    "parse_annotations",
    "normalise_query",
    "pixels_for_cells",
    "pyramid",
    "query_blocks",
    "query_crop",
    "read_annotations",
    "resize_factors",
    "resize_image",
    "resize_to_cells",
    "resized_hw",
    "round_half_away",
    "scale_list",
    "score_pairs",
    "sliding_cosine",
    "summarise",
    "suppress_overlaps",
    "top_k_matches",
    "train_canvas_features",
    "training_loss",
]
