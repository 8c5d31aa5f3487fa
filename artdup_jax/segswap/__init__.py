"""SegSwap (Shen et al., CVPR-W 2022): co-segmentation by segment swapping.

  variables = load_segswap("hard_mining_neg5.pth")        # or convert.load_torch_checkpoint, or init_segswap(rng)
  predict(variables, source, target) -> {"source", "target", "features_source", "features_target"}
  score_against_collection(variables, query, collection) -> {"score", "location"}
  python -m train.main --config configs/segswap.py:coco|unsupervised|hard_negatives|smoke|tiny

Modules:
  model.py         ``SegSwap``: frozen ResNet-50 layer3 backbone + transformer; ``init_segswap``
  transformer.py   the co-segmentation transformer: I/C encoder layers and the x / y / mask head
  position.py      the sine position encoding of a feature grid
  masks.py         sampling maps at predicted correspondences: transported and cycle-consistent masks
  score.py         the pair score S(s, t) from model outputs and features
  losses.py        the training loss: BCE on masks and transported masks, L1 on correspondences
  data/            synthetic segment-swap training pairs (segments, composer, stylisation, warps, ground truth)
  style/           AdaIN networks and the painting styliser used by ``data`` for stylisation
  task.py          the ``segswap`` training task: step, hard-negative mining, input pipeline, evaluation
  inference.py     what a user calls: ``predict``, features, collection scoring, prior refinement, pairwise stage
  retrieval.py     the Brueghel one-shot retrieval protocol: query crop, cached database features, mAP
  discovery.py     object discovery: correspondence graph over matchable pairs, leading eigenvector, heat maps
  metrics.py       held-out mask IoU / AUC, retrieval AP, co-segmentation P / J, place recall@N
  weights.py       the ``segswap`` checkpoint family and ``load_segswap``
"""

from artdup_jax.segswap.data import (
    BLEND_MODES,
    CocoSegments,
    FolderSegments,
    Segment,
    SegmentSource,
    SynthesisConfig,
    UnsupervisedSegments,
    felzenszwalb_segments,
    make_example,
    make_source,
    prepare_styles,
)
from artdup_jax.segswap.discovery import PairOutputs, discover
from artdup_jax.segswap.inference import (
    collection_features,
    extract_features,
    pairwise_stage,
    predict,
    predict_from_features,
    refine_prior,
    score_against_collection,
)
from artdup_jax.segswap.losses import correspondence_loss, segswap_loss
from artdup_jax.segswap.masks import cycle_consistent_masks, joint_mask, sample_at, transported_mask
from artdup_jax.segswap.model import SegSwap, init_segswap, l2_normalise
from artdup_jax.segswap.position import sine_position_encoding
from artdup_jax.segswap.retrieval import RetrievalProtocol, evaluate_retrieval, prepare_query, retrieve
from artdup_jax.segswap.score import pair_score, pair_scores, score_outputs, target_cells
from artdup_jax.segswap.transformer import SMALL, CoSegmentationTransformer, TransformerConfig
from artdup_jax.segswap.weights import load_segswap

__all__ = [
    "SMALL",
    "CoSegmentationTransformer",
    "PairOutputs",
    "RetrievalProtocol",
    "SegSwap",
    "TransformerConfig",
    "collection_features",
    "cycle_consistent_masks",
    "discover",
    "evaluate_retrieval",
    "extract_features",
    "init_segswap",
    "joint_mask",
    "l2_normalise",
    "load_segswap",
    "pair_score",
    "pair_scores",
    "pairwise_stage",
    "predict",
    "predict_from_features",
    "prepare_styles",
    "prepare_query",
    "refine_prior",
    "retrieve",
    "sample_at",
    "score_against_collection",
    "score_outputs",
    "segswap_loss",
    "sine_position_encoding",
    "target_cells",
    "transported_mask",
]
