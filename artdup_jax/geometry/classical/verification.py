"""One alignment score that ignores colour and medium: agreement of contour orientations over the overlap.

Both images become grey, the target is resized to ``size`` px on its longer side and the source is warped
into that frame by the candidate homography (source → target pixels, OpenCV convention). On each, after a
Gaussian blur of ``sigma`` px (hatching and brush texture average out into tone), the gradient becomes the
doubled-angle vector ``g = (gx + i·gy)² / |∇|`` (magnitude |∇|, angle doubled so that a dark-on-light
contour and a light-on-dark one agree: prints, negatives and varnished paintings flip contrast). The score
is their correlation coefficient over the overlap, ``Re Σ ǧ_s·conj(ǧ_t) / sqrt(Σ|ǧ_s|² · Σ|ǧ_t|²)`` with
``ǧ = g - mean(g)`` (the mean removes a shared dominant orientation: text, architecture, frames), in
[-1, 1]: 1 when every contour lies where and as the other's does, about 0 for unrelated images.

A candidate counts only when it is plausible (``preprocess.plausible``) and the overlap covers at least
``min_overlap`` of the smaller of (target frame, warped source frame); it is verified only if its score
reaches ``min_score`` and beats the identity's by ``margin``. The identity is "no alignment": the source
frame stretched onto the target frame, i.e. the identity in PC-normalised coordinates (align_corners=False,
``geometry`` §0 table), the pixel identity when both sizes agree.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from artdup_jax.geometry.classical import preprocess


@dataclasses.dataclass(frozen=True)
class VerificationConfig:
    size: int = 256  # target's longer side at which the score is computed
    sigma: float = 2.0  # blur (px at ``size``) before the gradient
    min_overlap: float = 0.3  # of the smaller of target frame and warped source frame
    margin: float = 0.05  # a verified alignment beats the identity's score by this much
    min_score: float = 0.3  # ... and reaches at least this (unrelated photographs reached 0.16, copies 0.42+)
    border: int = 3  # px eroded from the overlap (the warp's edge is not a contour)


@dataclasses.dataclass(frozen=True)
class Score:
    score: float  # in [-1, 1]; -1 when the homography is implausible or the overlap too small
    overlap: float  # overlap fraction (see module docstring)


def identity_homography(source_hw: tuple[int, int], target_hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) source → target pixels that stretches the source frame onto the target frame (no alignment)."""
    return preprocess.scale_matrix(source_hw, target_hw)


def _oriented_gradient(grey: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 → (H, W) complex64 doubled-angle gradient ``(gx + i gy)² / |∇|``."""
    blurred = cv2.GaussianBlur(grey, (0, 0), sigma)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    g = gx + 1j * gy
    return (g * g / (np.abs(g) + 1e-6)).astype(np.complex64)


class Verifier:
    """Scores many candidate homographies of one pair, preparing the pair once."""

    def __init__(self, source: np.ndarray, target: np.ndarray, config: VerificationConfig = VerificationConfig()):
        """source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1]."""
        self.config = config
        grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
        self.source_hw, self.target_hw = grey_s.shape, grey_t.shape
        self._hw_t = preprocess.resized_hw(grey_t.shape, config.size)
        self._grey_s = grey_s
        self._g_t = _oriented_gradient(preprocess.resize(grey_t, self._hw_t), config.sigma)

    def score(self, H: np.ndarray | None) -> Score:
        """Score of a (3, 3) source → target homography in the input images' pixels."""
        config = self.config
        if not preprocess.plausible(H, self.source_hw, self.target_hw):
            return Score(-1.0, 0.0)
        h, w = self._hw_t
        small_s, S_s = preprocess.source_at_target_scale(self._grey_s, H, h / self.target_hw[0])
        H_small = preprocess.change_frames(H, S_s, preprocess.scale_matrix(self.target_hw, self._hw_t))
        warped = cv2.warpPerspective(small_s, H_small, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpPerspective(np.ones(small_s.shape, np.uint8), H_small, (w, h), flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        quad = preprocess.apply(H_small, preprocess.frame_corners(small_s.shape)).astype(np.float32)
        quad_area = float(cv2.contourArea(quad))
        overlap = float(inside.sum()) / max(1.0, min(float(h * w), quad_area))
        if overlap < config.min_overlap:
            return Score(-1.0, overlap)
        inside = cv2.erode(inside, np.ones((2 * config.border + 1,) * 2, np.uint8)).astype(bool)
        g_s, g_t = _oriented_gradient(warped, config.sigma)[inside], self._g_t[inside]
        g_s, g_t = g_s - g_s.mean(), g_t - g_t.mean()
        denominator = np.sqrt(float(np.sum(np.abs(g_s) ** 2)) * float(np.sum(np.abs(g_t) ** 2)))
        if denominator <= 0:
            return Score(-1.0, overlap)
        return Score(float(np.real(np.sum(g_s * np.conj(g_t)))) / denominator, overlap)

    def identity(self) -> Score:
        """The score of no alignment (``identity_homography``)."""
        return self.score(identity_homography(self.source_hw, self.target_hw))

    def verified(self, score: float, identity_score: float) -> bool:
        """True when ``score`` beats the identity's by the margin and reaches ``min_score``."""
        return score >= identity_score + self.config.margin and score >= self.config.min_score


def alignment_score(source: np.ndarray, target: np.ndarray, H: np.ndarray | None,
                    config: VerificationConfig = VerificationConfig()) -> Score:
    """The score of one source → target homography (see the module docstring); images as ``Verifier``."""
    return Verifier(source, target, config).score(H)
