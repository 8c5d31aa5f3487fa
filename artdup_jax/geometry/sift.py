"""SIFT front end: OpenCV SIFT keypoints and descriptors of an image, and Lowe's ratio-test matches.

Images are ``(H, W, 3)`` float RGB in [0, 1]; SIFT runs on their 8-bit grey version. Keypoint coordinates
are pixels, x first, with the centre of pixel ``i`` at ``i`` (OpenCV). Matching is brute force (L2) over the
two nearest neighbours; a query keypoint is kept when its nearest distance is below ``ratio`` times the
second nearest.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class SiftFeatures:
    """xy: ``(N, 2)`` float32 keypoint pixels, x first. descriptors: ``(N, 128)`` float32, None when N = 0."""

    xy: np.ndarray
    descriptors: np.ndarray | None

    def __len__(self) -> int:
        return len(self.xy)


def grey_uint8(image: np.ndarray, *, rounded: bool = True) -> np.ndarray:
    """``(H, W, 3)`` float RGB in [0, 1] → ``(H, W)`` uint8 grey. ``rounded=False`` truncates ``image * 255``
    instead of rounding it (the RANSAC-Flow coarse stage's conversion)."""
    scaled = np.asarray(image, np.float32) * 255
    if rounded:
        scaled = np.round(scaled)
    return cv2.cvtColor(np.clip(scaled, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def sift_features(image: np.ndarray, *, max_features: int = 0, mask: np.ndarray | None = None,
                  rounded: bool = True) -> SiftFeatures:
    """SIFT keypoints and descriptors of ``image`` (see :func:`grey_uint8` for ``rounded``).

    max_features: keep the strongest this many keypoints (0: all). mask: optional ``(H, W)`` bool, keypoints
    are detected only where it is set.
    """
    detector_mask = None if mask is None else np.asarray(mask, bool).astype(np.uint8) * 255
    keypoints, descriptors = cv2.SIFT_create(nfeatures=max_features).detectAndCompute(
        grey_uint8(image, rounded=rounded), detector_mask)
    return SiftFeatures(np.float32([k.pt for k in keypoints]).reshape(-1, 2), descriptors)


def ratio_matches(query: np.ndarray | None, train: np.ndarray | None, ratio: float, *,
                  return_ratios: bool = False):
    """``(M, 2)`` int64 rows ``(query index, train index)`` passing the ratio test, in query order.

    query, train: ``(N, 128)`` descriptors (None: no keypoints, no matches). ``return_ratios``: also return
    the ``(M,)`` float32 ratios (nearest / second nearest distance; lower is better, so ``-ratio`` is a match
    quality for PROSAC sampling), as ``(indices, ratios)``.
    """
    good = []
    if query is not None and train is not None:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query, train, k=2)
        good = [(p[0].queryIdx, p[0].trainIdx, p[0].distance / max(p[1].distance, 1e-12))
                for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    indices = np.array([g[:2] for g in good], np.int64).reshape(-1, 2)
    return (indices, np.float32([g[2] for g in good]).reshape(-1)) if return_ratios else indices


def mutual_ratio_matches(descriptors_a: np.ndarray | None, descriptors_b: np.ndarray | None,
                         ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Matches passing the ratio test both ways (a → b and b → a agree), best ratio first.

    Returns ``(M, 2)`` int64 index pairs ``(a, b)`` and their ``(M,)`` ratios (nearest / second nearest
    distance, a → b); ties keep a's order.
    """
    if descriptors_a is None or descriptors_b is None or len(descriptors_a) < 2 or len(descriptors_b) < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0,))
    matcher = cv2.BFMatcher(cv2.NORM_L2)

    def one_way(query, train):
        best = {}
        for pair in matcher.knnMatch(query, train, k=2):
            if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
                best[pair[0].queryIdx] = (pair[0].trainIdx, pair[0].distance / max(pair[1].distance, 1e-6))
        return best

    forward, backward = one_way(descriptors_a, descriptors_b), one_way(descriptors_b, descriptors_a)
    kept = [(a, b, r) for a, (b, r) in forward.items() if backward.get(b, (None,))[0] == a]
    if not kept:
        return np.zeros((0, 2), np.int64), np.zeros((0,))
    kept.sort(key=lambda m: m[2])
    return np.array([(a, b) for a, b, _ in kept], np.int64), np.array([r for _, _, r in kept])
