"""Random homographies and affine maps near the identity, in 640-pixel images, for the estimator tests."""

from __future__ import annotations

import numpy as np


def random_homography(rng: np.random.Generator) -> np.ndarray:
    """``(3, 3)`` float64: identity plus small linear and perspective terms, a translation of ~20 px."""
    H = np.eye(3) + np.concatenate([rng.normal(0, 0.1, (2, 3)), rng.normal(0, 2e-4, (1, 3))])
    H[:2, 2] = rng.normal(0, 20, 2)
    H[2, 2] = 1.0
    return H


def random_affine(rng: np.random.Generator) -> np.ndarray:
    """``(3, 3)`` float64 with last row ``0 0 1``: identity plus a small linear part, a translation of ~20 px."""
    A = np.eye(3)
    A[:2] += rng.normal(0, 0.15, (2, 3))
    A[:2, 2] = rng.normal(0, 20, 2)
    return A
