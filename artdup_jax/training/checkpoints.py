"""Orbax checkpoints for training: periodic saves, keep-last-k, resume from the newest complete one.

The only module that talks to Orbax's training API, so a later move to ``orbax.checkpoint.v1`` touches one
file. A checkpoint holds the TrainState pytree and the run's config as JSON.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class TrainCheckpoints:
    def __init__(self, directory: str, *, save_every: int, keep: int):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, save_interval_steps=save_every, create=True
            ),
        )

    @property
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state, config_dict: dict, *, force: bool = False) -> bool:
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)
            ),
            force=force,
        )

    def restore(self, state_like, step: int | None = None):
        """Restores onto the structure, shapes and shardings of ``state_like`` (a concrete TrainState)."""
        step = self.latest_step if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored["state"]

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
