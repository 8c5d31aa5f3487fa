"""Throughput stage "artminer": one-shot detection of one query box over a collection, images per second.

``artminer.detect`` against the PyTorch port of the release's loop (``baselines.torch.artminer.detect``:
one image and one scale at a time, batch 1, a ``conv2d`` per scale, NumPy NMS), which recomputes every
collection map for every query, on a synthetic collection (``data.synthetic_collection``, 480 x 640 PNG images;
random-weight ResNet-18 ``layer3``). Both read and resize the images themselves, as in use. Candidates, timed
interleaved:

* ``jax (cold cache)``: a fresh ``FeatureCache`` per call, so every collection map is computed in the call;
* ``jax (warm cache)``: the maps already cached (and packed on the device), the cost of each further query;
* ``jax (cache build)``: filling and packing a fresh cache for the collection, no query (the one-off cost);
* ``torch (official approach)``.

Two rows, each saying which it is: **cold** (subject ``jax (cold cache)``: a user's first query, feature
extraction included) and **warm** (subject ``jax (warm cache)``: every later query). The warm row also gives the
number of queries from which building the cache once and then answering warm is cheaper than the official
approach (``pays_off_vs_official_after``) and than our cold path (``pays_off_vs_cold_after``):
``ceil(build / (per-query cost - warm))``.

Scales and collection: the release's 7 scales (80 ... 20 cells on the longer side) over 32 images on GPU;
on CPU the 3 smallest (49, 36, 20), whose pyramid costs about 44 GFLOP an image instead of 260, over 8 images.
``quick``: 3 images of 128 x 160, one scale (16). Agreement: the same
ranked images, boxes, scales and cells, and scores within 1e-4. FLOP/s count the feature network's work only
(XLA's count for each scale's input size).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile

import jax
import numpy as np
import torch

from artdup_jax.artminer import DetectionConfig, FeatureCache, Query, detect
from artdup_jax.artminer.model import features
from artdup_jax.artminer.packed_maps import packed_maps
from artdup_jax.artminer.resize_rule import SCALES, resized_hw
from artdup_jax.data.synthetic_collection import make_collection
from baselines.torch import artminer as torch_artminer
from benchmarks.throughput import harness, models
from benchmarks.throughput.harness import run_case

TOLERANCE = 1e-4


@contextlib.contextmanager
def torch_port_on(device: torch.device):
    """Runs the PyTorch port on ``device``: its images go there, and helper tensors are created there.

    The port builds its inputs on the CPU (``to_input``), as the release before ``.cuda()``; a no-op on CPU.
    """
    if device.type == "cpu":
        yield
        return
    original = torch_artminer.to_input

    def to_device(image):
        with torch.device("cpu"):
            return original(image).to(device)

    torch_artminer.to_input = to_device
    try:
        with torch.device(device):
            yield
    finally:
        torch_artminer.to_input = original


def _agreement(outs):
    ours, theirs = outs["jax (cold cache)"], outs["torch (official approach)"]
    warm = outs["jax (warm cache)"]
    same_ranking = (ours.names == [os.path.basename(r[0]) for r in theirs]
                    and np.array_equal(ours.boxes, np.array([r[2] for r in theirs]).reshape(-1, 4))
                    and np.array_equal(ours.scales, [r[3] for r in theirs])
                    and np.array_equal(ours.cells, np.array([r[4] for r in theirs]).reshape(-1, 2)))
    checks = harness.relative_agreement({"scores": (ours.scores, np.array([r[1] for r in theirs], np.float32))},
                                        TOLERANCE) if same_ranking else {"ok": False}
    checks["detections"] = len(ours)
    checks["same_ranking_and_boxes"] = same_ranking
    checks["warm_equals_cold"] = ours.names == warm.names and np.array_equal(ours.boxes, warm.boxes)
    checks["ok"] = bool(checks["ok"] and same_ranking and checks["warm_equals_cold"])
    return checks


def pyramid_flops(variables, image_hw: tuple[int, int], scales, min_cells: int) -> float:
    """XLA's FLOP count of one image's feature pyramid (the network, which dominates detection's work)."""
    height, width = image_hw
    return sum(harness.compiled_stats(features, variables, jax.ShapeDtypeStruct(
        (1, *resized_hw(width, height, scale, min_cells), 3), np.float32))["flops"] for scale in scales)


def _warm_row(cold: dict) -> dict:
    """The same timings seen from ``jax (warm cache)``: speed-ups against it, and when the cache pays off."""
    timings = cold["timings"]
    warm_s, build_s = timings["jax (warm cache)"]["median_s"], timings["jax (cache build)"]["median_s"]
    payoff = {}
    for label, name in (("official", "torch (official approach)"), ("cold", "jax (cold cache)")):
        saved = timings[name]["median_s"] - warm_s
        payoff[f"pays_off_vs_{label}_after"] = math.ceil(build_s / saved) if saved > 0 else "never"
    row = copy.deepcopy(cold)
    row["case"] = cold["case"].replace("cold:", "warm:").replace(
        "features computed in the call", f"features cached ({build_s:.3g} s to build once)")
    row["subject"] = "jax (warm cache)"
    row["speedup"] = {name: t["median_s"] / warm_s for name, t in timings.items()}
    row["params"] = {**cold["params"], "cache_build_s": build_s, **payoff}
    return row


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    """The detection rows (cold, warm); ``quick``: 3 small images at one scale (a few seconds)."""
    dev = harness.torch_device(device)
    if quick:
        images, image_size, scales, repeats, predictions = 3, (128, 160), (16,), 2, 50
    elif device == "gpu":
        images, image_size, scales, repeats, predictions = 32, (480, 640), SCALES, 3, 1000
    else:
        images, image_size, scales, repeats, predictions = 8, (480, 640), SCALES[-3:], 3, 1000
    config = DetectionConfig(scales=scales, num_predictions=predictions)
    net, variables = models.artminer(dev, seed)
    variables = jax.device_put(variables)
    with tempfile.TemporaryDirectory(prefix="throughput_artminer_") as folder:
        collection = make_collection(folder, seed=seed, num_categories=1, instances_per_category=2,
                                     num_distractors=images - 2, image_size=image_size,
                                     detail_fraction=(0.4, 0.55), style_strength=0.5)
        paths = [os.path.join(folder, name) for name in collection.images]
        entry = next(iter(collection.annotations.values()))[0]
        query = Query(os.path.join(folder, entry["query"][0]), tuple(entry["query"][1]))
        warm_cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
        detect(variables, [query], paths, config, cache=warm_cache)  # fills the cache, compiles

        def torch_detect():
            with torch_port_on(dev):
                return torch_artminer.detect(net, query.image, list(query.box), paths, scales=scales,
                                             num_predictions=predictions)

        def build_cache():
            cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
            return packed_maps(cache, [os.path.abspath(p) for p in paths], config.scales, config.image_min_cells,
                               granularity=config.map_granularity).buckets[0].maps

        network_flops = images * pyramid_flops(variables, image_size, scales, config.image_min_cells)
        candidates = {
            "jax (cold cache)": lambda: detect(variables, [query], paths, config)[0],
            "jax (warm cache)": lambda: detect(variables, [query], paths, config, cache=warm_cache)[0],
            "jax (cache build)": build_cache,
            "torch (official approach)": torch_detect,
        }
        cold = run_case("artminer", f"one-shot detection, cold: features computed in the call, 1 query over {images} "
                        "images", candidates, subject="jax (cold cache)", repeats=repeats, warmup=0,
                        params={"images": images, "image": f"{image_size[0]}x{image_size[1]}",
                                "scales": "/".join(map(str, scales)), "predictions": predictions},
                        agreement=_agreement, items=(images, "images"), memory=True,
                        flops={"jax (cold cache)": network_flops, "jax (cache build)": network_flops,
                               "torch (official approach)": network_flops})
        return [cold, _warm_row(cold)]
