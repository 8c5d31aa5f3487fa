"""Throughput rows in bfloat16 mixed precision: the methods' ResNet trunks, float32 master weights, bf16 compute.

A stage like those of ``benchmarks.throughput`` (``run(quick, device) -> list[dict]`` of ``harness.run_case``
results), run by the GPU check beside them. Where it makes sense: the convolution trunks, which carry most of
the FLOPs of feature extraction and training; the SegSwap transformer and the RANSAC-Flow correlation and
decoders stay float32 (the library's modules have no compute dtype there).

* JAX: ``resnet18`` / ``resnet50(last_stage="layer3", dtype=jnp.bfloat16)`` applied to the float32 variables (Flax
  casts parameters and inputs to bf16 per layer, so the stored weights stay float32), output cast to float32;
* PyTorch: the same float32 modules under ``torch.autocast(dtype=torch.bfloat16)``;
* both also in float32 (full precision), the reference.

Cases: ResNet-18 ``layer3`` (ArtMiner features) on 8 images of 959 x 1279 and ResNet-50 ``layer3`` (RANSAC-Flow's
coarse backbone, SegSwap's) on 8 images of 480 x 640 on GPU; one small image each with ``quick``. Agreement:
each bf16 output against PyTorch's float32 output: max |diff| <= 5e-2 x max |float32| and the cosine similarity
of every cell's feature vector >= 0.99 (bf16 keeps 8 significant bits; what matters downstream is the direction
of the L2-normalised cell features). JAX float32 against PyTorch float32 within 1e-4, as in ``features``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case

BF16_TOLERANCE = 5e-2
MIN_COSINE = 0.99
FP32_TOLERANCE = 1e-4


def _cosines(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-cell cosine similarity of ``(..., C)`` feature vectors (cells where both are 0 count as 1)."""
    dot = np.sum(ours * reference, axis=-1)
    norms = np.linalg.norm(ours, axis=-1) * np.linalg.norm(reference, axis=-1)
    return np.where(norms > 0, dot / np.maximum(norms, 1e-30), 1.0)


def agreement(outs: dict) -> dict:
    """bf16 outputs against PyTorch float32 (``"torch fp32"``), and the two float32 outputs against each other."""
    reference = harness.to_numpy(outs["torch fp32"]).astype(np.float64)
    scale = max(float(np.abs(reference).max()), 1e-30)
    checks, ok = {}, True
    for name in ("jax bf16", "torch bf16 (autocast)"):
        ours = harness.to_numpy(outs[name]).astype(np.float64)
        key = name.split()[0]
        relative = float(np.abs(ours - reference).max()) / scale
        cosine = float(_cosines(ours, reference).min())
        checks[f"{key}_bf16_max_rel_diff"] = relative
        checks[f"{key}_bf16_min_cosine"] = cosine
        ok = ok and relative <= BF16_TOLERANCE and cosine >= MIN_COSINE
    fp32 = harness.relative_agreement({"fp32": (outs["jax fp32"], reference)}, FP32_TOLERANCE)
    checks["fp32_max_rel_diff"] = fp32["max_rel_diff"]
    checks["max_abs_diff"] = float(np.abs(harness.to_numpy(outs["jax bf16"]) - reference).max())
    checks.update(tolerance_rel=BF16_TOLERANCE, min_cosine=MIN_COSINE, ok=bool(ok and fp32["ok"]))
    return checks


def _case(case: str, flax_trunk, variables, torch_trunk, images: np.ndarray, *, device: str, repeats: int,
          warmup: int) -> dict:
    import torch

    from artdup_jax.nn.normalise import imagenet_normalise
    from baselines.torch import segswap as segswap_reference

    dev = harness.torch_device(device)
    mean = torch.tensor(segswap_reference.IMAGENET_MEAN, device=dev)[:, None, None]
    std = torch.tensor(segswap_reference.IMAGENET_STD, device=dev)[:, None, None]
    x_jax = jnp.asarray(images)
    x_torch = models.nchw(images, dev)

    @functools.partial(jax.jit, static_argnames="dtype")
    def jax_forward(variables, x, dtype):
        out = flax_trunk(dtype=dtype).apply(variables, imagenet_normalise(x), train=False)
        return out.astype(jnp.float32)

    def torch_forward(bf16: bool):
        with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            return torch_trunk((x_torch - mean) / std).float().permute(0, 2, 3, 1)

    compiled = {"jax bf16": harness.compiled_stats(jax_forward, variables, x_jax, dtype=jnp.bfloat16),
                "jax fp32": harness.compiled_stats(jax_forward, variables, x_jax, dtype=jnp.float32)}
    candidates = {
        "jax bf16": lambda: jax_forward(variables, x_jax, dtype=jnp.bfloat16),
        "torch bf16 (autocast)": lambda: torch_forward(True),
        "jax fp32": lambda: jax_forward(variables, x_jax, dtype=jnp.float32),
        "torch fp32": lambda: torch_forward(False),
    }
    batch, height, width, _ = images.shape
    return run_case("bf16", case, candidates, subject="jax bf16", baseline="torch bf16 (autocast)",
                    repeats=repeats, warmup=warmup, agreement=agreement, items=(batch, "images"),
                    params={"batch": batch, "image": f"{height}x{width}", "weights": "float32",
                            "compute": "bfloat16"},
                    compiled=compiled, flops=compiled["jax fp32"]["flops"], memory=True)


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    from artdup_jax.nn.resnet import resnet18, resnet50

    dev = harness.torch_device(device)
    gpu = device == "gpu"
    repeats, warmup = (2, 0) if quick else (5, 1)
    if quick:
        artminer_shape, resnet50_shape = (1, 63, 95, 3), (1, 64, 96, 3)
    else:
        artminer_shape = (8, 959, 1279, 3) if gpu else (1, 959, 1279, 3)
        resnet50_shape = (8, 480, 640, 3) if gpu else (1, 480, 640, 3)
    results = []
    net, variables = models.artminer(dev, seed)
    results.append(_case(f"ResNet-18 layer3 (ArtMiner), batch {artminer_shape[0]}",
                         functools.partial(resnet18, last_stage="layer3"), jax.device_put(variables), net,
                         models.smooth_images(seed, artminer_shape, 16), device=device, repeats=repeats,
                         warmup=warmup))
    if quick and not gpu:
        return results  # the dry run: one row is enough to keep the code path alive
    trunk, variables = models.resnet50_layer3(dev, seed)
    results.append(_case(f"ResNet-50 layer3 (RANSAC-Flow coarse, SegSwap), batch {resnet50_shape[0]}",
                         functools.partial(resnet50, last_stage="layer3"), jax.device_put(variables), trunk,
                         models.smooth_images(seed + 1, resnet50_shape, 16), device=device, repeats=repeats,
                         warmup=warmup))
    return results
