"""What the training-step cases share: the training loop's step function and a config without ml_collections.

``make_train_step`` is ``artdup_jax.training.loop.make_train_step`` (the step the loop jits), or, where that
module cannot be imported (some GPU images lack one of its imports), the same function written out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from artdup_jax.training.state import TrainState
from benchmarks.throughput import harness

try:
    from artdup_jax.training.loop import make_train_step
    STEP_SOURCE = "artdup_jax.training.loop.make_train_step"
except ImportError:
    STEP_SOURCE = "the same step as training.loop.make_train_step (loop.py not importable)"

    def make_train_step(task, model, config):
        def train_step(state, batch, step_rng):
            def loss_of(params):
                return task.loss_fn(model, {"params": params, "batch_stats": state.batch_stats}, batch, step_rng,
                                    config)

            (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
            grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
            return state.apply_gradients(grads, batch_stats), dict(metrics, loss=loss, grad_norm=grad_norm)

        return train_step


class StepConfig(dict):
    """The few config fields a task's ``loss_fn`` and ``training.optimizers.build_optimizer`` read, with
    attribute access and ``.get`` like an ``ml_collections.ConfigDict``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


def timed_step(task, model, config, variables: dict, tx, batch: dict, rng):
    """The jitted, state-donating training step from ``variables`` (optimiser ``tx``).

    Returns ``(run, compiled_stats)``: ``run()`` takes one step on ``batch`` with ``rng``, keeps the new state
    for the next call and returns the step's metrics; ``compiled_stats`` is the harness's ``compiled_stats``.
    """
    state = jax.device_put(TrainState.create(params=variables["params"], batch_stats=variables["batch_stats"], tx=tx))
    step = jax.jit(make_train_step(task, model, config), donate_argnums=(0,))
    stats = harness.compiled_stats(step, state, batch, rng)
    holder = {"state": state}

    def run():
        holder["state"], metrics = step(holder["state"], batch, rng)
        return metrics

    return run, stats
