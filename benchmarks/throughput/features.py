"""Throughput stage "features": the methods' ResNet trunks, images per second.

Cases, each JAX (the library's jitted entry point) against PyTorch (the torchvision trunk as the
official code runs it) on the same random-weight network and images:

* ResNet-18 ``layer3``, ArtMiner: ``artminer.features`` (ImageNet normalisation + trunk) on the largest
  collection scale, 80 cells on the longer side of a 4:3 image = 959 x 1279 px, one image at a time as the
  release (and a batch of 8, ``FeatureCache``'s default, on GPU).
* ResNet-50 ``layer3``, RANSAC-Flow coarse stage: ``ransac_flow.coarse.backbone_features`` (normalisation,
  trunk, L2 normalisation) at the evaluation size 480 x 640, batch 1 as the official code.
* ResNet-50 ``layer3``, SegSwap: ``segswap.extract_features`` on 640 x 640 database images (the Brueghel
  cache), in batches (2 on CPU, 32 on GPU as ``collection_features``).

``quick`` shrinks the images to a few cells. Agreement: max abs difference of the feature maps, within
1e-4 of their largest value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import torch
import torch.nn.functional as F

from artdup_jax.artminer import features as artminer_features
from artdup_jax.ransac_flow.coarse import backbone_features
from artdup_jax.segswap import extract_features
from baselines.torch import segswap as segswap_reference
from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case

TOLERANCE = 1e-4


def _imagenet_normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(segswap_reference.IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(segswap_reference.IMAGENET_STD, device=images.device)[:, None, None]
    return (images - mean) / std


def _case(case, jitted, variables, torch_fn, images, *, device, repeats, warmup, params):
    """One trunk at one input size: ``jitted(variables, x)`` / ``torch_fn(x)`` on NHWC / NCHW copies of ``images``."""
    dev = harness.torch_device(device)
    x_jax = jnp.asarray(images)
    x_torch = models.nchw(images, dev)
    compiled = {"jax": harness.compiled_stats(jitted, variables, x_jax)}

    def agreement(outs):
        return harness.relative_agreement(
            {"features": (outs["jax"], harness.nchw_to_nhwc(outs["torch"]))}, TOLERANCE)

    def run_torch():
        with torch.no_grad():
            return torch_fn(x_torch)

    batch, height, width, _ = images.shape
    return run_case("features", case, {"jax": lambda: jitted(variables, x_jax), "torch": run_torch}, subject="jax",
                    repeats=repeats, warmup=warmup, params={**params, "batch": batch, "image": f"{height}x{width}"},
                    agreement=agreement, items=(batch, "images"), compiled=compiled, memory=True)


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    """All features cases; ``quick`` runs tiny images (a few seconds)."""
    dev = harness.torch_device(device)
    repeats, warmup = (2, 0) if quick else (5, 1)
    gpu = device == "gpu"
    if quick:
        artminer_cases, coarse_cases, segswap_cases = [(1, 63, 95)], [(1, 64, 96)], [(2, 64, 64)]
    else:
        artminer_cases = [(1, 959, 1279)] + ([(8, 959, 1279)] if gpu else [])
        coarse_cases = [(1, 480, 640)] + ([(8, 480, 640)] if gpu else [])
        segswap_cases = [(32 if gpu else 2, 640, 640)]

    results = []
    net, variables = models.artminer(dev, seed)
    variables = jax.device_put(variables)
    for batch, h, w in artminer_cases:
        images = models.smooth_images(seed, (batch, h, w, 3), 16)
        results.append(_case(f"ResNet-18 layer3 (ArtMiner), batch {batch}", artminer_features, variables,
                             lambda x: net(_imagenet_normalise(x)), images, device=device, repeats=repeats,
                             warmup=warmup, params={"entry_point": "artminer.features"}))

    trunk, variables = models.resnet50_layer3(dev, seed)
    variables = jax.device_put(variables)
    for batch, h, w in coarse_cases:
        images = models.smooth_images(seed + 1, (batch, h, w, 3), 16)
        results.append(_case(f"ResNet-50 layer3 (RANSAC-Flow coarse), batch {batch}", backbone_features, variables,
                             lambda x: F.normalize(trunk(_imagenet_normalise(x)), dim=1), images, device=device,
                             repeats=repeats, warmup=warmup,
                             params={"entry_point": "ransac_flow.coarse.backbone_features"}))

    backbone, _, variables = models.segswap(dev, seed)
    variables = jax.device_put(variables)
    for batch, h, w in segswap_cases:
        images = models.smooth_images(seed + 2, (batch, h, w, 3), 16)
        results.append(_case(f"ResNet-50 layer3 (SegSwap database), batch {batch}", extract_features, variables,
                             lambda x: segswap_reference.features(backbone, x), images, device=device,
                             repeats=repeats, warmup=warmup, params={"entry_point": "segswap.extract_features"}))
    return results
