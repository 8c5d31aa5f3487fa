"""Read a PyTorch checkpoint file into a flat ``{name: np.ndarray}``, safely and without PyTorch."""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from artdup_jax.checkpoints.pickle_reader import tensor_ref
from artdup_jax.checkpoints.torch_formats import read_torch_file
from artdup_jax.checkpoints.torch_tensors import CheckpointError, UnsafeCheckpointError

# Entries under which training scripts nest the actual state_dict (MoCo: "state_dict", bl0 MoCo: "model").
STATE_DICT_ENTRIES = ("state_dict", "model")

__all__ = ["CheckpointError", "UnsafeCheckpointError", "read_state_dict"]


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a ``torch.save`` file (zip or legacy layout) and returns its tensors as numpy arrays.

    * The pickle is read by a restricted unpickler (``pickle_reader``) that rebuilds tensors and plain
      containers only: a file naming any other global (``os.system``...) is refused with
      ``UnsafeCheckpointError`` before anything runs. A pickled ``nn.Module`` is refused too.
    * If the file is a dict with a ``state_dict`` or ``model`` entry, that entry is used.
    * Nested dicts are flattened with "." (``{"netFeatCoarse": {"conv1.weight": t}}`` ->
      ``"netFeatCoarse.conv1.weight"``); non-tensor values (epochs, optimiser hyper-parameters) are dropped.
    * Arrays are contiguous copies with torch's dtype, except bfloat16 -> float32 (numpy has no bfloat16).
    """
    path = Path(os.fspath(path))
    try:
        checkpoint, byteorder = read_torch_file(path)
        if not isinstance(checkpoint, Mapping):
            raise CheckpointError(f"expected a dict of tensors, got {type(checkpoint).__name__}")
        for entry in STATE_DICT_ENTRIES:
            if isinstance(checkpoint.get(entry), Mapping):
                checkpoint = checkpoint[entry]
                break
        flat: dict[str, np.ndarray] = {}
        _flatten(checkpoint, "", flat, byteorder)
    except CheckpointError as error:
        raise type(error)(f"{path}: {error}") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, TypeError, ValueError, KeyError,
            IndexError, AttributeError, OverflowError, RecursionError, struct.error) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if not flat:
        raise CheckpointError(f"{path}: no tensors found")
    return flat


def _flatten(node: Mapping[Any, Any], prefix: str, out: dict[str, np.ndarray], byteorder: str) -> None:
    for key, value in dict.items(node) if isinstance(node, dict) else node.items():
        name = f"{prefix}{key}"
        if (tensor := tensor_ref(value)) is not None:
            out[name] = tensor.to_numpy(byteorder)
        elif isinstance(value, Mapping):
            _flatten(value, f"{name}.", out, byteorder)
