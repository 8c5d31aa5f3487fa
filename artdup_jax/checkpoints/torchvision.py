"""torchvision ResNets (resnet18/34/50) and the MoCo-v2 ResNet-50 query encoder.

Flax module names mirror torchvision's with "." -> "_" (``layer2_0/downsample_bn`` <-> ``layer2.0.downsample.1``).
Option ``last_stage`` (default "layer3") picks where the trunk is cut; the stages after it are ignored.

Ignored torch keys, all families here:
  fc.*                    classifier (torchvision) or projection head (MoCo-v2 MLP fc.0/fc.2, bl0 MoCo fc)
  layerK.*                for every stage K after ``last_stage``
  *.num_batches_tracked   (engine-wide)
Extra for ``moco_resnet50``: the momentum encoder ``encoder_k.*`` and the ``queue``/``queue_ptr`` buffers.
A leading ``module.`` (DataParallel) is stripped everywhere.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from artdup_jax.checkpoints.conversion import Family, register, strip_prefix
from artdup_jax.nn.resnet import STAGES, check_stage, resnet18, resnet34, resnet50

_BLOCK = re.compile(r"^(layer\d+)_(\d+)$")


def torchvision_module(module_path: tuple[str, ...], downsample_indices: tuple[int, int] = (0, 1)) -> str:
    """("layer3_0", "downsample_bn") -> "layer3.0.downsample.1"; ("bn1",) -> "bn1".

    ``downsample_indices``: positions of the shortcut's conv and BN inside the torch ``downsample``
    Sequential; (0, 1) in torchvision, (1, 2) when a BlurPool comes first (RANSAC-Flow).
    """
    downsample = {
        "downsample_conv": f"downsample.{downsample_indices[0]}",
        "downsample_bn": f"downsample.{downsample_indices[1]}",
    }
    parts = []
    for name in module_path:
        block = _BLOCK.match(name)
        parts.append(f"{block[1]}.{block[2]}" if block else downsample.get(name, name))
    return ".".join(parts)


def resnet_ignore(last_stage: str = "layer3", **_) -> tuple[str, ...]:
    cut = STAGES.index(check_stage(last_stage))
    return (r"^fc\.", *(rf"^{stage}\." for stage in STAGES[cut + 1 :]))


def _resnet_family(name: str, constructor, description: str) -> Family:
    return register(
        Family(
            name=name,
            build_model=constructor,
            torch_module=torchvision_module,
            ignore=resnet_ignore,
            normalise=strip_prefix("module."),
            description=description,
        )
    )


_resnet_family("resnet18", resnet18, "torchvision resnet18 (ArtMiner backbone), cut after last_stage")
_resnet_family("resnet34", resnet34, "torchvision resnet34, cut after last_stage")
_resnet_family("resnet50", resnet50,
               "torchvision resnet50 v1.5 (ImageNet or bl0-MoCo 'model' dict), cut after last_stage")


def _moco_query_encoder(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # facebookresearch/moco checkpoints: module.encoder_q.* (kept), module.encoder_k.*, module.queue(_ptr).
    return strip_prefix("encoder_q.")(strip_prefix("module.")(state_dict))


def _moco_ignore(last_stage: str = "layer3", **_) -> tuple[str, ...]:
    return (*resnet_ignore(last_stage), r"^encoder_k\.", r"^queue(_ptr)?$")


register(
    Family(
        name="moco_resnet50",
        build_model=resnet50,
        torch_module=torchvision_module,
        ignore=_moco_ignore,
        normalise=_moco_query_encoder,
        description="MoCo-v2 ResNet-50 query encoder (module.encoder_q.*), cut after last_stage",
    )
)
