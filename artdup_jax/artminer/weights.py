"""ArtMiner network weights from a released ``.pth``, torchvision ``resnet18.pth``, a converted directory or a
training workdir."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

FAMILY = "artminer"


def _read_python2_pickle(path: str) -> dict[str, np.ndarray]:
    """The release's Python 2 pickles may hold byte strings that only latin-1 decodes (artminer.md §1.5)."""
    import torch  # lazy: the library imports without torch

    checkpoint = torch.load(path, map_location="cpu", encoding="latin1", weights_only=True)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    return {str(k): v.detach().cpu().float().numpy() for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def load_weights(path: str | os.PathLike) -> dict:
    """``{"params", "batch_stats"}`` for ``features``.

    ``path``: a ``.pth`` file (released ``model.*`` layout or torchvision names; converted by the ``artminer``
    family, which names every missing, unexpected or mis-shaped key), a directory written by
    ``convert.save_variables``, or a training workdir (its newest checkpoint).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        from artdup_jax.training.initialise import load_initial_variables

        return load_initial_variables(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file or directory")
    from artdup_jax.convert import convert_state_dict, load_torch_checkpoint

    try:
        return load_torch_checkpoint(FAMILY, path)
    except UnicodeDecodeError:
        return convert_state_dict(FAMILY, _read_python2_pickle(path))
