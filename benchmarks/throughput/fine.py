"""Throughput stage "fine": RANSAC-Flow's fine network on coarsely aligned pairs, pairs per second.

The evaluation scripts' recipe, ``ransac_flow.refine`` against the PyTorch port
``baselines.torch.ransac_flow_fine.refine``: warp the source by the coarse homography, features of both
images, both correlation directions, flow and matchability decoders, composition of the flows, the
upsampled matchability product. Random-weight network (``models.fine_network``), images of 480 x 640 (the
coarse stage's evaluation size, shorter side 480), a near-identity homography.

Cases: one pair per call, as the official code runs it; on GPU also 8 pairs per call (both frameworks
batched). ``quick``: one 64 x 96 pair. Agreement: max abs difference of the final grid and of the
matchability, within 1e-4 of their largest value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from artdup_jax.ransac_flow import refine
from baselines.torch import ransac_flow_fine as reference
from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case

TOLERANCE = 1e-4


def _homography(seed: int) -> np.ndarray:
    """A near-identity homography in normalised coordinates (target -> source)."""
    rng = np.random.default_rng(seed)
    return (np.eye(3) + rng.normal(scale=[[0.03, 0.03, 0.05], [0.03, 0.03, 0.05], [0.01, 0.01, 0]])).astype(np.float32)


def _refine_case(net, variables, pairs: int, height: int, width: int, *, device, repeats, warmup, seed):
    dev = harness.torch_device(device)
    source = models.smooth_images(seed, (pairs, height, width, 3))
    target = models.smooth_images(seed + 1, (pairs, height, width, 3))
    homography = _homography(seed + 2)
    args_jax = (variables, jnp.asarray(source), jnp.asarray(target), jnp.asarray(homography))
    source_t, target_t = models.nchw(source, dev), models.nchw(target, dev)
    homography_t = torch.from_numpy(homography).to(dev)

    def run_torch():
        with models.default_device(dev):
            return reference.refine(net, source_t, target_t, homography_t)

    def agreement(outs):
        ours, theirs = outs["jax"], outs["torch"]
        return harness.relative_agreement({"grid": (ours["grid"], theirs["grid"]),
                                           "matchability": (ours["matchability"], theirs["matchability"])},
                                          TOLERANCE)

    compiled = {"jax": harness.compiled_stats(refine, *args_jax)}
    return run_case("fine", f"refine, {pairs} pair{'s' if pairs > 1 else ''} per call", {
        "jax": lambda: refine(*args_jax), "torch": run_torch}, subject="jax", repeats=repeats, warmup=warmup,
        params={"entry_point": "ransac_flow.refine", "image": f"{height}x{width}", "pairs": pairs},
        agreement=agreement, items=(pairs, "pairs"), compiled=compiled, memory=True)


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    """All fine cases; ``quick`` runs one tiny pair (a few seconds)."""
    net, variables = models.fine_network(harness.torch_device(device), seed)
    variables = jax.device_put(variables)
    if quick:
        cases, repeats, warmup = [(1, 64, 96)], 2, 0
    else:
        cases, repeats, warmup = [(1, 480, 640)] + ([(8, 480, 640)] if device == "gpu" else []), 3, 1
    return [_refine_case(net, variables, pairs, h, w, device=device, repeats=repeats, warmup=warmup, seed=seed + 10)
            for pairs, h, w in cases]
