"""The AdaIN networks of the naoto0804 implementation as Flax modules: structure only, NHWC.

Encoder: the "normalised VGG-19" cut after relu4_1, i.e. the first 31 modules of the official ``vgg``
``nn.Sequential``: a 1×1 conv 3→3 (no ReLU), then 3×3 convs on reflection-padded inputs, each followed by a
ReLU, with 2×2 max pools (stride 2, ceil mode) between the stages. Input ``(B, H, W, 3)`` float32 RGB in
[0, 1], no mean/std normalisation; output relu4_1 ``(B, ⌈H/8⌉, ⌈W/8⌉, 512)``.

Decoder: the mirrored stack 512→…→3, nearest-neighbour ×2 upsampling, reflection padding, a ReLU after every
conv but the last. ``(B, h, w, 512)`` -> ``(B, 8h, 8w, 3)``, not clamped.

``ENCODER_LAYERS`` / ``DECODER_LAYERS`` give each conv's Flax name and its index in the official Sequential;
the ``adain`` converter family maps weights with them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from artdup_jax.nn.pooling import max_pool

# (Flax name, index in the official ``vgg`` Sequential, output channels, kernel size, 2×2 max pool before it)
ENCODER_LAYERS = (
    ("conv0", 0, 3, 1, False),
    ("conv1_1", 2, 64, 3, False),
    ("conv1_2", 5, 64, 3, False),
    ("conv2_1", 9, 128, 3, True),
    ("conv2_2", 12, 128, 3, False),
    ("conv3_1", 16, 256, 3, True),
    ("conv3_2", 19, 256, 3, False),
    ("conv3_3", 22, 256, 3, False),
    ("conv3_4", 25, 256, 3, False),
    ("conv4_1", 29, 512, 3, True),
)
# (Flax name, index in the official ``decoder`` Sequential, output channels, nearest ×2 upsampling before it)
DECODER_LAYERS = (
    ("conv4_1", 1, 256, False),
    ("conv3_4", 5, 256, True),
    ("conv3_3", 8, 256, False),
    ("conv3_2", 11, 256, False),
    ("conv3_1", 14, 128, False),
    ("conv2_2", 18, 128, True),
    ("conv2_1", 21, 64, False),
    ("conv1_2", 25, 64, True),
    ("conv1_1", 28, 3, False),
)


def reflection_pad(x: jax.Array) -> jax.Array:
    """One pixel of reflection padding (the border pixel is not repeated) on ``(B, H, W, C)``."""
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")


def max_pool_ceil(x: jax.Array) -> jax.Array:
    """2×2 max pool, stride 2, ceil mode: an odd last row / column is pooled on its own."""
    height, width = x.shape[1:3]
    return max_pool(x, (2, 2), (2, 2), ((0, height % 2), (0, width % 2)))


def upsample_nearest(x: jax.Array) -> jax.Array:
    """Nearest-neighbour ×2 on ``(B, H, W, C)`` -> ``(B, 2H, 2W, C)``."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class VGGEncoder(nn.Module):
    """Normalised VGG-19 up to relu4_1."""

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for name, _, channels, kernel, pool_before in ENCODER_LAYERS:
            if pool_before:
                x = max_pool_ceil(x)
            if kernel == 3:
                x = reflection_pad(x)
            x = nn.Conv(channels, (kernel, kernel), padding="VALID", name=name)(x)
            if kernel == 3:  # the leading 1×1 colour conv has no ReLU
                x = nn.relu(x)
        return x


class Decoder(nn.Module):
    """relu4_1 features back to an RGB image."""

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = features
        for index, (name, _, channels, upsample_before) in enumerate(DECODER_LAYERS):
            if upsample_before:
                x = upsample_nearest(x)
            x = nn.Conv(channels, (3, 3), padding="VALID", name=name)(reflection_pad(x))
            if index < len(DECODER_LAYERS) - 1:
                x = nn.relu(x)
        return x


class AdaINNetworks(nn.Module):
    """Both networks. Variables: ``{"params": {"encoder": {conv0, conv1_1, …}, "decoder": {conv4_1, …}}}``.

    ``__call__`` (encode then decode) exists so that ``init`` creates every parameter; use ``adain.encode``,
    ``adain.decode`` and ``adain.stylise``.
    """

    def setup(self):
        self.encoder = VGGEncoder()
        self.decoder = Decoder()

    def encode(self, images: jax.Array) -> jax.Array:
        return self.encoder(images)

    def decode(self, features: jax.Array) -> jax.Array:
        return self.decoder(features)

    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout, no batch norm
        return self.decode(self.encode(images))
