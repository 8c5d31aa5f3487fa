"""YFCC100M two-view geometry test pairs, OANet split.

Layout::

    IMAGES/<scene>/test/images.txt           one image path per line (relative to .../test/)
    IMAGES/<scene>/test/calibration.txt      one HDF5 path per line, same order
    IMAGES/<scene>/test/<calibration h5>     datasets K (3x3), R (3x3), T (3,) or (1, 3), imsize (1, 2) = (w, h)
    PAIRS/<scene>-te-1000-pairs.pkl          list of [idxA, idxB] into those lines

Source = A = ``pair[0]``, target = B = ``pair[1]``. The ground-truth relative pose maps camera A to camera B:
``R = R_B R_A^T``, ``t = T_B - R T_A``. ``K``'s principal point is an *offset from the image centre*
``((w - 1) / 2, (h - 1) / 2)`` (:func:`normalise_keypoints`).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from artdup_jax.data.datasets.megadepth import shorter_side_size


class YFCCLayoutError(ValueError):
    """The folders do not match the OANet YFCC test layout."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """One image's calibration: ``K`` (3, 3), ``R`` (3, 3), ``T`` (3,), ``size_wh`` from ``imsize``."""

    K: np.ndarray
    R: np.ndarray
    T: np.ndarray
    size_wh: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class YFCCPair:
    """One test pair; ``rotation``/``translation`` are the ground-truth pose of B relative to A."""

    scene: str
    index: int
    source_path: Path
    target_path: Path
    source_calibration: Calibration
    target_calibration: Calibration
    rotation: np.ndarray
    translation: np.ndarray


class _ListOfIntsUnpickler(pickle.Unpickler):
    """Refuses every global: the pair files hold only lists and ints, so nothing else may be built."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pair list")


def read_pairs(path) -> list[tuple[int, int]]:
    """A ``*-te-1000-pairs.pkl`` file as a list of ``(idxA, idxB)`` (safe: no objects are unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise YFCCLayoutError(f"{path}: no such pair file")
    try:
        data = _ListOfIntsUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as exc:
        raise YFCCLayoutError(f"{path}: not a pickled list of index pairs ({exc})") from None
    try:
        pairs = [(int(a), int(b)) for a, b in data]
    except (TypeError, ValueError) as exc:
        raise YFCCLayoutError(f"{path}: not a list of [idxA, idxB] ({exc})") from None
    return pairs


def read_calibration(path) -> Calibration:
    """Read one calibration HDF5 (datasets ``K``, ``R``, ``T``, ``imsize``)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            K = np.array(f["K"], np.float64).reshape(3, 3)
            R = np.array(f["R"], np.float64).reshape(3, 3)
            T = np.array(f["T"], np.float64).reshape(3)
            imsize = np.array(f["imsize"]).reshape(-1)
    except (OSError, KeyError, ValueError) as exc:
        raise YFCCLayoutError(f"{path}: not a calibration HDF5 with K, R, T, imsize ({exc})") from None
    return Calibration(K, R, T, (int(imsize[0]), int(imsize[1])))


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise YFCCLayoutError(f"{path}: missing (expected <scene>/test/images.txt and calibration.txt)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def relative_pose(a: Calibration, b: Calibration):
    """``(R, t)`` mapping camera A coordinates to camera B: ``R = R_B R_A^T``, ``t = T_B - R T_A``."""
    R = b.R @ a.R.T
    return R, b.T - R @ a.T


def iter_yfcc_pairs(images_root, pairs_dir, *, scenes: Iterable[str] | None = None) -> Iterator[YFCCPair]:
    """Pairs of the given scenes (default: every ``*-te-1000-pairs.pkl`` in ``pairs_dir``), file order."""
    images_root, pairs_dir = Path(images_root), Path(pairs_dir)
    if scenes is None:
        if not pairs_dir.is_dir():
            raise YFCCLayoutError(f"{pairs_dir}: pair folder not found")
        scenes = sorted(p.name[: -len("-te-1000-pairs.pkl")] for p in pairs_dir.glob("*-te-1000-pairs.pkl"))
        if not scenes:
            raise YFCCLayoutError(f"{pairs_dir}: no *-te-1000-pairs.pkl files")
    for scene in scenes:
        test_dir = images_root / scene / "test"
        images = _lines(test_dir / "images.txt")
        calibrations = _lines(test_dir / "calibration.txt")
        if len(images) != len(calibrations):
            raise YFCCLayoutError(f"{test_dir}: images.txt has {len(images)} lines, calibration.txt "
                                  f"{len(calibrations)}")
        cache: dict[int, Calibration] = {}

        def calibration(i):
            if i not in cache:
                cache[i] = read_calibration(test_dir / calibrations[i])
            return cache[i]

        for index, (a, b) in enumerate(read_pairs(pairs_dir / f"{scene}-te-1000-pairs.pkl")):
            if not (0 <= a < len(images) and 0 <= b < len(images)):
                raise YFCCLayoutError(f"{scene} pair {index}: index ({a}, {b}) outside images.txt "
                                      f"({len(images)} lines)")
            cal_a, cal_b = calibration(a), calibration(b)
            R, t = relative_pose(cal_a, cal_b)
            yield YFCCPair(scene, index, test_dir / images[a], test_dir / images[b], cal_a, cal_b, R, t)


def normalise_keypoints(xy, calibration: Calibration, resized_wh):
    """Pixels of the resized image -> normalised camera coordinates, as the reference's ``norm_kp``.

    Principal point ``((w - 1) / 2 + K[0, 2], (h - 1) / 2 + K[1, 2])`` and focal lengths ``K[0, 0], K[1, 1]``
    at the original size ``calibration.size_wh``, all scaled by ``resized / original`` per axis.

    Args:
      xy: ``(N, 2)`` pixels in the resized image, x first.
    Returns:
      ``(N, 2)`` float64.
    """
    w, h = calibration.size_wh
    rw, rh = resized_wh[0] / w, resized_wh[1] / h
    K = calibration.K
    centre = np.array([((w - 1.0) * 0.5 + K[0, 2]) * rw, ((h - 1.0) * 0.5 + K[1, 2]) * rh])
    focal = np.array([K[0, 0] * rw, K[1, 1] * rh])
    return (np.asarray(xy, np.float64) - centre) / focal


def evaluation_size(size_wh, min_size: int = 480, stride: int = 16) -> tuple[int, int]:
    """Resized ``(w, h)`` of an image for YFCC scoring (same rule as MegaDepth)."""
    return shorter_side_size(size_wh, min_size, stride)


def matches_from_grid(grid, match_mask, source_resized_wh, target_resized_wh, rotation_deg: int = 0):
    """Dense matches of a merged prediction, as the reference's ``matches_from_flow``.

    The prediction lives on the target rotated by ``rotation_deg`` (0/90/180/270, counter-clockwise, canvas
    expanded); the target lattice is rotated the same way (``np.rot90``) so that returned target points are in
    the *unrotated* resized target.

    Args:
      grid: ``(h, w, 2)`` normalised AC source locations on the (rotated) target lattice.
      match_mask: ``(h, w)`` bool (matchability >= threshold and foreground).
      source_resized_wh, target_resized_wh: ``(w, h)`` of the resized source and unrotated target.
    Returns:
      ``(source_px (M, 2), target_px (M, 2))`` float64, x first.
    """
    if rotation_deg % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation_deg}")
    wa, ha = source_resized_wh
    wb, hb = target_resized_wh
    xs, ys = np.meshgrid(np.arange(wb), np.arange(hb))
    target_lattice = np.rot90(np.stack([xs, ys], axis=2), (rotation_deg // 90) % 4)
    mask = np.asarray(match_mask, bool)
    if target_lattice.shape[:2] != mask.shape:
        raise ValueError(f"prediction of shape {mask.shape} does not match the rotated target "
                         f"{target_lattice.shape[:2]}")
    target_px = target_lattice[mask].astype(np.float64)
    source = np.asarray(grid, np.float64)[mask]
    source_px = np.stack([(source[:, 0] + 1) * (wa - 1) / 2, (source[:, 1] + 1) * (ha - 1) / 2], -1)
    return source_px, target_px
