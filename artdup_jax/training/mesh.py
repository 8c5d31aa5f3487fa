"""Device mesh and shardings for data-parallel training.

One mesh axis, ``"data"``: the batch is split along it, parameters and optimiser state are replicated, and
XLA inserts the gradient all-reduce inside a plain ``jax.jit`` step. The axis type is ``AxisType.Auto``
explicitly: ``jax.make_mesh`` defaults to ``Explicit`` in current JAX, under which ordinary Flax/optax code
fails to trace (see ``shared/specs/JAX_NOTES.md`` §2).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Environment variables that mean "this is one process of a multi-host job".
_DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def maybe_initialize_distributed() -> bool:
    """Calls ``jax.distributed.initialize`` when the standard variables are set; returns whether it did.

    Must run before any other JAX call. Reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
    (and optionally JAX_LOCAL_DEVICE_IDS as a comma-separated list).
    """
    if not all(os.environ.get(name) for name in _DISTRIBUTED_ENV):
        return False
    local = os.environ.get("JAX_LOCAL_DEVICE_IDS")
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
        local_device_ids=[int(i) for i in local.split(",")] if local else None,
    )
    return True


def make_data_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D ``("data",)`` mesh over ``devices`` (default: every device of every process)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return jax.sharding.Mesh(devices, (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh) -> NamedSharding:
    """Leading (batch) axis split over ``"data"``; all other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch_from_local(local_batch, mesh):
    """Assembles each process's slice of the batch (a pytree of NumPy arrays) into global jax.Arrays."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def check_divisible(global_batch_size: int, mesh) -> None:
    devices = mesh.devices.size
    if global_batch_size % devices:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the {devices} devices of the data mesh; "
            f"pick a multiple of {devices}"
        )
