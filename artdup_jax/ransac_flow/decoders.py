"""Flow and matchability decoders on the 49-channel correlation.

Both share a trunk conv3x3 49 -> 512 -> 256 -> 128 (no bias, each followed by BN + ReLU) and differ
in ``conv4``. Submodule names mirror the PyTorch keys (``conv1..conv4``, ``bn1..bn3``). The 49-channel
axes keep the correlation's dy-major / dx-minor order (``correlation.window_offsets``).

Init (the official one): Kaiming normal, fan-out, ReLU gain for every conv except the matchability ``conv4``,
which is N(0, 1e-4^2) so that the initial matchability is about 0.5; BN scale 1, shift 0.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from artdup_jax.nn.resnet import batch_norm
from artdup_jax.nn.resnet import conv_materialised_backward as conv
from artdup_jax.ransac_flow.correlation import RADIUS, window_offsets


def _trunk(x: jnp.ndarray, train: bool, dtype: Any) -> jnp.ndarray:
    """conv1/bn1 .. conv3/bn3 + ReLU; call from a compact method so the names land in the caller."""
    for index, features in enumerate((512, 256, 128), start=1):
        x = conv(features, 3, name=f"conv{index}", dtype=dtype)(x)
        x = nn.relu(batch_norm(train, name=f"bn{index}", dtype=dtype)(x))
    return x


class FlowDecoder(nn.Module):
    """``netFlowCoarse``: correlation -> residual flow by a soft-argmax over the window. 1 758 592 params.

    Input:  ``(B, h, w, 49)`` correlation.
    Output: ``(B, h, w, 2)`` residual offset, x first, in normalised units of the *feature map*:
            ``x = 2/w * sum_k p_k dx_k``, ``y = 2/h * sum_k p_k dy_k`` (|offset| < 3 cells), where
            ``p = softmax(conv4(...))`` over the 49 channels (no temperature).
    """

    radius: int = RADIUS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, correlation: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        _, height, width, channels = correlation.shape
        offsets = jnp.asarray(window_offsets(self.radius), jnp.float32)  # (49, 2), x first
        if channels != offsets.shape[0]:
            raise ValueError(f"expected {offsets.shape[0]} correlation channels, got {channels}")
        x = _trunk(correlation, train, self.dtype)
        logits = conv(channels, 3, name="conv4", dtype=self.dtype)(x)
        probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        # Expectation as an elementwise sum, not a matmul, so it stays float32 on GPUs with TF32.
        cells_x = jnp.sum(probabilities * offsets[:, 0], axis=-1)
        cells_y = jnp.sum(probabilities * offsets[:, 1], axis=-1)
        return jnp.stack([cells_x * (2.0 / width), cells_y * (2.0 / height)], axis=-1)


class MatchabilityDecoder(nn.Module):
    """``netMatch``: correlation -> matchability in (0, 1). 1 703 296 params.

    Input:  ``(B, h, w, 49)`` correlation.
    Output: ``(B, h, w, 1)`` = sigmoid(conv4(...)).
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, correlation: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = _trunk(correlation, train, self.dtype)
        logits = nn.Conv(
            1,
            kernel_size=(3, 3),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=nn.initializers.normal(stddev=1e-4),
            dtype=self.dtype,
            name="conv4",
        )(x)
        return jax.nn.sigmoid(logits.astype(jnp.float32))
