"""Photographs warped by known random homographies: real keypoint matches with an exact ground truth.

Each of a few photographs bundled with scikit-image (read offline) is paired with copies of itself warped by a
random homography that moves each image corner by up to ``max_shift`` of the image size, with Gaussian pixel
noise added to the copy. Deterministic for a seed. Used to compare robust estimators on real SIFT matches
(``eval.hpatches --robust-estimators``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "coins", "moon", "clock",
          "brick")


@dataclasses.dataclass(frozen=True)
class WarpedPhotoPair:
    """name: ``"photo #i"``. source, target: ``(H, W)`` uint8 grey (the photo and its warped copy, same size).
    homography: ``(3, 3)`` float64 mapping source pixels to target pixels (pixel centres at integers)."""

    name: str
    source: np.ndarray
    target: np.ndarray
    homography: np.ndarray


def grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3|4)`` uint8 → ``(H, W)`` uint8 grey."""
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def random_corner_homography(rng: np.random.Generator, size_hw, max_shift: float = 0.2) -> np.ndarray:
    """``(3, 3)`` float64 pixel homography moving each image corner by up to ``max_shift`` of the image size
    (uniform, independently in x and y)."""
    h, w = size_hw
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    moved = corners + rng.uniform(-max_shift, max_shift, (4, 2)).astype(np.float32) * np.float32([w, h])
    return cv2.getPerspectiveTransform(corners, moved).astype(np.float64)


def warped_photo_pairs(photos=PHOTOS, per_photo: int = 3, *, seed: int = 0, max_shift: float = 0.2,
                       noise_sigma: float = 2.0) -> list[WarpedPhotoPair]:
    """``per_photo`` warped copies of each named scikit-image photo (bilinear warp, then noise of
    ``noise_sigma`` grey levels), in order photo by photo."""
    import skimage.data

    rng = np.random.default_rng(seed)
    pairs = []
    for photo in photos:
        image = grey(np.asarray(getattr(skimage.data, photo)()))
        for i in range(per_photo):
            H = random_corner_homography(rng, image.shape[:2], max_shift)
            warped = cv2.warpPerspective(image, H, image.shape[::-1], flags=cv2.INTER_LINEAR)
            noisy = np.clip(warped + rng.normal(0, noise_sigma, warped.shape), 0, 255).astype(np.uint8)
            pairs.append(WarpedPhotoPair(f"{photo} #{i}", image, noisy, H))
    return pairs
