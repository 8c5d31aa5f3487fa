"""ArtMiner's feature network: ResNet-18 cut after ``layer3``, and what reads its features.

Features are the raw, non-negative ``layer3`` activations (256 channels, stride 16); the network never
normalises them. Every image that enters it is first resized by the resize rule (``resize_rule``), so a
``(16 rows - 1, 16 cols - 1)`` pixel input gives exactly ``(rows, cols)`` cells.
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.resize_rule import SCALES, as_float_image, resize_to_cells
from artdup_jax.nn.normalise import imagenet_normalise
from artdup_jax.nn.resnet import resnet18

CHANNELS = 256
EPS = 1e-7  # added to every norm before dividing (as the release)

NETWORK = resnet18(last_stage="layer3")


def init_variables(seed: int = 0) -> dict:
    """Random (torchvision-initialised) variables, ``{"params", "batch_stats"}``; for tests and smoke runs."""
    variables = NETWORK.init(jax.random.key(seed), jnp.zeros((1, 31, 31, 3), jnp.float32), train=False)
    return jax.tree.map(np.asarray, dict(variables))


@jax.jit
def features(variables: dict, images: jnp.ndarray) -> jnp.ndarray:
    """Raw ResNet-18 ``layer3`` features, BN in inference mode.

    Args:
      variables: ``{"params", "batch_stats"}`` of ``resnet18(last_stage="layer3")`` (e.g. from
        ``convert.load_torch_checkpoint("artminer", path)``).
      images: ``(B, H, W, 3)`` float32 RGB in [0, 1]; ImageNet mean/std normalisation is applied here.
    Returns:
      ``(B, ceil(H/16), ceil(W/16), 256)`` float32, non-negative (post-ReLU).
    """
    chex.assert_rank(images, 4)
    chex.assert_axis_dimension(images, -1, 3)
    return NETWORK.apply(variables, imagenet_normalise(images), train=False)


def l2_normalise(x: jnp.ndarray, axis: int | Sequence[int] = -1, eps: float = EPS) -> jnp.ndarray:
    """``x / (||x|| + eps)`` over ``axis``: ``-1`` per cell (votes, loss, discovery), ``(-3, -2, -1)`` for a
    whole ``(h, w, 256)`` block (a detection query)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x / (norm + eps)


def pyramid(variables: dict, image: np.ndarray, *, scales: Sequence[int] = SCALES, min_cells: int = 8,
            resample: str = "nearest") -> list[jnp.ndarray]:
    """One image's multi-scale features, one ``(rows_s, cols_s, 256)`` map per scale (batch 1 each).

    ``image``: ``(H, W, 3)`` float32 RGB in [0, 1]. For many images use ``collection.FeatureCache``, which
    batches images of equal size and caches the maps.
    """
    return [features(variables, as_float_image(resize_to_cells(image, scale, min_cells, resample=resample))[None])[0]
            for scale in scales]
