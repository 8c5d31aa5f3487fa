"""``artdup align`` and ``artdup align-group``: one pair aligned, or a folder onto one image, each verified.

    settings = AlignSettings(size=400)                         # classical portfolio, no weights needed
    pair = align_images("copy.jpg", "original.jpg", "runs/align", settings)
    group = align_group("original.jpg", "copies/", "runs/group", settings)

Coarse stage (``app.alignment_stages``): ``coarse="deep"`` (the default when ``coarse_checkpoint`` is given:
ResNet-50 / MoCo weights; the classical portfolio is its fallback), ``"classical"`` (the default otherwise:
the weightless portfolio), ``"sift"`` or ``"identity"``. Every alignment is verified against the identity
(no alignment) with one colour-independent score; one that does not beat it is a failure (an
``AlignmentError``; in a group, an entry of ``failed``), written as ``failed.json`` only. Fine stage: the
learned network with ``checkpoint`` (a released RANSAC-Flow .pth, a converted folder or a training workdir),
or the weightless DIS flow with ``weightless_fine`` (not the learned network), or none. ``estimator``: the
robust estimator of the ``deep`` and ``sift`` coarse stages, ``"magsac"`` (the tool's default: MAGSAC++ with
PROSAC by match quality) or ``"release"`` (the release's RANSAC, for parity); the classical portfolio fits
its homographies with OpenCV's USAC MAGSAC++ (``geometry.classical.rootsift.robust_fit``).

Per pair the output folder holds, at the processing size (``size``): target.png, coarse.png, fine.png
(learned fine stage) or fine_weightless.png (DIS fine stage), blend.png (50/50 with the target), blink.gif,
flow.npy ((H, W, 2) displacement, source position minus target pixel), matchability.png; at the target's
ORIGINAL resolution (``full_resolution``): warped_full.png (the source warped, tile by tile) and
flow_full.npy ((H_t, W_t, 2) float32: for each original target pixel, the original source pixel (x, y) it
reads, ``cv2.remap``'s map); and summary.json, with the homographies also in original pixels
(``homographies_pixels``: source → target, ``cv2.warpPerspective(source, H, (W_t, H_t))``), the method,
its verification score and the identity's.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from artdup_jax.app.alignment_stages import (
    CLASSICAL,
    COARSE_METHODS,
    FINE_STAGES,
    StagedAlignment,
    UnverifiedAlignment,
    Verification,
    align_staged,
)
from artdup_jax.checkpoints import load_weights
from artdup_jax.data import outputs
from artdup_jax.data.folders import image_files
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.geometry.full_resolution import TILE, residual_from_grid, warp_full_resolution
from artdup_jax.geometry.sampling import numpy_identity_grid
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.weights import FAMILY as FINE_FAMILY

class AlignmentError(ValueError):
    """A pair that could not be aligned, or a group none of whose images could; one line. ``verification``:
    the scores of a pair whose alignment did not beat the identity (else None)."""

    def __init__(self, message: str, verification: Verification | None = None):
        super().__init__(message)
        self.verification = verification


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    """The options of ``artdup align`` / ``align-group`` (defaults: the release's quick-start settings)."""

    checkpoint: str | None = None  # fine network: .pth, converted folder or training workdir
    coarse_checkpoint: str | None = None  # ResNet-50 (torchvision) or MoCo weights
    coarse_family: str = "resnet50"
    coarse: str | None = None  # one of COARSE_METHODS; None: deep with coarse_checkpoint, else classical
    weightless_fine: bool = False  # DIS flow after the coarse stage (not the learned fine network)
    full_resolution: bool = True  # also warped_full.png and flow_full.npy at the target's original size
    tile: int = TILE  # target pixels per tile side of the full-resolution warp
    size: int = coarse_lib.QUICK_START.size
    rule: str = coarse_lib.QUICK_START.rule
    scales: int = coarse_lib.QUICK_START.num_scales
    scale_ratio: float = coarse_lib.QUICK_START.scale_ratio
    iterations: int = 10_000
    max_homographies: int = 1
    texture_transfer: bool = False
    seed: int = 0
    estimator: str = "magsac"  # the deep / sift coarse stages' robust estimator: one of coarse_lib.ESTIMATORS

    @property
    def coarse_method(self) -> str:
        return self.coarse or ("deep" if self.coarse_checkpoint else CLASSICAL)

    def coarse_config(self) -> coarse_lib.CoarseConfig:
        return dataclasses.replace(coarse_lib.QUICK_START, size=self.size, rule=self.rule, num_scales=self.scales,
                                   scale_ratio=self.scale_ratio, iterations=self.iterations, seed=self.seed,
                                   mask_mode="before" if self.rule == "longer" else "after",
                                   estimator=self.estimator)


@dataclasses.dataclass
class PairAlignment:
    """One aligned pair: where its outputs are, what ``summary.json`` says, and the alignment itself."""

    source: str
    target: str
    out_dir: str
    summary: dict
    staged: StagedAlignment

    @property
    def alignment(self):
        """The processing-size ``ransac_flow.inference.Alignment``."""
        return self.staged.alignment


@dataclasses.dataclass
class GroupAlignment:
    """Every image of ``folder`` aligned onto ``reference``; ``failed``: path -> reason (unreadable, or not
    verified); ``verification``: path -> the scores of every image aligned or not verified; ``skipped``: the
    folder's entries that are not image files, as ``(name, reason)``."""

    reference: str
    folder: str
    out_dir: str
    aligned: list[PairAlignment]
    failed: dict[str, str]
    skipped: list[tuple[str, str]]
    verification: dict[str, dict] = dataclasses.field(default_factory=dict)


class _Aligner:
    """The weights and settings of a run, loaded once for every pair."""

    def __init__(self, settings: AlignSettings):
        if settings.coarse_method not in COARSE_METHODS:
            raise ValueError(f"coarse must be one of {COARSE_METHODS}, got {settings.coarse_method!r}")
        if settings.estimator not in coarse_lib.ESTIMATORS:
            raise ValueError(f"estimator must be one of {coarse_lib.ESTIMATORS}, got {settings.estimator!r}")
        self.settings = settings
        self.config = settings.coarse_config()
        deep = settings.coarse_method == "deep"
        self.coarse_variables = load_weights(settings.coarse_checkpoint, settings.coarse_family) if deep else None
        self.fine_variables = load_weights(settings.checkpoint, FINE_FAMILY) if settings.checkpoint else None

    def __call__(self, source_path: str, target_path: str, out_dir: str) -> PairAlignment:
        source, target = read_image(source_path), read_image(target_path)
        settings = self.settings
        try:
            staged = align_staged(source, target, coarse=settings.coarse_method, config=self.config,
                                  coarse_variables=self.coarse_variables, fine_variables=self.fine_variables,
                                  max_homographies=settings.max_homographies, weightless=settings.weightless_fine)
        except UnverifiedAlignment as failure:  # a failure, not a result: its scores only
            outputs.save_json(os.path.join(out_dir, "failed.json"),
                              {"source": source_path, "target": target_path, "reason": str(failure),
                               **failure.verification.as_json()})
            raise AlignmentError(f"{source_path} onto {target_path}: {failure}", failure.verification) from None
        except ValueError as error:
            raise AlignmentError(f"{source_path} onto {target_path}: {error}") from None
        summary = write_alignment(staged, out_dir, source=source if settings.full_resolution else None,
                                  texture_transfer=settings.texture_transfer, tile=settings.tile)
        return PairAlignment(source_path, target_path, os.path.abspath(out_dir), summary, staged)


def align_images(source: str, target: str, out: str, settings: AlignSettings = AlignSettings()) -> PairAlignment:
    """Aligns ``source`` onto ``target`` and writes the outputs to ``out``; an ``AlignmentError`` when the
    alignment does not beat the identity (``out/failed.json`` then holds the scores)."""
    return _Aligner(settings)(source, target, out)


def align_group(reference: str, folder: str, out: str, settings: AlignSettings = AlignSettings()) -> GroupAlignment:
    """Aligns every image of ``folder`` (but ``reference``) onto ``reference``, one sub-folder each, and writes
    the averages before and after alignment and ``group.json``. An image that cannot be read, or whose
    alignment does not beat the identity, is a one-line warning and an entry of ``failed``; none aligned at
    all is an ``AlignmentError``."""
    paths, skipped = image_files(folder)
    read_image(reference)  # an unusable reference: one error, not one per image
    aligner = _Aligner(settings)
    aligned, failed, verification, before, after = [], {}, {}, [], []
    for path in paths:
        if os.path.abspath(path) == os.path.abspath(reference):
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            pair = aligner(path, reference, os.path.join(out, name))
        except (ImageReadError, ValueError) as error:
            reason = str(error).replace(reference, os.path.basename(reference))
            failed[path] = reason if reason.startswith(path) else f"{path}: {reason}"
            if getattr(error, "verification", None) is not None:
                verification[path] = error.verification.as_json()
            warnings.warn(failed[path], stacklevel=2)
            continue
        verification[path] = pair.staged.verification.as_json()
        height, width = pair.alignment.target.shape[:2]
        before.append(pair.alignment.warp(numpy_identity_grid(height, width, np.float32)))
        after.append(pair.alignment.warp())
        aligned.append(pair)
    outputs.save_json(os.path.join(out, "group.json"),
                      {"aligned": len(aligned), "failed": failed, "verification": verification})
    if not aligned:
        raise AlignmentError(f"{folder}: no image of the group could be aligned onto {reference}")
    outputs.save_image(os.path.join(out, "average_before.png"), np.mean(before, axis=0))
    outputs.save_image(os.path.join(out, "average_after.png"), np.mean(after, axis=0))
    return GroupAlignment(reference, folder, os.path.abspath(out), aligned, failed, skipped, verification)


def write_full_resolution(staged: StagedAlignment, source: np.ndarray, out_dir: str, *, tile: int = TILE) -> dict:
    """warped_full.png and flow_full.npy at the target's original size (see the module docstring), tile by
    tile; ``source``: (H_s, W_s, 3) float32 in [0, 1] at its original size. Returns their summary entry."""
    alignment, homography = staged.alignment, staged.homographies_pixels[0]
    residual = None
    if staged.fine_stage != "none" or len(staged.homographies_pixels) > 1:
        residual = residual_from_grid(alignment.grid, alignment.source.shape[:2], homography, staged.source_hw,
                                      staged.target_hw)
    source_uint8 = np.empty(source.shape, np.uint8)
    for top in range(0, source.shape[0], 128):  # by rows: no full-size float temporaries
        source_uint8[top: top + 128] = outputs.to_uint8(source[top: top + 128])
    warped = []

    def fill(coordinates):
        warped.append(warp_full_resolution(source_uint8, homography, staged.target_hw, residual=residual,
                                           tile=tile, coordinates_out=coordinates))

    outputs.save_npy_mapped(os.path.join(out_dir, "flow_full.npy"), (*staged.target_hw, 2), np.float32, fill)
    outputs.save_image(os.path.join(out_dir, "warped_full.png"), warped[0])
    return {"warped": "warped_full.png", "flow": "flow_full.npy", "size_hw": list(staged.target_hw),
            "flow_meaning": "for each original target pixel (row y, column x), the original source pixel (x, y) "
                            "it reads (pixel centres at integers; cv2.remap's map)"}


def write_alignment(staged: StagedAlignment, out_dir: str, *, source: np.ndarray | None = None,
                    texture_transfer: bool = False, tile: int = TILE) -> dict:
    """Writes one pair's images, flows and ``summary.json`` to ``out_dir``; returns the summary. ``source``:
    the original source ((H, W, 3) float32 in [0, 1]) for the full-resolution outputs (None: none)."""
    alignment = staged.alignment
    coarse = alignment.warp(alignment.coarse_grid)
    final = alignment.warp()
    target = alignment.target
    outputs.save_image(os.path.join(out_dir, "target.png"), target)
    outputs.save_image(os.path.join(out_dir, "coarse.png"), coarse)
    fine_file = {"learned": "fine.png", "weightless": "fine_weightless.png"}.get(staged.fine_stage)
    if fine_file:
        outputs.save_image(os.path.join(out_dir, fine_file), final)
    outputs.save_image(os.path.join(out_dir, "blend.png"), 0.5 * final + 0.5 * target)
    outputs.save_gif(os.path.join(out_dir, "blink.gif"), [target, final])
    outputs.save_npy(os.path.join(out_dir, "flow.npy"), alignment.flow_pixels().astype(np.float32))
    outputs.save_image(os.path.join(out_dir, "matchability.png"), alignment.matchability)
    if texture_transfer:
        keep = alignment.matchability[..., None] > 0.5
        outputs.save_image(os.path.join(out_dir, "texture_transfer.png"), np.where(keep, final, target))
    summary = {
        **staged.verification.as_json(),
        "homographies": [np.asarray(h).tolist() for h in alignment.homographies],
        "homographies_pixels": [np.asarray(h).tolist() for h in staged.homographies_pixels],
        "fine": alignment.fine,
        "fine_stage": staged.fine_stage,
        "fine_stage_label": FINE_STAGES[staged.fine_stage],
        "size_hw": list(target.shape[:2]),
        "original_size_hw": {"source": list(staged.source_hw), "target": list(staged.target_hw)},
        "mean_matchability": float(alignment.matchability.mean()),
        "blend_error_coarse": float(np.abs(coarse - target).mean()),
        "blend_error_final": float(np.abs(final - target).mean()),
    }
    if source is not None:
        summary["full_resolution"] = write_full_resolution(staged, source, out_dir, tile=tile)
    outputs.save_json(os.path.join(out_dir, "summary.json"), summary)
    return summary
