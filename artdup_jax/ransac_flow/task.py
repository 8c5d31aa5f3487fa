"""The ``ransac_flow`` training task: the fine network's three stages (see configs/ransac_flow.py)."""

from __future__ import annotations

import functools

import numpy as np

from artdup_jax.geometry.sampling import grid_sample, normalised_to_pixel, numpy_identity_grid
from artdup_jax.ransac_flow import data, losses
from artdup_jax.ransac_flow.fine import fine_flow
from artdup_jax.ransac_flow.model import FineNetwork, init_fine_network
from artdup_jax.training.task import Task

_EVAL_SEED_OFFSET = 1_000_003


def create_model(config) -> FineNetwork:
    return FineNetwork()


def init_variables(model, rng, config) -> dict:
    size = config.input.image_size
    variables = dict(init_fine_network(rng, (size, size)))
    if config.get("zero_flow_head"):
        # Uniform window probabilities, i.e. the identity flow, instead of the official random initial flow.
        # The SSIM loss's gradient only points the right way within a pixel or two of the true flow, so short
        # runs must start at the identity; the official 200-epoch recipe keeps the official init.
        flow = dict(variables["params"]["flow_decoder"])
        flow["conv4"] = {"kernel": np.zeros_like(flow["conv4"]["kernel"])}
        variables["params"] = {**variables["params"], "flow_decoder": flow}
    return variables


def loss_fn(model, variables, batch, rng, config):
    del model, rng
    loss, metrics, stats = losses.training_losses(
        variables, batch["image_1"], batch["image_2"], mode=config.mode,
        weights=losses.LossWeights(**config.loss_weights), margin=config.input.margin)
    return loss, (metrics, stats)


def _synthetic(config, seed):
    inp = config.input
    return functools.partial(data.synthetic_pair, seed=seed, size=inp.image_size,
                             max_shift=inp.max_shift, deformation=inp.deformation,
                             jitter=inp.get("jitter", True))


def input_pipeline(config, *, first_step, process_index, process_count):
    from artdup_jax.data.tf_pipeline import indexed_batches  # TensorFlow only for training

    inp = config.input
    if inp.get("pairs_folder"):
        reader = data.MegaDepthPairs(inp.pairs_folder, size=inp.image_size)
        groups = reader.groups()
        make = functools.partial(reader.example, seed=config.seed, groups=groups)
    else:
        make = _synthetic(config, config.seed)
    return indexed_batches(make, data.pair_signature(inp.image_size), first_step=first_step,
                           global_batch=config.batch_size, process_index=process_index,
                           process_count=process_count, threads=inp.threads)


def evaluate(model, variables, config) -> dict:
    """On held-out synthetic pairs with known flow: end-point error (pixels) of the fine flow and the SSIM
    reconstruction loss of the source warped by it, each beside the identity flow's.

    Measured inside the central region the loss covers (margin excluded); the EPE also only where the true
    location is inside the source.
    """
    del model
    make = _synthetic(config, config.seed + _EVAL_SEED_OFFSET)
    pairs = [make(i) for i in range(config.eval_pairs)]
    source = np.stack([p["image_1"] for p in pairs])
    target = np.stack([p["image_2"] for p in pairs])
    truth = np.stack([p["grid_2_to_1"] for p in pairs])
    predicted = np.asarray(fine_flow(variables, source, target)["grid"])
    size, margin = config.input.image_size, config.input.margin
    centre = (slice(None), slice(margin, size - margin), slice(margin, size - margin))
    valid = np.all(np.abs(truth) <= 1, axis=-1)[centre]
    identity = numpy_identity_grid(size, size)

    def epe(grid):
        pixels = np.asarray(normalised_to_pixel(grid, (size, size), align_corners=True))
        true_pixels = np.asarray(normalised_to_pixel(truth, (size, size), align_corners=True))
        return float(np.linalg.norm(pixels - true_pixels, axis=-1)[centre][valid].mean())

    warped = grid_sample(source, predicted, align_corners=True)
    margin_mask = losses.margin_mask(len(pairs), size, margin)
    return {"epe": epe(predicted), "identity_epe": epe(np.broadcast_to(identity, truth.shape)),
            "reconstruction_loss": float(losses.reconstruction_loss(warped, target, margin_mask)),
            "identity_reconstruction_loss": float(losses.reconstruction_loss(source, target, margin_mask))}


TASK = Task(name="ransac_flow", create_model=create_model, init_variables=init_variables,
            loss_fn=loss_fn, input_pipeline=input_pipeline, evaluate=evaluate)
