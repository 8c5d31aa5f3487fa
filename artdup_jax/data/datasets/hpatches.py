"""HPatches viewpoint sequences and the DGC-Net "240x240 AEPE" protocol.

Layout (``hpatches-sequences-release``)::

    ROOT/v_<name>/1.ppm ... 6.ppm        images
    ROOT/v_<name>/H_1_2 ... H_1_6        3x3 text, x_k ~ H_1_k x_1 (pixels, OpenCV convention)
    CSV_DIR/hpatches_1_{2..6}.csv        DGC-Net tables: obj, im1, im2, Him, Wim, H11..H33

A pair is always source = image 1, target = image k; its viewpoint level ("scene" I..V) is k - 1. The CSV
homography equals ``H_1_k``; ``Him, Wim`` are image 1's size. The ground-truth *grid* (for every target pixel,
where to read the source) is built as in the DGC-Net / RANSAC-Flow scripts, see :func:`dgc_homography_grid`.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from artdup_jax.data.images import read_image_size

LEVELS = (2, 3, 4, 5, 6)  # target image index k of the pairs 1 -> k
LEVEL_NAMES = {2: "I", 3: "II", 4: "III", 5: "IV", 6: "V"}
EVAL_SIZE = 240  # the protocol's fixed evaluation grid
CSV_COLUMNS = ("obj", "im1", "im2", "Him", "Wim",
               "H11", "H12", "H13", "H21", "H22", "H23", "H31", "H32", "H33")


class HPatchesLayoutError(ValueError):
    """The folder or CSV does not look like the HPatches release / DGC-Net tables."""


@dataclasses.dataclass(frozen=True)
class HPatchesSequence:
    """One ``v_*`` / ``i_*`` folder.

    image_paths: ``(6,)`` paths of ``1.ppm`` .. ``6.ppm``.
    homographies: ``{k: (3, 3) float64}`` for k = 2..6, mapping image 1 pixels to image k pixels.
    """

    name: str
    root: Path
    image_paths: tuple[Path, ...]
    homographies: dict[int, np.ndarray]


@dataclasses.dataclass(frozen=True)
class HPatchesPair:
    """Source = image 1, target = image ``target_index`` of ``sequence``.

    homography: ``(3, 3)`` float64, source pixels -> target pixels (``x_k ~ H x_1``).
    source_size_hw: image 1's ``(H, W)`` (from the CSV's ``Him, Wim`` when read from a CSV).
    target_size_hw: image k's ``(H, W)`` (from the file header).
    """

    sequence: str
    target_index: int
    source_path: Path
    target_path: Path
    homography: np.ndarray
    source_size_hw: tuple[int, int]
    target_size_hw: tuple[int, int]

    @property
    def level(self) -> str:
        """Viewpoint level "I".."V" (pair 1 -> 2 is I)."""
        return LEVEL_NAMES[self.target_index]

    @property
    def name(self) -> str:
        return f"{self.sequence}/1-{self.target_index}"


def read_homography(path) -> np.ndarray:
    """A 3x3 whitespace-separated text matrix as ``(3, 3)`` float64."""
    path = Path(path)
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise HPatchesLayoutError(f"{path}: not a 3x3 text homography ({exc})") from None
    if values.size != 9:
        raise HPatchesLayoutError(f"{path}: expected 9 numbers, found {values.size}")
    return values.reshape(3, 3)


def _image_path(folder: Path, index: int) -> Path:
    path = folder / f"{index}.ppm"
    if not path.is_file():
        raise HPatchesLayoutError(f"{folder}: missing {index}.ppm (expected an HPatches sequence folder "
                                  "with 1.ppm..6.ppm and H_1_2..H_1_6)")
    return path


def read_sequence(folder) -> HPatchesSequence:
    """Read one sequence folder (``1.ppm``..``6.ppm``, ``H_1_2``..``H_1_6``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HPatchesLayoutError(f"{folder}: not a directory")
    images = tuple(_image_path(folder, i) for i in range(1, 7))
    homographies = {}
    for k in LEVELS:
        h_path = folder / f"H_1_{k}"
        if not h_path.is_file():
            raise HPatchesLayoutError(f"{folder}: missing H_1_{k}")
        homographies[k] = read_homography(h_path)
    return HPatchesSequence(folder.name, folder, images, homographies)


def sequence_names(root, *, prefix: str = "v_") -> list[str]:
    """Sorted names of the sequence folders under ``root`` starting with ``prefix`` ("v_": viewpoint)."""
    root = Path(root)
    if not root.is_dir():
        raise HPatchesLayoutError(f"{root}: not a directory (expected hpatches-sequences-release)")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))


def iter_sequences(root, *, names: Iterable[str] | None = None, prefix: str = "v_"
                   ) -> Iterator[HPatchesSequence]:
    """Sequences under ``root`` (all ``prefix*`` folders, or exactly ``names``)."""
    root = Path(root)
    names = sequence_names(root, prefix=prefix) if names is None else list(names)
    if not names:
        raise HPatchesLayoutError(f"{root}: no '{prefix}*' sequence folders")
    for name in names:
        yield read_sequence(root / name)


def iter_pairs(root, *, sequences: Iterable[str] | None = None, levels: Iterable[int] = LEVELS
               ) -> Iterator[HPatchesPair]:
    """Pairs 1 -> k from the sequence folders' own ``H_1_k`` files, sequence-major."""
    levels = tuple(levels)
    for seq in iter_sequences(root, names=sequences):
        source_hw = read_image_size(seq.image_paths[0])
        for k in levels:
            target = seq.image_paths[k - 1]
            yield HPatchesPair(seq.name, k, seq.image_paths[0], target, seq.homographies[k],
                               source_hw, read_image_size(target))


def read_dgc_csv(path) -> list[dict]:
    """Rows of a DGC-Net ``hpatches_1_k.csv``: ``{"obj", "im1", "im2", "Him", "Wim", "H"}``.

    ``im1``/``im2``/``Him``/``Wim`` are ints, ``H`` is ``(3, 3)`` float64 (image im1 -> image im2 pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise HPatchesLayoutError(f"{path}: no such CSV")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise HPatchesLayoutError(f"{path}: missing columns {missing} (expected {', '.join(CSV_COLUMNS)})")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({
                    "obj": row["obj"],
                    "im1": int(float(row["im1"])), "im2": int(float(row["im2"])),
                    "Him": int(float(row["Him"])), "Wim": int(float(row["Wim"])),
                    "H": np.array([float(row[c]) for c in CSV_COLUMNS[5:]], np.float64).reshape(3, 3),
                })
            except (TypeError, ValueError) as exc:
                raise HPatchesLayoutError(f"{path}:{line}: bad row ({exc})") from None
    return rows


def csv_path(csv_dir, k: int) -> Path:
    return Path(csv_dir) / f"hpatches_1_{k}.csv"


def iter_csv_pairs(csv_dir, image_root, *, sequences: Iterable[str] | None = None,
                   levels: Iterable[int] = LEVELS, skip_missing: bool = False) -> Iterator[HPatchesPair]:
    """Pairs of the DGC-Net tables, level-major (all of level I, then II, ...), in CSV row order.

    Args:
      csv_dir: folder with ``hpatches_1_{k}.csv``.
      image_root: ``hpatches-sequences-release`` folder.
      sequences: restrict to these sequence names (each must appear in every CSV).
      levels: target indices k to read.
      skip_missing: skip rows whose sequence folder is absent instead of raising.
    """
    image_root = Path(image_root)
    wanted = None if sequences is None else set(sequences)
    for k in levels:
        rows = read_dgc_csv(csv_path(csv_dir, k))
        if wanted is not None:
            unknown = wanted - {r["obj"] for r in rows}
            if unknown:
                raise HPatchesLayoutError(f"{csv_path(csv_dir, k)}: no rows for {sorted(unknown)}")
        for row in rows:
            if wanted is not None and row["obj"] not in wanted:
                continue
            folder = image_root / row["obj"]
            if not folder.is_dir():
                if skip_missing:
                    continue
                raise HPatchesLayoutError(f"{folder}: sequence of {csv_path(csv_dir, k).name} not found")
            source = _image_path(folder, row["im1"])
            target = _image_path(folder, row["im2"])
            yield HPatchesPair(row["obj"], row["im2"], source, target, row["H"],
                               (row["Him"], row["Wim"]), read_image_size(target))


# --------------------------------------------------------------------------------------------------
# Ground truth of the 240x240 protocol


def _scale(out_hw, in_hw) -> np.ndarray:
    """DGC-Net's resize matrix: pixel coordinates scaled by ``out / in`` (no half-pixel shift)."""
    return np.diag([out_hw[1] / in_hw[1], out_hw[0] / in_hw[0], 1.0])


def dgc_homography_grid(homography, source_size_hw, target_size_hw, *, out_target_hw=(EVAL_SIZE, EVAL_SIZE),
                        out_source_hw=None):
    """Dense grid induced by a pixel homography, as the DGC-Net / RANSAC-Flow HPatches scripts build it.

    The homography is rescaled to the output sizes with ``H' = S_t H S_s^-1``, ``S = diag(out_w / W,
    out_h / H, 1)`` (plain scaling), inverted, applied to the ``out_target_hw`` pixel lattice, divided by the
    third coordinate ``+ 1e-8`` in float32, and normalised with AC over ``out_source_hw``. With the default
    240x240 sizes this is exactly the protocol's ground truth; with ``out_target_hw = target_size_hw`` and
    ``out_source_hw = source_size_hw`` it is the exact full-resolution correspondence.

    Args:
      homography: ``(3, 3)`` source pixels -> target pixels at the original sizes.
      source_size_hw, target_size_hw: original ``(H, W)``.
      out_target_hw: lattice of the returned grid.
      out_source_hw: frame of the normalisation (default: ``out_target_hw``).
    Returns:
      ``(grid, valid)``: ``(h, w, 2)`` float32 normalised AC source locations (x first) and ``(h, w)`` bool,
      True where the location lies in ``[-1, 1]^2``.
    """
    out_source_hw = tuple(out_target_hw) if out_source_hw is None else tuple(out_source_hw)
    H = np.asarray(homography, np.float64)
    H_scaled = _scale(out_target_hw, target_size_hw) @ H @ np.linalg.inv(_scale(out_source_hw, source_size_hw))
    H_inv = np.linalg.inv(H_scaled)
    h, w = out_target_hw
    xs, ys = np.meshgrid(np.linspace(0, w - 1, w), np.linspace(0, h - 1, h))
    xyz = H_inv @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    x, y, z = (xyz[i].astype(np.float32) for i in range(3))
    z = z + np.float32(1e-8)
    gx = np.float32(2) * x / z / np.float32(out_source_hw[1] - 1) - np.float32(1)
    gy = np.float32(2) * y / z / np.float32(out_source_hw[0] - 1) - np.float32(1)
    grid = np.stack([gx, gy], -1).reshape(h, w, 2).astype(np.float32)
    valid = np.all((grid >= -1) & (grid <= 1), axis=-1)
    return grid, valid


def ground_truth_grid(pair: HPatchesPair, size: int = EVAL_SIZE):
    """The protocol's ``(size, size, 2)`` ground-truth grid and validity mask for ``pair``."""
    return dgc_homography_grid(pair.homography, pair.source_size_hw, pair.target_size_hw,
                               out_target_hw=(size, size))


def full_resolution_ground_truth(pair: HPatchesPair):
    """``(source_px, valid)`` at the target's original resolution.

    source_px: ``(H_t, W_t, 2)`` float64 source pixel of every target pixel (``H^-1`` applied, x first).
    valid: ``(H_t, W_t)`` bool, True where it lies inside the source image ``[0, W_s-1] x [0, H_s-1]``.
    """
    height, width = pair.target_size_hw
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    xyz = np.linalg.inv(pair.homography) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    with np.errstate(divide="ignore", invalid="ignore"):
        source_px = (xyz[:2] / xyz[2]).T.reshape(height, width, 2)
    src_h, src_w = pair.source_size_hw
    in_front = (xyz[2] > 0).reshape(height, width)
    valid = in_front & ((source_px[..., 0] >= 0) & (source_px[..., 0] <= src_w - 1)
             & (source_px[..., 1] >= 0) & (source_px[..., 1] <= src_h - 1))
    return source_px, valid


_SEQ_RE = re.compile(r"^[vi]_")
