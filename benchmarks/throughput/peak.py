"""Throughput stage "peak": a large float32 matmul in both frameworks, the device's practical FLOP/s ceiling.

The network stages quote their achieved FLOP/s as a fraction of the faster of the two (``harness``'s
summary). n = 4096 on CPU (1024 quick), 8192 on GPU (2048 quick); the inputs are uniform in [0, 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.throughput import harness
from benchmarks.throughput.harness import run_case

_matmul = jax.jit(jnp.matmul)


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    size = {("cpu", False): 4096, ("cpu", True): 1024, ("gpu", False): 8192, ("gpu", True): 2048}[(device, quick)]
    rng = np.random.default_rng(seed)
    a, b = (rng.random((size, size), np.float32) for _ in range(2))
    a_jax, b_jax = jnp.asarray(a), jnp.asarray(b)
    dev = harness.torch_device(device)
    a_torch, b_torch = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)

    def agreement(outs):
        return harness.relative_agreement({"product": (outs["jax"], outs["torch"])}, tolerance=1e-5)

    compiled = {"jax": harness.compiled_stats(_matmul, a_jax, b_jax)}
    return [run_case("peak", f"float32 matmul {size}×{size}", {"jax": lambda: _matmul(a_jax, b_jax),
                                                                "torch": lambda: a_torch @ b_torch},
                     subject="jax", repeats=3 if quick else 5, params={"n": size}, agreement=agreement,
                     flops=2.0 * size**3, compiled=compiled)]
