"""Converted variables on disk: one Orbax ``StandardCheckpointer`` directory per checkpoint."""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp


def save_variables(variables: dict, out_dir: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Writes ``variables`` to ``out_dir`` (made absolute) and returns that path.

    An existing ``out_dir`` is replaced only with ``overwrite=True``; otherwise FileExistsError. Orbax
    writes to a temporary directory and renames it at the end, so an interrupted save leaves no
    half-written checkpoint under ``out_dir``.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(out_dir, variables, force=overwrite)
        checkpointer.wait_until_finished()
    return out_dir


def load_variables(out_dir: str | os.PathLike) -> dict:
    """Reads variables written by ``save_variables``; leaves come back as numpy arrays."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(out_dir)
        tree = getattr(metadata, "item_metadata", metadata)
        abstract = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), tree)
        restored = checkpointer.restore(out_dir, abstract)
    return jax.tree.map(np.asarray, restored)
