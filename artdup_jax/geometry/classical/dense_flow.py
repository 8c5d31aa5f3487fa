"""Optional weightless fine stage: DIS optical flow between the coarse-warped source and the target.

This is NOT RANSAC-Flow's learned fine network (``ransac_flow.fine``): it is OpenCV's DIS optical flow
(``cv2.DISOpticalFlow_create``, Kroeger et al. 2016), run on locally normalised gradient-magnitude images so
that colour and medium matter little, with a forward-backward consistency check as its confidence. It
corrects small residual displacements (a copy painted a little differently) after a verified coarse
homography; it cannot recover from a wrong one.

Conventions: ``homography`` maps source pixels to target pixels (``align_classical``'s). The flow is in
target pixels, x first: target pixel p matches the coarse-warped source at p + flow(p), hence the original
source at H⁻¹(p + flow(p)) (``source_coordinates``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from artdup_jax.geometry.classical import preprocess

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


@dataclasses.dataclass(frozen=True)
class DenseFlowConfig:
    preset: str = "medium"
    max_side: int = 512  # the flow is computed with the target's longer side at most this, then upsampled
    sigma: float = 1.0  # blur before the gradient
    consistency_px: float = 1.5  # forward-backward disagreement (px at the flow's scale) giving confidence e⁻¹


@dataclasses.dataclass
class DenseFlow:
    flow: np.ndarray  # (H_t, W_t, 2) float32, target pixels, x first (see the module docstring)
    confidence: np.ndarray  # (H_t, W_t) float32 in [0, 1]; 0 outside the warped source
    source_coordinates: np.ndarray  # (H_t, W_t, 2) float32: where each target pixel reads the source, pixels


def _flow(first: np.ndarray, second: np.ndarray, preset: str) -> np.ndarray:
    """(H, W, 2) float32 such that first(p) ≈ second(p + flow(p)); inputs (H, W) uint8."""
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    return dis.calc(first, second, None)


def dense_flow(source: np.ndarray, target: np.ndarray, homography: np.ndarray,
               config: DenseFlowConfig = DenseFlowConfig()) -> DenseFlow:
    """Residual flow after the coarse ``homography`` (3, 3, source → target pixels).

    source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1].
    """
    grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
    hw = preprocess.resized_hw(grey_t.shape, min(config.max_side, max(grey_t.shape)))
    small_s, S_s = preprocess.source_at_target_scale(grey_s, homography, hw[0] / grey_t.shape[0])
    H_small = preprocess.change_frames(homography, S_s, preprocess.scale_matrix(grey_t.shape, hw))
    warped = cv2.warpPerspective(small_s, H_small, (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.ones(small_s.shape, np.uint8), H_small, (hw[1], hw[0]),
                                 flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)

    def edges(grey):
        gradient = preprocess.normalised_gradient(grey, config.sigma)
        return preprocess.to_uint8(gradient / 4.0)

    target_edges, warped_edges = edges(preprocess.resize(grey_t, hw)), edges(warped)
    forward = _flow(target_edges, warped_edges, config.preset)
    backward = _flow(warped_edges, target_edges, config.preset)
    h, w = hw
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
    reached = grid + forward
    back_there = cv2.remap(backward, reached[..., 0], reached[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(1e3, 1e3))
    disagreement = np.linalg.norm(forward + back_there, axis=-1)
    confidence = np.exp(-(disagreement / config.consistency_px) ** 2).astype(np.float32) * inside

    # Back to the target's full size: flow vectors scale with the frame.
    full_h, full_w = grey_t.shape
    scale = np.float32([full_w / w, full_h / h])
    flow = cv2.resize(forward, (full_w, full_h), interpolation=cv2.INTER_LINEAR) * scale
    confidence = cv2.resize(confidence, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    full_grid = np.stack(np.meshgrid(np.arange(full_w, dtype=np.float64), np.arange(full_h, dtype=np.float64)), -1)
    matched = (full_grid + flow).reshape(-1, 2)
    source_xy = preprocess.apply(np.linalg.inv(homography), matched).reshape(full_h, full_w, 2)
    return DenseFlow(flow.astype(np.float32), np.clip(confidence, 0, 1), source_xy.astype(np.float32))
