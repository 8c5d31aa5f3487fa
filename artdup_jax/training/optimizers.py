"""Optimisers from config: ``config.optimizer`` names an optax optimiser and its schedule."""

from __future__ import annotations

import optax


def learning_rate_schedule(config) -> optax.Schedule:
    """``constant``, ``cosine`` (with linear warm-up) or ``step`` (multiply by ``decay`` every ``decay_steps``)."""
    opt = config.optimizer
    kind = opt.get("schedule", "constant")
    if kind == "constant":
        return optax.constant_schedule(opt.learning_rate)
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, opt.learning_rate, opt.get("warmup_steps", 0), max(config.total_steps, 1)
        )
    if kind == "step":
        return optax.exponential_decay(
            opt.learning_rate, opt.decay_steps, opt.decay, staircase=True
        )
    raise ValueError(f"unknown learning-rate schedule {kind!r}")


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
