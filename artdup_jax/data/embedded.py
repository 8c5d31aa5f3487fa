"""Real photographs that ship inside scikit-image: the offline default collection (no downloads)."""

from __future__ import annotations

import functools

import numpy as np

# Colour images bundled in the scikit-image wheel itself (others are fetched on first use).
EMBEDDED_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")


@functools.cache
def embedded_images() -> tuple[np.ndarray, ...]:
    """Each image ``(H, W, 3)`` uint8 RGB."""
    import skimage.data

    return tuple(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in EMBEDDED_NAMES)
