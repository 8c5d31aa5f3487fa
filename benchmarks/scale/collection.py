"""The synthetic collection of one size, written to disk image by image (never held in memory).

``images/`` holds the planted categories of the throughput benchmark's discovery stage (``make_collection``:
exact copies of a real detail with 30 % of its surroundings, rescaled, on backgrounds unique to each image,
``image_*.png``), one copy of the first category moved to ``held_out/`` before the build (to be added to the
index afterwards), and the rest of the ``N`` images as distractors (``distractor_*.png``), each drawn on its own
(a smooth random field, random ellipses, rectangles and strokes, blur and noise, from a per-image seed), so no
two share content: every true duplicate pair of the collection lies inside a planted category.
``make_collection``'s own distractors are crops of a few photographs, and at thousands of images those crops
overlap (true duplicates that are not planted), which would blur the precision measured here.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from artdup_jax.data.synthetic_collection import make_collection
from benchmarks.throughput.discovery import CONTEXT, DETAIL_SOURCES, unique_backgrounds

NUM_CATEGORIES = 7  # one per detail source of the throughput benchmark's discovery stage
HELD_OUT_PREFIX = "added_"


@dataclasses.dataclass(frozen=True)
class ScaleCollection:
    root: Path
    images: Path  # the folder ``index build`` reads
    held_out: Path  # the image ``index add`` stores afterwards
    categories: dict[str, list[str]]  # category -> file names (basenames; the held-out one included)
    num_images: int  # stored by the build (the held-out image excluded)


def distractor(seed: int, size_hw: tuple[int, int]) -> Image.Image:
    """A unique synthetic picture: a smooth random colour field with random shapes, blurred, with noise."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    coarse = rng.uniform(0, 255, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 20))):
        x0, x1 = np.sort(rng.uniform(-0.2, 1.2, 2) * w)
        y0, y1 = np.sort(rng.uniform(-0.2, 1.2, 2) * h)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, max(2, w // 16))))
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    pixels = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(0, 8), size=(h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_collection(root: str | os.PathLike, num_images: int, image_size: tuple[int, int], *, seed: int = 0,
                     num_categories: int = NUM_CATEGORIES, instances_per_category: int = 6) -> ScaleCollection:
    """``num_images`` images under ``root`` (the held-out copy is one more); reuses a finished earlier write."""
    root = Path(root)
    images, held = root / "images", root / "held_out"
    num_planted = num_categories * instances_per_category - 1
    if num_images < num_planted:
        raise ValueError(f"{num_images} images: at least {num_planted} (the planted copies) needed")
    done = root / "done"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        collection = make_collection(images, seed=seed, num_categories=num_categories,
                                     instances_per_category=instances_per_category, num_distractors=0,
                                     image_size=image_size, detail_fraction=(0.4, 0.5), aspect_jitter=0.1,
                                     style_strength=0.0, context=CONTEXT, border=16,
                                     detail_sources=list(DETAIL_SOURCES))
        unique_backgrounds(collection, seed + 1)
        held.mkdir(parents=True)
        first = sorted(i.image for i in collection.instances if i.category == "c0")[0]
        shutil.move(images / first, held / (HELD_OUT_PREFIX + first))
        (images / "annotations.json").unlink()  # not an image: the build would list it as skipped
        categories = {}
        for instance in collection.instances:
            name = HELD_OUT_PREFIX + instance.image if instance.image == first else instance.image
            categories.setdefault(instance.category, []).append(name)
        for i in range(num_images - num_planted):
            distractor(seed * 1_000_003 + i, image_size).save(images / f"distractor_{i:06d}.png")
        lines = [f"{c} {' '.join(names)}" for c, names in sorted(categories.items())]
        done.write_text("\n".join(lines) + "\n")
    categories = {line.split()[0]: line.split()[1:] for line in done.read_text().splitlines() if line.strip()}
    held_out = next(held.iterdir())
    return ScaleCollection(root, images, held_out, categories, num_images)
