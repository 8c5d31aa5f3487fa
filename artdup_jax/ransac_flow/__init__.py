"""RANSAC-Flow (Shen et al., ECCV 2020): fine flow network and its inference recipes (ransac_flow.md §2).

  variables = init_fine_network(rng)                       # or convert.load_torch_checkpoint("ransac_flow", pth)
  fine_flow(variables, source, target)  -> {"residual", "matchability", "grid"}   (source coarse-aligned)
  refine(variables, source, target, H)  -> {"grid", "matchability"}               (H: coarse homography)

Files: ``correlation.py`` (7x7 local cost volume), ``decoders.py`` (flow / matchability heads),
``fine.py`` (the assembled network and the public functions). The feature extractor is
``artdup_jax.nn.AntiAliasedTrunk``.
"""

from artdup_jax.ransac_flow.correlation import local_correlation, window_offsets
from artdup_jax.ransac_flow.decoders import FlowDecoder, MatchabilityDecoder
from artdup_jax.ransac_flow.fine import FineNetwork, fine_flow, init_fine_network, l2_normalise, refine

__all__ = [
    "FineNetwork",
    "FlowDecoder",
    "MatchabilityDecoder",
    "fine_flow",
    "init_fine_network",
    "l2_normalise",
    "local_correlation",
    "refine",
    "window_offsets",
]
