"""ArtMiner's checkpoint family (``resnet18(last_stage="layer3")`` variables) and ``load_weights``.

Two layouts load:

* the released fine-tuned files (``brueghelModel.pth``, ``ltllModel.pth``, ``oxfordModel.pth``): the state
  dict of a wrapper whose only child is ``model``, so every key reads ``model.conv1.weight`` ...
  ``model.layer3.1.bn2.running_var`` (no layer4, no fc, no ``num_batches_tracked`` in PyTorch 0.3 files);
* plain torchvision ImageNet weights (``resnet18.pth`` = ``resnet18-5c106cde.pth``): no prefix, with
  ``layer4.*`` and ``fc.*``, which are ignored (the network is cut after layer3).

A leading ``module.`` (DataParallel) is stripped too. After stripping, the keys must be exactly
torchvision's conv1 / bn1 / layer1-3 names; problems are reported by their stripped key. Two keys that
strip to the same name (a file mixing both layouts) are refused as duplicates.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from artdup_jax.checkpoints.conversion import Family, register, rename_keys
from artdup_jax.checkpoints.resolver import load_weights as _load_weights
from artdup_jax.checkpoints.torchvision import torchvision_module
from artdup_jax.nn.resnet import resnet18

FAMILY = _FAMILY = "artminer"
PREFIXES = ("module.", "model.")  # DataParallel, then the release's wrapper module


def canonical_keys(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``model.layer1.0.conv1.weight`` -> ``layer1.0.conv1.weight``; duplicates raise."""
    def rename(key: str) -> str:
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        return key

    return rename_keys(_FAMILY, state_dict, rename)


def _build(**options):
    if options:
        raise TypeError(f"family {_FAMILY!r} takes no options (always ResNet-18 cut after layer3), got {options}")
    return resnet18(last_stage="layer3")


register(
    Family(
        name=_FAMILY,
        build_model=_build,
        torch_module=torchvision_module,
        ignore=lambda **_: (r"^fc\.", r"^layer4\."),
        normalise=canonical_keys,
        init_shape=(1, 63, 63, 3),
        description="ArtMiner ResNet-18 conv4: released model.* files or torchvision resnet18 (layer4/fc ignored)",
    )
)


def load_weights(path: str | os.PathLike) -> dict:
    """``{"params", "batch_stats"}`` for ``features``.

    ``path``: a ``.pth`` file (released ``model.*`` layout or torchvision names; converted by the ``artminer``
    family, which names every missing, unexpected or mis-shaped key; the release's Python 2 pickles load too),
    a directory written by ``checkpoints.save_variables``, or a training workdir (its newest checkpoint).
    """
    return _load_weights(path, FAMILY)
