"""MegaDepth-1600 and RobotCar sparse-correspondence pairs.

A CSV with columns ``scene, source_image, target_image, XA, YA, XB, YB``; the coordinate columns are
``;``-separated lists of pixel coordinates at the images' original size (A = source, B = target). Images are
``IMAGE_DIR/scene/name``, or ``IMAGE_DIR/name`` when ``scene`` is ``/``::

    MegaDepth:  Test/test1600Pairs.csv  +  Test/test1600Pairs/<scene>/<image>
    RobotCar:   test6511.csv            +  img/<scene>/<image>

Scoring resizes both images so that the shorter side is 480, floored to a multiple of 16
(:func:`shorter_side_size`), scales the keypoints by the same ratios and, for MegaDepth only, drops points not
strictly inside either resized image (:func:`prepare_keypoints`). The metric itself is
``artdup_jax.ransac_flow.metrics.sparse_pck_counts``.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from artdup_jax.data.images import read_image_size

CSV_COLUMNS = ("scene", "source_image", "target_image", "XA", "YA", "XB", "YB")
MIN_SIZE = 480
STRIDE = 16


class SparseLayoutError(ValueError):
    """The CSV or image folder does not match the MegaDepth / RobotCar test layout."""


@dataclasses.dataclass(frozen=True)
class SparsePair:
    """One CSV row. ``source_xy``/``target_xy``: ``(N, 2)`` float32 pixels at the original sizes, x first."""

    index: int
    scene: str
    source_path: Path
    target_path: Path
    source_xy: np.ndarray
    target_xy: np.ndarray


def _parse_list(text: str, where: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.split(";") if v.strip() != ""], dtype=np.float32)
    except ValueError as exc:
        raise SparseLayoutError(f"{where}: bad coordinate list ({exc})") from None


def iter_sparse_pairs(csv_path, image_dir, *, check_images: bool = True) -> Iterator[SparsePair]:
    """Pairs of a MegaDepth / RobotCar test CSV, in row order (``index`` = row number from 0)."""
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    if not csv_path.is_file():
        raise SparseLayoutError(f"{csv_path}: no such CSV")
    if check_images and not image_dir.is_dir():
        raise SparseLayoutError(f"{image_dir}: image folder not found")
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise SparseLayoutError(f"{csv_path}: missing columns {missing} (expected {', '.join(CSV_COLUMNS)})")
        for index, row in enumerate(reader):
            where = f"{csv_path}:{index + 2}"
            scene = row["scene"]
            folder = image_dir if scene == "/" else image_dir / scene
            source, target = folder / row["source_image"], folder / row["target_image"]
            if check_images:
                for path in (source, target):
                    if not path.is_file():
                        raise SparseLayoutError(f"{where}: image {path} not found")
            xa, ya = _parse_list(row["XA"], where), _parse_list(row["YA"], where)
            xb, yb = _parse_list(row["XB"], where), _parse_list(row["YB"], where)
            if not (len(xa) == len(ya) == len(xb) == len(yb)):
                raise SparseLayoutError(f"{where}: XA, YA, XB, YB have different lengths "
                                        f"({len(xa)}, {len(ya)}, {len(xb)}, {len(yb)})")
            yield SparsePair(index, scene, source, target, np.stack([xa, ya], -1), np.stack([xb, yb], -1))


def shorter_side_size(size_wh, min_size: int = MIN_SIZE, stride: int = STRIDE) -> tuple[int, int]:
    """Evaluation size ``(w, h)``: shorter side scaled to ``min_size`` (Python ``round``), then each side
    floored to a multiple of ``stride``."""
    w, h = size_wh
    ratio = min(w / float(min_size), h / float(min_size))
    new_w, new_h = round(w / ratio), round(h / ratio)
    return new_w // stride * stride, new_h // stride * stride


def prepare_keypoints(xy, original_wh, resized_wh, *, drop_outside: bool):
    """Scale ``(N, 2)`` keypoints to the resized image.

    Returns ``(scaled_xy (N, 2) float32, inside (N,) bool)``; ``inside`` is ``0 < x < w`` and ``0 < y < h``
    when ``drop_outside`` (MegaDepth) and all True otherwise (RobotCar).
    """
    xy = np.asarray(xy, np.float32)
    ratio_w = resized_wh[0] / float(original_wh[0])
    ratio_h = resized_wh[1] / float(original_wh[1])
    scaled = np.stack([xy[:, 0] * np.float32(ratio_w), xy[:, 1] * np.float32(ratio_h)], -1).astype(np.float32)
    if not drop_outside:
        return scaled, np.ones(len(xy), bool)
    inside = (scaled[:, 0] > 0) & (scaled[:, 0] < resized_wh[0]) & (scaled[:, 1] > 0) & (scaled[:, 1] < resized_wh[1])
    return scaled, inside


def prepare_pair(pair: SparsePair, *, megadepth: bool, min_size: int = MIN_SIZE, stride: int = STRIDE,
                 source_size_hw=None, target_size_hw=None) -> dict:
    """Evaluation sizes and keypoints of a pair per the protocol.

    Args:
      megadepth: drop points outside either resized image (MegaDepth) or keep all (RobotCar).
      source_size_hw, target_size_hw: original sizes (read from the image headers when None).
    Returns:
      ``{"source_size_hw", "target_size_hw"}`` (resized) and ``{"source_xy", "target_xy"}`` ``(M, 2)`` float32.
    """
    src_hw = read_image_size(pair.source_path) if source_size_hw is None else tuple(source_size_hw)
    tgt_hw = read_image_size(pair.target_path) if target_size_hw is None else tuple(target_size_hw)
    src_wh = shorter_side_size((src_hw[1], src_hw[0]), min_size, stride)
    tgt_wh = shorter_side_size((tgt_hw[1], tgt_hw[0]), min_size, stride)
    source_xy, inside_s = prepare_keypoints(pair.source_xy, (src_hw[1], src_hw[0]), src_wh, drop_outside=megadepth)
    target_xy, inside_t = prepare_keypoints(pair.target_xy, (tgt_hw[1], tgt_hw[0]), tgt_wh, drop_outside=megadepth)
    keep = inside_s & inside_t
    return {
        "source_size_hw": (src_wh[1], src_wh[0]),
        "target_size_hw": (tgt_wh[1], tgt_wh[0]),
        "source_xy": source_xy[keep],
        "target_xy": target_xy[keep],
    }
