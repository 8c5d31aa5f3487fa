"""The ``artminer`` training task: self-supervised, spatially consistent feature learning.

Mining and weights: the release mines once per epoch with the weights of the epoch's start. Here mining
runs *inside every step* (``loss_fn``: ``losses.training_loss``, which mines with ``mining.mine`` then takes the
loss) on that step's candidate images, with the step's own weights (inference-mode BN, no gradient), so the
whole step stays a pure function of (train state, batch, step rng): a resumed run gives the same losses, the
harness stays generic, and the input pipeline never needs weights. The price is a smaller search: each step
retrieves among its ``batch_size`` candidates (the release: 2000 images per epoch), and the candidates'
pyramids are recomputed every step (about the release's forward passes per optimiser step at the default
sizes).

Differences from the release kept on purpose: the harness applies every Adam step, also when all 16 hinge
terms are 0 (the release skips it, so its step counter and moments do not move); Flax updates BN running
variances with the biased batch variance (PyTorch: unbiased).

Collections (``data``): ``config.input.folder`` (every image file in it, sorted); empty: a synthetic
collection (``data.synthetic_collection`` with ``config.input.synthetic``). ``evaluate`` runs one-shot
detection and reports the mAPs of ``metrics`` (those ``eval.brueghel`` reports) on ``config.evals.folder`` /
``annotations``, or on a held-out synthetic collection (``config.evals.synthetic``).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer import data, losses, mining
from artdup_jax.artminer.annotations import read_annotations
from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.inference import DetectionConfig, Query, detect
from artdup_jax.artminer.metrics import average_precision, summarise
from artdup_jax.artminer.model import NETWORK
from artdup_jax.artminer.weights import load_weights
from artdup_jax.training.initialise import replace_matching
from artdup_jax.training.task import Task


def mining_config(config) -> mining.MiningConfig:
    settings = dict(config.mining)
    for name in ("search_scales", "query_scales"):
        settings[name] = tuple(int(s) for s in settings[name])
    return mining.MiningConfig(**settings)


def create_model(config):
    return NETWORK


def init_variables(model, rng, config) -> dict:
    variables = dict(jax.jit(lambda key: model.init(key, jnp.zeros((1, 31, 31, 3), jnp.float32), train=False))(rng))
    if config.get("weights"):
        variables = replace_matching(variables, load_weights(config.weights), source=config.weights)
    return variables


def loss_fn(model, variables, batch, rng, config):
    del model
    loss, metrics, batch_stats = losses.training_loss(variables, batch, rng, mining_config(config),
                                                      threshold=config.loss.threshold,
                                                      negatives_top_k=config.loss.negatives_top_k)
    return loss, (metrics, batch_stats)


# ------------------------------------------------------------------------------------------------ input


def training_paths(config) -> list[str]:
    if config.input.folder:
        return data.image_paths(config.input.folder)
    if not config.input.get("synthetic"):
        raise ValueError("set --config.input.folder=DIR (the collection to train on) or config.input.synthetic")
    return data.image_paths(data.synthetic_collection(config.input.synthetic.to_dict()))


def input_pipeline(config, *, first_step, process_index, process_count):
    inp = config.input
    images = data.CandidateImages(training_paths(config), mining_config(config), max_side=inp.max_side,
                                  cache_bytes=int(inp.cache_gb * 2**30))
    return data.candidate_batches(images, seed=config.seed, per_step=config.batch_size, first_step=first_step,
                                  process_index=process_index, process_count=process_count, threads=inp.threads)


# ---------------------------------------------------------------------------------------------- evaluate


def evaluate(model, variables, config) -> dict:
    """One-shot detection mAP (both averages of ``metrics``, as ``eval.brueghel`` reports them) with the current
    weights, inference BN."""
    del model
    evals = config.evals
    if evals.folder:
        folder, annotations = evals.folder, evals.annotations
    elif evals.get("synthetic"):
        folder = data.synthetic_collection(evals.synthetic.to_dict())
        annotations = os.path.join(folder, "annotations.json")
    else:
        return {}
    queries = read_annotations(annotations)
    if evals.max_queries:
        queries = queries[: evals.max_queries]
    detection = DetectionConfig(scales=tuple(evals.scales), num_predictions=evals.num_predictions,
                                resample="nearest")
    variables = jax.tree.map(np.asarray, variables)
    cache = FeatureCache(variables, resample=detection.resample, max_batch=detection.max_batch,
                         max_bytes=int(evals.cache_gb * 2**30))
    ranked = detect(variables, [Query(os.path.join(folder, q.image), q.box) for q in queries],
                    data.image_paths(folder), detection, cache=cache)
    aps = [average_precision([(os.path.basename(p), tuple(b)) for p, b in zip(r.paths, r.boxes)], q.gt,
                             num_predictions=evals.num_predictions)[0] for q, r in zip(queries, ranked)]
    summary = summarise(queries, aps)
    return {"mAP_per_query": summary["mAP_per_query"], "mAP_per_class": summary["mAP_per_class"]}


TASK = Task(name="artminer", create_model=create_model, init_variables=init_variables, loss_fn=loss_fn,
            input_pipeline=input_pipeline, evaluate=evaluate)
