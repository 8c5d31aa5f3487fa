"""ECC refinement (Evangelidis & Psarakis 2008, ``cv2.findTransformECC``) of a given homography.

ECC maximises the correlation between the target and the warped source; it runs here on locally normalised
gradient-magnitude images (``preprocess.normalised_gradient``), so colour, medium and contrast polarity
matter little, in a coarse-to-fine pyramid (target's longer side ``sizes[0]``, then ``sizes[1]``, ...).
OpenCV's warp maps template (target) pixels to input (source) pixels; we pass and return the usual source →
target pixels homography and invert at the boundary. A failure (``cv2.error``: divergence or a singular
system; a final correlation under ``min_correlation``; a folded or collapsed result) returns None; the
caller keeps its unrefined homography.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from artdup_jax.geometry.classical import preprocess

MOTIONS = {"homography": cv2.MOTION_HOMOGRAPHY, "affine": cv2.MOTION_AFFINE}


@dataclasses.dataclass(frozen=True)
class EccConfig:
    sizes: tuple[int, ...] = (96, 192, 320)  # target's longer side at each pyramid level, coarse to fine
    motion: str = "homography"  # or "affine" (then a given H with perspective fails: None)
    coarse_motion: str = "affine"  # at the coarsest level: fewer parameters, a wider basin
    iterations: int = 60
    epsilon: float = 1e-5
    sigma: float = 1.0  # blur (px at each level) before the gradient
    min_correlation: float = 0.05  # a final ECC correlation below this counts as no convergence


def refine_ecc(source: np.ndarray, target: np.ndarray, H: np.ndarray, config: EccConfig = EccConfig()
               ) -> np.ndarray | None:
    """Refined (3, 3) source → target pixels homography, or None when ECC fails.

    source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1]. H: (3, 3) source → target pixels.
    """
    grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
    current = np.asarray(H, np.float64) / H[2, 2]
    correlation = 0.0
    for level, size in enumerate(config.sizes):
        hw_t = preprocess.resized_hw(grey_t.shape, min(size, max(grey_t.shape)))
        S_t = preprocess.scale_matrix(grey_t.shape, hw_t)
        small_s, S_s = preprocess.source_at_target_scale(grey_s, current, hw_t[0] / grey_t.shape[0])
        level_H = preprocess.change_frames(current, S_s, S_t)
        warp = np.linalg.inv(level_H)  # ECC's warp: template (target) pixels → input (source) pixels
        warp = (warp / warp[2, 2]).astype(np.float32)
        affine_now = abs(warp[2, :2]).max() < 1e-7
        motion = config.coarse_motion if level == 0 and len(config.sizes) > 1 and affine_now else config.motion
        template = preprocess.normalised_gradient(preprocess.resize(grey_t, hw_t), config.sigma)
        moving = preprocess.normalised_gradient(small_s, config.sigma)
        if motion == "affine":
            if not affine_now:
                return None  # an affine model cannot hold the perspective of the homography given
            warp = warp[:2]
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, config.iterations, config.epsilon)
        try:
            correlation, warp = cv2.findTransformECC(template, moving, warp, MOTIONS[motion], criteria, None, 5)
        except cv2.error:
            return None
        warp = np.vstack([warp, [0, 0, 1]]) if warp.shape[0] == 2 else warp
        if not np.all(np.isfinite(warp)) or abs(np.linalg.det(warp)) < 1e-12:
            return None
        current = preprocess.change_frames(np.linalg.inv(warp.astype(np.float64)), np.linalg.inv(S_s),
                                           np.linalg.inv(S_t))
    if correlation < config.min_correlation or not preprocess.plausible(current, grey_s.shape, grey_t.shape):
        return None
    return current
