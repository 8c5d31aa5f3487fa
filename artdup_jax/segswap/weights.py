"""SegSwap checkpoints -> ``artdup_jax.segswap.SegSwap`` variables: the ``segswap`` family and ``load_segswap``.

A released ``.pth`` (``hard_mining_neg5.pth``) is a dict ``{"backbone", "encoder", "optimiser"}``;
``read_state_dict`` flattens it with ".". Flax submodules map to its keys by rule:

  backbone/conv1, bn1                 -> backbone.0, backbone.1          (an nn.Sequential of the trunk)
  backbone/layerK_i/...               -> backbone.{3+K}.i....            (torchvision names below the block)
  transformer/feat_proj, final_linear -> encoder.net.feat_proj, encoder.net.final_linear
  transformer/encoder_blocks_k/layerS/{inner,cross}_encoder_layer/...
                                      -> encoder.net.encoder_blocks.k.layerS.{inner,cross}_encoder_layer....

Attention input projections are stored by PyTorch as ``….self_attn.in_proj_weight`` / ``in_proj_bias``
(one fused q | k | v tensor); the ``normalise`` hook renames them ``….self_attn.in_proj.weight`` /
``.bias``, which is how they are named in error messages. ``optimiser.*`` (the Adam state) and
``num_batches_tracked`` are ignored. Option ``config`` (a ``segswap.TransformerConfig``, default: the
released "small" model) sets the transformer's sizes.

``load_segswap(path)`` reads a released ``.pth``, a converted-variables directory or a training workdir.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import jax
import numpy as np

from artdup_jax.checkpoints.conversion import Family, register
from artdup_jax.checkpoints.resolver import load_weights
from artdup_jax.checkpoints.torchvision import torchvision_module
from artdup_jax.segswap.model import SegSwap, init_segswap
from artdup_jax.segswap.transformer import SMALL

FAMILY = _FAMILY = "segswap"
_SEQUENTIAL_INDEX = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6"}
_IN_PROJ = re.compile(r"\.self_attn\.in_proj_(weight|bias)$")
_BLOCK = re.compile(r"^encoder_blocks_(\d+)$")


def segswap_module(module_path: tuple[str, ...]) -> str:
    """Flax module path -> torch module name (module docstring)."""
    part, *rest = module_path
    if part == "backbone":
        head, *tail = torchvision_module(tuple(rest)).split(".")
        if head not in _SEQUENTIAL_INDEX:
            raise KeyError(f"family {_FAMILY!r}: no backbone index for torch module {head!r}")
        return ".".join(["backbone", _SEQUENTIAL_INDEX[head], *tail])
    if part == "transformer":
        names = [(f"encoder_blocks.{m[1]}" if (m := _BLOCK.match(name)) else name) for name in rest]
        return ".".join(["encoder.net", *names])
    raise KeyError(f"family {_FAMILY!r}: no checkpoint entry for Flax module {part!r}")


def rename_in_proj(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``normalise`` hook: ``….self_attn.in_proj_weight`` -> ``….self_attn.in_proj.weight`` (same for bias)."""
    return {_IN_PROJ.sub(r".self_attn.in_proj.\1", key): value for key, value in state_dict.items()}


def _build_segswap(config=None):
    return SegSwap(SMALL if config is None else config)


register(
    Family(
        name=_FAMILY,
        build_model=_build_segswap,
        torch_module=segswap_module,
        ignore=lambda **_: (r"^optimiser\.",),
        normalise=rename_in_proj,
        init_shape=(1, 32, 32, 3),
        description="SegSwap: dict of backbone (ResNet-50 layer3 nn.Sequential) / encoder (net.*) / optimiser",
    )
)


def load_segswap(checkpoint: str | os.PathLike | None = None, *, seed: int | None = None) -> dict:
    """SegSwap variables: a released ``.pth`` (e.g. ``hard_mining_neg5.pth``), a converted-variables directory or
    a training workdir; or, with ``checkpoint=None``, random weights from ``seed`` (smoke runs only)."""
    if checkpoint is None:
        if seed is None:
            raise ValueError("give a checkpoint, or a seed for random weights")
        return init_segswap(jax.random.PRNGKey(seed))
    return load_weights(checkpoint, FAMILY)
