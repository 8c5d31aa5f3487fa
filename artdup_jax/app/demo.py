"""``artdup demo``: alignment and discovery on embedded data only (no downloads, no weights), as an HTML report.

1. Alignment: the copies of Raphael's *Bridgewater Madonna* shipped by the ``unraphael`` package onto the
   Edinburgh original with the tool's weightless default (``app.align.align_group``: the classical portfolio,
   each copy verified against the identity); a copy that does not verify is listed with the reason and the
   scores, the rest goes on.
2. Discovery in a mixed collection written to ``OUT/discovery/collection`` (``data.demo_collection``). With
   ``artminer_checkpoint`` this is ArtMiner discovery (``random`` = untrained weights, a smoke test only).
   Without it (the default: no ArtMiner weights ship with the package) it is SIFT + MAGSAC++ pair verification
   (``app.sift_discovery``), and the report says so.
3. ``OUT/index.html`` with ``report.json``, the alignment outputs (``OUT/alignment``) and ``discovery.json``,
   written atomically (``artdup_jax.report.ReportDirectory``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from artdup_jax.app.align import AlignmentError, AlignSettings, align_group
from artdup_jax.app.discover import result_json
from artdup_jax.app.sift_discovery import SIFT_METHOD, SiftDiscoveryConfig, sift_discovery
from artdup_jax.artminer import init_variables, load_weights
from artdup_jax.artminer.discovery import DiscoveryConfig, discover
from artdup_jax.data import outputs
from artdup_jax.data.demo_collection import (
    PLANTED,
    QUICK_COPIES,
    QUICK_PHOTOS,
    REFERENCE,
    build_collection,
    unraphael_folder,
)
from artdup_jax.data.embedded import EMBEDDED_NAMES
from artdup_jax.report import Report, ReportDirectory, discovery_section, group_alignment_section


def artminer_discovery(folder: Path, names: list[str], checkpoint: str, seed: int, quick: bool = False):
    """ArtMiner discovery (every pair scored); returns (document, scores, threshold).

    ``quick``: small feature grids (16-cell references, 3 target scales) instead of the release's.
    """
    variables = init_variables(seed) if checkpoint == "random" else load_weights(checkpoint)
    grids = dict(reference_cells=16, margin=2, scales=(20, 16, 12), descriptor_cells=12) if quick else {}
    config = DiscoveryConfig(exhaustive=True, min_group_images=2, seed=seed, **grids)
    start = time.perf_counter()
    result = discover(variables, [os.fspath(folder / n) for n in names], config)
    document = result_json(result, folder, {"method": "artminer", "checkpoint": checkpoint},
                           time.perf_counter() - start)
    return document, result.pair_scores.tolist(), config.threshold


def planted_metrics(document: dict, truth: list[list[str]]) -> dict:
    """Pairs put in one discovered group vs pairs of one planted group (co-membership precision / recall)."""
    def together(groups):
        return {tuple(sorted((a, b))) for g in groups for k, a in enumerate(g) for b in g[k + 1:]}

    found = together([[i["file"] for i in g["images"]] for g in document["groups"]])
    true = together(truth)
    return {"planted groups": len(truth), "groups found": len(document["groups"]),
            "co-membership precision": len(found & true) / len(found) if found else 1.0,
            "co-membership recall": len(found & true) / len(true) if true else 1.0}


def align_copies(out: ReportDirectory, source_folder: Path, copies: list[str], scratch: Path, *, size: int,
                 iterations: int, seed: int):
    """``align_group`` on the copies; returns the group section, the pair sections and the failures."""
    group_folder = source_folder  # the original and the copies the group is made of
    if set(copies) != {n for n in os.listdir(source_folder) if n.endswith(".jpg")} - {REFERENCE}:
        group_folder = scratch / "copies"
        group_folder.mkdir()
        for name in [REFERENCE, *copies]:
            os.symlink(source_folder / name, group_folder / name)
    alignment_dir = out.path("alignment")
    settings = AlignSettings(size=size, rule="longer", iterations=iterations, seed=seed)  # the weightless default
    try:
        with warnings.catch_warnings():  # the failures are listed in the report
            warnings.simplefilter("ignore")
            align_group(os.fspath(group_folder / REFERENCE), os.fspath(group_folder), os.fspath(alignment_dir),
                        settings)
    except AlignmentError as error:  # no copy aligned: the report still lists why
        print(f"warning: {error}", file=sys.stderr)
    return group_alignment_section(
        out, alignment_dir, reference=REFERENCE, folder=group_folder, prefix="alignment",
        title="Alignment: copies of the Bridgewater Madonna onto the Edinburgh original",
        note=f"Coarse stage: the weightless classical portfolio (RootSIFT with guided matching, Fourier-Mellin, "
             f"ECC on gradient images), longer side {size} px. No fine network (no weights), so the matchability "
             "is the warped frame.")


def discover_collection(out: ReportDirectory, source_folder: Path, copies: list[str], photos: list[str],
                        planted: list[tuple[str, str]], *, size: int, iterations: int, seed: int,
                        artminer_checkpoint: str | None, quick: bool = False):
    """Builds the mixed collection, runs discovery on it; returns the discovery section and the failures."""
    collection = out.path("discovery/collection")
    collection.mkdir()
    truth = build_collection(collection, source_folder, [REFERENCE, *copies], photos, planted, size, seed)
    names = sorted(os.listdir(collection))
    note = ""
    if artminer_checkpoint:
        try:
            document, scores, threshold = artminer_discovery(collection, names, artminer_checkpoint, seed, quick)
            method, score_label = f"ArtMiner discovery (weights: {artminer_checkpoint})", "pair score"
        except ImportError as error:
            note = f"ArtMiner discovery is not available ({error}); fell back to SIFT + MAGSAC++. "
            artminer_checkpoint = None
    if not artminer_checkpoint:
        config = SiftDiscoveryConfig(iterations=iterations, seed=seed)
        document, scores = sift_discovery(collection, names, config)
        method, score_label, threshold = SIFT_METHOD, "MAGSAC++ inliers", config.min_inliers
    outputs.save_json(os.fspath(out.path("discovery/discovery.json")), {**document, "planted_groups": truth})
    return discovery_section(
        out, document, collection, method=method, prefix="discovery", thumbnail_px=None,
        title="Discovery: groups in a mixed collection",
        note=note + "The collection: the copies above, scikit-image photographs, planted duplicates (each planted "
                    "photo also appears warped and as a crop pasted into a texture) and one truncated file. "
                    "Outlines: the matched regions.",
        scores=scores, threshold=threshold, score_label=score_label, metrics=planted_metrics(document, truth))


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """``quick``: 3 copies + the original, 3 photographs, one planted pair, 256 px, fewer RANSAC draws.
    ``artminer_checkpoint``: ArtMiner weights for discovery ('random': untrained, a smoke test); None: SIFT."""

    out: str = "runs/demo"
    quick: bool = False
    size: int | None = None  # longer image side (default 400; quick 256)
    iterations: int | None = None  # RANSAC draws (default 2000; quick 500)
    artminer_checkpoint: str | None = None
    seed: int = 0


@dataclasses.dataclass
class DemoResult:
    """The report written, and what it holds."""

    index: Path
    aligned: int
    groups: int
    failures: int
    moved_aside: Path | None


def run_demo(settings: DemoSettings = DemoSettings()) -> DemoResult:
    """Aligns the copies, discovers the groups of the mixed collection and writes the report."""
    quick = settings.quick
    size = settings.size or (256 if quick else 400)
    iterations = settings.iterations or (500 if quick else 2000)
    source_folder = unraphael_folder()
    copies = list(QUICK_COPIES) if quick else sorted(
        n for n in os.listdir(source_folder) if n.endswith(".jpg") and n != REFERENCE)
    photos = list(QUICK_PHOTOS) if quick else list(EMBEDDED_NAMES)
    planted = list(PLANTED[:1] if quick else PLANTED)
    timings = {}
    with ReportDirectory(settings.out) as out, tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        group, pair_sections, failures = align_copies(out, source_folder, copies, Path(scratch), size=size,
                                                      iterations=iterations, seed=settings.seed)
        timings["alignment_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        discovery, failed = discover_collection(out, source_folder, copies, photos, planted, size=size,
                                                iterations=iterations, seed=settings.seed,
                                                artminer_checkpoint=settings.artminer_checkpoint, quick=quick)
        timings["discovery_s"] = round(time.perf_counter() - start, 1)
        report = Report(
            title="artdup demo: aligning and discovering duplicates on embedded images",
            intro="Everything here was computed from images that ship with the installed packages "
                  "(unraphael's 11 copies of Raphael's Bridgewater Madonna, scikit-image's photographs); "
                  "nothing was downloaded.",
            sections=[group, discovery, *pair_sections], failures=failures + failed,
            settings={"quick": quick, "size_px": size, "ransac_iterations": iterations, "seed": settings.seed,
                      "discovery": discovery.method, **timings})
        index = out.commit(report)
    return DemoResult(index, len(group.members), len(discovery.groups), len(report.failures), out.moved_aside)
