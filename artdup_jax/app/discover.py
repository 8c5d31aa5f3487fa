"""``artdup discover``: groups of a folder's images that share a region, with the regions (ArtMiner).

    run = discover_folder("collection/", "runs/discover", DiscoveryConfig(), checkpoint="ltllModel.pth")
    run.document["groups"]      # each group's images, their matched regions in original pixels, its pairs

Features are computed once per image (and kept in ``cache``, by default ``OUT/cache``, so a re-run or an
interrupted run reads them); candidate pairs come from the regional global descriptor (each image's
``top_k`` nearest, so about N k pairs) or, with ``exhaustive``, every pair; each candidate is scored in both
directions (the larger kept) in batches; pairs above ``threshold`` are linked and connected components of at
least ``min_group_images`` images are groups. Files with an image extension that cannot be read are listed
and skipped; the rest continues.

Writes ``out/discovery.json`` (settings, unreadable files, groups with every image's matched regions in original
pixels, the pairs of each group, region groups, the highest-scoring pairs), ``out/pairs.csv`` (every scored
pair) and ``out/groups.csv`` (``app.discovery_tables``); ``reports.discovery_report`` makes its HTML pages
from the returned ``DiscoveryRun``.

``planted_metrics`` scores groups against known ones (synthetic collections): pair-level precision / recall of
the thresholded pairs and co-membership precision / recall of the groups.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from artdup_jax.app.discovery_tables import group_of_images, scored_pair_rows, write_tables
from artdup_jax.artminer import FeatureCache, init_variables, load_weights
from artdup_jax.artminer.discovery import DiscoveryConfig, discover
from artdup_jax.data import outputs
from artdup_jax.data.folders import image_files


@dataclasses.dataclass
class DiscoveryRun:
    """A finished ``discover_folder``: the JSON document it wrote, where, and how the feature cache served it."""

    folder: str
    out_dir: str
    document: dict
    skipped: list[tuple[str, str]]  # the folder's entries that are not image files: (name, reason)
    cache_dir: str
    maps_loaded: int
    maps_computed: int


CACHE_BYTES = 1 << 28  # feature maps kept in memory by a folder discovery (the rest are read back from its cache)


def discover_folder(folder: str | os.PathLike, out: str | os.PathLike, config: DiscoveryConfig = DiscoveryConfig(),
                    *, checkpoint: str | None = None, cache: str | None = None,
                    iiif: dict | None = None, progress: bool = True) -> DiscoveryRun:
    """ArtMiner discovery over ``folder``'s images (``checkpoint``: ArtMiner weights; None: random weights
    from ``config.seed``, a smoke test only); writes ``out/discovery.json``. ``iiif``: what the folder's IIIF
    input reported (``app.iiif_input.input_report``: its canvases that failed, each file's canvas), kept in
    the document as ``"iiif"``. ``progress``: a bar per stage (features, verification, grouping) on stderr."""
    variables = load_weights(checkpoint) if checkpoint else init_variables(config.seed)
    paths, skipped = image_files(folder)
    start = time.perf_counter()
    cache_dir = cache or os.fspath(Path(out) / "cache")
    # Maps go to ``cache_dir`` as they are computed; memory holds at most CACHE_BYTES of them (evicted maps are
    # read back from disk, the same float32 bits), so the peak is the bank's, not the bank's plus every map.
    feature_cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch, directory=cache_dir,
                                 max_bytes=CACHE_BYTES)
    result = discover(variables, paths, config, cache=feature_cache, progress=progress)
    seconds = time.perf_counter() - start
    settings = {**dataclasses.asdict(config), "scales": list(config.scales), "checkpoint": checkpoint,
                "random_weights": checkpoint is None}
    document = result_json(result, folder, settings, seconds, skipped=[name for name, _ in skipped])
    if iiif is not None:
        document["iiif"] = iiif
    outputs.save_json(os.fspath(Path(out) / "discovery.json"), document)
    write_tables(out, document, scored_pair_rows(
        result.pairs, result.directional, symmetric=config.symmetric, threshold=config.threshold,
        names=document["images"], group_of=group_of_images(document)))
    return DiscoveryRun(os.fspath(folder), os.path.abspath(out), document, skipped, cache_dir,
                        feature_cache.maps_loaded, feature_cache.maps_computed)


# ---------------------------------------------------------------------------------------------- metrics


def _pairs_within(groups: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for g in groups for a, b in itertools.combinations(g, 2)}


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 1.0


def planted_metrics(pairs: np.ndarray, scores: np.ndarray, threshold: float, groups: Sequence[Sequence[int]],
                    truth: Sequence[Sequence[int]]) -> dict:
    """How well discovered pairs and groups recover planted groups (image indices).

    ``pair_*``: pairs scoring above ``threshold`` vs pairs inside a planted group. ``group_*``: pairs of images
    put in the same discovered group vs in the same planted group (co-membership). ``groups_exact``: planted
    groups found exactly as one discovered group.
    """
    true_pairs = _pairs_within(truth)
    edges = {(int(min(a, b)), int(max(a, b))) for (a, b), s in zip(np.asarray(pairs).reshape(-1, 2), scores)
             if s > threshold}
    together = _pairs_within(groups)
    found = {tuple(sorted(g)) for g in groups}
    return {
        "pair_precision": _ratio(len(edges & true_pairs), len(edges)),
        "pair_recall": _ratio(len(edges & true_pairs), len(true_pairs)),
        "group_precision": _ratio(len(together & true_pairs), len(together)),
        "group_recall": _ratio(len(together & true_pairs), len(true_pairs)),
        "groups_exact": sum(tuple(sorted(g)) in found for g in truth),
        "groups_planted": len(truth),
        "groups_found": len(groups),
    }


# ----------------------------------------------------------------------------------------------- output


def result_json(result, folder: str | os.PathLike, settings: dict, seconds: float, skipped: Sequence[str] = (),
                top_pairs: int = 100) -> dict:
    """The JSON document of a ``DiscoveryResult`` (names relative to ``folder``, boxes in pixels)."""
    folder = os.path.abspath(os.fspath(folder))
    names = [os.path.relpath(p, folder) for p in result.paths]

    def box(b):
        return [round(float(v), 1) for v in b]

    groups = []
    for gid, (group, regions) in enumerate(zip(result.groups, result.region_groups)):
        by_image: dict[int, list] = {i: [] for i in group.images}
        for region in regions:
            for image, b in region.boxes.items():
                by_image[image].append(box(b))
        edge_boxes = group.regions()
        for image in group.images:  # an image in no region group shows its pairs' regions
            if not by_image[image]:
                by_image[image] = [box(b) for b in dict.fromkeys(tuple(b) for b in edge_boxes[image])]
        groups.append({
            "id": gid,
            "images": [{"file": names[i], "height": int(result.image_hw[i, 0]), "width": int(result.image_hw[i, 1]),
                        "regions": by_image[i]} for i in group.images],
            "pairs": [{"a": names[e.a], "b": names[e.b], "score": round(e.score, 5), "box_a": box(e.box_a),
                       "box_b": box(e.box_b)} for e in sorted(group.edges, key=lambda e: -e.score)],
            "region_groups": [{"images": [{"file": names[i], "box": box(b)} for i, b in r.boxes.items()],
                               "num_pairs": len(r.edges)} for r in regions],
        })
    order = np.argsort(-result.pair_scores, kind="stable")[:top_pairs]
    return {
        "folder": folder,
        "settings": settings,
        "num_images": len(names),
        "images": names,
        "unreadable": [{"file": os.path.relpath(p, folder), "error": e} for p, e in result.unreadable],
        "skipped": list(skipped),
        "num_pairs_scored": int(len(result.pairs)),
        "num_directional_pairs_scored": int(len(result.directional)),
        "seconds": seconds,
        "groups": groups,
        "top_pairs": [{"a": names[result.pairs[k, 0]], "b": names[result.pairs[k, 1]],
                       "score": round(float(result.pair_scores[k]), 5)} for k in order],
    }
