"""RANSAC-Flow (Shen et al., ECCV 2020): coarse homographies refined by a fine flow network.

  variables = init_fine_network(rng)                       # or convert.load_torch_checkpoint("ransac_flow", pth)
  fine_flow(variables, source, target)  -> {"residual", "matchability", "grid"}   (source coarse-aligned)
  refine(variables, source, target, H)  -> {"grid", "matchability"}               (H: coarse homography)
  align_pair(source, target, coarse="sift", fine_variables=variables) -> Alignment   (the whole recipe)

Modules:
  model                the fine network (feature extractor, correlation, decoders); ``init_fine_network``
  correlation          the 7x7 local cost volume
  decoders             the flow and matchability heads
  coarse               the coarse stage: deep-feature (or SIFT) homographies of a pair, ``CoarseSearch``
  official_ransac      RANSAC-Flow's own homography RANSAC, used by the deep coarse stage
  fine                 the fine stage: ``fine_flow``, ``refine``, KITTI's ``refine_two_levels``
  inference            the recipe: homography loop, layers, merge; ``align_pair`` (the tool, HPatches)
  inference_protocols  its evaluation variants: ``predict_pair`` (MegaDepth, RobotCar, YFCC), ``predict_kitti``
  losses               the unsupervised training losses and one training step's weighted loss
  data                 training pairs: synthetic pairs with known flow, MegaDepth coarse-aligned groups
  task                 the training task (model, loss, input pipeline, evaluation) for ``train/``
  metrics              evaluation metrics: AEPE, PCK, KITTI Fl, relative-pose error and accuracy
  weights              the ``ransac_flow`` checkpoint family (released ``.pth`` -> ``FineNetwork``)
"""

from artdup_jax.ransac_flow.correlation import local_correlation, window_offsets
from artdup_jax.ransac_flow.decoders import FlowDecoder, MatchabilityDecoder
from artdup_jax.ransac_flow.fine import fine_flow, refine
from artdup_jax.ransac_flow.inference import Alignment, align_pair
from artdup_jax.ransac_flow.model import FineNetwork, init_fine_network, l2_normalise

__all__ = [
    "Alignment",
    "FineNetwork",
    "FlowDecoder",
    "MatchabilityDecoder",
    "align_pair",
    "fine_flow",
    "init_fine_network",
    "l2_normalise",
    "local_correlation",
    "refine",
    "window_offsets",
]
