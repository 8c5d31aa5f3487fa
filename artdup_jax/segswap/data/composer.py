"""The pair composer: image A (a source image) and image B (a background with the object(s) pasted in).

  one_object_pair   A = a whole source image (object in context); B = a background with the object,
                    aspect-changed, rotated, rescaled and moved (``placement.object_transform``), blended in.
  two_object_pair   two non-touching segments of one source image, placed in two disjoint regions of B (one
                    of 16 layouts, ``placement.two_object_layouts``).

Both return a ``Pair`` (None when the draw is rejected): the two ``(S, S, 3)`` uint8 images and, per object,
its ``(g, g)`` soft mask in A on the feature grid and its A→B affine (3×3, continuous pixels), from which
``ground_truth.pair_ground_truth`` builds the masks and flows. Masks are dilated by ``config.dilation`` 3×3-cross
iterations (for a 640-px source, scaled with its size) and, for one object, cut to the image border nearest to
it with probability ``border_crop_probability``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from artdup_jax.segswap.data.config import BLEND_MODES, SynthesisConfig
from artdup_jax.segswap.data.ground_truth import cell_centres, sample_cells
from artdup_jax.segswap.data.placement import object_transform, two_object_layouts
from artdup_jax.segswap.data.segments import NO_CATEGORY, Segment, SegmentSource

_REFERENCE_SIDE = 640  # the dilation is given in pixels of a COCO-sized (640 px) source image


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear to ``size``², aspect ratio ignored; uint8 image or mask."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def blend(background: np.ndarray, source: np.ndarray, alpha: np.ndarray, mode: str,
          rng: np.random.Generator) -> np.ndarray:
    """Paste ``source`` (already in B's frame) onto ``background`` where ``alpha`` ``(S, S)`` in [0, 1] is high.

    copy: hard alpha (> 0.5); blur: alpha blurred by a Gaussian of σ ~ U[1, 4]·S/480 px; poisson: OpenCV
    ``seamlessClone`` (NORMAL_CLONE) with the soft mask, placed so that its bounding box does not move.
    """
    size = background.shape[0]
    if mode == "copy":
        weight = (alpha > 0.5).astype(np.float32)
    elif mode == "blur":
        weight = cv2.GaussianBlur((alpha > 0.5).astype(np.float32), (0, 0), rng.uniform(1, 4) * size / 480)
    elif mode == "poisson":
        mask = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0  # OpenCV clears this border itself
        if not mask.any():
            return background
        x, y, w, h = cv2.boundingRect(mask)
        return cv2.seamlessClone(source, background, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    else:
        raise ValueError(f"unknown blend mode {mode!r}")
    out = weight[..., None] * source + (1 - weight[..., None]) * background
    return np.clip(np.round(out), 0, 255).astype(np.uint8)



def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation by a 3×3 cross, ``iterations`` times (scipy's default structuring element)."""
    if iterations <= 0:
        return mask.astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.dilate(mask.astype(np.uint8), cross, iterations=iterations)


def _dilation(config: SynthesisConfig, image: np.ndarray) -> int:
    return int(round(config.dilation * max(image.shape[:2]) / _REFERENCE_SIDE))


def _border_crop(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut off the margin between the object and the image border nearest to it."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    top, bottom, left, right = 0, height, 0, width
    margins = [cols.min(), width - 1 - cols.max(), rows.min(), height - 1 - rows.max()]
    side = int(np.argmin(margins))  # left, right, top, bottom
    if side == 0:
        left = cols.min()
    elif side == 1:
        right = cols.max() + 1
    elif side == 2:
        top = rows.min()
    else:
        bottom = rows.max() + 1
    return image[top:bottom, left:right], mask[top:bottom, left:right]


def _source_view(image: np.ndarray, masks: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image A at ``size``² (uint8) and each object's soft mask at ``size``² (float in [0, 1])."""
    resized = [resize_square((m > 0).astype(np.uint8) * 255, size).astype(np.float64) / 255 for m in masks]
    return resize_square(image, size), resized


def _grid_mask(mask_pixels: np.ndarray, grid: int) -> np.ndarray:
    """The pixel mask bilinearly sampled at the cell centres (no antialias)."""
    return sample_cells(mask_pixels, cell_centres(grid))


@dataclasses.dataclass
class Pair:
    """A composed pair before stylisation and warping."""

    image_a: np.ndarray  # (S, S, 3) uint8
    image_b: np.ndarray
    objects: list[tuple[np.ndarray, np.ndarray]]  # (grid mask in A, A->B affine in pixels) per object
    groups: np.ndarray  # (2, 2) int32
    blend: int


def _opencv_affine(matrix: np.ndarray) -> np.ndarray:
    """2×3 matrix for ``cv2.warpAffine`` (pixel centres at integers) from one in corner-origin pixels."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    return (np.linalg.inv(shift) @ matrix @ shift)[:2]


def _paste(rng, background, image_a, object_masks, transforms, mode, size):
    image_b = background
    for mask, matrix in zip(object_masks, transforms):
        affine = _opencv_affine(matrix)
        warped = cv2.warpAffine(image_a, affine, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask.astype(np.float32), affine, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
        image_b = blend(image_b, warped, alpha, mode, rng)
    return image_b


def one_object_pair(rng, source: SegmentSource, config: SynthesisConfig) -> Pair | None:
    """A whole source image and a background with the object pasted; None if this draw is rejected."""
    size = config.image_size
    background = int(rng.integers(len(source)))
    segment = source.sample_object(rng, background)
    if segment is None:
        return None
    image = source.image(segment.image_index)
    mask = _dilate(segment.mask, _dilation(config, image))
    if rng.random() < config.border_crop_probability:
        image, mask = _border_crop(image, mask)
    image_a, (mask_pixels,) = _source_view(image, [mask], size)
    matrix = object_transform(rng, mask_pixels, (0, 0, size, size), config.one_object_scales, config)
    if matrix is None:
        return None
    mode = config.blend_modes[int(rng.integers(len(config.blend_modes)))]
    image_b = _paste(rng, resize_square(source.image(background), size), image_a, [mask_pixels], [matrix],
                     mode, size)
    own, other = source.group(segment.image_index), source.group(background)
    return Pair(image_a, image_b, [(_grid_mask(mask_pixels, config.grid), matrix)],
                 np.array([[own, own], [other, own]], np.int32), BLEND_MODES.index(mode))


def _separable_pairs(segments: Sequence[Segment], dilated: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    pairs = []
    for i in range(len(segments)):
        for j in range(i + 1, len(segments)):
            ci, cj = segments[i].category, segments[j].category
            if ci != NO_CATEGORY and ci == cj:
                continue
            if not np.any(dilated[i] & dilated[j]):
                pairs.append((i, j))
    return pairs


def two_object_pair(rng, source: SegmentSource, config: SynthesisConfig) -> Pair | None:
    """Two separate segments of one image, placed in the two regions of a random layout."""
    size = config.image_size
    index = int(rng.integers(len(source)))
    segments = source.segments(index)
    if len(segments) < 2:
        return None
    image = source.image(index)
    dilated = [_dilate(s.mask, _dilation(config, image)).astype(bool) for s in segments]
    pairs = _separable_pairs(segments, dilated)
    if not pairs:
        return None
    first, second = pairs[int(rng.integers(len(pairs)))]
    if rng.random() < 0.5:
        first, second = second, first
    background = int(rng.integers(len(source)))
    if source.group(background) == source.group(index):
        return None
    image_a, masks = _source_view(image, [dilated[first], dilated[second]], size)
    layouts = two_object_layouts(size, config.stride)
    regions = layouts[int(rng.integers(len(layouts)))]
    transforms = [object_transform(rng, m, r, config.two_object_scales, config) for m, r in zip(masks, regions)]
    if any(t is None for t in transforms):
        return None
    mode = config.blend_modes[int(rng.integers(len(config.blend_modes)))]
    image_b = _paste(rng, resize_square(source.image(background), size), image_a, masks, transforms, mode, size)
    own, other = source.group(index), source.group(background)
    objects = [(_grid_mask(m, config.grid), t) for m, t in zip(masks, transforms)]
    return Pair(image_a, image_b, objects, np.array([[own, own], [other, own]], np.int32), BLEND_MODES.index(mode))

