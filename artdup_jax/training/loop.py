"""The generic training loop: sharded jit step, Orbax resume, metrics, evals, final report.

Everything method-specific comes from the task (a ``training.task.Task``); this file only wires
the pieces together, in the shape of Flax's own examples: create state, jit one pure step, loop.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp

from artdup_jax.training import checkpoints as checkpoints_lib
from artdup_jax.training import mesh as mesh_lib
from artdup_jax.training import metrics as metrics_lib
from artdup_jax.training import initialise, optimizers
from artdup_jax.training.state import TrainState
from artdup_jax.training.task import Task


def create_train_state(rng, config, task, model) -> TrainState:
    variables = task.init_variables(model, rng, config)
    if config.get("init_from"):
        loaded = initialise.load_initial_variables(config.init_from)
        variables = initialise.replace_matching(dict(variables), loaded, source=config.init_from)
    return TrainState.create(
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        tx=optimizers.build_optimizer(config),
    )


def make_train_step(task, model, config):
    """A pure ``(state, batch, rng) -> (state, metrics)``; gradients averaged over the global batch."""

    def train_step(state: TrainState, batch: dict, step_rng):
        def loss_of(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            return task.loss_fn(model, variables, batch, step_rng, config)

        (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        metrics = dict(metrics, loss=loss, grad_norm=_global_norm(grads))
        return state.apply_gradients(grads, batch_stats), metrics

    return train_step


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def train(config, workdir: str, task: Task) -> dict:
    """Trains ``config.task`` (an ``ml_collections.ConfigDict``) for ``config.total_steps`` steps in
    ``workdir``, resuming if it holds checkpoints.

    Returns the final report (also written to ``workdir/report.json``).
    """
    started = time.time()
    model = task.create_model(config)
    mesh = mesh_lib.make_data_mesh()
    mesh_lib.check_divisible(config.batch_size, mesh)
    is_main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)

    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    state = create_train_state(init_rng, config, task, model)
    state = jax.device_put(state, mesh_lib.replicated(mesh))

    ckpt = checkpoints_lib.TrainCheckpoints(
        os.path.join(workdir, "checkpoints"), save_every=config.checkpoint_every, keep=config.keep_checkpoints
    )
    first_step = 0
    if ckpt.latest_step is not None:
        state = ckpt.restore(state)
        first_step = int(state.step)
        _log(is_main, f"resumed from checkpoint at step {first_step}")

    step_fn = jax.jit(
        make_train_step(task, model, config),
        in_shardings=(mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh), mesh_lib.replicated(mesh)),
        out_shardings=(mesh_lib.replicated(mesh), mesh_lib.replicated(mesh)),
        donate_argnums=(0,),
    )
    writer = metrics_lib.MetricWriter(workdir, enabled=is_main)
    batches = task.input_pipeline(
        config, first_step=first_step, process_index=jax.process_index(), process_count=jax.process_count()
    )
    progress = _progress_bar(first_step, config.total_steps, enabled=is_main)
    eval_metrics, last_metrics, initial_eval = {}, {}, {}
    if task.evaluate and config.eval_every and first_step == 0:
        initial_eval = task.evaluate(model, jax.device_get(state.variables), config)
        writer.write(0, initial_eval, split="eval")
    step = first_step
    tick, tick_step = time.time(), first_step
    for step in range(first_step + 1, config.total_steps + 1):
        local_batch = next(batches)
        batch = mesh_lib.global_batch_from_local(local_batch, mesh)
        state, metrics = step_fn(state, batch, jax.random.fold_in(train_rng, step))
        if step % config.log_every == 0 or step == config.total_steps:
            last_metrics = jax.device_get(metrics)
            now = time.time()
            last_metrics["steps_per_second"] = (step - tick_step) / max(now - tick, 1e-9)
            tick, tick_step = now, step
            writer.write(step, last_metrics)
            progress.set_postfix(loss=f"{float(last_metrics['loss']):.4f}", refresh=False)
        ckpt.save(step, state, config.to_dict())
        if task.evaluate and config.eval_every and (step % config.eval_every == 0 or step == config.total_steps):
            eval_metrics = task.evaluate(model, jax.device_get(state.variables), config)
            writer.write(step, eval_metrics, split="eval")
        progress.update(1)
    if ckpt.latest_step != step and step > 0:
        ckpt.save(step, state, config.to_dict(), force=True)
    ckpt.close()
    progress.close()
    writer.close()

    report = {
        "task": config.task,
        "steps": step,
        "resumed_from_step": first_step,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "wall_seconds": round(time.time() - started, 2),
        "final_train_metrics": {k: float(v) for k, v in last_metrics.items()},
        "initial_eval_metrics": initial_eval,
        "final_eval_metrics": {k: float(v) for k, v in eval_metrics.items()},
        "checkpoint_dir": ckpt.directory,
    }
    if is_main:
        with open(os.path.join(workdir, "report.json"), "w") as f:
            json.dump(report, f, indent=2)
    return report


def _progress_bar(first_step: int, total_steps: int, *, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        initial=first_step, total=total_steps, unit="step", disable=not enabled, mininterval=2.0, dynamic_ncols=True
    )


def _log(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
