"""SegSwap (Shen et al., CVPR-W 2022): co-segmentation by segment swapping (segswap.md).

  variables = convert.load_torch_checkpoint("segswap", "hard_mining_neg5.pth")   # or init_segswap(rng)
  predict(variables, source, target) -> {"source", "target", "features_source", "features_target"}
  score_against_collection(variables, query, collection) -> {"score", "location"}

Files: ``position.py`` (sine position encoding), ``transformer.py`` (the I/C encoder layers and the
x / y / mask head), ``model.py`` (frozen ResNet-50 layer3 backbone + transformer, the public forward
functions), ``masks.py`` (sampling maps at predicted correspondences: transported and cycle-consistent
masks), ``score.py`` (the pair score and batched collection scoring), ``retrieval.py`` (the Brueghel retrieval
protocol), ``discovery.py`` (pairwise stage, correspondence graph, leading eigenvector).
"""

from artdup_jax.segswap.discovery import PairOutputs, discover, pairwise_stage
from artdup_jax.segswap.losses import correspondence_loss, segswap_loss
from artdup_jax.segswap.masks import cycle_consistent_masks, joint_mask, sample_at, transported_mask
from artdup_jax.segswap.model import (
    SegSwap,
    extract_features,
    init_segswap,
    l2_normalise,
    predict,
    predict_from_features,
)
from artdup_jax.segswap.position import sine_position_encoding
from artdup_jax.segswap.retrieval import RetrievalProtocol, evaluate_retrieval, prepare_query, refine_prior, retrieve
from artdup_jax.segswap.score import (
    collection_features,
    pair_score,
    pair_scores,
    score_against_collection,
    score_outputs,
    target_cells,
)
from artdup_jax.segswap.segments import (
    CocoSegments,
    FolderSegments,
    Segment,
    SegmentSource,
    UnsupervisedSegments,
    felzenszwalb_segments,
    make_source,
)
from artdup_jax.segswap.synthesis import BLEND_MODES, SynthesisConfig, make_example, prepare_styles
from artdup_jax.segswap.transformer import SMALL, CoSegmentationTransformer, TransformerConfig

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
