"""``artdup demo``: alignment and discovery on embedded data only (no downloads, no weights), as an HTML report.

  artdup demo [--out runs/demo] [--quick] [--size 400] [--artminer-checkpoint X.pth|DIR|random]

1. Alignment: the copies of Raphael's *Bridgewater Madonna* shipped by the ``unraphael`` package onto the
   Edinburgh original, with the SIFT coarse stage and our RANSAC (``artdup_jax.app.align``'s group mode). Copies painted
   too differently for SIFT find no homography; they are listed with the reason, the rest goes on.
2. Discovery in a mixed collection written to ``OUT/discovery/collection``: the copies, scikit-image's
   photographs, planted duplicates (a photograph warped by a homography with a colour change; a crop of it
   pasted into a texture) and one truncated JPEG. With ``--artminer-checkpoint`` this is ArtMiner discovery
   (``artdup_jax.artminer.discovery``; ``random`` = untrained weights, a smoke test only). Without it (the
   default: no ArtMiner weights ship with the package) it is **SIFT + RANSAC pair verification**, and the
   report says so: SIFT matches for every pair (ratio test), pairs with enough matches are candidates, all
   candidates are verified by one batched RANSAC (``geometry.ransac.find_homographies``), verified pairs are
   linked, and connected components are the groups.
3. ``OUT/index.html`` with ``report.json``, the alignment outputs (``OUT/alignment``) and ``discovery.json``,
   written atomically (``artdup_jax.report.ReportDirectory``).

``--quick`` (tests): 3 copies + the original, 3 photographs, one planted pair, 256 px, fewer RANSAC draws.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from artdup_jax.data import outputs
from artdup_jax.data.embedded import EMBEDDED_NAMES, embedded_images
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.report import (
    Report,
    ReportDirectory,
    discovery_section,
    group_alignment_section,
)

REFERENCE = "0_edinburgh_nat_gallery.jpg"
QUICK_COPIES = ("1_london_nat_gallery.jpg", "4_oxford_ashmolean.jpg", "6_oxford_christ_church.jpg")
QUICK_PHOTOS = ("astronaut", "chelsea", "coffee")
# (photo, texture it is pasted into): each planted group is the photo, a warped copy and a pasted crop.
PLANTED = (("chelsea", "brick"), ("rocket", "grass"), ("astronaut", "gravel"))
SIFT_METHOD = ("SIFT + RANSAC pair verification (fallback: no ArtMiner weights given; not the ArtMiner "
               "method, which needs --artminer-checkpoint)")


def unraphael_folder() -> Path:
    """The folder of the ``unraphael`` package's copies of the Bridgewater Madonna."""
    try:
        import unraphael
    except ImportError:
        raise SystemExit("error: the demo needs the 'unraphael' package (its images); run scripts/setup") from None
    folder = Path(unraphael.__file__).parent / "data" / "images"
    if not (folder / REFERENCE).is_file():
        raise SystemExit(f"error: {folder / REFERENCE} is missing; reinstall unraphael==0.2.1 (scripts/setup)")
    return folder


# ------------------------------------------------------------------------------------------- collection


def _save_downscaled(path: Path, pixels: np.ndarray, size: int) -> None:
    """uint8 or float RGB saved with its longer side at most ``size``."""
    image = Image.fromarray(pixels if pixels.dtype == np.uint8 else outputs.to_uint8(pixels))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    image.save(path, quality=92)


def _warped(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photograph under a random perspective (corners moved up to 12%) and a colour change."""
    import cv2

    h, w = photo.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.float32([w, h])
    warped = cv2.warpPerspective(photo, cv2.getPerspectiveTransform(corners, moved), (w, h),
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    gains = rng.uniform(0.8, 1.15, 3)
    return np.clip((warped / 255.0) ** rng.uniform(0.8, 1.2) * gains, 0, 1)


def _pasted(photo: np.ndarray, texture_name: str, rng: np.random.Generator) -> np.ndarray:
    """A central crop (half of each side) of the photograph pasted at a random place into a texture."""
    import skimage.data

    texture = np.asarray(getattr(skimage.data, texture_name)(), np.float32) / 255.0
    texture = np.repeat(texture[..., None], 3, -1) if texture.ndim == 2 else texture[..., :3]
    h, w = photo.shape[:2]
    crop = photo[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2].astype(np.float32) / 255.0
    scale = min(0.6 * texture.shape[0] / crop.shape[0], 0.6 * texture.shape[1] / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    crop = np.asarray(Image.fromarray(outputs.to_uint8(crop)).resize(size, Image.Resampling.LANCZOS)) / 255.0
    top = int(rng.integers(0, texture.shape[0] - crop.shape[0] + 1))
    left = int(rng.integers(0, texture.shape[1] - crop.shape[1] + 1))
    texture[top: top + crop.shape[0], left: left + crop.shape[1]] = crop
    return texture


def build_collection(folder: Path, copies_folder: Path, copies: list[str], photos: list[str],
                     planted: list[tuple[str, str]], size: int, seed: int) -> list[list[str]]:
    """Writes the mixed collection into ``folder``; returns the planted groups (file names)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    by_name = dict(zip(EMBEDDED_NAMES, embedded_images()))
    truth = [[]]
    for name in copies:
        target = f"copy_{Path(name).stem}.jpg"
        _save_downscaled(folder / target, outputs.to_uint8(read_image(copies_folder / name)), size)
        truth[0].append(target)
    for name in photos:
        _save_downscaled(folder / f"photo_{name}.jpg", by_name[name], size)
    for name, texture in planted:
        files = [f"photo_{name}.jpg", f"photo_{name}_warped.jpg", f"photo_{name}_pasted_in_{texture}.jpg"]
        if name not in photos:
            _save_downscaled(folder / files[0], by_name[name], size)
        _save_downscaled(folder / files[1], _warped(by_name[name], rng), size)
        _save_downscaled(folder / files[2], _pasted(by_name[name], texture, rng), size)
        truth.append(files)
    # An unreadable input, to show how one is reported: the first 40% of a JPEG.
    data = (folder / truth[-1][0]).read_bytes()
    (folder / "broken_truncated_scan.jpg").write_bytes(data[: int(0.4 * len(data))])
    return [sorted(t) for t in truth if len(t) >= 2]


# -------------------------------------------------------------------------------- SIFT + RANSAC discovery


@dataclasses.dataclass(frozen=True)
class SiftDiscoveryConfig:
    ratio: float = 0.8  # Lowe's ratio test
    features: int = 1500  # SIFT keypoints per image at most
    min_matches: int = 12  # ratio-test matches that make a pair a candidate
    max_matches: int = 256  # matches per pair given to RANSAC (best ratios first): a static shape
    threshold_px: float = 4.0
    iterations: int = 2000
    min_inliers: int = 15  # a candidate with fewer RANSAC inliers is not verified
    min_box_fraction: float = 0.01  # inliers must spread over this fraction of each image's area
    pairs_per_batch: int = 32
    seed: int = 0


def _sift(image: np.ndarray, features: int):
    import cv2

    grey = cv2.cvtColor(outputs.to_uint8(image), cv2.COLOR_RGB2GRAY)
    keypoints, descriptors = cv2.SIFT_create(nfeatures=features).detectAndCompute(grey, None)
    xy = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    return xy, descriptors


def _ratio_matches(descriptors_a, descriptors_b, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """``(M, 2)`` index pairs passing the ratio test both ways, and their ``(M,)`` ratios."""
    import cv2

    if descriptors_a is None or descriptors_b is None or len(descriptors_a) < 2 or len(descriptors_b) < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0,))
    matcher = cv2.BFMatcher(cv2.NORM_L2)

    def one_way(query, train):
        best = {}
        for pair in matcher.knnMatch(query, train, k=2):
            if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
                best[pair[0].queryIdx] = (pair[0].trainIdx, pair[0].distance / max(pair[1].distance, 1e-6))
        return best

    forward, backward = one_way(descriptors_a, descriptors_b), one_way(descriptors_b, descriptors_a)
    kept = [(a, b, r) for a, (b, r) in forward.items() if backward.get(b, (None,))[0] == a]
    if not kept:
        return np.zeros((0, 2), np.int64), np.zeros((0,))
    kept.sort(key=lambda m: m[2])
    return np.array([(a, b) for a, b, _ in kept], np.int64), np.array([r for _, _, r in kept])


def _box(xy: np.ndarray) -> list[float]:
    return [round(float(v), 1) for v in (*xy.min(0), *xy.max(0))]


def _merge_boxes(boxes: list[list[float]], iou: float = 0.5) -> list[list[float]]:
    """Greedy union of boxes overlapping by more than ``iou`` (one outline per region, not per pair)."""
    merged: list[list[float]] = []
    for box in boxes:
        for k, other in enumerate(merged):
            iw = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
            ih = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
            union = ((box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
                     - iw * ih)
            if union > 0 and iw * ih / union > iou:
                merged[k] = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]),
                             max(box[3], other[3])]
                break
        else:
            merged.append(list(box))
    return merged


def sift_discovery(folder: Path, names: list[str], config: SiftDiscoveryConfig = SiftDiscoveryConfig()):
    """Groups of images related by a homography; returns (document in artdup_jax.app.discover's layout, scores).

    ``scores``: the RANSAC inlier count of every candidate pair, for the histogram.
    """
    from artdup_jax.artminer.discovery import connected_components
    from artdup_jax.geometry.ransac import find_homographies

    images, unreadable, readable = [], [], []
    for name in names:
        try:
            images.append(read_image(folder / name))
            readable.append(name)
        except ImageReadError as error:
            unreadable.append({"file": name, "error": str(error).replace(os.fspath(folder / name), name)})
    keypoints = [_sift(image, config.features) for image in images]
    pairs, matched = [], []
    for i in range(len(readable)):  # descriptor matching: OpenCV, one call per pair; RANSAC is batched below
        for j in range(i + 1, len(readable)):
            indices, _ = _ratio_matches(keypoints[i][1], keypoints[j][1], config.ratio)
            if len(indices) >= config.min_matches:
                pairs.append((i, j))
                matched.append(indices[: config.max_matches])
    n = config.max_matches
    src = np.zeros((len(pairs), n, 2), np.float32)
    dst = np.zeros((len(pairs), n, 2), np.float32)
    valid = np.zeros((len(pairs), n), bool)
    for p, ((i, j), indices) in enumerate(zip(pairs, matched)):
        src[p, : len(indices)] = keypoints[i][0][indices[:, 0]]
        dst[p, : len(indices)] = keypoints[j][0][indices[:, 1]]
        valid[p, : len(indices)] = True
    inliers = np.zeros((len(pairs), n), bool)
    found = np.zeros((len(pairs),), bool)
    size = config.pairs_per_batch
    for start in range(0, len(pairs), size):  # equal batch shapes: one compilation
        take = np.arange(start, start + size) % len(pairs)
        batch = find_homographies(src[take], dst[take], valid[take], threshold=config.threshold_px,
                                  iterations=config.iterations, seed=config.seed)
        real = min(size, len(pairs) - start)
        inliers[start: start + real], found[start: start + real] = batch.inliers[:real], batch.found[:real]
    scores = inliers.sum(1)
    edges = []
    for p, (i, j) in enumerate(pairs):
        if not found[p] or scores[p] < config.min_inliers:
            continue
        box_a, box_b = _box(src[p][inliers[p]]), _box(dst[p][inliers[p]])
        spread = [(b[2] - b[0]) * (b[3] - b[1]) / (im.shape[0] * im.shape[1])
                  for b, im in ((box_a, images[i]), (box_b, images[j]))]
        if min(spread) >= config.min_box_fraction:
            edges.append({"a": i, "b": j, "score": int(scores[p]), "box_a": box_a, "box_b": box_b})
    groups = []
    components = connected_components(len(readable), [(e["a"], e["b"]) for e in edges])  # members ascending
    for members in sorted((c for c in components if len(c) >= 2), key=lambda c: (-len(c), c[0])):
        inside = [e for e in edges if e["a"] in members]
        regions = {m: [] for m in members}
        for e in inside:
            regions[e["a"]].append(e["box_a"])
            regions[e["b"]].append(e["box_b"])
        groups.append({
            "id": len(groups),
            "images": [{"file": readable[m], "height": images[m].shape[0], "width": images[m].shape[1],
                        "regions": _merge_boxes(regions[m])} for m in members],
            "pairs": [{"a": readable[e["a"]], "b": readable[e["b"]], "score": e["score"], "box_a": e["box_a"],
                       "box_b": e["box_b"]} for e in sorted(inside, key=lambda e: -e["score"])],
        })
    document = {"folder": os.fspath(folder), "settings": {"method": "sift-ransac", **dataclasses.asdict(config)},
                "num_images": len(readable), "images": readable, "unreadable": unreadable,
                "num_pairs_scored": len(pairs), "groups": groups,
                "top_pairs": [{"a": readable[pairs[p][0]], "b": readable[pairs[p][1]], "score": int(scores[p])}
                              for p in np.argsort(-scores, kind="stable")[:100]]}
    return document, scores.tolist()


def artminer_discovery(folder: Path, names: list[str], checkpoint: str, seed: int, quick: bool = False):
    """ArtMiner discovery (every pair scored); returns (document, scores, threshold).

    ``quick``: small feature grids (16-cell references, 3 target scales) instead of the release's.
    """
    from artdup_jax.artminer import init_variables, load_weights
    from artdup_jax.artminer.discovery import DiscoveryConfig, discover
    from artdup_jax.app.discover import result_json

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


# ----------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo", help="report folder (replaced if it holds an earlier report)")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller images (tests, smoke runs)")
    parser.add_argument("--size", type=int, default=None, help="longer image side (default 400; --quick 256)")
    parser.add_argument("--iterations", type=int, default=None, help="RANSAC draws (default 2000; --quick 500)")
    parser.add_argument("--artminer-checkpoint", default=None,
                        help="ArtMiner weights (.pth or converted folder) for discovery; 'random' for an "
                             "untrained network (smoke test). Default: SIFT + RANSAC pair verification")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def align_copies(out: ReportDirectory, source_folder: Path, copies: list[str], scratch: Path, *, size: int,
                 iterations: int, seed: int):
    """artdup_jax.app.align's group mode on the copies; returns the group section, the pair sections and the failures."""
    from artdup_jax.app import align as align_cli

    group_folder = source_folder  # the original and the copies artdup_jax.app.align is given
    if set(copies) != {n for n in os.listdir(source_folder) if n.endswith(".jpg")} - {REFERENCE}:
        group_folder = scratch / "copies"
        group_folder.mkdir()
        for name in [REFERENCE, *copies]:
            os.symlink(source_folder / name, group_folder / name)
    alignment_dir = out.path("alignment")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its closing line names the staging folder
            align_cli.main(["--reference", os.fspath(group_folder / REFERENCE), "--group", os.fspath(group_folder),
                            "--out", os.fspath(alignment_dir), "--size", str(size), "--rule", "longer",
                            "--coarse", "sift", "--iterations", str(iterations), "--seed", str(seed)])
    except SystemExit as stop:  # no copy aligned: the report still lists why
        print(stop, file=sys.stderr)
    return group_alignment_section(
        out, alignment_dir, reference=REFERENCE, folder=group_folder, prefix="alignment",
        title="Alignment: copies of the Bridgewater Madonna onto the Edinburgh original",
        note=f"SIFT coarse stage + our RANSAC ({iterations} draws), longer side {size} px; no fine network "
             "(no weights), so the matchability is the warped frame.")


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
            note = f"ArtMiner discovery is not available ({error}); fell back to SIFT + RANSAC. "
            artminer_checkpoint = None
    if not artminer_checkpoint:
        config = SiftDiscoveryConfig(iterations=iterations, seed=seed)
        document, scores = sift_discovery(collection, names, config)
        method, score_label, threshold = SIFT_METHOD, "RANSAC inliers", config.min_inliers
    outputs.save_json(os.fspath(out.path("discovery/discovery.json")), {**document, "planted_groups": truth})
    return discovery_section(
        out, document, collection, method=method, prefix="discovery", thumbnail_px=None,
        title="Discovery: groups in a mixed collection",
        note=note + "The collection: the copies above, scikit-image photographs, planted duplicates (each planted "
                    "photo also appears warped and as a crop pasted into a texture) and one truncated file. "
                    "Outlines: the matched regions.",
        scores=scores, threshold=threshold, score_label=score_label, metrics=planted_metrics(document, truth))


def run(args: argparse.Namespace) -> Path:
    size = args.size or (256 if args.quick else 400)
    iterations = args.iterations or (500 if args.quick else 2000)
    source_folder = unraphael_folder()
    copies = list(QUICK_COPIES) if args.quick else sorted(
        n for n in os.listdir(source_folder) if n.endswith(".jpg") and n != REFERENCE)
    photos = list(QUICK_PHOTOS) if args.quick else list(EMBEDDED_NAMES)
    planted = list(PLANTED[:1] if args.quick else PLANTED)
    timings = {}
    with ReportDirectory(args.out) as out, tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        group, pair_sections, failures = align_copies(out, source_folder, copies, Path(scratch), size=size,
                                                      iterations=iterations, seed=args.seed)
        timings["alignment_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        discovery, failed = discover_collection(out, source_folder, copies, photos, planted, size=size,
                                                iterations=iterations, seed=args.seed,
                                                artminer_checkpoint=args.artminer_checkpoint, quick=args.quick)
        timings["discovery_s"] = round(time.perf_counter() - start, 1)
        report = Report(
            title="artdup demo: aligning and discovering duplicates on embedded images",
            intro="Everything here was computed from images that ship with the installed packages "
                  "(unraphael's 11 copies of Raphael's Bridgewater Madonna, scikit-image's photographs); "
                  "nothing was downloaded.",
            sections=[group, discovery, *pair_sections], failures=failures + failed,
            settings={"quick": args.quick, "size_px": size, "ransac_iterations": iterations, "seed": args.seed,
                      "discovery": discovery.method, **timings})
        index = out.commit(report)
    if out.moved_aside is not None:
        print(f"note: {out.out_dir} held other files; they were moved to {out.moved_aside}")
    return index


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    index = run(args)
    document = outputs_summary(index.parent)
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {document}")
    print(f"report: {index}")
    return 0


def outputs_summary(report_dir: Path) -> str:
    import json

    report = json.loads((report_dir / "report.json").read_text())
    group = next(s for s in report["sections"] if s["kind"] == "group_alignment")
    discovery = next(s for s in report["sections"] if s["kind"] == "discovery")
    return (f"{len(group['members'])} copies aligned, {len(discovery['groups'])} groups discovered, "
            f"{len(report['failures'])} inputs failed")


if __name__ == "__main__":
    sys.exit(main())
