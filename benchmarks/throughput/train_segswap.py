"""Throughput case "train": one SegSwap stage-1 training step, positive pairs per second.

* JAX: ``training.loop.make_train_step`` on the ``segswap`` task's ``loss_fn`` (frozen backbone inside the
  step, one coin for the batch, positives and in-batch negatives in one transformer call, the spec's loss),
  the optimiser of ``configs/segswap.py`` through ``training.optimizers.build_optimizer`` (Adam, transformer
  only), jitted with the state donated, as the training loop runs it;
* PyTorch: ``baselines.torch.segswap_train.training_step`` on the model ports (backbone under ``no_grad``,
  separate positive and negative transformer calls, as the official iteration).

Both start from ``models.segswap``'s random weights (converted to JAX) and see the same batch: smooth random
images, soft masks with a plateau at 1, random flows and B key masks; every image has its own content group,
so every in-batch negative counts (the spec's plain mean). Adam at the stage-1 rate 2e-4 (constant: the
warm-up's first step would be 0 in ``build_optimizer``'s schedule). Dropout is 0 in both (the released rate
0.1 draws different masks in each framework, and the first step could not be compared); it costs a few
elementwise ops next to the matmuls.

Sizes: CPU 4 positives (the fewest with 3 in-batch negatives each) at 256² (16 x 16 cells) + 12 negatives;
GPU 5 positives at 480² (30 x 30), the official batch [15 negatives]; quick: 4 positives at 64² (4 x 4).
Agreement: the first step's loss, BCE and correspondence terms within 1e-4, gradient norm within 1e-3
(relative).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import torch

from artdup_jax.segswap import task as segswap_task
from artdup_jax.segswap.transformer import SMALL
from artdup_jax.training.optimizers import build_optimizer
from baselines.torch import segswap_train
from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case
from benchmarks.throughput.train_step import STEP_SOURCE, StepConfig, timed_step

LEARNING_RATE = 2e-4
LOSS_TOLERANCE, GRAD_NORM_TOLERANCE = 1e-4, 1e-3


def step_config() -> StepConfig:
    transformer = {name: getattr(SMALL, name) for name in SMALL.__dataclass_fields__}
    return StepConfig(
        model=dict(transformer, dropout=0.0),
        loss=StepConfig(correspondence_weight=segswap_train.CORRESPONDENCE_WEIGHT,
                        negatives_per_positive=segswap_train.NEGATIVES_PER_POSITIVE),
        hard_negatives=StepConfig(count=0),
        optimizer=StepConfig(name="adam", learning_rate=LEARNING_RATE, schedule="constant", trainable=("transformer",)),
        total_steps=1)


def synthetic_batch(seed: int, positives: int, size: int) -> dict[str, np.ndarray]:
    """A batch with the task's signature: images ``(P, S, S, 3)``, masks ``(P, g, g)`` (soft, a plateau at 1),
    flows ``(P, g, g, 2)``, ``key_mask_b (P, g, g)`` bool, ``groups (P, 2, 2)`` all distinct across images."""
    rng = np.random.default_rng(seed)
    cells = size // 16

    def soft_masks():
        masks = rng.uniform(0.0, 0.9, (positives, cells, cells)) * (rng.uniform(size=(positives, cells, cells)) < 0.5)
        masks[:, cells // 4:cells // 4 + max(cells // 2, 1), cells // 4:cells // 4 + max(cells // 2, 1)] = 1.0
        return masks.astype(np.float32)

    index = np.arange(positives)
    return {
        "image_a": np.array(models.smooth_images(seed + 1, (positives, size, size, 3))),
        "image_b": np.array(models.smooth_images(seed + 2, (positives, size, size, 3))),
        "mask_a": soft_masks(), "mask_b": soft_masks(),
        "flow_a": rng.uniform(0, 1, (positives, cells, cells, 2)).astype(np.float32),
        "flow_b": rng.uniform(0, 1, (positives, cells, cells, 2)).astype(np.float32),
        "key_mask_b": rng.uniform(size=(positives, cells, cells)) < 0.8,
        "groups": np.stack([np.stack([index, index], -1), np.stack([positives + index, index], -1)],
                           1).astype(np.int32),
    }


def case(positives: int, size: int, *, device: str, repeats: int, warmup: int, seed: int) -> dict:
    dev = harness.torch_device(device)
    backbone, encoder, variables = models.segswap(dev, seed)
    batch = synthetic_batch(seed, positives, size)
    rng = jax.random.key(seed)

    # JAX: the training loop's step on the segswap task.
    config = step_config()
    task = segswap_task.TASK
    model = task.create_model(config)
    jax_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    jax_step, stats = timed_step(task, model, config, variables, build_optimizer(config), jax_batch, rng)
    compiled = {"jax": stats}

    # PyTorch: the same coin as the JAX step (its first split of the step rng), the official iteration.
    swap = bool(jax.random.bernoulli(jax.random.split(rng, 3)[0]))
    for module in encoder.modules():
        if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d)):
            module.p = 0.0
        if isinstance(module, torch.nn.MultiheadAttention):
            module.dropout = 0.0
    encoder.train()
    backbone.eval()  # frozen: inference-mode BN, features under no_grad
    optimiser = torch.optim.Adam(encoder.parameters(), lr=LEARNING_RATE)
    torch_batch = {k: (models.nchw(v, dev) if k.startswith("image") else torch.from_numpy(np.asarray(v)).to(dev))
                   for k, v in batch.items() if k != "groups"}

    def torch_step():
        with models.default_device(dev):
            return segswap_train.training_step(backbone, encoder, optimiser, torch_batch, swap)

    candidates, first = harness.keeping_first_outputs({"jax": jax_step, "torch": torch_step})
    cells = size // 16
    return run_case(
        "train", f"SegSwap transformer step, {positives} positive pairs per step",
        candidates, subject="jax", repeats=repeats, warmup=warmup,
        params={"image": f"{size}x{size}", "maps": f"{cells}x{cells}", "positives": positives,
                "negatives": positives * segswap_train.NEGATIVES_PER_POSITIVE, "optimiser": "adam(2e-4), transformer",
                "dropout": 0.0, "swap": swap, "jax_step": STEP_SOURCE + " + segswap.task.loss_fn"},
        agreement=lambda _: harness.first_step_agreement(
            first, ("loss", "bce", "correspondence"), loss_tolerance=LOSS_TOLERANCE,
            grad_norm_tolerance=GRAD_NORM_TOLERANCE),
        items=(positives, "pairs"), compiled=compiled, memory=True)
