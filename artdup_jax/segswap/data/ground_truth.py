"""Ground truth on the feature grid: cell sampling, maps on normalised points, consistent masks and flows.

A grid has g cells a side; cell j's centre is (j + 0.5) / g in normalised [0, 1] coordinates (x first). A
``Map`` takes ``(..., 2)`` normalised points of one image to where they lie in the other. Sampling is bilinear
with align_corners=False and zero outside, in float64 NumPy.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Map = Callable[[np.ndarray], np.ndarray]  # (..., 2) normalised points -> (..., 2) normalised points


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
    """One object's mutually consistent masks and flows (masks transported A -> B -> A -> B).

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



def affine_map(matrix: np.ndarray, size: int) -> Map:
    """The map on normalised points of a 3×3 affine in continuous pixels of a ``size``² image."""

    def apply(points):
        pixels = points * size
        return (pixels @ matrix[:2, :2].T + matrix[:2, 2]) / size

    return apply



def compose(first: Map, second: Map) -> Map:
    """``second`` after ``first``."""
    return lambda points: second(first(points))


def pair_ground_truth(pair_objects: Sequence[tuple[np.ndarray, np.ndarray]], tps: tuple[Map, Map] | None,
                      image_size: int, min_mask_sum: float) -> dict | None:
    """The merged masks and flows of a pair's objects (``merge_objects``), or None if the pair is rejected.

    Args:
      pair_objects: per object, its ``(g, g)`` soft mask in A and its A→B affine (3×3, continuous pixels).
      tps: ``(warped_to_original, original_to_warped)`` when B is thin-plate-spline warped, else None.
      image_size: the side S of both images, pixels.
      min_mask_sum: an object whose mask in A or B sums below this rejects the pair.
    Returns None also when two objects touch.
    """
    size = image_size
    objects = []
    for mask, matrix in pair_objects:
        a_to_b, b_to_a = affine_map(matrix, size), affine_map(np.linalg.inv(matrix), size)
        if tps is not None:  # B is now the warped B
            warped_to_original, original_to_warped = tps
            a_to_b = compose(a_to_b, original_to_warped)
            b_to_a = compose(warped_to_original, b_to_a)
        objects.append(consistent_ground_truth(mask, a_to_b, b_to_a))
    if any(o["mask_a"].sum() < min_mask_sum or o["mask_b"].sum() < min_mask_sum for o in objects):
        return None
    if len(objects) == 2 and any(np.sum(objects[0][k] * objects[1][k]) > 0 for k in ("mask_a", "mask_b")):
        return None  # the two objects touch
    return merge_objects(objects)

