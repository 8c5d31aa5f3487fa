"""ImageNet input normalisation shared by every torchvision-derived trunk."""

from __future__ import annotations

import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalise(images: jnp.ndarray) -> jnp.ndarray:
    """Per-channel ``(x - mean) / std``.

    Args:
      images: (..., H, W, 3) RGB, float in [0, 1].
    Returns:
      Same shape, float32 (or the input's floating dtype).
    """
    if images.shape[-1] != 3:
        raise ValueError(f"expected RGB images with 3 channels last, got shape {images.shape}")
    images = jnp.asarray(images)
    if not jnp.issubdtype(images.dtype, jnp.floating):
        images = images.astype(jnp.float32)
    mean = jnp.asarray(IMAGENET_MEAN, images.dtype)
    std = jnp.asarray(IMAGENET_STD, images.dtype)
    return (images - mean) / std
