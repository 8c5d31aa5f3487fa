"""``artdup align`` and ``artdup align-group``: RANSAC-Flow alignment of one pair, or of a folder onto one image.

    settings = AlignSettings(size=400)                         # SIFT coarse stage, no weights needed
    pair = align_images("copy.jpg", "original.jpg", "runs/align", settings)
    group = align_group("original.jpg", "copies/", "runs/group", settings)

Coarse stage: ``coarse="deep"`` (the default when ``coarse_checkpoint`` is given: ResNet-50 / MoCo weights, a
.pth or a converted folder), ``"sift"`` (the default otherwise) or ``"identity"``. Fine stage: only with
``checkpoint`` (a released RANSAC-Flow .pth, a converted folder or a training workdir). Per pair the output
folder holds coarse.png, fine.png (when refined), blend.png (50/50 with the target), blink.gif, flow.npy
((H, W, 2) source-pixel positions), matchability.png and summary.json.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from artdup_jax.checkpoints import load_weights
from artdup_jax.data import outputs
from artdup_jax.data.folders import image_files
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.geometry.sampling import numpy_identity_grid
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.inference import Alignment, align_pair
from artdup_jax.ransac_flow.weights import FAMILY as FINE_FAMILY


class AlignmentError(ValueError):
    """A pair that could not be aligned, or a group none of whose images could; one line."""


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    """The options of ``artdup align`` / ``align-group`` (defaults: the release's quick-start settings)."""

    checkpoint: str | None = None  # fine network: .pth, converted folder or training workdir
    coarse_checkpoint: str | None = None  # ResNet-50 (torchvision) or MoCo weights
    coarse_family: str = "resnet50"
    coarse: str | None = None  # "deep", "sift" or "identity"; None: deep with coarse_checkpoint, else sift
    size: int = coarse_lib.QUICK_START.size
    rule: str = coarse_lib.QUICK_START.rule
    scales: int = coarse_lib.QUICK_START.num_scales
    scale_ratio: float = coarse_lib.QUICK_START.scale_ratio
    iterations: int = 10_000
    max_homographies: int = 1
    texture_transfer: bool = False
    seed: int = 0

    @property
    def coarse_method(self) -> str:
        return self.coarse or ("deep" if self.coarse_checkpoint else "sift")

    def coarse_config(self) -> coarse_lib.CoarseConfig:
        return dataclasses.replace(coarse_lib.QUICK_START, size=self.size, rule=self.rule, num_scales=self.scales,
                                   scale_ratio=self.scale_ratio, iterations=self.iterations, seed=self.seed,
                                   mask_mode="before" if self.rule == "longer" else "after")


@dataclasses.dataclass
class PairAlignment:
    """One aligned pair: where its outputs are, what ``summary.json`` says, and the alignment itself."""

    source: str
    target: str
    out_dir: str
    summary: dict
    alignment: Alignment


@dataclasses.dataclass
class GroupAlignment:
    """Every image of ``folder`` aligned onto ``reference``; ``failed``: path -> reason; ``skipped``: the
    folder's entries that are not image files, as ``(name, reason)``."""

    reference: str
    folder: str
    out_dir: str
    aligned: list[PairAlignment]
    failed: dict[str, str]
    skipped: list[tuple[str, str]]


class _Aligner:
    """The weights and settings of a run, loaded once for every pair."""

    def __init__(self, settings: AlignSettings):
        self.settings = settings
        self.config = settings.coarse_config()
        deep = settings.coarse_method == "deep"
        self.coarse_variables = load_weights(settings.coarse_checkpoint, settings.coarse_family) if deep else None
        self.fine_variables = load_weights(settings.checkpoint, FINE_FAMILY) if settings.checkpoint else None

    def __call__(self, source_path: str, target_path: str, out_dir: str) -> PairAlignment:
        source, target = read_image(source_path), read_image(target_path)
        try:
            alignment = align_pair(source, target, coarse=self.settings.coarse_method,
                                   coarse_variables=self.coarse_variables, fine_variables=self.fine_variables,
                                   config=self.config, max_homographies=self.settings.max_homographies)
        except ValueError as error:  # e.g. no homography: say which pair
            raise AlignmentError(f"{source_path} onto {target_path}: {error}") from None
        summary = write_alignment(alignment, out_dir, texture_transfer=self.settings.texture_transfer)
        return PairAlignment(source_path, target_path, os.path.abspath(out_dir), summary, alignment)


def align_images(source: str, target: str, out: str, settings: AlignSettings = AlignSettings()) -> PairAlignment:
    """Aligns ``source`` onto ``target`` and writes the outputs to ``out``."""
    return _Aligner(settings)(source, target, out)


def align_group(reference: str, folder: str, out: str, settings: AlignSettings = AlignSettings()) -> GroupAlignment:
    """Aligns every image of ``folder`` (but ``reference``) onto ``reference``, one sub-folder each, and writes
    the averages before and after alignment and ``group.json``. An image that cannot be read or aligned is a
    one-line warning and an entry of ``failed``; none aligned at all is an ``AlignmentError``."""
    paths, skipped = image_files(folder)
    read_image(reference)  # an unusable reference: one error, not one per image
    aligner = _Aligner(settings)
    aligned, failed, before, after = [], {}, [], []
    for path in paths:
        if os.path.abspath(path) == os.path.abspath(reference):
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            pair = aligner(path, reference, os.path.join(out, name))
        except (ImageReadError, ValueError) as error:
            reason = str(error).replace(reference, os.path.basename(reference))
            failed[path] = reason if reason.startswith(path) else f"{path}: {reason}"
            warnings.warn(failed[path], stacklevel=2)
            continue
        height, width = pair.alignment.target.shape[:2]
        before.append(pair.alignment.warp(numpy_identity_grid(height, width, np.float32)))
        after.append(pair.alignment.warp())
        aligned.append(pair)
    if not aligned:
        raise AlignmentError(f"{folder}: no image of the group could be aligned onto {reference}")
    outputs.save_image(os.path.join(out, "average_before.png"), np.mean(before, axis=0))
    outputs.save_image(os.path.join(out, "average_after.png"), np.mean(after, axis=0))
    outputs.save_json(os.path.join(out, "group.json"), {"aligned": len(aligned), "failed": failed})
    return GroupAlignment(reference, folder, os.path.abspath(out), aligned, failed, skipped)


def write_alignment(alignment: Alignment, out_dir: str, *, texture_transfer: bool = False) -> dict:
    """Writes one pair's images, flow and ``summary.json`` to ``out_dir``; returns the summary."""
    coarse = alignment.warp(alignment.coarse_grid)
    final = alignment.warp()
    target = alignment.target
    outputs.save_image(os.path.join(out_dir, "target.png"), target)
    outputs.save_image(os.path.join(out_dir, "coarse.png"), coarse)
    if alignment.fine:
        outputs.save_image(os.path.join(out_dir, "fine.png"), final)
    outputs.save_image(os.path.join(out_dir, "blend.png"), 0.5 * final + 0.5 * target)
    outputs.save_gif(os.path.join(out_dir, "blink.gif"), [target, final])
    outputs.save_npy(os.path.join(out_dir, "flow.npy"), alignment.flow_pixels().astype(np.float32))
    outputs.save_image(os.path.join(out_dir, "matchability.png"), alignment.matchability)
    if texture_transfer:
        keep = alignment.matchability[..., None] > 0.5
        outputs.save_image(os.path.join(out_dir, "texture_transfer.png"), np.where(keep, final, target))
    summary = {
        "homographies": [np.asarray(h).tolist() for h in alignment.homographies],
        "fine": alignment.fine,
        "size_hw": list(target.shape[:2]),
        "mean_matchability": float(alignment.matchability.mean()),
        "blend_error_coarse": float(np.abs(coarse - target).mean()),
        "blend_error_final": float(np.abs(final - target).mean()),
    }
    outputs.save_json(os.path.join(out_dir, "summary.json"), summary)
    return summary
