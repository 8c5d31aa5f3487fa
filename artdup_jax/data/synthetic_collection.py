"""Synthetic one-shot detection collections: details of real images pasted into other real images.

Each *category* is one detail, a crop of a real picture (the photographs bundled with scikit-image and, when
the ``unraphael`` package is installed, its 11 copies of Raphael's *Bridgewater Madonna*). Every instance
pastes that detail into a background (a crop of another real picture) at a random scale, aspect jitter and
position, with a random colour / style change (channel gains, contrast, saturation, gamma, optional
grey-scale, blur and noise; ``style_strength=0`` pastes exact rescaled copies). Distractor images hold no
detail.

The folder gets the images (``image_000.png`` ..., names shuffled so that order says nothing) and
``annotations.json`` in the official Brueghel format::

    {category: [{"query": [image_name, [x1, y1, x2, y2]], "gt": [[image_name, box], ...]}, ...]}

one entry per instance, ``gt`` listing every other instance of the category. Boxes are the true pasted
rectangles in integer pixels (x = column; x2, y2 exclusive). Same seed and arguments, same files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from artdup_jax.data.embedded import EMBEDDED_NAMES, embedded_images
from artdup_jax.data.outputs import save_json


@functools.cache
def unraphael_images() -> tuple[tuple[str, np.ndarray], ...]:
    """``(name, (H, W, 3) uint8)`` for the unraphael copies; empty if the package is not installed."""
    try:
        import unraphael
    except ImportError:
        return ()
    folder = Path(unraphael.__file__).parent / "data" / "images"
    if not folder.is_dir():
        return ()
    return tuple((p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in sorted(folder.glob("*.jpg")))


def source_family(name: str) -> str:
    """Sources showing the same scene share a family: every unraphael copy is "unraphael"."""
    return "unraphael" if name in {n for n, _ in unraphael_images()} else name


def source_images(use_unraphael: bool = True) -> list[tuple[str, np.ndarray]]:
    """The real pictures details and backgrounds are cut from, ``(name, (H, W, 3) uint8)``."""
    sources = list(zip(EMBEDDED_NAMES, embedded_images()))
    return sources + (list(unraphael_images()) if use_unraphael else [])


# A smooth gradient, black sky with dots, a repetitive stain: details cut from them are not distinctive.
POOR_DETAIL_SOURCES = ("colorwheel", "hubble_deep_field", "immunohistochemistry")


@dataclasses.dataclass(frozen=True)
class Instance:
    category: str
    image: str  # file name in the folder
    box: tuple[int, int, int, int]  # [x1, y1, x2, y2] pixels
    detail_source: str  # source picture the detail was cut from
    background_source: str  # source picture of the background


@dataclasses.dataclass(frozen=True)
class SyntheticCollection:
    folder: Path  # images and annotations.json
    annotation_path: Path
    annotations: dict  # the official format
    instances: tuple[Instance, ...]
    images: tuple[str, ...]  # every file name, sorted
    distractor_sources: tuple[str, ...]  # background source of each distractor


def _resize(pixels: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    return np.array(Image.fromarray(pixels).resize(size_wh, Image.Resampling.BICUBIC))


def _textured_crop(rng, image: np.ndarray, size_hw: tuple[int, int], tries: int = 8) -> np.ndarray:
    """The most textured (largest mean gradient) of a few random crops: a detail worth finding."""
    h, w = size_hw
    best, best_energy = None, -1.0
    for _ in range(tries):
        y = int(rng.integers(0, image.shape[0] - h + 1))
        x = int(rng.integers(0, image.shape[1] - w + 1))
        crop = image[y:y + h, x:x + w]
        gray = crop.astype(np.float32).mean(-1)
        energy = float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())
        if energy > best_energy:
            best, best_energy = crop, energy
    return best


def _background(rng, image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A random crop with the output's aspect ratio (at least half the source's side), resized."""
    out_h, out_w = size_hw
    scale = min(image.shape[0] / out_h, image.shape[1] / out_w) * rng.uniform(0.5, 1.0)
    h, w = max(1, int(out_h * scale)), max(1, int(out_w * scale))
    y = int(rng.integers(0, image.shape[0] - h + 1))
    x = int(rng.integers(0, image.shape[1] - w + 1))
    return _resize(np.ascontiguousarray(image[y:y + h, x:x + w]), (out_w, out_h))


def _restyle(rng, pixels: np.ndarray, strength: float) -> np.ndarray:
    """Random colour / style change; ``strength`` 0 returns the input unchanged."""
    if strength <= 0:
        return pixels
    x = pixels.astype(np.float32) / 255.0
    gains = 1.0 + strength * rng.uniform(-0.3, 0.3, size=3)
    x = x * gains
    mean = x.mean()
    x = mean + (x - mean) * (1.0 + strength * rng.uniform(-0.3, 0.3))  # contrast
    gray = x.mean(-1, keepdims=True)
    saturation = 0.0 if rng.uniform() < 0.2 * strength else 1.0 + strength * rng.uniform(-0.5, 0.3)
    x = gray + (x - gray) * saturation
    x = np.clip(x, 0.0, 1.0) ** np.exp(strength * rng.uniform(-0.3, 0.3))  # gamma
    x = x + strength * rng.normal(0.0, 0.02, size=x.shape)
    out = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    radius = strength * rng.uniform(0.0, 1.2)
    if radius > 0.3:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(radius)))
    return out


def make_collection(folder: str | os.PathLike, *, seed: int = 0, num_categories: int = 3,
                    instances_per_category: int = 3, num_distractors: int = 2,
                    image_size: tuple[int, int] = (192, 256), detail_fraction: tuple[float, float] = (0.3, 0.5),
                    aspect_jitter: float = 0.1, style_strength: float = 1.0,
                    context: float = 0.0, border: int = 0, use_unraphael: bool = True,
                    detail_sources: Sequence[str] | None = None) -> SyntheticCollection:
    """Writes a collection to ``folder`` and returns its description.

    Args:
      image_size: ``(H, W)`` of every image.
      detail_fraction: range of the pasted detail's longer side as a fraction of the image's longer side.
      aspect_jitter: the detail's aspect ratio is multiplied by ``exp(U(-j, j))`` per instance.
      style_strength: 0 = exact rescaled copies; 1 = the default colour / style changes.
      context: the pasted patch also carries the detail's own surroundings, this fraction of its size on each
        side (clipped at the image border); the annotated box is the detail alone. Copies of a region with its
        surroundings are what near-duplicate paintings share, and they keep features with a large receptive
        field comparable (random-weight networks need it).
      border: pixels kept between the detail and the image border when the sizes allow (0: anywhere).
      detail_sources: names (see ``source_images``) details may be cut from; default: every source except
        the near-featureless or repetitive ones in ``POOR_DETAIL_SOURCES``. Each category takes its detail
        from its own ``source_family``; backgrounds come only from families no category uses.
    """
    if instances_per_category < 2:
        raise ValueError("each category needs at least 2 instances (a query and a ground truth)")
    rng = np.random.default_rng(seed)
    sources = source_images(use_unraphael)
    available = [name for name, _ in sources]
    family = {name: source_family(name) for name in available}
    if detail_sources is None:
        detail_sources = [n for n in available if n not in POOR_DETAIL_SOURCES]
    unknown = sorted(set(detail_sources) - set(available))
    if unknown or not detail_sources:
        raise ValueError(f"detail_sources {unknown or '[]'}: choose among {available}")
    detail_families = list(dict.fromkeys(family[n] for n in detail_sources))
    if num_categories > len(detail_families):
        raise ValueError(f"{num_categories} categories need as many distinct detail families, "
                         f"detail_sources give {detail_families}")
    # One family per category; backgrounds only from the other families, so that no background holds an
    # unannotated copy of some category's detail (the unraphael copies all show the same painting).
    chosen = [detail_families[i] for i in rng.choice(len(detail_families), num_categories, replace=False)]
    backgrounds = [i for i, n in enumerate(available) if family[n] not in chosen]
    if not backgrounds:
        raise ValueError(f"no background source left once details use {chosen}")
    out_h, out_w = image_size
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    total = num_categories * instances_per_category + num_distractors
    names = [f"image_{i:03d}.png" for i in rng.permutation(total)]
    instances = []
    for c, detail_family in enumerate(chosen):
        members = [n for n in detail_sources if family[n] == detail_family]
        detail_name = members[int(rng.integers(len(members)))]
        source = sources[available.index(detail_name)][1]
        side = min(source.shape[:2]) * rng.uniform(0.25, 0.45)
        aspect = float(np.exp(rng.uniform(-0.3, 0.3)))
        fit = min(1.0, source.shape[0] / (side * (1 + 2 * context)),
                  source.shape[1] / (side * aspect * (1 + 2 * context)))
        detail_hw = (max(8, int(side * fit)), max(8, int(side * aspect * fit)))
        margin_hw = (int(round(detail_hw[0] * context)), int(round(detail_hw[1] * context)))
        patch = _textured_crop(rng, source, (detail_hw[0] + 2 * margin_hw[0], detail_hw[1] + 2 * margin_hw[1]))
        for _ in range(instances_per_category):
            name = names.pop()
            background = backgrounds[int(rng.integers(len(backgrounds)))]
            image = _background(rng, sources[background][1], image_size)
            longer = rng.uniform(*detail_fraction) * max(out_h, out_w)
            instance_aspect = detail_hw[1] / detail_hw[0] * float(np.exp(rng.uniform(-aspect_jitter, aspect_jitter)))
            h = int(round(longer / max(instance_aspect, 1.0)))
            w = int(round(longer * min(instance_aspect, 1.0)))
            h, w = min(max(h, 8), out_h), min(max(w, 8), out_w)
            top, left = int(round(margin_hw[0] * h / detail_hw[0])), int(round(margin_hw[1] * w / detail_hw[1]))
            patch_hw = (h + 2 * top, w + 2 * left)
            pasted = _restyle(rng, _resize(patch, patch_hw[::-1]), style_strength)
            y = int(rng.integers(min(border, out_h - h), max(out_h - h - border, min(border, out_h - h)) + 1))
            x = int(rng.integers(min(border, out_w - w), max(out_w - w - border, min(border, out_w - w)) + 1))
            # The detail lies wholly inside the image; its pasted surroundings are clipped at the border.
            y0, x0 = max(y - top, 0), max(x - left, 0)
            y1, x1 = min(y - top + patch_hw[0], out_h), min(x - left + patch_hw[1], out_w)
            image[y0:y1, x0:x1] = pasted[y0 - (y - top):y1 - (y - top), x0 - (x - left):x1 - (x - left)]
            Image.fromarray(image).save(folder / name)
            instances.append(Instance(f"c{c}", name, (x, y, x + w, y + h), detail_name, available[background]))
    distractor_sources = []
    for name in names:
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        Image.fromarray(_background(rng, sources[background][1], image_size)).save(folder / name)
        distractor_sources.append(available[background])

    annotations = {}
    for c in range(num_categories):
        members = [i for i in instances if i.category == f"c{c}"]
        annotations[f"c{c}"] = [
            {"query": [m.image, list(m.box)], "gt": [[o.image, list(o.box)] for o in members if o is not m]}
            for m in members]
    annotation_path = Path(save_json(os.fspath(folder / "annotations.json"), annotations))
    images = tuple(sorted(p.name for p in folder.glob("image_*.png")))
    return SyntheticCollection(folder, annotation_path, json.loads(annotation_path.read_text()), tuple(instances),
                               images, tuple(distractor_sources))
