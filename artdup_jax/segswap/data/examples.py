"""One training example of synthetic segment-swap pairs, a deterministic function of ``(seed, index)``.

``make_example(index, seed=..., source=..., styles=..., config=...)`` is one positive pair; ``task.input_pipeline``
wraps it with ``indexed_batches``:

  compose     one object (probability ``1 - two_object_probability``) or two objects (``composer``)
  stylise     A and B each with probability ``stylise_probability`` (``stylisation.stylise_with``)
  warp        B by a random thin-plate spline with probability ``tps_probability`` (``warps``)
  key mask    with probability ``region_mask_probability``, a "region" key mask on B (its cells with GT mask >= 0.5)

Negatives are not made here: the loss pairs A_i with B_{i+s}, s = 1..3, inside the batch (3 negatives per
positive).

Ground truth lives on the feature grid (g = image_size / stride cells a side), per image:
  mask   ``(g, g)`` float32 in [0, 1], the soft, mutually consistent co-segmentation mask;
  flow   ``(g, g, 2)`` float32, (x, y) = where the cell's content lies in the *other* image, normalised
         [0, 1] over its width / height, cell centre j at (j + 0.5) / g (the model's output convention;
         values outside [0, 1] are allowed and only supervised under the mask).

Coordinates: continuous pixel coordinates with the origin at the image's top-left corner (pixel i covers
[i, i + 1), centre i + 0.5), so dividing by the image size gives the normalised ones. OpenCV puts pixel
centres at integers; ``composer`` converts. Geometry is composed as maps on normalised points, so the TPS warp
of B simply composes with the object's affine map and the masks are rebuilt from the composition.

Deliberate differences from the released generators: rotation is a symmetric U[-15°, 15°] (the released
negative angles are ~0°); the stylised 2-object B is made from the blended image (the released one from the
bare background); both masks are rebuilt after the TPS warp (the released A mask is not); the 2-object flows
take each object's flow where its mask is the larger (one threshold for all).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from artdup_jax.segswap.data.composer import one_object_pair, resize_square, two_object_pair
from artdup_jax.segswap.data.config import SynthesisConfig
from artdup_jax.segswap.data.ground_truth import pair_ground_truth
from artdup_jax.segswap.data.segments import SegmentSource
from artdup_jax.segswap.data.stylisation import STYLE_METHODS, StyleImage, stylise, stylise_with
from artdup_jax.segswap.data.warps import random_tps, warp_with_map


def signature(config: SynthesisConfig, pool_images: int = 0) -> dict:
    """``{name: (shape, dtype)}`` of ``make_example``'s output, for ``indexed_batches``."""
    s, g = config.image_size, config.grid
    out = {
        "image_a": ((s, s, 3), np.float32), "image_b": ((s, s, 3), np.float32),
        "mask_a": ((g, g), np.float32), "mask_b": ((g, g), np.float32),
        "flow_a": ((g, g, 2), np.float32), "flow_b": ((g, g, 2), np.float32),
        "key_mask_b": ((g, g), np.bool_),
        "groups": ((2, 2), np.int32),  # content groups of A (source, source) and of B (background, source)
        "blend": ((), np.int32), "stylised": ((2,), np.int32), "style_method": ((), np.int32),
        "tps_grid": ((), np.int32),
        "num_objects": ((), np.int32),
    }
    if pool_images:
        out["pool_images"] = ((pool_images, s, s, 3), np.float32)
        out["pool_groups"] = ((pool_images, 2), np.int32)
    return out


def make_example(index: int, *, seed: int, source: SegmentSource, styles: Sequence[StyleImage],
                 config: SynthesisConfig, pool_images: int = 0, styliser=None) -> dict:
    """One positive training pair, a deterministic function of ``(seed, index)``; see ``signature``.

    Images are float32 RGB in [0, 1]. ``styles``: paintings for the stylisation (``prepare_styles``; empty:
    never stylised). ``styliser``: AdaIN, ``(uint8 image, uint8 painting, α) -> uint8 image`` (e.g.
    ``artdup_jax.segswap.style.PaintingStyliser``); None: the classical stylisation. ``pool_images`` extra single
    images (random resized crops of source images, possibly stylised) for
    hard-negative mining, with their content groups.
    """
    rng = np.random.default_rng([seed, index])
    for _ in range(config.max_tries):
        pair = None
        if rng.random() < config.two_object_probability:
            pair = two_object_pair(rng, source, config)
        if pair is None:
            pair = one_object_pair(rng, source, config)
        if pair is None:
            continue
        stylised = [bool(styles) and rng.random() < config.stylise_probability for _ in range(2)]
        images = [pair.image_a, pair.image_b]
        painted = []  # AdaIN calls wait until the pair is accepted: each costs far more than a rejected try
        for k in range(2):
            if stylised[k]:
                style = styles[int(rng.integers(len(styles)))]
                if styliser is None:
                    images[k] = stylise(images[k], style, rng.uniform(0, 1), rng)
                else:
                    painted.append((k, style, rng.uniform(0, 1)))
        tps_grid, tps = 0, None
        if rng.random() < config.tps_probability:
            tps_grid, warped_to_original, original_to_warped = random_tps(rng, config.tps_grid_sizes)
            tps = (warped_to_original, original_to_warped)
        truth = pair_ground_truth(pair.objects, tps, config.image_size, config.min_mask_sum)
        if truth is None:
            continue
        for k, style, alpha in painted:
            images[k] = styliser(images[k], style.pixels, alpha)
        if tps is not None:
            images[1] = warp_with_map(images[1], tps[0])
        region = truth["mask_b"] >= 0.5
        key_mask_b = region if rng.random() < config.region_mask_probability and region.any() else \
            np.ones_like(region)
        example = {
            "image_a": images[0].astype(np.float32) / 255, "image_b": images[1].astype(np.float32) / 255,
            **{k: v.astype(np.float32) for k, v in truth.items()},
            "key_mask_b": key_mask_b, "groups": pair.groups, "blend": np.int32(pair.blend),
            "stylised": np.array(stylised, np.int32),
            "style_method": np.int32(STYLE_METHODS.index("classical" if styliser is None else "adain")),
            "tps_grid": np.int32(tps_grid),
            "num_objects": np.int32(len(pair.objects)),
        }
        if pool_images:
            pool = [pool_image(rng, source, styles, config, styliser) for _ in range(pool_images)]
            example["pool_images"] = np.stack([p for p, _ in pool]).astype(np.float32) / 255
            example["pool_groups"] = np.array([[g, g] for _, g in pool], np.int32)
        return example
    raise RuntimeError(f"no valid pair for index {index} in {config.max_tries} tries: the segment source has too "
                       f"few usable segments")


def pool_image(rng, source: SegmentSource, styles: Sequence[StyleImage],
               config: SynthesisConfig, styliser=None) -> tuple[np.ndarray, int]:
    """A single image for the hard-negative pool: a random resized crop (area 8-100 %, aspect 3/4-4/3)
    of a source image, flipped with probability 0.5, stylised with probability 0.5. Returns (uint8, group)."""
    index = int(rng.integers(len(source)))
    image = source.image(index)
    height, width = image.shape[:2]
    for _ in range(10):
        area = height * width * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            image = image[y:y + h, x:x + w]
            break
    out = resize_square(np.ascontiguousarray(image), config.image_size)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if styles and rng.random() < config.stylise_probability:
        out = stylise_with(out, styles[int(rng.integers(len(styles)))], rng, styliser)
    return out, source.group(index)
