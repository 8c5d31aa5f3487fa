"""Checkpoints: PyTorch files -> Flax variables, Orbax folders, and one resolver from a path to variables.

  conversion     the family registry (``Family``, ``register``, ``get_family``) and the key-by-key engine
  torch_reader   a ``.pth`` file -> flat ``{name: np.ndarray}``, without PyTorch
  torch_formats  the torch.save zip layout and the legacy pickle layout
  pickle_reader  the restricted unpickler: rebuilds tensors, refuses every other global
  torch_tensors  tensors and storages rebuilt as numpy arrays; the reader's errors
  torch_file     ``load_torch_checkpoint(family, path)``: read + convert
  orbax_io       ``save_variables`` / ``load_variables`` (one Orbax folder per checkpoint)
  resolver       ``load_weights(path, family)``: ``.pth``, converted folder or training workdir
  files          checks of a checkpoint path before any work (one-line errors)
  torchvision    the torchvision ResNet families (resnet18/34/50) and MoCo-v2's ResNet-50
  catalogue      the authors' released checkpoints by name (URL, file, family)
  download       HTTP download with resume, retries and a SHA-256 check
  cache          the weights cache: fetched once, converted once; ``resolve_weights(name_or_path, family)``

Each method package registers its own families in its ``weights`` module; ``artdup_jax.convert`` imports
them all.
"""

from artdup_jax.checkpoints import torchvision as _torchvision  # noqa: F401  (registers the ResNet families)
from artdup_jax.checkpoints.conversion import (
    FAMILIES,
    CheckpointMismatchError,
    Family,
    build_model,
    convert_state_dict,
    expected_torch_shapes,
    get_family,
    register,
)
from artdup_jax.checkpoints.orbax_io import load_variables, save_variables
from artdup_jax.checkpoints.resolver import load_folder, load_weights
from artdup_jax.checkpoints.torch_file import load_torch_checkpoint
from artdup_jax.checkpoints.torch_reader import read_state_dict

__all__ = [
    "FAMILIES",
    "CheckpointMismatchError",
    "Family",
    "build_model",
    "convert_state_dict",
    "expected_torch_shapes",
    "get_family",
    "load_folder",
    "load_torch_checkpoint",
    "load_variables",
    "load_weights",
    "read_state_dict",
    "register",
    "save_variables",
]
