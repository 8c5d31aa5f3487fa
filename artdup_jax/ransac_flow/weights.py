"""RANSAC-Flow fine-network checkpoints -> ``artdup_jax.ransac_flow.FineNetwork``.

A released ``.pth`` is a dict of four state_dicts; ``read_state_dict`` flattens it with "." so keys read
``netFeatCoarse.conv1.weight``, ``netFlowCoarse.bn1.running_var``, ``netMatch.conv4.weight`` (``netCorr``
is empty and vanishes). Flax submodules map to them as

  feature_extractor/...      -> netFeatCoarse.<torchvision name>, shortcut = downsample.{0: blur, 1: conv, 2: BN}
  flow_decoder/conv1..4, bn1..3         -> netFlowCoarse.conv1..4, bn1..3
  matchability_decoder/conv1..4, bn1..3 -> netMatch.conv1..4, bn1..3

The 49-channel axes (decoders' conv1 input, flow conv4 output) keep their order: only OIHW -> HWIO.

Blur buffers ``netFeatCoarse.{maxpool.1, layer2.0.downsample.0, layer3.0.downsample.0}.filt`` have no Flax
counterpart (``BlurPool`` rebuilds the filter). They are checked before being dropped: each must be present,
of shape (C, 1, 3, 3) and equal to outer([1,2,1], [1,2,1]) / 16, as the official strict loading implies.
``num_batches_tracked`` is ignored (engine-wide).
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from artdup_jax.checkpoints.conversion import CheckpointMismatchError, Family, register
from artdup_jax.checkpoints.torchvision import torchvision_module
from artdup_jax.ransac_flow.model import FineNetwork

NETWORKS = {  # Flax submodule of FineNetwork -> entry of the released checkpoint dict
    "feature_extractor": "netFeatCoarse",
    "flow_decoder": "netFlowCoarse",
    "matchability_decoder": "netMatch",
}
BLUR_BUFFERS = {  # torch key -> channels
    "netFeatCoarse.maxpool.1.filt": 64,
    "netFeatCoarse.layer2.0.downsample.0.filt": 64,
    "netFeatCoarse.layer3.0.downsample.0.filt": 128,
}
_BLUR_FILTER = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
FAMILY = _FAMILY = "ransac_flow"


def fine_network_module(module_path: tuple[str, ...]) -> str:
    """("feature_extractor", "layer2_0", "downsample_bn") -> "netFeatCoarse.layer2.0.downsample.2"."""
    network, *rest = module_path
    if network not in NETWORKS:
        raise KeyError(f"family {_FAMILY!r}: no checkpoint entry for Flax module {network!r}")
    return f"{NETWORKS[network]}.{torchvision_module(tuple(rest), downsample_indices=(1, 2))}"


def check_blur_buffers(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``normalise`` hook: raise ``CheckpointMismatchError`` if a blur buffer is missing or not the fixed filter."""
    problems = []
    for key, channels in BLUR_BUFFERS.items():
        if key not in state_dict:
            problems.append(f"missing: {key} (expected shape {(channels, 1, 3, 3)})")
            continue
        value = np.asarray(state_dict[key])
        if value.shape != (channels, 1, 3, 3):
            problems.append(f"wrong shape: {key} (expected {(channels, 1, 3, 3)}, got {value.shape})")
        elif not np.allclose(value, _BLUR_FILTER[None, None], rtol=0, atol=1e-6):
            problems.append(f"wrong values: {key} (expected the fixed blur outer([1,2,1],[1,2,1])/16)")
    if problems:
        raise CheckpointMismatchError(_FAMILY, problems)
    return dict(state_dict)


def _build_fine_network():
    return FineNetwork()


register(
    Family(
        name=_FAMILY,
        build_model=_build_fine_network,
        torch_module=fine_network_module,
        ignore=lambda **_: tuple(f"^{re.escape(key)}$" for key in BLUR_BUFFERS),
        normalise=check_blur_buffers,
        init_shape=(1, 64, 64, 3),
        description="RANSAC-Flow fine network: dict of netFeatCoarse / netCorr / netFlowCoarse / netMatch",
    )
)
