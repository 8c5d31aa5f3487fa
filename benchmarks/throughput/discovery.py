"""Throughput stage "discovery": our batched discovery vs the release's per-pair approach (PyTorch port).

Collection: ``make_collection`` with exact copies (``style_strength=0``) of planted details, each pasted with 30%
of its surroundings; afterwards every background (everything outside a pasted patch, and the whole of each
distractor) is replaced by a texture unique to the image. ``make_collection`` crops backgrounds from a handful of
source pictures, so without this, overlapping crops of one picture are genuine duplicates that link unrelated
images (true discoveries, but they blur the planted ground truth).

* quick: 7 images (2 details x 3 copies + 1 distractor), 200 RANSAC hypotheses (the port's all-pairs run
  alone takes ~1 min); for timings use the full case;
* full: 200 images (7 details x 26 copies + 18 distractors), 1000 hypotheses.

Settings sized for CPUs and random weights (``models.artminer``: one random network in both frameworks):
128 x 160 px images, reference 16 cells (margin 2), target scales (20, 16, 12), no saliency, threshold 0.2
(planted pairs score 0.2-0.8 with these features, unrelated ones below 0.2).

Candidates:

* "jax (ours, top-k)": ``discover`` end to end: features once per image, top-10 candidates from the regional
  descriptor, both directions of each candidate scored in batches, groups.
* "jax (ours, exhaustive)" (quick only: 40 k directional pairs take minutes on 2 CPU cores): every pair.
* "torch (official approach)": features recomputed for every directional pair, Python loops over matches,
  hypotheses and components. quick: ``discover_collection`` on all pairs (groups compared with ours); full: a
  fixed sample of directional pairs (half planted, half not), whose scores are compared with ours.

A second case times pair verification alone (``score_pairs``) at the release's settings (``DiscoveryConfig()``:
reference 40 cells, 7 target scales, saliency, 1000 hypotheses, top-10 candidates) on 240 x 320 px images
(quick: 8, full: 24), the bank extracted once beforehand: screened matching (ours, the default on the CPU) vs
dense matching (every similarity computed, as before the screen). Both must give equal scores and boxes.
``python -m benchmarks.discovery_verification`` runs the 100-image version of this case.

Speed-ups, the "time / subject" column and the throughput are per directional pair (a pair scored in one
direction), since the candidates score different numbers of pairs; ours include feature extraction, candidate
search and clustering, the port's its per-pair feature recomputation. This per-pair ratio is the headline. The
inputs line also gives the end-to-end view: the release scores all ``n (n - 1)`` directional pairs, so its time
for the collection is extrapolated from the sampled pairs and set against our whole ``discover`` call.
Full case: two timed rounds in rotated order (first call untimed), so both candidates see similar load.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
from PIL import Image

from benchmarks.throughput.harness import run_case

IMAGE_SIZE = (128, 160)
CONTEXT = 0.3
THRESHOLD = 0.2
SCALES = (20, 16, 12)
REFERENCE_CELLS, MARGIN = 16, 2
TOP_K = 10
SAMPLED_PAIRS = 16  # directional pairs the PyTorch port scores in the full case
QUICK_ITERATIONS = 200  # RANSAC hypotheses in quick mode: the port's Python loop costs ~3 ms a hypothesis
DETAIL_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "0_edinburgh_nat_gallery")


def unique_backgrounds(collection, seed: int, context: float = CONTEXT) -> None:
    """Replaces, in place, every pixel outside the pasted patches (box + ``context`` of its size per side, +1 px)
    by a smooth random texture drawn for that image alone."""
    rng = np.random.default_rng(seed)
    instances = {i.image: i for i in collection.instances}
    for name in collection.images:
        path = collection.folder / name
        image = np.asarray(Image.open(path).convert("RGB")).copy()
        h, w = image.shape[:2]
        coarse = rng.uniform(0, 255, size=(h // 8 + 2, w // 8 + 2, 3)).astype(np.uint8)
        texture = np.asarray(Image.fromarray(coarse).resize((w + 16, h + 16), Image.Resampling.BICUBIC))[:h, :w]
        texture = np.clip(0.8 * texture + rng.normal(0, 12, texture.shape), 0, 255).astype(np.uint8)
        if name in instances:
            x1, y1, x2, y2 = instances[name].box
            my, mx = math.ceil(context * (y2 - y1)) + 1, math.ceil(context * (x2 - x1)) + 1
            rows, cols = slice(max(y1 - my, 0), min(y2 + my, h)), slice(max(x1 - mx, 0), min(x2 + mx, w))
            texture[rows, cols] = image[rows, cols]
        Image.fromarray(texture).save(path)


def make_benchmark_collection(folder, quick: bool, seed: int = 0):
    from artdup_jax.data.synthetic_collection import make_collection

    categories, copies, distractors = (2, 3, 1) if quick else (7, 26, 18)
    collection = make_collection(folder, seed=seed, num_categories=categories, instances_per_category=copies,
                                 num_distractors=distractors, image_size=IMAGE_SIZE, detail_fraction=(0.4, 0.5),
                                 aspect_jitter=0.1, style_strength=0.0, context=CONTEXT, border=16,
                                 detail_sources=list(DETAIL_SOURCES))
    unique_backgrounds(collection, seed + 1)
    index = {n: i for i, n in enumerate(collection.images)}
    truth = [sorted(index[e["query"][0]] for e in entries) for entries in collection.annotations.values()]
    return collection, truth


def run(quick: bool = False, device: str = "cpu", seed: int = 0) -> list[dict]:
    """The discovery case; ``quick``: 7 images (about a minute on 2 CPU cores, mostly the PyTorch port)."""
    from artdup_jax.artminer.discovery import DiscoveryConfig, discover, extract_features, score_pairs
    from baselines.torch import artminer_discovery as official
    from artdup_jax.app.discover import planted_metrics
    from benchmarks.throughput import harness, models

    net, variables = models.artminer(harness.torch_device(device), seed)
    folder = tempfile.mkdtemp(prefix="throughput_discovery_")
    collection, truth = make_benchmark_collection(os.path.join(folder, "images"), quick, seed)
    paths = [str(collection.folder / name) for name in collection.images]
    n = len(paths)

    base = dict(reference_cells=REFERENCE_CELLS, margin=MARGIN, scales=SCALES, saliency=False, threshold=THRESHOLD,
                descriptor_cells=min(SCALES), top_k=TOP_K, pairs_per_batch=64, seed=seed,
                iterations=QUICK_ITERATIONS if quick else 1000)
    top_k_config = DiscoveryConfig(**base)
    exhaustive_config = DiscoveryConfig(**base, exhaustive=True)
    settings = dict(scales=SCALES, reference_cells=REFERENCE_CELLS, margin=MARGIN, saliency=False,
                    iterations=top_k_config.iterations, tolerance_cells=top_k_config.tolerance_cells, seed=seed)

    candidates = {"jax (ours, top-k)": lambda: discover(variables, paths, top_k_config)}
    sample = None
    if quick:
        candidates["jax (ours, exhaustive)"] = lambda: discover(variables, paths, exhaustive_config)
        candidates["torch (official approach)"] = lambda: official.discover_collection(
            net, paths, threshold=THRESHOLD, min_images=3, **settings)
    else:
        rng = np.random.default_rng(seed)
        planted = [(a, b) for g in truth for a in g for b in g if a != b]
        others = [(a, b) for a in range(n) for b in range(n) if a != b and not any(a in g and b in g for g in truth)]
        half = SAMPLED_PAIRS // 2
        sample = ([planted[i] for i in rng.choice(len(planted), half, replace=False)]
                  + [others[i] for i in rng.choice(len(others), half, replace=False)])
        candidates["torch (official approach)"] = lambda: np.array(
            [official.pair_discovery(net, paths[a], paths[b], **settings) for a, b in sample])

    def pairs_scored(name, out):
        if name == "torch (official approach)":
            return n * (n - 1) if quick else len(sample)
        return len(out.directional)

    def metrics(name, out):
        found = {"pairs": pairs_scored(name, out)}
        if name == "torch (official approach)":
            if quick:
                pairs, scores, groups = out
                found.update(planted_metrics(np.array(pairs), np.array(scores), THRESHOLD, groups, truth))
        else:
            found.update(planted_metrics(out.pairs, out.pair_scores, THRESHOLD, [g.images for g in out.groups],
                                         truth))
        return found

    def agreement(outs):
        ours = outs["jax (ours, top-k)"]
        ours_groups = sorted(g.images for g in ours.groups)
        checks = {"ours_groups_equal_planted": ours_groups == sorted(truth)}
        if quick:
            _, _, theirs_groups = outs["torch (official approach)"]
            checks["groups_equal_official"] = ours_groups == sorted(theirs_groups)
            checks["exhaustive_groups_equal_top_k"] = sorted(
                g.images for g in outs["jax (ours, exhaustive)"].groups) == ours_groups
            checks["ok"] = checks["groups_equal_official"] and checks["exhaustive_groups_equal_top_k"]
            return checks
        theirs = outs["torch (official approach)"]
        scored = {tuple(p): s for p, s in zip(ours.directional.pairs.tolist(), ours.directional.scores)}
        missing = [p for p in sample if tuple(p) not in scored]  # not among our candidates: scored on the side
        if missing:
            bank, _ = extract_features(variables, paths, top_k_config)
            extra = score_pairs(bank, np.array(missing), top_k_config)
            scored.update({tuple(p): s for p, s in zip(extra.pairs.tolist(), extra.scores)})
        mine = np.array([scored[tuple(p)] for p in sample])
        checks.update({
            "sampled_pairs": len(sample),
            "sampled_pairs_outside_top_k": len(missing),
            "sampled_same_decision": float(np.mean((mine > THRESHOLD) == (theirs > THRESHOLD))),
            "sampled_median_abs_diff": float(np.median(np.abs(mine - theirs))),
            "max_abs_diff": float(np.abs(mine - theirs).max()),
        })
        checks["ok"] = checks["sampled_same_decision"] == 1.0
        return checks

    params = {"images": n, "planted_groups": len(truth), "image_px": f"{IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}",
              "scales": "/".join(map(str, SCALES)), "reference_cells": REFERENCE_CELLS, "top_k": TOP_K,
              "hypotheses": top_k_config.iterations, "threshold": THRESHOLD,
              "official_pairs": "all" if quick else SAMPLED_PAIRS}
    # Two rounds in rotated order (ours, port; port, ours): on a shared machine one round each mostly measures
    # when the load changed.
    result = run_case("discovery", f"{n} images, groups of copies", candidates, subject="jax (ours, top-k)",
                      repeats=1 if quick else 2, warmup=0, params=params, metrics=metrics, agreement=agreement)
    # Per directional pair: the candidates score different numbers of pairs.
    per_pair = {name: t["median_s"] / result["metrics"][name]["pairs"] for name, t in result["timings"].items()}
    result["items"] = {"count": result["metrics"][result["subject"]]["pairs"], "unit": "directional pairs"}
    result["throughput"] = {name: 1.0 / t for name, t in per_pair.items()}
    result["speedup"] = {name: t / per_pair[result["subject"]] for name, t in per_pair.items()}
    for name in per_pair:
        result["metrics"][name]["pairs_per_s"] = result["throughput"][name]
    # End to end, the release scores every ordered pair (pair_discovery_json.py, both directions of all pairs):
    # its time for this collection, extrapolated from the sampled pairs, against ours for the whole discovery.
    port_per_pair = per_pair["torch (official approach)"]
    result["params"]["official_all_pairs_extrapolated_s"] = port_per_pair * n * (n - 1)
    result["params"]["end_to_end_speedup_vs_official_all_pairs"] = (
        port_per_pair * n * (n - 1) / result["timings"][result["subject"]]["median_s"])
    return [result, run_release_verification(variables, folder, quick, seed)]


RELEASE_IMAGE_SIZE = (240, 320)


def run_release_verification(variables, folder: str, quick: bool, seed: int = 0) -> dict:
    """``score_pairs`` at the release's settings: screened vs dense matching on the same bank and pairs."""
    from artdup_jax.artminer.discovery import DiscoveryConfig, candidate_pairs, directed, extract_features, score_pairs
    from artdup_jax.data.synthetic_collection import make_collection

    distractors = 2 if quick else 18
    collection = make_collection(os.path.join(folder, "release"), seed=seed, num_categories=2,
                                 instances_per_category=3, num_distractors=distractors,
                                 image_size=RELEASE_IMAGE_SIZE)
    config = DiscoveryConfig(seed=seed)
    bank, _ = extract_features(variables, [str(collection.folder / n) for n in collection.images], config)
    pairs = directed(candidate_pairs(bank.descriptors, config.top_k), config.symmetric)
    candidates = {"jax (ours, screened matching)": lambda: score_pairs(bank, pairs, config, screen=True),
                  "jax (dense matching)": lambda: score_pairs(bank, pairs, config, screen=False)}

    def agreement(outs):
        ours, dense = outs["jax (ours, screened matching)"], outs["jax (dense matching)"]
        diff = float(np.abs(ours.scores - dense.scores).max(initial=0))
        boxes = bool((ours.reference_boxes == dense.reference_boxes).all()
                     and (ours.target_boxes == dense.target_boxes).all())
        return {"max_abs_diff": diff, "num_matches_equal": bool((ours.num_matches == dense.num_matches).all()),
                "boxes_equal": boxes, "nonzero_scores": int((dense.scores > 0).sum()),
                "ok": diff <= 1e-6 and boxes}

    params = {"images": len(bank), "image_px": f"{RELEASE_IMAGE_SIZE[1]}x{RELEASE_IMAGE_SIZE[0]}",
              "settings": "DiscoveryConfig() (release)", "scales": "/".join(map(str, config.scales)),
              "reference_cells": config.reference_cells, "hypotheses": config.iterations, "top_k": config.top_k}
    return run_case("discovery", f"verification at the release settings, {len(bank)} images", candidates,
                    subject="jax (ours, screened matching)", baseline="jax (dense matching)",
                    repeats=1 if quick else 2, warmup=0, params=params, agreement=agreement,
                    items=(len(pairs), "directional pairs"))
