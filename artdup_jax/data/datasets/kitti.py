"""KITTI 2015 optical flow, training split.

Layout::

    ROOT/training/image_2/000000_10.png, 000000_11.png, ...   (frame 10 = target, frame 11 = source)
    ROOT/training/flow_noc/000000_10.png, ...                   ground truth, non-occluded pixels
    ROOT/training/flow_occ/000000_10.png, ...                   ground truth, all pixels

Ground-truth PNGs are 16-bit RGB: ``u = (R - 2^15) / 64``, ``v = (G - 2^15) / 64`` pixels, ``B > 0`` marks a
valid pixel. The flow is defined on frame 10 and points into frame 11, i.e. target pixel -> source location,
the same direction as a RANSAC-Flow grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class KittiLayoutError(ValueError):
    """The folder does not look like KITTI 2015's ``training`` split."""


@dataclasses.dataclass(frozen=True)
class KittiFlowPair:
    """One training pair. ``flow_path`` is the ``flow_noc`` or ``flow_occ`` PNG of the target frame."""

    index: int
    name: str
    source_path: Path  # frame 11
    target_path: Path  # frame 10
    flow_path: Path


def _training_dir(root) -> Path:
    root = Path(root)
    for candidate in (root / "training", root):
        if (candidate / "image_2").is_dir():
            return candidate
    raise KittiLayoutError(f"{root}: expected KITTI 2015 layout training/image_2/*_10.png, *_11.png and "
                           "training/flow_noc|flow_occ/*_10.png")


def iter_kitti_flow_pairs(root, *, occluded: bool = False) -> Iterator[KittiFlowPair]:
    """Training pairs in index order.

    Args:
      root: KITTI 2015 root (containing ``training/``) or the ``training`` folder itself.
      occluded: False: ``flow_noc`` (non-occluded, the README's ``--noc``); True: ``flow_occ``.
    """
    training = _training_dir(root)
    flow_dir = training / ("flow_occ" if occluded else "flow_noc")
    if not flow_dir.is_dir():
        raise KittiLayoutError(f"{training}: missing {flow_dir.name}/ (ground-truth flow)")
    targets = sorted((training / "image_2").glob("*_10.png"))
    if not targets:
        raise KittiLayoutError(f"{training / 'image_2'}: no *_10.png frames")
    for target in targets:
        name = target.name[: -len("_10.png")]
        source = target.with_name(f"{name}_11.png")
        flow = flow_dir / target.name
        if not source.is_file():
            raise KittiLayoutError(f"{source}: missing second frame of pair {name}")
        if not flow.is_file():
            raise KittiLayoutError(f"{flow}: missing ground truth of pair {name}")
        yield KittiFlowPair(int(name) if name.isdigit() else -1, name, source, target, flow)


def read_kitti_flow(path):
    """Decode a KITTI flow PNG.

    Returns:
      ``(flow, valid)``: ``(H, W, 2)`` float32 displacement in pixels (u = x, v = y) and ``(H, W)`` bool.
    """
    import cv2

    path = Path(path)
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint16:
        raise KittiLayoutError(f"{path}: not a 16-bit 3-channel KITTI flow PNG")
    b, g, r = data[..., 0], data[..., 1], data[..., 2]  # OpenCV reads BGR
    flow = np.stack([(r.astype(np.float32) - 32768.0) / 64.0, (g.astype(np.float32) - 32768.0) / 64.0], -1)
    return flow, b > 0


def write_kitti_flow(path, flow, valid) -> None:
    """Encode ``(H, W, 2)`` pixel flow and ``(H, W)`` validity as a KITTI flow PNG (inverse of the reader)."""
    import cv2

    flow = np.asarray(flow, np.float64)
    encoded = np.clip(np.round(flow * 64.0 + 32768.0), 0, 65535).astype(np.uint16)
    bgr = np.stack([np.asarray(valid, np.uint16), encoded[..., 1], encoded[..., 0]], -1)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: could not write PNG")
