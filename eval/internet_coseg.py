"""Internet co-segmentation / object discovery with SegSwap: precision P and Jaccard J.

  python -m eval.internet_coseg --root DIR [--classes Airplane100 Car100 Horse100]
                                [--checkpoint hard_mining_neg5.pth|DIR | --random-weights] [--out DIR]
                                [--masks graph|pairwise] [--refine grabcut|threshold] [--no-flip] [--size 480]
                                [--top-k 5] [--confidence 0.85] [--sigma S] [--fg-threshold 0.6] [--dilate 10]
                                [--release-normalisation] [--max-images N] [--quiet]

Layout (Rubinstein et al. 2013): ``ROOT/<Class>/`` holds the images (``*.jpg`` / ``*.png``, sorted by name) and
``ROOT/<Class>/GroundTruth/<stem>.png`` one binary mask per image (non-zero = object; noise images have an empty
one).

Per class:

1. Pairwise stage (``inference.pairwise_stage``): every image resized to ``size``² (PIL bilinear), features once
   (and of the flipped image, unless ``--no-flip``); all unordered pairs, batches of 32; one-step cycle masks
   ``m1·S(m2, C12)``, ``m2·S(m1, C21)``; directional scores S12, S21 (0 when a cycle mask sums below 1% of the
   cells); a pair is matchable when max(S12, S21) > 1% of the cells. Flipped results are mapped back correctly,
   not as the release does.
2. Heat maps (``--masks``):
   * ``graph`` (default; the released protocol): ``discovery.discover`` (top-5 partners, vertices of mask > 0.85,
     3-cycle edges with σ per class: Car 5.0, Airplane 0.8, Horse 1.2, leading eigenvector, summed per cell);
   * ``pairwise``: the mean of an image's one-step cycle masks over its top-k partners (no graph; a baseline).
3. Masks (``--refine``): the heat map upsampled bilinearly (align_corners=False) to the image size, then
   * ``grabcut`` (default; the release): heat > 0.6·max = definite foreground, (0, 0.6·max) = probable
     foreground, a ring from a 10×10 square dilation (``cv2.dilate``) of the support = probable background, the
     rest background; OpenCV GrabCut, 5 iterations; foreground = definite + probable foreground. An image with no
     positive heat gets an empty mask; when GrabCut cannot run (no background pixels) the initial labels are kept;
   * ``threshold``: heat > 0.6·max (no GrabCut).
4. Metrics (``artdup_jax.segswap.metrics.coseg_metrics``): P = pixel accuracy averaged over every image; J = IoU
   averaged over images whose ground truth is not empty; per class, then the mean over classes.

Normalisation: by default images are ImageNet-normalised (the method). ``--release-normalisation`` feeds what the
release's loader fed (its inverse normalisation of every image, a bug of the release). The report says which.

Writes to ``--out``: ``internet_coseg.json`` (settings, per class P / J / counts and per image), ``internet_coseg.md``
and ``masks/<Class>/<stem>.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from artdup_jax.data import outputs
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.segswap.discovery import SIGMA, discover, top_k_pairs
from artdup_jax.segswap.inference import (
    collection_features,
    pairwise_stage,
    release_inverse_normalisation,
    resize_rgb,
)
from artdup_jax.segswap.metrics import coseg_metrics
from artdup_jax.segswap.weights import load_segswap

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "runs" / "eval" / "internet_coseg"
CLASSES = ("Airplane100", "Car100", "Horse100")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class DatasetError(ValueError):
    """The folder does not follow the layout; the message names the file or folder."""


# ------------------------------------------------------------------------------------------------ dataset


def class_entries(folder: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(name, image path, ground-truth path)`` for every image of a class folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such class folder")
    gt_folder = folder / "GroundTruth"
    if not gt_folder.is_dir():
        raise DatasetError(f"{folder}: no GroundTruth/ folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and (folder / n).is_file())
    if not names:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    entries = []
    for name in names:
        gt = gt_folder / f"{Path(name).stem}.png"
        if not gt.is_file():
            raise DatasetError(f"{folder}: no ground truth {gt.name} for {name}")
        entries.append((name, folder / name, gt))
    return entries


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """``(H, W)`` bool: non-zero pixels (any channel) of a mask image."""
    array = np.asarray(Image.open(path))
    return array.any(axis=-1) if array.ndim == 3 else array > 0


def class_sigma(name: str, sigma: float | None = None) -> float:
    """σ of a class folder such as ``Car100`` (the release's per-class value), unless ``sigma`` is given."""
    if sigma is not None:
        return float(sigma)
    base = re.sub(r"\d+$", "", Path(name).name)
    if base not in SIGMA:
        raise DatasetError(f"no default sigma for class {name!r} (known: {', '.join(SIGMA)}); pass --sigma")
    return SIGMA[base]


# ------------------------------------------------------------------------------------------------ metrics


def evaluate_masks(entries: Sequence[tuple[str, Path, Path]], masks: Sequence[np.ndarray]) -> dict:
    """P over every image, J over images with a non-empty ground truth, and the per-image values."""
    return coseg_metrics(masks, [read_mask(gt_path) for _, _, gt_path in entries], [name for name, _, _ in entries])


# ------------------------------------------------------------------------------------------- heat -> mask


def upsample(heat: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear, half-pixel centres (``F.interpolate(..., "bilinear")`` with align_corners=False)."""
    height, width = size_hw
    return cv2.resize(np.asarray(heat, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def grabcut_mask(image: np.ndarray, heat: np.ndarray, *, fg_threshold: float = 0.6, dilate: int = 10,
                 iterations: int = 5) -> np.ndarray:
    """``(H, W)`` bool from an image ``(H, W, 3)`` RGB in [0, 1] and its upsampled heat ``(H, W)`` (module
    docstring, step 3)."""
    support = heat > 0
    if not support.any():
        return np.zeros(heat.shape, bool)
    strong = fg_threshold * heat.max()
    labels = np.full(heat.shape, cv2.GC_BGD, np.uint8)
    labels[heat > strong] = cv2.GC_FGD
    if dilate > 0:
        grown = cv2.dilate(support.astype(np.uint8), np.ones((dilate, dilate), np.uint8)).astype(bool)
        labels[grown & ~support] = cv2.GC_PR_BGD
    labels[support & (heat < strong)] = cv2.GC_PR_FGD
    initial = labels.copy()
    bgr = np.ascontiguousarray(outputs.to_uint8(image)[..., ::-1])
    try:
        cv2.grabCut(bgr, labels, None, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # GrabCut needs both foreground and background samples
        labels = initial
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def threshold_mask(heat: np.ndarray, *, fg_threshold: float = 0.6) -> np.ndarray:
    return heat > fg_threshold * heat.max() if (heat > 0).any() else np.zeros(heat.shape, bool)


def pairwise_heat(stage: dict, num_images: int, top_k: int) -> np.ndarray:
    """``(N, h, w)``: mean one-step cycle mask of each image over its top-k matchable partners."""
    keep = stage["matchable"]
    pairs = stage["outputs"].pairs[keep]
    chosen = top_k_pairs(pairs, stage["outputs"].scores[keep], num_images, top_k)
    pairs = pairs[chosen]
    cycles = (stage["cycle_first"][keep][chosen], stage["cycle_second"][keep][chosen])
    heat = np.zeros((num_images, *stage["cycle_first"].shape[1:]), np.float64)
    count = np.zeros(num_images)
    for side in (0, 1):
        np.add.at(heat, pairs[:, side], cycles[side])
        np.add.at(count, pairs[:, side], 1.0)
    return (heat / np.maximum(count, 1.0)[:, None, None]).astype(np.float32)


# ---------------------------------------------------------------------------------------------- evaluation


def class_heat(variables: dict, images: list[np.ndarray], args: argparse.Namespace,
               sigma: float) -> tuple[np.ndarray, dict]:
    """Heat maps ``(N, h, w)`` of one class and counts for the report."""
    resized = np.stack([resize_rgb(image, (args.size, args.size), Image.Resampling.BILINEAR) for image in images])
    flipped = resized[:, :, ::-1]
    if args.release_normalisation:
        resized, flipped = release_inverse_normalisation(resized), release_inverse_normalisation(flipped)
    features = collection_features(variables, resized, batch_size=args.batch_size)
    flipped_features = None if args.no_flip else collection_features(variables, flipped, batch_size=args.batch_size)
    stage = pairwise_stage(variables, features, flipped_features, batch_size=args.batch_size)
    counts = {"num_pairs": int(len(stage["matchable"])), "num_matchable_pairs": int(stage["matchable"].sum()),
              "num_flipped_pairs": int(stage["flipped"].sum())}
    if args.masks == "pairwise":
        return pairwise_heat(stage, len(images), args.top_k), counts
    result = discover(stage["outputs"].subset(stage["matchable"]), len(images), sigma, top_k=args.top_k,
                      threshold=args.confidence)
    counts.update(num_graph_pairs=int(result["selected"].sum()), num_vertices=len(result["vertices"]),
                  num_edges=int(result["graph"].nnz))
    return result["heat"], counts


def evaluate_class(variables: dict, folder: Path, args: argparse.Namespace) -> dict:
    entries = class_entries(folder)
    if args.max_images is not None:
        entries = entries[: args.max_images]
    sigma = class_sigma(folder.name, args.sigma)
    start = time.perf_counter()
    images = []
    for _, path, _ in entries:
        try:
            images.append(read_image(path))
        except ImageReadError as error:
            raise DatasetError(str(error)) from None
    heat, counts = class_heat(variables, images, args, sigma)
    masks = []
    for image, cells in zip(images, heat):
        up = upsample(cells, image.shape[:2])
        masks.append(grabcut_mask(image, up, fg_threshold=args.fg_threshold, dilate=args.dilate)
                     if args.refine == "grabcut" else threshold_mask(up, fg_threshold=args.fg_threshold))
    for (name, _, _), mask in zip(entries, masks):
        outputs.save_image(os.fspath(Path(args.out) / "masks" / folder.name / f"{Path(name).stem}.png"),
                           mask.astype(np.float32))
    result = evaluate_masks(entries, masks)
    return {"class": folder.name, "sigma": sigma, **counts, **result, "seconds": time.perf_counter() - start}


def run(args: argparse.Namespace, variables: dict) -> dict:
    root = Path(args.root)
    per_class = []
    for name in args.classes:
        record = evaluate_class(variables, root / name, args)
        per_class.append(record)
        if not args.quiet:
            jaccard = "n/a" if record["J"] is None else f"{record['J']:.3f}"
            print(f"{name}: P {record['P']:.3f}  J {jaccard}  ({record['num_matchable_pairs']} matchable pairs, "
                  f"{record['seconds']:.0f} s)", flush=True)
    jaccards = [r["J"] for r in per_class if r["J"] is not None]
    results = {
        "root": str(root.resolve()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
        "normalisation": "release (inverse ImageNet normalisation, pitfall 6)" if args.release_normalisation
        else "ImageNet (the method; the release's loader inverted it)",
        "mean": {"P": float(np.mean([r["P"] for r in per_class])),
                 "J": float(np.mean(jaccards)) if jaccards else None},
        "per_class": per_class,
    }
    out = Path(args.out)
    outputs.save_json(os.fspath(out / "internet_coseg.json"), results)
    report = markdown_report(results)
    (out / "internet_coseg.md").write_text(report)
    return results


def markdown_report(results: dict) -> str:
    settings = results["settings"]

    def percent(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    lines = [f"# Internet co-segmentation: SegSwap ({settings['masks']} heat, {settings['refine']} masks)", "",
             f"Normalisation: {results['normalisation']}. Flip: {'off' if settings['no_flip'] else 'on'}. "
             f"Images at {settings['size']}².", "",
             "| class | images | matchable pairs | P | J |", "|---|---|---|---|---|"]
    lines += [f"| {r['class']} | {r['num_images']} | {r['num_matchable_pairs']} | {percent(r['P'])} "
              f"| {percent(r['J'])} |" for r in results["per_class"]]
    lines.append(f"| **mean** | | | **{percent(results['mean']['P'])}** | **{percent(results['mean']['J'])}** |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.internet_coseg", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder holding the class folders (Airplane100/, ...)")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES))
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="SegSwap weights: hard_mining_neg5.pth or a converted directory")
    weights.add_argument("--random-weights", action="store_true", help="random network (smoke tests only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--masks", default="graph", choices=("graph", "pairwise"))
    parser.add_argument("--refine", default="grabcut", choices=("grabcut", "threshold"))
    parser.add_argument("--no-flip", action="store_true", help="skip the flipped second image")
    parser.add_argument("--size", type=int, default=480, help="square input side, pixels (multiple of 16)")
    parser.add_argument("--top-k", type=int, default=5, help="partners per image")
    parser.add_argument("--confidence", type=float, default=0.85, help="vertex mask threshold")
    parser.add_argument("--sigma", type=float, default=None, help="graph sigma in cells (default: per class)")
    parser.add_argument("--fg-threshold", type=float, default=0.6, help="definite foreground above this x max")
    parser.add_argument("--dilate", type=int, default=10, help="probable-background ring, pixels")
    parser.add_argument("--release-normalisation", action="store_true", help="reproduce the loader bug")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-images", type=int, default=None, help="first N images per class (smoke runs)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for name in args.classes:  # fail on layout errors before loading anything
            class_entries(Path(args.root) / name)
            class_sigma(name, args.sigma)
        variables = load_segswap(args.checkpoint, seed=args.seed)
        results = run(args, variables)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / 'internet_coseg.json'} and internet_coseg.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
