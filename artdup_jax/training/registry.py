"""Training tasks by name. A method registers itself by adding one line here.

A task module exposes ``TASK``, a :class:`Task`. Modules are imported only when their task is asked for, so
naming a method here costs nothing to the others.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterator

TASK_MODULES = {
    "artminer": "artdup_jax.artminer.task",
    "dense_contrast": "artdup_jax.dense_contrast.task",
    "ransac_flow": "artdup_jax.ransac_flow.task",
    "segswap": "artdup_jax.segswap.task",
}


@dataclasses.dataclass(frozen=True)
class Task:
    """What a method gives the generic training loop.

    create_model(config) -> flax.linen.Module
    init_variables(model, rng, config) -> {"params": ..., "batch_stats": ...}
    loss_fn(model, variables, batch, rng, config) -> (loss, (metrics dict, new batch_stats)); pure and
        jit-able (config is static).
    input_pipeline(config, *, first_step, process_index, process_count) -> iterator of local NumPy batches
        for steps first_step, first_step + 1, ...; batch k must not depend on where the run started.
    evaluate(model, variables, config) -> dict of scalars (optional), run every ``config.eval_every`` steps.
    """

    name: str
    create_model: Callable[[Any], Any]
    init_variables: Callable[..., dict]
    loss_fn: Callable[..., tuple]
    input_pipeline: Callable[..., Iterator[dict]]
    evaluate: Callable[..., dict] | None = None


def get_task(name: str) -> Task:
    if name not in TASK_MODULES:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
