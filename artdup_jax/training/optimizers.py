"""Optimisers from config: ``config.optimizer`` names an optax optimiser and its schedule."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def learning_rate_schedule(config) -> optax.Schedule:
    """``constant``, ``cosine`` (with linear warm-up) or ``step`` (linear warm-up, then multiply by ``decay``
    every ``decay_steps``).

    ``step``: the rate rises linearly from 0 over ``warmup_steps`` (default 0: none), then is
    ``learning_rate · decay^⌊t / decay_steps⌋`` with ``t`` the global step, so the decay boundaries are the
    absolute steps ``decay_steps, 2·decay_steps, …`` whatever the warm-up length (SegSwap:
    1,000 warm-up steps, then 2e-4 until step 1,000 + 50 epochs and ×0.05 after).
    """
    opt = config.optimizer
    kind = opt.get("schedule", "constant")
    if kind == "constant":
        return optax.constant_schedule(opt.learning_rate)
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, opt.learning_rate, opt.get("warmup_steps", 0), max(config.total_steps, 1)
        )
    if kind == "step":
        decayed = optax.exponential_decay(opt.learning_rate, opt.decay_steps, opt.decay, staircase=True)
        warmup_steps = int(opt.get("warmup_steps", 0))
        if warmup_steps <= 0:
            return decayed
        return _with_linear_warmup(decayed, opt.learning_rate, warmup_steps)
    raise ValueError(f"unknown learning-rate schedule {kind!r}")


def _with_linear_warmup(schedule: optax.Schedule, peak: float, warmup_steps: int) -> optax.Schedule:
    """``peak · t / warmup_steps`` for ``t < warmup_steps``, then ``schedule(t)`` at the global step ``t``."""

    def warmed_up(step):
        ramp = peak * jnp.minimum(step, warmup_steps) / warmup_steps
        return jnp.where(step < warmup_steps, ramp, schedule(step))

    return warmed_up


def build_optimizer(config) -> optax.GradientTransformation:
    opt = config.optimizer
    schedule = learning_rate_schedule(config)
    if opt.name == "adam":
        tx = optax.adam(schedule, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999))
    elif opt.name == "adamw":
        tx = optax.adamw(schedule, weight_decay=opt.get("weight_decay", 1e-4))
    elif opt.name == "sgd":
        tx = optax.sgd(schedule, momentum=opt.get("momentum", 0.9))
    else:
        raise ValueError(f"unknown optimizer {opt.name!r}")
    if opt.get("weight_decay") and opt.name != "adamw":
        tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
    if opt.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
    if opt.get("trainable"):
        tx = _only_train(tx, tuple(opt.trainable))
    return tx


def _only_train(tx, trainable: tuple[str, ...]) -> optax.GradientTransformation:
    """Updates only the top-level parameter groups named in ``trainable``; the others stay fixed."""

    def labels(params):
        unknown = set(trainable) - set(params)
        if unknown:
            raise ValueError(f"optimizer.trainable names {sorted(unknown)}, not among {sorted(params)}")
        return {name: ("train" if name in trainable else "frozen") for name in params}

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
