"""Training tasks by name (``config.task``): each method's ``task`` module exposes ``TASK``. A method registers
itself by adding one line here; a module is imported only when its task is asked for."""

from __future__ import annotations

import importlib

from artdup_jax.training.task import Task

TASK_MODULES = {
    "artminer": "artdup_jax.artminer.task",
    "dense_contrast": "artdup_jax.dense_contrast.task",
    "ransac_flow": "artdup_jax.ransac_flow.task",
    "segswap": "artdup_jax.segswap.task",
}


def get_task(name: str) -> Task:
    if name not in TASK_MODULES:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
