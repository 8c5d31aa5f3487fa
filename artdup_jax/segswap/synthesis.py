"""Synthetic co-segmentation pairs by segment swapping (segswap.md §1), on the fly, in NumPy/OpenCV.

``make_example(index, seed=..., source=..., styles=..., config=...)`` is a deterministic function of
``(seed, index)``; ``task.input_pipeline`` wraps it with ``indexed_batches``. One example is one positive pair:

  1 object  (§1.2)  image A = a whole source image (object in context); image B = a background with the
                    object, aspect-changed, rotated, rescaled and moved, blended in.
  2 objects (§1.3)  two non-touching segments of one source image, placed in two disjoint regions of B
                    (one of 16 layouts).
  then (§1.6)       A and B each stylised with probability 0.5, B thin-plate-spline warped with probability
                    0.5, and with probability 0.5 a "region" key mask on B (its cells with GT mask >= 0.5).

Negatives are not made here: the loss pairs A_i with B_{i+s}, s = 1..3, inside the batch (§1.7), which is the
spec's 3 negatives per positive.

Ground truth lives on the feature grid (g = image_size / stride cells a side), per image:
  mask   ``(g, g)`` float32 in [0, 1], the soft, mutually consistent co-segmentation mask (§1.2.10);
  flow   ``(g, g, 2)`` float32, (x, y) = where the cell's content lies in the *other* image, normalised
         [0, 1] over its width / height, cell centre j at (j + 0.5) / g (the model's output convention;
         values outside [0, 1] are allowed and only supervised under the mask).

Coordinates: continuous pixel coordinates with the origin at the image's top-left corner (pixel i covers
[i, i + 1), centre i + 0.5), so dividing by the image size gives the normalised ones. OpenCV puts pixel
centres at integers; ``_opencv_affine`` converts. Geometry is composed as maps on normalised points, so the
TPS warp of B simply composes with the object's affine map and the masks are rebuilt from the composition.

Deliberate differences from the released generators (segswap.md §1, §7): rotation is a symmetric
U[-15°, 15°] (the released negative angles are ~0°); the stylised 2-object B is made from the blended image
(the released one from the bare background); both masks are rebuilt after the TPS warp (the released A mask
is not); the 2-object flows take each object's flow where its mask is the larger (one threshold for all).

Style transfer is the spec's AdaIN (§1.4) when a ``styliser`` is given (``artdup_jax.style.PaintingStyliser``
over converted ``vgg_normalised.pth`` + decoder weights); without one, a classical stylisation (Lab colour
statistics of a painting, an edge-preserving "brush" filter and the painting's high-frequency texture, mixed
with the original at α ~ U[0, 1]). ``example["style_method"]`` records which (an index into ``STYLE_METHODS``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image

from artdup_jax.segswap.segments import NO_CATEGORY, Segment, SegmentSource, fit_image

BLEND_MODES = ("copy", "blur", "poisson")  # hard-alpha paste, Gaussian-blurred alpha, Poisson (seamlessClone)
STYLE_METHODS = ("classical", "adain")  # example["style_method"] indexes this: what its "stylised" flags mean
_SCALE_STEPS = 10  # the object size factor r takes 10 values with probabilities ∝ exp(-k / 10)
_REFERENCE_SIDE = 640  # the dilation is given in pixels of a COCO-sized (640 px) source image

Map = Callable[[np.ndarray], np.ndarray]  # (..., 2) normalised points -> (..., 2) normalised points


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """The generator's settings; defaults are the spec's (480² images, 30² grid)."""

    image_size: int = 480
    stride: int = 16
    two_object_probability: float = 0.5  # §1.6: the 1-object or the 2-object set, uniformly
    dilation: int = 20  # iterations of 3×3-cross dilation for a 640-px source, scaled with its size
    border_crop_probability: float = 0.2
    aspect: tuple[float, float] = (0.7, 1.0)  # width and height factors, independently
    max_rotation: float = 15.0  # degrees, symmetric
    max_scale_change: float = 0.0  # > 0: the object's A→B scale is kept within [1/m, m] (easy smoke pairs; 0: §1.2)
    one_object_scales: tuple[float, float] = (0.2, 1.0)
    two_object_scales: tuple[float, float] = (0.5, 1.0)
    blend_modes: tuple[str, ...] = ("poisson",)  # the released generators only use Poisson
    stylise_probability: float = 0.5  # per image
    tps_probability: float = 0.5
    tps_grid_sizes: tuple[int, ...] = (4, 6)
    region_mask_probability: float = 0.5
    min_mask_cells: float = 9.0  # reject below this mask sum on a 30² grid (1 % of the cells); scaled with g²
    max_tries: int = 100

    def __post_init__(self):
        if self.image_size % self.stride:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the stride {self.stride}")
        unknown = set(self.blend_modes) - set(BLEND_MODES)
        if unknown or not self.blend_modes:
            raise ValueError(f"blend_modes {self.blend_modes}: choose among {BLEND_MODES}")

    @property
    def grid(self) -> int:
        return self.image_size // self.stride

    @property
    def min_mask_sum(self) -> float:
        return self.min_mask_cells * (self.grid / 30) ** 2


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


# ----------------------------------------------------------------------------------------------------------
# Sampling on the feature grid (align_corners=False, zero outside), float64 NumPy.


def cell_centres(grid: int) -> np.ndarray:
    """``(g, g, 2)`` normalised (x, y) of the cell centres, (j + 0.5) / g."""
    centres = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(centres, centres)
    return np.stack([x, y], axis=-1)


def sample_cells(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``values`` ``(h, w)`` or ``(h, w, c)`` at normalised points ``(..., 2)``.

    The continuous index of point p is ``p · size - 0.5`` (cell / pixel centres at (j + 0.5) / size); taps
    outside the array contribute zero, as ``grid_sample(align_corners=False, padding_mode="zeros")``.
    """
    values = np.asarray(values, np.float64)
    height, width = values.shape[:2]
    x = points[..., 0] * width - 0.5
    y = points[..., 1] * height - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    out = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            tap = values[np.clip(yi, 0, height - 1), np.clip(xi, 0, width - 1)]
            weight = wx * wy * valid
            out = out + (weight[..., None] if values.ndim == 3 else weight) * tap
    return out


def _inside(points: np.ndarray) -> np.ndarray:
    return np.all((points > 0) & (points < 1), axis=-1).astype(np.float64)


def consistent_ground_truth(mask_a: np.ndarray, a_to_b: Map, b_to_a: Map) -> dict:
    """One object's mutually consistent masks and flows (§1.2.9–10).

    Args:
      mask_a: ``(g, g)`` soft mask of the object in A.
      a_to_b, b_to_a: the object's maps between the images, on normalised points.
    Returns:
      ``mask_a``, ``mask_b`` ``(g, g)`` and ``flow_a``, ``flow_b`` ``(g, g, 2)``, float64.
    """
    centres = cell_centres(mask_a.shape[0])
    flow_a, flow_b = a_to_b(centres), b_to_a(centres)
    in_a, in_b = _inside(flow_a), _inside(flow_b)
    mask_b_first = sample_cells(mask_a, flow_b) * in_b
    consistent_a = mask_a * sample_cells(mask_b_first, flow_a) * in_a
    consistent_b = sample_cells(consistent_a, flow_b) * in_b
    return {"mask_a": consistent_a, "mask_b": consistent_b, "flow_a": flow_a, "flow_b": flow_b}


def merge_objects(objects: Sequence[dict]) -> dict:
    """Masks add up; each cell takes the flow of the object whose mask is larger there (0 where none)."""
    merged = {}
    for side in ("a", "b"):
        masks = np.stack([o[f"mask_{side}"] for o in objects])
        flows = np.stack([o[f"flow_{side}"] for o in objects])
        owner = np.argmax(masks, axis=0)
        flow = np.take_along_axis(flows, owner[None, ..., None], axis=0)[0]
        merged[f"mask_{side}"] = masks.sum(0)
        merged[f"flow_{side}"] = np.where(masks.max(0)[..., None] > 0, flow, 0.0)
    return merged


# ----------------------------------------------------------------------------------------------------------
# Geometry.


def _affine_map(matrix: np.ndarray, size: int) -> Map:
    """The map on normalised points of a 3×3 affine in continuous pixels of a ``size``² image."""

    def apply(points):
        pixels = points * size
        return (pixels @ matrix[:2, :2].T + matrix[:2, 2]) / size

    return apply


def _opencv_affine(matrix: np.ndarray) -> np.ndarray:
    """2×3 matrix for ``cv2.warpAffine`` (pixel centres at integers) from one in corner-origin pixels."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    return (np.linalg.inv(shift) @ matrix @ shift)[:2]


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def _scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def _rotate(degrees: float) -> np.ndarray:
    """Counter-clockwise on screen for positive angles (PIL's sense) in y-down coordinates."""
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), np.sin(t), 0], [-np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _size_factor(rng: np.random.Generator, scales: tuple[float, float]) -> float:
    weights = np.exp(-np.arange(_SCALE_STEPS) / 10)
    return float(np.linspace(*scales, _SCALE_STEPS)[rng.choice(_SCALE_STEPS, p=weights / weights.sum())])


def object_transform(rng: np.random.Generator, mask: np.ndarray, region: tuple[int, int, int, int],
                     scales: tuple[float, float], config: SynthesisConfig) -> np.ndarray | None:
    """The A→B affine (3×3, continuous pixels) of §1.2.7: aspect, rotation, crop to the mask, resize, paste.

    Args:
      mask: ``(S, S)`` soft object mask in A, in [0, 1].
      region: ``(x0, y0, x1, y1)`` pixels of B the object must fit in.
    Returns None when the mask is empty.
    """
    rows, cols = np.nonzero(mask > 0.5)
    if rows.size == 0:
        return None
    sw, sh = rng.uniform(*config.aspect, size=2)
    linear = _rotate(rng.uniform(-config.max_rotation, config.max_rotation)) @ _scale(sw, sh)
    corners = np.stack([np.concatenate([cols, cols + 1, cols, cols + 1]),
                        np.concatenate([rows, rows, rows + 1, rows + 1])], axis=-1).astype(np.float64)
    moved = corners @ linear[:2, :2].T
    low, high = moved.min(0), moved.max(0)
    box_w, box_h = high - low
    x0, y0, x1, y1 = region
    fit = min((x1 - x0) / box_w, (y1 - y0) / box_h)
    factor = fit * _size_factor(rng, scales)
    if config.max_scale_change > 0:
        factor = min(float(np.clip(factor, 1 / config.max_scale_change, config.max_scale_change)), fit)
    patch_w, patch_h = box_w * factor, box_h * factor
    # Integer top-left corners where the patch fits (the tolerance absorbs rounding when r = 1).
    left = x0 + rng.integers(0, max(int(np.floor(x1 - x0 - patch_w + 1e-6)), 0) + 1)
    top = y0 + rng.integers(0, max(int(np.floor(y1 - y0 - patch_h + 1e-6)), 0) + 1)
    return _translate(left, top) @ _scale(factor, factor) @ _translate(*(-low)) @ linear


def two_object_layouts(size: int, gap: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """16 layouts of two disjoint regions ``(x0, y0, x1, y1)`` separated by ``gap`` pixels (§1.3.3): the
    two halves (4 orders), a half with a quadrant of the other half (8), diagonal quadrants (4)."""
    a, b = size // 2 - gap // 2, size // 2 + gap - gap // 2
    halves = {"L": (0, 0, a, size), "R": (b, 0, size, size), "T": (0, 0, size, a), "B": (0, b, size, size)}
    quads = {"TL": (0, 0, a, a), "TR": (b, 0, size, a), "BL": (0, b, a, size), "BR": (b, b, size, size)}
    layouts = [(halves[p], halves[q]) for p, q in (("L", "R"), ("R", "L"), ("T", "B"), ("B", "T"))]
    opposite = {"L": ("TR", "BR"), "R": ("TL", "BL"), "T": ("BL", "BR"), "B": ("TL", "TR")}
    layouts += [(halves[p], quads[q]) for p, qs in opposite.items() for q in qs]
    layouts += [(quads[p], quads[q]) for p, q in (("TL", "BR"), ("BR", "TL"), ("TR", "BL"), ("BL", "TR"))]
    return layouts


# ----------------------------------------------------------------------------------------------------------
# Thin-plate splines (§1.6.3), on normalised [0, 1] points.


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r² log r, written with r²: 0.5 · r² · log r²."""
    return 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0))


def fit_tps(source: np.ndarray, target: np.ndarray) -> Map:
    """The thin-plate spline through ``source`` ``(K, 2)`` -> ``target`` ``(K, 2)`` (exact interpolation)."""
    k = len(source)
    kernel = _tps_kernel(np.sum((source[:, None] - source[None]) ** 2, axis=-1))
    affine = np.concatenate([np.ones((k, 1)), source], axis=1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k], system[:k, k:], system[k:, :k] = kernel, affine, affine.T
    rhs = np.concatenate([target, np.zeros((3, 2))])
    weights = np.linalg.solve(system, rhs)

    def apply(points):
        flat = points.reshape(-1, 2)
        basis = _tps_kernel(np.sum((flat[:, None] - source[None]) ** 2, axis=-1))
        out = basis @ weights[:k] + weights[k] + flat @ weights[k + 1:]
        return out.reshape(points.shape)

    return apply


def invert_map(forward: Map, initial: Map, iterations: int = 8) -> Map:
    """The inverse of a near-identity ``forward`` map by fixed-point refinement of ``initial``'s guess:
    q <- q + (p - forward(q)), which converges while forward's Jacobian stays close to the identity."""

    def apply(points):
        guess = initial(points)
        for _ in range(iterations):
            guess = guess + (points - forward(guess))
        return guess

    return apply


def random_tps(rng: np.random.Generator, grid_sizes: Sequence[int]) -> tuple[int, Map, Map]:
    """A random TPS warp: ``(g, warped_to_original, original_to_warped)``.

    Control points on a regular g×g grid move by U(±0.5/g) in [-1, 1] units (±0.25/g here), clipped to the
    image. The spec's inverse is a second spline fitted the other way, off by up to ~1 % of the image; here
    that spline is only the starting guess of ``invert_map``, so the ground truth stays consistent.
    """
    g = int(grid_sizes[rng.integers(len(grid_sizes))])
    x, y = np.meshgrid(np.linspace(0, 1, g), np.linspace(0, 1, g))
    control = np.stack([x.ravel(), y.ravel()], axis=-1)
    moved = np.clip(control + rng.uniform(-0.25 / g, 0.25 / g, control.shape), 0, 1)
    warped_to_original = fit_tps(control, moved)
    return g, warped_to_original, invert_map(warped_to_original, fit_tps(moved, control))


def warp_with_map(image: np.ndarray, output_to_input: Map, lattice: int = 4) -> np.ndarray:
    """``out(p) = image(output_to_input(p))``, bilinear, zero outside; ``(S, S, C)`` square images.

    The (smooth) map is evaluated every ``lattice`` pixels and interpolated bilinearly in between.
    """
    size = image.shape[0]
    coarse = output_to_input(cell_centres(max(size // lattice, 2))).astype(np.float32)
    sources = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR) * size - 0.5
    return cv2.remap(image, sources[..., 0], sources[..., 1], interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ----------------------------------------------------------------------------------------------------------
# Images: resizing, blending, stylisation.


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear to ``size``², aspect ratio ignored (§1.1); uint8 image or mask."""
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


@dataclasses.dataclass(frozen=True)
class StyleImage:
    """A painting for ``stylise``: its pixels (uint8, longer side ≤ ``max_side``) and Lab statistics."""

    pixels: np.ndarray
    lab_mean: np.ndarray  # (3,)
    lab_std: np.ndarray  # (3,)


def prepare_styles(paintings: Sequence[np.ndarray], max_side: int = 640) -> list[StyleImage]:
    styles = []
    for painting in paintings:
        pixels = fit_image(np.ascontiguousarray(painting[..., :3]), max_side)
        lab = cv2.cvtColor(fit_image(pixels, 128), cv2.COLOR_RGB2LAB).astype(np.float64).reshape(-1, 3)
        styles.append(StyleImage(pixels, lab.mean(0), lab.std(0)))
    return styles


def stylise(image: np.ndarray, style: StyleImage, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Classical stand-in for AdaIN (§1.4) on an ``(S, S, 3)`` uint8 image with a painting ``style``.

    AdaIN's statistic transfer, done on Lab pixels instead of VGG features; an edge-preserving filter that
    flattens regions like brush strokes; the painting's high-frequency texture (a random crop) added; the
    result mixed with the input as AdaIN's content-style trade-off, ``strength`` · styled + (1 - strength) · input.
    """
    size = image.shape[0]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    small = lab[::4, ::4].reshape(-1, 3)
    transferred = (lab - small.mean(0)) / (small.std(0) + 1e-3) * style.lab_std + style.lab_mean
    styled = cv2.cvtColor(np.clip(transferred, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    styled = cv2.edgePreservingFilter(styled, flags=cv2.RECURS_FILTER, sigma_s=float(rng.uniform(10, 40)) * size / 480,
                                      sigma_r=float(rng.uniform(0.2, 0.5)))
    painting = style.pixels
    side = min(painting.shape[:2])
    crop_side = int(rng.integers(max(8, side // 4), side + 1))
    cy = rng.integers(0, painting.shape[0] - crop_side + 1)
    cx = rng.integers(0, painting.shape[1] - crop_side + 1)
    crop = cv2.cvtColor(painting[cy:cy + crop_side, cx:cx + crop_side], cv2.COLOR_RGB2GRAY).astype(np.float32)
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop_side > size else cv2.INTER_LINEAR)
    texture = crop - cv2.GaussianBlur(crop, (0, 0), 2.0)
    styled = styled.astype(np.float32) + rng.uniform(0, 1) * texture[..., None]
    out = strength * styled + (1 - strength) * image.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _stylise_with(image: np.ndarray, style: StyleImage, rng: np.random.Generator, styliser) -> np.ndarray:
    """``styliser(image, painting, α)`` (AdaIN) if given, else the classical ``stylise``; α ~ U[0, 1]."""
    alpha = rng.uniform(0, 1)
    return stylise(image, style, alpha, rng) if styliser is None else styliser(image, style.pixels, alpha)


# ----------------------------------------------------------------------------------------------------------
# Pairs.


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation by a 3×3 cross, ``iterations`` times (scipy's default structuring element)."""
    if iterations <= 0:
        return mask.astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.dilate(mask.astype(np.uint8), cross, iterations=iterations)


def _dilation(config: SynthesisConfig, image: np.ndarray) -> int:
    return int(round(config.dilation * max(image.shape[:2]) / _REFERENCE_SIDE))


def _border_crop(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut off the margin between the object and the image border nearest to it (§1.2.4)."""
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
    """The pixel mask bilinearly sampled at the cell centres (no antialias, §1.2.6)."""
    return sample_cells(mask_pixels, cell_centres(grid))


@dataclasses.dataclass
class _Pair:
    image_a: np.ndarray  # (S, S, 3) uint8
    image_b: np.ndarray
    objects: list[tuple[np.ndarray, np.ndarray]]  # (grid mask in A, A->B affine in pixels) per object
    groups: np.ndarray  # (2, 2) int32
    blend: int


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


def one_object_pair(rng, source: SegmentSource, config: SynthesisConfig) -> _Pair | None:
    """§1.2: a whole source image and a background with the object pasted; None if this draw is rejected."""
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
    return _Pair(image_a, image_b, [(_grid_mask(mask_pixels, config.grid), matrix)],
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


def two_object_pair(rng, source: SegmentSource, config: SynthesisConfig) -> _Pair | None:
    """§1.3: two separate segments of one image, placed in the two regions of a random layout."""
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
    return _Pair(image_a, image_b, objects, np.array([[own, own], [other, own]], np.int32), BLEND_MODES.index(mode))


def _compose(first: Map, second: Map) -> Map:
    return lambda points: second(first(points))


def _ground_truth(pair: _Pair, tps: tuple[Map, Map] | None, config: SynthesisConfig) -> dict | None:
    size = config.image_size
    objects = []
    for mask, matrix in pair.objects:
        a_to_b, b_to_a = _affine_map(matrix, size), _affine_map(np.linalg.inv(matrix), size)
        if tps is not None:  # B is now the warped B
            warped_to_original, original_to_warped = tps
            a_to_b = _compose(a_to_b, original_to_warped)
            b_to_a = _compose(warped_to_original, b_to_a)
        objects.append(consistent_ground_truth(mask, a_to_b, b_to_a))
    if any(o["mask_a"].sum() < config.min_mask_sum or o["mask_b"].sum() < config.min_mask_sum for o in objects):
        return None
    if len(objects) == 2 and any(np.sum(objects[0][k] * objects[1][k]) > 0 for k in ("mask_a", "mask_b")):
        return None  # the two objects touch
    return merge_objects(objects)


def make_example(index: int, *, seed: int, source: SegmentSource, styles: Sequence[StyleImage],
                 config: SynthesisConfig, pool_images: int = 0, styliser=None) -> dict:
    """One positive training pair, a deterministic function of ``(seed, index)``; see ``signature``.

    Images are float32 RGB in [0, 1]. ``styles``: paintings for the stylisation (``prepare_styles``; empty:
    never stylised). ``styliser``: AdaIN, ``(uint8 image, uint8 painting, α) -> uint8 image`` (e.g.
    ``artdup_jax.style.PaintingStyliser``); None: the classical stylisation. ``pool_images`` extra single
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
        truth = _ground_truth(pair, tps, config)
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
    """A single image for the hard-negative pool (§3.3): a random resized crop (area 8-100 %, aspect 3/4-4/3)
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
        out = _stylise_with(out, styles[int(rng.integers(len(styles)))], rng, styliser)
    return out, source.group(index)
