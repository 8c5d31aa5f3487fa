"""AdaIN style transfer (Huang & Belongie 2017) as pure, jit-compiled functions, NHWC.

    variables = convert.load_torch_checkpoint("adain", ["vgg_normalised.pth", "decoder.pth"])
    stylised = stylise(variables, content, style, alpha)

Images are ``(B, H, W, 3)`` float32 RGB in [0, 1] with no mean/std normalisation (the naoto0804 weights
expect that); content and style may differ in size. Features are relu4_1, ``(B, ⌈H/8⌉, ⌈W/8⌉, 512)``.
Resizing to the paper's working size (shorter side 512) and back is the caller's: ``painting_styliser``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from artdup_jax.segswap.style.networks import AdaINNetworks

NETWORKS = AdaINNetworks()
VARIANCE_EPS = 1e-5  # added to the unbiased variance before the square root, as the official calc_mean_std


@jax.jit
def encode(variables: dict, images: jax.Array) -> jax.Array:
    """``(B, H, W, 3)`` [0, 1] -> relu4_1 features ``(B, ⌈H/8⌉, ⌈W/8⌉, 512)``."""
    return NETWORKS.apply(variables, images, method=AdaINNetworks.encode)


@jax.jit
def decode(variables: dict, features: jax.Array) -> jax.Array:
    """relu4_1 features ``(B, h, w, 512)`` -> ``(B, 8h, 8w, 3)``, not clamped."""
    return NETWORKS.apply(variables, features, method=AdaINNetworks.decode)


def feature_statistics(features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-image, per-channel spatial mean and standard deviation of ``(B, h, w, C)`` features.

    Returns two ``(B, 1, 1, C)`` arrays; std = sqrt(unbiased variance + 1e-5), so a single-cell map has NaN
    std, as in the official code (h·w - 1 = 0).
    """
    count = features.shape[1] * features.shape[2]
    mean = jnp.mean(features, axis=(1, 2), keepdims=True)
    variance = jnp.sum(jnp.square(features - mean), axis=(1, 2), keepdims=True) / (count - 1)
    return mean, jnp.sqrt(variance + VARIANCE_EPS)


def adain_from_statistics(content_features: jax.Array, style_mean: jax.Array, style_std: jax.Array) -> jax.Array:
    """The content features with each channel's mean and std replaced by the style's ``(B, 1, 1, C)`` ones."""
    content_mean, content_std = feature_statistics(content_features)
    return (content_features - content_mean) / content_std * style_std + style_mean


def adain(content_features: jax.Array, style_features: jax.Array) -> jax.Array:
    """``t = σ_s · (f_c − μ_c) / σ_c + μ_s`` on ``(B, h, w, C)`` content and ``(B, h', w', C)`` style features."""
    return adain_from_statistics(content_features, *feature_statistics(style_features))


def _mix(content_features: jax.Array, transferred: jax.Array, alpha: jax.Array) -> jax.Array:
    """The content-style trade-off ``α·t + (1 − α)·f_c``; ``alpha`` a scalar or ``(B,)``."""
    alpha = jnp.reshape(jnp.asarray(alpha, content_features.dtype), (-1, 1, 1, 1))
    return alpha * transferred + (1 - alpha) * content_features


@functools.partial(jax.jit, static_argnames="clamp")
def stylise(variables: dict, content: jax.Array, style: jax.Array, alpha, *, clamp: bool = True) -> jax.Array:
    """Content ``(B, H, W, 3)`` painted in the style of ``style`` ``(B, H', W', 3)`` (one style per content image).

    ``alpha``: scalar or ``(B,)`` in [0, 1], 0 = the content reconstructed, 1 = full transfer. Returns
    ``(B, 8⌈H/8⌉, 8⌈W/8⌉, 3)`` float32, clamped to [0, 1] unless ``clamp=False``.
    """
    content_features = NETWORKS.apply(variables, content, method=AdaINNetworks.encode)
    style_features = NETWORKS.apply(variables, style, method=AdaINNetworks.encode)
    features = _mix(content_features, adain(content_features, style_features), alpha)
    out = NETWORKS.apply(variables, features, method=AdaINNetworks.decode)
    return jnp.clip(out, 0.0, 1.0) if clamp else out


@jax.jit
def style_statistics(variables: dict, style: jax.Array) -> tuple[jax.Array, jax.Array]:
    """relu4_1 mean and std ``(B, 1, 1, 512)`` of style images ``(B, H, W, 3)``: all AdaIN keeps of a style."""
    return feature_statistics(NETWORKS.apply(variables, style, method=AdaINNetworks.encode))


@jax.jit
def stylise_with_statistics(variables: dict, content: jax.Array, style_mean: jax.Array, style_std: jax.Array,
                            alpha) -> jax.Array:
    """``stylise`` (clamped) from precomputed ``style_statistics``: one encoder pass fewer per image."""
    content_features = NETWORKS.apply(variables, content, method=AdaINNetworks.encode)
    features = _mix(content_features, adain_from_statistics(content_features, style_mean, style_std), alpha)
    return jnp.clip(NETWORKS.apply(variables, features, method=AdaINNetworks.decode), 0.0, 1.0)


def init_variables(rng: jax.Array, image_shape: tuple[int, ...] = (1, 64, 64, 3)) -> dict:
    """Random variables in the converted layout (tests; real use loads converted weights)."""
    return NETWORKS.init(rng, jnp.zeros(image_shape, jnp.float32))
