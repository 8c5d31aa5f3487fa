"""Throughput stage "train": one optimiser step of each method's training, samples (pairs) per second.

Cases (each JAX vs a PyTorch port of the official step, same random weights, same inputs; the first step's
losses and gradient norm must agree, later steps are only timed):

* RANSAC-Flow fine network, stage 3 (below);
* SegSwap transformer, stage 1 (``train_segswap``);
* ArtMiner feature learning on mined pairs (``train_artminer``).

RANSAC-Flow fine network, stage 3 (``mode="flow+match"``, mu = 1, lambda = 0.01),
Adam(2e-4, betas (0.5, 0.999)) on all three networks:

* JAX: ``training.loop.make_train_step`` with the ``ransac_flow`` task's loss, jitted with the state
  donated, exactly as the training loop runs it;
* PyTorch: the official step, written below from the spec on the PyTorch ports of the network
  (``baselines.torch.ransac_flow_fine``) and of the losses (``baselines.torch.ransac_flow_losses``):
  BN in training mode, both directions of every pair in one batch, ``loss.backward()``, ``Adam.step()``.

Both start from the same random weights and see the same pairs (random 224 x 224 images; margin 88).
Batch: the official 16 pairs on GPU, 2 on CPU (a 2-core CPU needs seconds a pair); ``quick``: 1 pair of
32 x 32, margin 8. Agreement: the first step's loss terms and gradient norm, from identical weights, within
1e-4 (loss) and 1e-3 (gradient norm) relative. Later steps are timed only (Adam's first update is about
lr · sign(g), so tiny gradient differences would show up as 2 lr in the weights and say nothing about the
implementations).
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import optax
import torch
import torch.nn.functional as F

from artdup_jax.ransac_flow import task as ransac_flow_task
from baselines.torch import ransac_flow_losses
from baselines.torch.ransac_flow_fine import FineNetworkTorch, identity_grid
from benchmarks.throughput import harness, models, train_artminer, train_segswap
from benchmarks.throughput.harness import run_case
from benchmarks.throughput.train_step import STEP_SOURCE, timed_step

LEARNING_RATE, BETAS = 2e-4, (0.5, 0.999)
WEIGHTS = {"cycle": 1.0, "matchability": 0.01, "gradient": 0.0}  # stage 3
LOSS_TOLERANCE, GRAD_NORM_TOLERANCE = 1e-4, 1e-3


def torch_training_losses(net: FineNetworkTorch, image_1, image_2, *, margin: int, weights=WEIGHTS):
    """Stage-3 forward pass and losses of the official training step, NCHW.

    image_1, image_2: (B, 3, S, S) in [0, 1]. Target k = I[r(k)], source k = I[k], r(k) = (k + B) mod 2B.
    Returns (loss, {"reconstruction_loss", "cycle_loss", "matchability_loss", "gradient_loss"}).
    """
    batch, _, size, _ = image_1.shape
    images = torch.cat([image_1, image_2], dim=0)

    def partner(x):
        return torch.roll(x, batch, dims=0)

    features = net.features(images)
    correlation = net.netCorr(partner(features), features)  # Corr(f[r(k)], f[k])
    upsampled = F.interpolate(net.netFlowCoarse(correlation), size=(size, size), mode="bilinear",
                              align_corners=True)  # (2B, 2, S, S)
    identity = identity_grid(size, size).to(images.device)  # (1, S, S, 2)
    final = torch.clamp(identity + upsampled.permute(0, 2, 3, 1), -1, 1)  # target r(k) pixel -> I[k] location

    def sample(x, grid):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    warped = sample(images, final)
    cycle = sample(partner(final).permute(0, 3, 1, 2), final).permute(0, 2, 3, 1)
    margin_mask = torch.zeros(2 * batch, 1, size, size, device=images.device)
    margin_mask[:, :, margin:size - margin, margin:size - margin] = 1
    match = F.interpolate(net.netMatch(correlation), size=(size, size), mode="bilinear", align_corners=True)
    match = match * margin_mask
    cycle_match = sample(partner(match), final) * match
    terms = {
        "reconstruction_loss": ransac_flow_losses.ssim_loss(warped, partner(images), cycle_match),
        "cycle_loss": ransac_flow_losses.cycle_loss(cycle, identity, cycle_match),
        "matchability_loss": ransac_flow_losses.matchability_loss(cycle_match, margin_mask),
        "gradient_loss": ransac_flow_losses.gradient_loss(upsampled, cycle_match, margin_mask),
    }
    loss = (terms["reconstruction_loss"] + weights["cycle"] * terms["cycle_loss"]
            + weights["matchability"] * terms["matchability_loss"] + weights["gradient"] * terms["gradient_loss"])
    return loss, terms


def _ransac_flow_case(pairs: int, size: int, margin: int, *, device: str, repeats: int, warmup: int, seed: int):
    dev = harness.torch_device(device)
    net, variables = models.fine_network(dev, seed)
    image_1 = models.smooth_images(seed + 1, (pairs, size, size, 3))
    image_2 = models.smooth_images(seed + 2, (pairs, size, size, 3))

    # JAX: the training loop's step on the ransac_flow task.
    config = types.SimpleNamespace(mode="flow+match", loss_weights=dict(WEIGHTS),
                                   input=types.SimpleNamespace(margin=margin))
    task = ransac_flow_task.TASK
    model = task.create_model(config)
    tx = optax.adam(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1])
    batch = {"image_1": jnp.asarray(image_1), "image_2": jnp.asarray(image_2)}
    rng = jax.random.key(seed)
    jax_step, stats = timed_step(task, model, config, variables, tx, batch, rng)
    compiled = {"jax": stats}

    # PyTorch: the official step.
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, betas=BETAS)
    image_1_t, image_2_t = models.nchw(image_1, dev), models.nchw(image_2, dev)
    parameters = [p for p in net.parameters() if p.requires_grad]

    def torch_step():
        optimiser.zero_grad(set_to_none=True)
        with models.default_device(dev):
            loss, terms = torch_training_losses(net, image_1_t, image_2_t, margin=margin)
        loss.backward()
        grad_norm = torch.sqrt(sum(torch.sum(p.grad.square()) for p in parameters if p.grad is not None))
        optimiser.step()
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), **{k: v.detach() for k, v in terms.items()}}

    candidates, first = harness.keeping_first_outputs({"jax": jax_step, "torch": torch_step})

    return run_case(
        "train", f"RANSAC-Flow fine network, stage 3, {pairs} pair{'s' if pairs > 1 else ''} per step",
        candidates, subject="jax",
        repeats=repeats, warmup=warmup,
        params={"image": f"{size}x{size}", "pairs": pairs, "images_per_step": 2 * pairs, "margin": margin,
                "optimiser": "adam(2e-4, b1=0.5)", "jax_step": STEP_SOURCE},
        agreement=lambda _: harness.first_step_agreement(
            first, ("loss", "reconstruction_loss", "cycle_loss", "matchability_loss"),
            loss_tolerance=LOSS_TOLERANCE, grad_norm_tolerance=GRAD_NORM_TOLERANCE),
        items=(pairs, "pairs"), compiled=compiled, memory=True)


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    """One training step of RANSAC-Flow, SegSwap and ArtMiner (sizes in each case's docstring)."""
    if quick:
        repeats, warmup = 2, 0
        ransac_flow, segswap, artminer = (1, 32, 8), (4, 64), (2, (14, 13))
    elif device == "gpu":
        repeats, warmup = 3, 1
        ransac_flow, segswap, artminer = (16, 224, 88), (5, 480), (4, (80, 74, 68, 60, 49, 36, 20))
    else:
        repeats, warmup = 3, 0
        ransac_flow, segswap, artminer = (2, 224, 88), (4, 256), (4, (20, 16))
    options = dict(device=device, repeats=repeats, warmup=warmup, seed=seed)
    return [
        _ransac_flow_case(*ransac_flow, **options),
        train_segswap.case(*segswap, **options),
        train_artminer.case(*artminer, **options),
    ]
