"""ArtMiner (Shen, Efros, Aubry, CVPR 2019): style-invariant ResNet-18 conv4 features and what uses them
(artminer.md).

  variables = convert.load_torch_checkpoint("artminer", "brueghelModel.pth")   # or resnet18.pth (ImageNet)
  features(variables, images)            -> (B, h, w, 256) raw layer3 activations    (features.py, §1)
  detect(variables, queries, paths)      -> one ranked list of boxes per query        (detection.py, §3)
  discover(variables, paths, config)     -> pair scores, groups and region groups     (discovery.py, §4)
  python -m train.main --config configs/artminer.py:brueghel|smoke                    (task.py, §2)

Files: ``features.py`` (network, resize rule, scale list, L2 normalisation), ``similarity.py`` (sliding cosine
as a convolution, top-k), ``collection.py`` (multi-scale feature maps of a collection, batched and cached),
``packed_maps.py`` (those maps stacked by size on the device), ``ranking.py`` (detection's compiled ranking:
top-k, NMS, collection top-N), ``detection.py`` (one-shot detection), ``annotations.py`` / ``metrics.py`` (the
official annotation format, AP and both mAPs), ``mining.py`` / ``training.py`` / ``task.py`` (self-supervised
training: on-device mining, the hard-positive loss, the training task), ``discovery.py`` / ``report.py``
(discovery and its HTML page), ``weights.py`` (checkpoints).
"""

from artdup_jax.artminer.annotations import AnnotatedQuery, AnnotationError, parse_annotations, read_annotations
from artdup_jax.artminer.collection import FeatureCache
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
from artdup_jax.artminer.features import (
    CHANNELS,
    SCALES,
    STRIDE,
    cells_for_size,
    features,
    init_variables,
    l2_normalise,
    pixels_for_cells,
    pyramid,
    resize_factors,
    resize_image,
    resize_to_cells,
    resized_hw,
    round_half_away,
    scale_list,
)
from artdup_jax.artminer.metrics import average_precision, summarise
from artdup_jax.artminer.mining import MinedPairs, MiningConfig, canvas_features, mine, train_canvas_features
from artdup_jax.artminer.similarity import normalise_query, sliding_cosine, top_k_matches
from artdup_jax.artminer.training import CandidateImages, candidate_batches, training_loss
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
