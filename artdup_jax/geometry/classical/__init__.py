"""Classical (weightless) coarse alignment: a portfolio of aligners and one colour/medium-independent score.

Homographies are (3, 3) float64 and map source pixels to target pixels (OpenCV's convention, pixel centres
at integers): ``cv2.warpPerspective(source, H, (W_t, H_t))`` draws the source in the target's frame. Images
are (H, W, 3) RGB or (H, W) grey, uint8 or float32 in [0, 1], of any size.

Modules:
  ``preprocess``     grey conversion, resizing and its homography, gradient maps, plausibility of a homography.
  ``rootsift``       multi-scale RootSIFT, mutual/ratio and guided matching, the one robust fit (MAGSAC++).
  ``fourier_mellin`` log-polar spectra + phase correlation: a similarity between whole compositions.
  ``ecc``            ECC refinement (cv2.findTransformECC) of a homography on gradient maps, coarse to fine.
  ``verification``   the score (doubled-angle gradient correlation over the overlap) and the identity test.
  ``portfolio``      ``align_classical``: runs the aligners, ECC-refines, scores, keeps the best.
  ``dense_flow``     optional DIS optical flow after the coarse stage (not RANSAC-Flow's learned fine network).
"""

from artdup_jax.geometry.classical.portfolio import ClassicalAlignment, ClassicalConfig, align_classical

__all__ = ["ClassicalAlignment", "ClassicalConfig", "align_classical"]
