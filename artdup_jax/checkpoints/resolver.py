"""One resolver from a path to Flax variables: a PyTorch ``.pth``, a converted folder or a training workdir.

    variables = load_weights("ltllModel.pth", "artminer")      # converted on the fly by the family
    variables = load_weights("weights/artminer", "artminer")   # a folder written by ``save_variables``
    variables = load_weights("runs/artminer", "artminer")      # a training workdir: its newest checkpoint

The family must be registered (each method's ``weights`` module registers its own; importing
``artdup_jax.convert`` registers them all).
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp

from artdup_jax.checkpoints.conversion import get_family
from artdup_jax.checkpoints.orbax_io import load_variables
from artdup_jax.checkpoints.torch_file import load_torch_checkpoint

WORKDIR_CHECKPOINTS = "checkpoints"  # the sub-folder of a training workdir that holds its Orbax steps


def load_weights(path: str | os.PathLike, family: str) -> dict:
    """``{"params", "batch_stats"}`` of ``family``'s model from ``path`` (see the module docstring)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_folder(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file or directory")
    return load_torch_checkpoint(get_family(family), path)


def load_folder(path: str | os.PathLike) -> dict:
    """Variables of a training workdir (its newest complete checkpoint's ``params`` / ``batch_stats``, not its
    optimiser state or step) or of a folder of converted variables."""
    path = os.path.abspath(os.fspath(path))
    checkpoints = os.path.join(path, WORKDIR_CHECKPOINTS)
    if os.path.isdir(checkpoints):
        with ocp.CheckpointManager(checkpoints) as manager:
            step = manager.latest_step()
            if step is None:
                raise FileNotFoundError(f"{path}: no complete checkpoint in {checkpoints}")
            restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        state = restored["state"]
        return {"params": state["params"], "batch_stats": state.get("batch_stats", {})}
    if os.path.isdir(path):
        return load_variables(path)
    raise FileNotFoundError(f"{path} is neither a training workdir nor a converted-variables directory")
