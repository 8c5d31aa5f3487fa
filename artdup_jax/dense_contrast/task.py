"""The ``dense_contrast`` training task (``TASK``, found by name by ``train.tasks``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.dense_contrast import data, losses
from artdup_jax.dense_contrast.model import DenseEncoder
from artdup_jax.training.task import Task

# Evaluation pairs come from their own seed stream, never seen in training.
_EVAL_SEED_OFFSET = 1_000_003


def create_model(config) -> DenseEncoder:
    m = config.model
    return DenseEncoder(depth=m.depth, last_stage=m.last_stage, embed_dim=m.embed_dim)


def init_variables(model, rng, config) -> dict:
    size = config.input.image_size
    return dict(model.init(rng, jnp.zeros((1, size, size, 3), jnp.float32), train=False))


def loss_fn(model, variables, batch, rng, config):
    del rng, config  # the loss is deterministic given the batch
    both = jnp.concatenate([batch["image_a"], batch["image_b"]], axis=0)
    embeddings, updates = model.apply(variables, both, train=True, mutable=["batch_stats"])
    embedding_a, embedding_b = jnp.split(embeddings, 2, axis=0)
    logits = losses.cell_logits(embedding_a, embedding_b, model_temperature(variables))
    loss, accuracy = losses.cell_matching_loss(logits, batch["target_cell"])
    return loss, ({"accuracy": accuracy}, updates["batch_stats"])


def model_temperature(variables) -> float:
    del variables
    return 0.1


def _example_fn(config, seed):
    inp = config.input
    return functools.partial(
        data.make_pair,
        seed=seed,
        image_size=inp.image_size,
        stride=inp.feature_stride,
        max_corner_shift=inp.max_corner_shift,
    )


def input_pipeline(config, *, first_step, process_index, process_count):
    from artdup_jax.data.tf_pipeline import indexed_batches  # TensorFlow only for training

    inp = config.input
    return indexed_batches(
        _example_fn(config, config.seed),
        data.signature(inp.image_size, inp.feature_stride),
        first_step=first_step,
        global_batch=config.batch_size,
        process_index=process_index,
        process_count=process_count,
        threads=inp.threads,
    )


_forward_cache: dict = {}


def evaluate(model, variables, config) -> dict:
    """Cell-matching accuracy and loss on ``config.eval_pairs`` held-out pairs (BatchNorm in inference mode)."""
    forward = _forward_cache.get(id(model))
    if forward is None:
        forward = _forward_cache[id(model)] = jax.jit(functools.partial(model.apply, train=False))
    make = _example_fn(config, config.seed + _EVAL_SEED_OFFSET)
    examples = [make(i) for i in range(config.eval_pairs)]
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
    embedding_a = forward(variables, batch["image_a"])
    embedding_b = forward(variables, batch["image_b"])
    logits = losses.cell_logits(embedding_a, embedding_b, model_temperature(variables))
    loss, accuracy = losses.cell_matching_loss(logits, batch["target_cell"])
    return {"loss": float(loss), "accuracy": float(accuracy)}


TASK = Task(
    name="dense_contrast",
    create_model=create_model,
    init_variables=init_variables,
    loss_fn=loss_fn,
    input_pipeline=input_pipeline,
    evaluate=evaluate,
)
