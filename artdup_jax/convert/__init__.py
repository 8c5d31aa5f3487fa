"""PyTorch checkpoints -> Flax Linen variables ``{"params": ..., "batch_stats": ...}``.

    variables = load_torch_checkpoint("moco_resnet50", "moco_v2_800ep_pretrain.pth.tar")
    features = build_model("moco_resnet50").apply(variables, images, train=False)

Families (see ``FAMILIES`` and ``families/``): resnet18, resnet34, resnet50, moco_resnet50 (option
``last_stage``, default "layer3"); artminer (released fine-tuned ResNet-18, ``model.`` prefix, or torchvision
weights); ransac_flow (the fine network's four-part checkpoint); segswap (``backbone`` + ``encoder``).
torch is needed only to read ``.pth`` files, and is imported then.
Command line: ``python -m artdup_jax.convert FAMILY SRC.pth OUT_DIR``.
"""

from __future__ import annotations

import os

from artdup_jax.convert import families as _families  # noqa: F401  (registers the families)
from artdup_jax.convert.core import (
    FAMILIES,
    CheckpointMismatchError,
    Family,
    build_model,
    convert_state_dict,
    expected_torch_shapes,
    register,
)
from artdup_jax.convert.orbax_io import load_variables, save_variables
from artdup_jax.convert.torch_reader import read_state_dict


def load_torch_checkpoint(family: str | Family, path: str | os.PathLike, **family_options) -> dict:
    """Reads a ``.pth`` file and converts it; see ``convert_state_dict``."""
    return convert_state_dict(family, read_state_dict(path), **family_options)


__all__ = [
    "FAMILIES",
    "CheckpointMismatchError",
    "Family",
    "build_model",
    "convert_state_dict",
    "expected_torch_shapes",
    "load_torch_checkpoint",
    "load_variables",
    "read_state_dict",
    "register",
    "save_variables",
]
