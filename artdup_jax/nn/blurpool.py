"""Blur-pool (anti-aliased downsampling) and RANSAC-Flow's anti-aliased ResNet-18-like trunk.

Submodule names mirror the PyTorch keys (``layer2.0.downsample.{0,1,2}`` ->
``layer2_0/downsample_{blur,conv,bn}``; the stem's blur is ``maxpool.1``, which has no parameters).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.nn.pooling import max_pool
from artdup_jax.nn.resnet import batch_norm
from artdup_jax.nn.resnet import conv_materialised_backward as conv

_BINOMIAL_3 = np.array([1.0, 2.0, 1.0])
BLUR_FILTER_3X3 = np.outer(_BINOMIAL_3, _BINOMIAL_3) / 16.0  # (3, 3), sums to 1


class BlurPool(nn.Module):
    """Fixed depthwise 3x3 binomial blur, stride 2, reflect padding 1 on every side. No parameters.

    (B, H, W, C) -> (B, floor((H - 1) / 2) + 1, floor((W - 1) / 2) + 1, C).
    """

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        # The binomial filter is separable ([1, 2, 1] / 4 per axis), so it runs as two strided passes of
        # three shifted slices: the same numbers as the depthwise 3x3 conv, and several times faster to
        # differentiate on CPU, where XLA's grouped-conv backward is slow.
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        for axis in (1, 2):
            out = (x.shape[axis] - 3) // 2 + 1
            taps = [jax.lax.slice_in_dim(x, i, i + 2 * (out - 1) + 1, stride=2, axis=axis) for i in range(3)]
            x = (taps[0] + 2 * taps[1] + taps[2]) * 0.25
        return x


class AntiAliasedBasicBlock(nn.Module):
    """BasicBlock whose projection shortcut is BlurPool(stride 2) -> 1x1 conv -> BN.

    The main path keeps a plain 3x3 stride-2 conv (as in the released RANSAC-Flow weights).
    """

    features: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {self.strides}")
        shortcut = x
        y = conv(self.features, 3, self.strides, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(y))
        y = conv(self.features, 3, name="conv2", dtype=self.dtype)(y)
        y = batch_norm(train, name="bn2", dtype=self.dtype)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            if self.strides == 2:
                shortcut = BlurPool(name="downsample_blur")(shortcut)
            shortcut = conv(self.features, 1, name="downsample_conv", dtype=self.dtype)(shortcut)
            shortcut = batch_norm(train, name="downsample_bn", dtype=self.dtype)(shortcut)
        return nn.relu(y + shortcut)


class AntiAliasedTrunk(nn.Module):
    """RANSAC-Flow fine-network feature extractor (``netFeatCoarse``).

    conv1 3x3/1 -> bn1 -> ReLU -> maxpool 2x2/1 (no pad) -> BlurPool -> layer1 (64) -> layer2 (128, /2)
    -> layer3 (256, /2). 2 775 104 parameters.

    Input:  (B, H, W, 3), normalised by the caller.
    Output: (B, h, w, 256), non-negative, stride 8; h = H/8 when 8 divides H
            (H -> H-1 -> floor((H-2)/2)+1 -> floor((.-1)/2)+1 -> floor((.-1)/2)+1).
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = conv(64, 3, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(x))
        x = max_pool(x, (2, 2), (1, 1), ((0, 0), (0, 0)))
        x = BlurPool(name="maxpool_blur")(x)
        for stage, features in enumerate((64, 128, 256), start=1):
            for index in range(2):
                x = AntiAliasedBasicBlock(
                    features=features,
                    strides=2 if stage > 1 and index == 0 else 1,
                    dtype=self.dtype,
                    name=f"layer{stage}_{index}",
                )(x, train)
        return x
