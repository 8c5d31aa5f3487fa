"""The alignment of one pair for the tool: a coarse stage, its verification against the identity, a fine stage.

Coarse stages (``COARSE_METHODS``):
  ``classical``  the weightless portfolio (``geometry.classical.align_classical``: RootSIFT with guided
                 matching, Fourier–Mellin, ECC on gradients); the default without coarse weights.
  ``deep``       RANSAC-Flow's learned coarse stage (ResNet-50 / MoCo features); the default with weights.
                 When it finds no homography, or one that does not verify, the classical portfolio is tried
                 and kept if it verifies (``Verification.fallback_from`` says so).
  ``sift``       OpenCV SIFT + our RANSAC (the former default).
  ``identity``   no coarse alignment: it can never beat the identity, so it never verifies on its own.

Verification (every stage): the score of ``geometry.classical.verification`` (doubled-angle gradient
correlation over the overlap, independent of colour and medium) of the coarse homography in original
pixels, against the score of the identity (no alignment). An alignment that does not beat the identity by
the margin raises :class:`UnverifiedAlignment`: it is a failure, never a result.

Fine stages (``FINE_STAGES``): RANSAC-Flow's learned fine network (with its weights), the weightless DIS
optical flow on gradient images (``geometry.classical.dense_flow``; not the learned network), or none.

Frames: ``Alignment`` (``ransac_flow.inference``) holds the images resized per the coarse config and grids
on that processing lattice (target-normalised AC → source-normalised AC). ``homographies_pixels`` are the
same homographies in the ORIGINAL images' pixels, source → target (OpenCV's convention:
``cv2.warpPerspective(source, H, (W_t, H_t))``).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.classical import ClassicalConfig, align_classical, preprocess
from artdup_jax.geometry.classical.dense_flow import DenseFlowConfig, dense_flow
from artdup_jax.geometry.classical.verification import Verifier
from artdup_jax.geometry.homography import (
    homography_grid,
    normalised_to_pixel_homography,
    pixel_to_normalised_homography,
)
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.inference import Alignment, align_pair, homography_layer

CLASSICAL = "classical"
COARSE_METHODS = (CLASSICAL, *coarse_lib.METHODS)
ALREADY_ALIGNED = 0.5  # an identity scoring this much: the pair may need no alignment (said in the reason)
FINE_STAGES = {
    "none": "none (the coarse homography)",
    "learned": "RANSAC-Flow's learned fine network",
    "weightless": "weightless DIS optical flow on gradient images, confidence-weighted (not the learned "
                  "RANSAC-Flow fine network)",
}


@dataclasses.dataclass(frozen=True)
class Verification:
    """How an alignment was chosen and how far it beats the identity (scores in [-1, 1], see module docstring)."""

    coarse_stage: str  # one of COARSE_METHODS: the stage whose homography was kept
    method: str | None  # the candidate kept, e.g. "rootsift+ecc", "deep", "sift"; None when there was none
    score: float
    identity_score: float
    verified: bool
    candidate_scores: dict[str, float]  # every candidate tried (classical ones by name, "deep", "sift")
    reason: str | None = None  # why not verified
    fallback_from: str | None = None  # the learned stage the classical portfolio replaced, and why
    fallback_reason: str | None = None

    def as_json(self) -> dict:
        """summary.json's fields: ``score`` as ``verification_score``; the fallback fields only when used."""
        fields = {"coarse_stage": self.coarse_stage, "method": self.method, "verification_score": float(self.score),
                  "identity_score": float(self.identity_score), "verified": bool(self.verified),
                  "candidate_scores": {name: float(value) for name, value in self.candidate_scores.items()},
                  "reason": self.reason, "fallback_from": self.fallback_from, "fallback_reason": self.fallback_reason}
        return {key: value for key, value in fields.items() if value is not None or key in ("method", "reason")}

    def line(self) -> str:
        """One line: the method and its score vs the identity's, or why it is not verified."""
        if self.verified:
            return f"{self.coarse_stage} {self.method}, score {self.score:.3f} vs identity {self.identity_score:.3f}"
        hint = " (the images may be aligned already)" if self.identity_score >= ALREADY_ALIGNED else ""
        return f"{self.coarse_stage}: {self.reason}{hint}"


class UnverifiedAlignment(ValueError):
    """No alignment beats the identity; ``verification`` holds the scores. One line."""

    def __init__(self, verification: Verification):
        super().__init__(f"not aligned: {verification.line()}")
        self.verification = verification


@dataclasses.dataclass
class StagedAlignment:
    """A verified alignment: processing-size result, original-pixel homographies, how it was obtained."""

    alignment: Alignment
    homographies_pixels: list[np.ndarray]  # (3, 3) float64, original source → original target pixels
    verification: Verification
    fine_stage: str  # key of FINE_STAGES
    source_hw: tuple[int, int]  # original sizes
    target_hw: tuple[int, int]


def processing_images(source: np.ndarray, target: np.ndarray, config: coarse_lib.CoarseConfig):
    """Both (H, W, 3) float32 images resized per the coarse config (as ``align_pair`` does)."""
    return (coarse_lib.resize_image(source, config.size, config.rule),
            coarse_lib.resize_image(target, config.size, config.rule))


def grid_to_pixel_homography(H_grid: np.ndarray, source_processing_hw, target_processing_hw, source_hw,
                             target_hw) -> np.ndarray:
    """A processing-lattice grid homography (target-normalised AC → source-normalised AC) as (3, 3) float64
    original source pixels → original target pixels."""
    target_to_source = np.asarray(normalised_to_pixel_homography(
        jnp.asarray(H_grid, jnp.float32), target_processing_hw, source_processing_hw, align_corners=True), np.float64)
    return preprocess.change_frames(np.linalg.inv(target_to_source),
                                    np.linalg.inv(preprocess.scale_matrix(source_hw, source_processing_hw)),
                                    np.linalg.inv(preprocess.scale_matrix(target_hw, target_processing_hw)))


def pixel_to_grid_homography(H: np.ndarray, source_processing_hw, target_processing_hw, source_hw,
                             target_hw) -> np.ndarray:
    """Inverse of :func:`grid_to_pixel_homography`: (3, 3) float64 grid homography on the processing lattice."""
    H_processing = preprocess.change_frames(H, preprocess.scale_matrix(source_hw, source_processing_hw),
                                            preprocess.scale_matrix(target_hw, target_processing_hw))
    return np.asarray(pixel_to_normalised_homography(jnp.asarray(np.linalg.inv(H_processing), jnp.float32),
                                                     target_processing_hw, source_processing_hw,
                                                     align_corners=True), np.float64)


def _alignment_from_homography(H: np.ndarray, source: np.ndarray, target: np.ndarray,
                               config: coarse_lib.CoarseConfig, fine_variables) -> Alignment:
    """The processing-size ``Alignment`` of one original-pixel homography, refined by the learned fine
    network when its variables are given (as ``align_pair``'s first layer)."""
    source_image, target_image = processing_images(source, target, config)
    H_grid = pixel_to_grid_homography(H, source_image.shape[:2], target_image.shape[:2], source.shape[:2],
                                      target.shape[:2])
    grid, matchability = homography_layer(fine_variables, source_image, target_image)(H_grid)
    height, width = target_image.shape[:2]
    coarse_grid = np.asarray(homography_grid(jnp.asarray(H_grid, jnp.float32), height, width))
    return Alignment(source=source_image, target=target_image, homographies=[H_grid], coarse_grid=coarse_grid,
                     grid=np.clip(grid, -1, 1), matchability=np.asarray(matchability, np.float32),
                     fine=fine_variables is not None)


def weightless_fine(alignment: Alignment, config: DenseFlowConfig = DenseFlowConfig()) -> Alignment:
    """The coarse homography of ``alignment`` refined by DIS flow on gradient images (``dense_flow``).

    Where the forward-backward check gives confidence c (0 outside the warped source), the flow moves each
    target pixel's source position by c times the DIS correction: unsure pixels keep the homography.
    Not RANSAC-Flow's learned fine network. Returns the processing-size ``Alignment`` (``fine`` False: no
    learned stage ran) with the DIS confidence as matchability.
    """
    source_image, target_image = alignment.source, alignment.target
    (hs, ws), (ht, wt) = source_image.shape[:2], target_image.shape[:2]
    target_to_source = np.asarray(normalised_to_pixel_homography(
        jnp.asarray(alignment.homographies[0], jnp.float32), (ht, wt), (hs, ws), align_corners=True), np.float64)
    flow = dense_flow(source_image, target_image, np.linalg.inv(target_to_source), config)
    lattice = np.stack(np.meshgrid(np.arange(wt, dtype=np.float64), np.arange(ht, dtype=np.float64)), -1)
    coarse = preprocess.apply(target_to_source, lattice.reshape(-1, 2)).reshape(ht, wt, 2)
    refined = coarse + flow.confidence[..., None] * (flow.source_coordinates - coarse)
    grid = refined / np.array([(ws - 1) / 2, (hs - 1) / 2]) - 1
    return dataclasses.replace(alignment, grid=np.clip(grid, -1, 1).astype(np.float32),
                               matchability=flow.confidence.astype(np.float32), fine=False)


def _classical_stage(source, target, config, fine_variables, classical: ClassicalConfig, **changes):
    """The portfolio's (alignment or None when not verified, homographies, verification with ``changes``)."""
    result = align_classical(source, target, config=classical)
    verification = dataclasses.replace(Verification(CLASSICAL, result.method, result.score, result.identity_score,
                                                    result.verified, dict(result.candidate_scores), result.reason),
                                       **changes)
    if not verification.verified:
        return None, [], verification
    return (_alignment_from_homography(result.homography, source, target, config, fine_variables),
            [np.asarray(result.homography, np.float64)], verification)


def _ransac_flow_stage(source, target, coarse: str, config, coarse_variables, fine_variables, max_homographies,
                       verifier: Verifier):
    """``align_pair``'s (alignment or None, homographies in original pixels, verification of the first)."""
    identity = verifier.identity().score
    try:
        alignment = align_pair(source, target, coarse=coarse, coarse_variables=coarse_variables,
                               fine_variables=fine_variables, config=config, max_homographies=max_homographies)
    except ValueError as error:  # no homography found
        return None, [], Verification(coarse, None, -1.0, identity, False, {}, str(error))
    hws = (alignment.source.shape[:2], alignment.target.shape[:2], source.shape[:2], target.shape[:2])
    homographies = [grid_to_pixel_homography(H, *hws) for H in alignment.homographies]
    score = verifier.score(homographies[0]).score
    verified = verifier.verified(score, identity)
    reason = None if verified else \
        f"the {coarse} coarse homography does not verify: score {score:.3f}, identity {identity:.3f}"
    return alignment, homographies, Verification(coarse, coarse, score, identity, verified, {coarse: score}, reason)


def align_staged(source: np.ndarray, target: np.ndarray, *, coarse: str, config: coarse_lib.CoarseConfig,
                 coarse_variables=None, fine_variables=None, max_homographies: int = 1, weightless: bool = False,
                 classical: ClassicalConfig = ClassicalConfig()) -> StagedAlignment:
    """Aligns ``source`` onto ``target`` ((H, W, 3) float32 RGB in [0, 1], original sizes) and verifies it.

    coarse: one of ``COARSE_METHODS``. fine_variables: the learned fine network's (None: no learned fine
    stage); ``weightless``: the DIS fine stage instead. Raises :class:`UnverifiedAlignment` when the kept
    homography does not beat the identity.
    """
    if coarse not in COARSE_METHODS:
        raise ValueError(f"coarse must be one of {COARSE_METHODS}, got {coarse!r}")
    if weightless and fine_variables is not None:
        raise ValueError("the weightless fine stage replaces the learned one: give one of them")
    if coarse == CLASSICAL:
        alignment, homographies, verification = _classical_stage(source, target, config, fine_variables, classical)
    else:
        alignment, homographies, verification = _ransac_flow_stage(
            source, target, coarse, config, coarse_variables, fine_variables, max_homographies,
            Verifier(source, target, classical.verification))
        if not verification.verified and coarse == "deep":  # the portfolio is the learned stage's fallback
            learned = verification
            alignment, homographies, verification = _classical_stage(
                source, target, config, fine_variables, classical, fallback_from=coarse,
                fallback_reason=learned.reason)
            verification = dataclasses.replace(
                verification, candidate_scores={**learned.candidate_scores, **verification.candidate_scores})
            if not verification.verified:
                verification = dataclasses.replace(
                    learned, candidate_scores=verification.candidate_scores,
                    reason=f"{learned.reason}; the classical fallback neither: {verification.reason}")
    if not verification.verified:
        raise UnverifiedAlignment(verification)
    fine_stage = "learned" if fine_variables is not None else "none"
    if weightless:
        alignment, fine_stage = weightless_fine(alignment), "weightless"
    return StagedAlignment(alignment, homographies, verification, fine_stage, source.shape[:2], target.shape[:2])
