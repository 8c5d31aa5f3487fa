"""What a method gives the generic training loop: a ``Task``. Each method's ``task`` module exposes ``TASK``;
the entry point ``train/`` (``train.tasks``) finds it by name."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

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
