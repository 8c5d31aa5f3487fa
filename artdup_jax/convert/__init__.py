"""PyTorch checkpoints -> Flax Linen variables ``{"params": ..., "batch_stats": ...}``.

    variables = load_torch_checkpoint("moco_resnet50", "moco_v2_800ep_pretrain.pth.tar")
    features = build_model("moco_resnet50").apply(variables, images, train=False)

Families (see ``FAMILIES`` and ``families/``): resnet18, resnet34, resnet50, moco_resnet50 (option
``last_stage``, default "layer3"); artminer (released fine-tuned ResNet-18, ``model.`` prefix, or torchvision
weights); ransac_flow (the fine network's four-part checkpoint); segswap (``backbone`` + ``encoder``);
adain (two files: ``vgg_normalised.pth`` and the decoder, for ``artdup_jax.style``).
torch is needed only to read ``.pth`` files, and is imported then.
Command line: ``python -m artdup_jax.convert FAMILY SRC.pth [SRC2.pth ...] OUT_DIR``.
"""

from __future__ import annotations

import os
from typing import Sequence

from artdup_jax.convert import families as _families  # noqa: F401  (registers the families)
from artdup_jax.convert.core import (
    FAMILIES,
    CheckpointMismatchError,
    Family,
    build_model,
    convert_state_dict,
    expected_torch_shapes,
    get_family,
    register,
)
from artdup_jax.convert.orbax_io import load_variables, save_variables
from artdup_jax.convert.torch_reader import read_state_dict


def load_torch_checkpoint(family: str | Family, path: str | os.PathLike | Sequence[str | os.PathLike],
                          **family_options) -> dict:
    """Reads a ``.pth`` file and converts it; see ``convert_state_dict``.

    A family stored as several files (``Family.sources``, e.g. adain: vgg, decoder) takes a sequence of
    paths, one per source in that order; each file's keys are prefixed with its source name.
    """
    family = get_family(family)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    names = family.sources or ("",)
    if len(paths) != len(names):
        expected = ", ".join(family.sources) if family.sources else "one file"
        raise ValueError(f"family {family.name!r} takes {len(names)} checkpoint file(s) ({expected}), got {len(paths)}")
    state_dict = {}
    for name, file in zip(names, paths):
        prefix = f"{name}." if name else ""
        state_dict.update({prefix + key: value for key, value in read_state_dict(file).items()})
    return convert_state_dict(family, state_dict, **family_options)


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
