"""Throughput case "train": one ArtMiner feature-learning step on mined pairs, pairs/s.

* JAX: the library's loss on kept pairs (``artminer.losses``: ``pair_inputs`` -> ``mining.train_canvas_features``
  (train-mode BN per image on padded canvases, running statistics updated image by image) ->
  ``hard_positive_terms`` -> mean), under ``training.loop.make_train_step`` with Adam from
  ``training.optimizers.build_optimizer`` (lr 1e-5, betas (0.5, 0.999), as ``configs/artminer.py``), jitted
  with the state donated. The ``artminer`` task's own ``loss_fn`` also mines inside every step (a pyramid of
  every candidate at every scale); that part is not in this row, whose PyTorch side trains on pairs mined
  beforehand, as the release does once per epoch.
* PyTorch: ``baselines.torch.artminer_train.training_step``: each image alone through the ResNet-18 port in
  train mode at batch size 1 and its own size, the hinge loss, ``backward``, ``Adam.step``.

Inputs: candidate images of mixed aspect ratios (smooth random pictures) as ``artminer.data.CandidateImages``
batches, and ``MinedPairs`` drawn at random (valid scales and positions: with random weights, mining would
pick arbitrary pairs anyway). Both start from ``models.artminer``'s random weights and BN statistics.

Sizes: CPU 4 pairs (the release's batch) at scales (20, 16) cells (319 px canvases); GPU 4 pairs at the
release's 7 search scales, 80 cells (1279 px) down to 20; quick: 2 pairs at (14, 13). JAX computes every image on
a canvas of the largest scale (one compiled shape), PyTorch at each image's own size; both count as the same
pairs. Agreement: the first step's loss within 1e-4 and gradient norm within 1e-3 (relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from artdup_jax.artminer import data, losses, mining
from artdup_jax.artminer.model import NETWORK
from artdup_jax.nn.normalise import IMAGENET_MEAN, IMAGENET_STD
from artdup_jax.training.optimizers import build_optimizer
from baselines.torch import artminer_train
from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case
from benchmarks.throughput.train_step import STEP_SOURCE, StepConfig, timed_step

LEARNING_RATE, BETAS = 1e-5, (0.5, 0.999)
THRESHOLD, NEGATIVES_TOP_K = 0.8, 10
LOSS_TOLERANCE, GRAD_NORM_TOLERANCE = 1e-4, 1e-3


def mining_config(scales: tuple[int, ...]) -> mining.MiningConfig:
    """The release's regions (margin 5, 10x10 verification, 12x12 training) at the given scales."""
    return mining.MiningConfig(search_scales=tuple(scales), query_scales=(scales[-1],), min_cells=13)


def candidate_batch(seed: int, num_images: int, config: mining.MiningConfig) -> dict[str, np.ndarray]:
    """``CandidateImages.batch`` of ``num_images`` smooth random pictures, landscape and portrait."""
    size = 16 * max(config.scales)
    shapes = [(size * 3 // 4, size) if i % 2 == 0 else (size, size * 3 // 4) for i in range(num_images)]
    pictures = [models.smooth_images(seed + i, (1, h, w, 3), cell=16)[0] for i, (h, w) in enumerate(shapes)]
    images = data.CandidateImages([str(i) for i in range(num_images)], config,
                                      read=lambda path: pictures[int(path)])
    return images.batch(range(num_images))


def random_pairs(seed: int, batch: dict, pairs: int, config: mining.MiningConfig) -> mining.MinedPairs:
    """``pairs`` pairs of distinct images, a random scale each, 2x2 blocks where the 12x12 region fits."""
    rng = np.random.default_rng(seed)
    image = rng.permutation(len(batch["image"]))[:2 * pairs].reshape(pairs, 2)
    scale = rng.integers(0, len(config.scales), (pairs, 2))
    cells = batch["cells"][image, scale]  # (pairs, 2, 2)
    low, high = config.margin, cells - config.margin - mining.QUERY_CELLS  # inclusive range of positions
    position = low + np.floor(rng.uniform(size=cells.shape) * (high - low + 1)).astype(np.int64)
    return mining.MinedPairs(image=image.astype(np.int32), scale=scale.astype(np.int32),
                             position=position.astype(np.int32), votes=np.zeros(pairs, np.int32),
                             candidate_votes=np.zeros(pairs, np.int32))


def loss_on_mined_pairs(model, variables, batch, rng, config):
    """``artminer.losses.training_loss`` without its mining call: the pairs come in ``batch["mined"]``."""
    del model, rng
    mined = batch["mined"]
    canvases, cells = losses.pair_inputs(batch, mined)
    maps, batch_stats = mining.train_canvas_features(variables, canvases, cells)
    pairs = mined.image.shape[0]
    terms = losses.hard_positive_terms(maps.reshape(pairs, 2, *maps.shape[1:]), cells.reshape(pairs, 2, 2),
                                         mined.position, config.mining, threshold=THRESHOLD,
                                         negatives_top_k=NEGATIVES_TOP_K)
    metrics = {"positive": jnp.mean(terms["positive"]), "negative": jnp.mean(terms["negative"])}
    return jnp.mean(terms["loss"]), (metrics, batch_stats)


def torch_pairs(batch: dict, mined: mining.MinedPairs, device):
    """Each pair's two images cut from their canvases at their own size, ImageNet-normalised ``(1, 3, H, W)``,
    and the positions as Python ints."""
    canvases, cells = map(np.asarray, jax.jit(losses.pair_inputs)(batch, mined))
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    images = []
    for canvas, (rows, cols) in zip(canvases, cells):
        image = (canvas[:16 * rows - 1, :16 * cols - 1] - mean) / std
        images.append(models.nchw(image[None], device))
    pairs = list(zip(images[0::2], images[1::2]))
    positions = [tuple(tuple(int(v) for v in p) for p in pair) for pair in np.asarray(mined.position)]
    return pairs, positions


def case(pairs: int, scales: tuple[int, ...], *, device: str, repeats: int, warmup: int, seed: int) -> dict:
    dev = harness.torch_device(device)
    net, variables = models.artminer(dev, seed)
    config = StepConfig(mining=mining_config(scales),
                        optimizer=StepConfig(name="adam", learning_rate=LEARNING_RATE, b1=BETAS[0], b2=BETAS[1],
                                             schedule="constant"), total_steps=1)
    batch = candidate_batch(seed, 2 * pairs, config.mining)
    mined = random_pairs(seed, batch, pairs, config.mining)

    # JAX: the training loop's step on the library's loss.
    task = StepConfig(loss_fn=loss_on_mined_pairs)
    jax_batch = jax.device_put({**batch, "mined": mined})
    rng = jax.random.key(seed)
    jax_step, stats = timed_step(task, NETWORK, config, variables, build_optimizer(config), jax_batch, rng)
    compiled = {"jax": stats}

    # PyTorch: the release's step on the same pairs.
    torch_images, positions = torch_pairs(batch, mined, dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, betas=BETAS)

    def torch_step():
        with models.default_device(dev):
            return artminer_train.training_step(net, optimiser, torch_images, positions,
                                                training_cells=config.mining.training_cells, threshold=THRESHOLD,
                                                negatives_top_k=NEGATIVES_TOP_K)

    candidates, first = harness.keeping_first_outputs({"jax": jax_step, "torch": torch_step})
    canvas = 16 * max(scales) - 1
    return run_case(
        "train", f"ArtMiner feature-learning step, {pairs} pairs per step",
        candidates, subject="jax", repeats=repeats, warmup=warmup,
        params={"scales": "/".join(map(str, scales)), "canvas": f"{canvas}x{canvas}", "pairs": pairs,
                "images_per_step": 2 * pairs, "optimiser": "adam(1e-5, b1=0.5)",
                "jax_step": STEP_SOURCE + " + artminer.losses (loss on mined pairs)"},
        agreement=lambda _: harness.first_step_agreement(first, ("loss", "positive", "negative"),
                                                         loss_tolerance=LOSS_TOLERANCE,
                                                         grad_norm_tolerance=GRAD_NORM_TOLERANCE),
        items=(pairs, "pairs"), compiled=compiled, memory=True)
