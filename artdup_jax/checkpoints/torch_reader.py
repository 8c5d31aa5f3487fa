"""Read a PyTorch checkpoint file into a flat ``{name: np.ndarray}``. torch is imported only when called."""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any, Mapping

import numpy as np

# Entries under which training scripts nest the actual state_dict (MoCo: "state_dict", bl0 MoCo: "model").
STATE_DICT_ENTRIES = ("state_dict", "model")


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads ``path`` on CPU and returns its tensors as numpy arrays.

    * Tries ``torch.load(weights_only=True)`` first. Only if that refuses the file (a legacy pickle holding
      other objects) does it retry with ``weights_only=False`` and a warning: that path executes the
      pickle's code, so use it only on files you trust.
    * If the file is a dict with a ``state_dict`` or ``model`` entry, that entry is used.
    * Nested dicts are flattened with "." (``{"netFeatCoarse": {"conv1.weight": t}}`` ->
      ``"netFeatCoarse.conv1.weight"``); non-tensor values (epochs, optimiser hyper-parameters) are dropped.
    * bfloat16 tensors come back as float32 (numpy has no bfloat16).
    """
    import torch  # lazy: the library must import without torch

    path = os.fspath(path)
    try:
        checkpoint = _safe_load(torch, path)
    except pickle.UnpicklingError as error:
        warnings.warn(
            f"{path}: not loadable with weights_only=True ({str(error).splitlines()[0]}); "
            "retrying with weights_only=False, which runs arbitrary pickled code. Only do this for trusted files.",
            UserWarning,
            stacklevel=2,
        )
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)

    if isinstance(checkpoint, Mapping):
        for entry in STATE_DICT_ENTRIES:
            if isinstance(checkpoint.get(entry), Mapping):
                checkpoint = checkpoint[entry]
                break
    elif hasattr(checkpoint, "state_dict"):  # a pickled nn.Module (legacy torch.save(model))
        checkpoint = checkpoint.state_dict()
    else:
        raise TypeError(f"{path}: expected a dict or module, got {type(checkpoint).__name__}")

    flat: dict[str, np.ndarray] = {}
    _flatten(checkpoint, "", flat, torch)
    if not flat:
        raise ValueError(f"{path}: no tensors found")
    return flat


def _safe_load(torch, path: str):
    """``torch.load(weights_only=True)``; the release's Python 2 pickles may hold byte strings that only
    latin-1 decodes, so those are read again with that encoding."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:
        return torch.load(path, map_location="cpu", encoding="latin1", weights_only=True)


def _flatten(node: Mapping[str, Any], prefix: str, out: dict[str, np.ndarray], torch) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            out[name] = tensor.numpy()
        elif isinstance(value, Mapping):
            _flatten(value, f"{name}.", out, torch)
