"""RANSAC-Flow's unsupervised training losses, as pure functions of NHWC arrays, and the weighted loss of one
training step for the three stage modes (:func:`training_losses`).

Terms: reconstruction (SSIM, :func:`reconstruction_loss`), cycle consistency (:func:`cycle_loss`),
matchability (:func:`matchability_loss`), flow smoothness (:func:`gradient_loss`).
Conventions: images (B, H, W, 3) in [0, 1]; grids/flows (B, H, W, 2) normalised [-1, 1], AC, x first;
masks (B, H, W, 1). Border handling follows the official code: zero padding for every window.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import grid_sample, identity_grid
from artdup_jax.nn.blurpool import AntiAliasedTrunk
from artdup_jax.ransac_flow.correlation import local_correlation
from artdup_jax.ransac_flow.decoders import FlowDecoder, MatchabilityDecoder
from artdup_jax.ransac_flow.model import l2_normalise

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


@functools.cache
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """(size, size) outer product of the normalised 1-D Gaussian."""
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g).astype(np.float32)


@functools.cache
def _band_matrix(size: int, taps: tuple[float, ...]) -> np.ndarray:
    """``(size, size)`` matrix ``M[i, k] = taps[k - i + r]`` for ``|k - i| <= r`` (r = len(taps) // 2), else 0:
    ``M @ v`` is the same-size 1-D correlation of ``v`` with ``taps`` under zero padding."""
    radius = len(taps) // 2
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None] + radius  # k - i + r
    inside = (offsets >= 0) & (offsets < len(taps))
    return np.where(inside, np.asarray(taps, np.float32)[np.clip(offsets, 0, len(taps) - 1)], 0.0).astype(np.float32)


def _depthwise(x, window: np.ndarray):
    """Same-size 2-D correlation of every channel with a separable ``(k, k)`` window, zero padding.

    x (B, H, W, C). The window is applied as a column pass then a row pass, each a product with a banded
    ``(H, H)`` / ``(W, W)`` matrix that holds the 1-D taps (zero padding = the band cut at the borders).
    Equal to the depthwise 2-D filter; on CPU the two matmuls and their transposes differentiate about 10x
    faster than 2 x k shifted slices (whose backward XLA runs as many small pad-and-add ops) or a grouped
    conv.
    """
    taps = np.sqrt(np.diag(window)).astype(np.float32)  # window = outer(taps, taps)
    if not np.allclose(np.outer(taps, taps), window, rtol=1e-5, atol=1e-8):
        raise ValueError("window is not a symmetric separable outer product")
    taps = tuple(float(t) for t in taps)
    rows = jnp.asarray(_band_matrix(x.shape[1], taps), x.dtype)
    cols = jnp.asarray(_band_matrix(x.shape[2], taps), x.dtype)
    highest = jax.lax.Precision.HIGHEST  # a filter, not a learned matmul: no TF32 on GPUs
    x = jnp.einsum("hk,bkwc->bhwc", rows, x, precision=highest)
    return jnp.einsum("wk,bhkc->bhwc", cols, x, precision=highest)


def ssim_map(x, y):
    """Per-pixel, per-channel SSIM with the official 11×11 σ=1.5 window and zero padding. (B, H, W, C)."""
    w = gaussian_window()
    mu_x, mu_y = _depthwise(x, w), _depthwise(y, w)
    var_x = _depthwise(x * x, w) - mu_x**2
    var_y = _depthwise(y * y, w) - mu_y**2
    cov = _depthwise(x * y, w) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return numerator / denominator


def ssim_weight(mask):
    """The binarised weight map M̃: box-filter the mask, +1e-7, threshold > 0.5, +1e-7. (B, H, W, 1), no gradient."""
    box = np.full((SSIM_WINDOW, SSIM_WINDOW), 1.0 / SSIM_WINDOW**2, np.float32)
    smoothed = _depthwise(jax.lax.stop_gradient(mask), box) + 1e-7
    return (smoothed > 0.5).astype(mask.dtype) + 1e-7


def reconstruction_loss(warped, target, mask):
    """L_rec = Σ (1 − SSIM)·M̃ / (3 Σ M̃): warped (B, H, W, 3) vs target, mask (B, H, W, 1)."""
    weight = ssim_weight(mask)
    return jnp.sum((1.0 - ssim_map(warped, target)) * weight) / (3.0 * jnp.sum(weight))


def cycle_loss(cycle_grid, identity, weight):
    """L_cyc = Σ e·w / (Σ w + 0.001), e = ½(|Cx − gx| + |Cy − gy|). Grids (B, H, W, 2), weight (B, H, W, 1)."""
    error = 0.5 * jnp.sum(jnp.abs(cycle_grid - identity), axis=-1, keepdims=True)
    return jnp.sum(error * weight) / (jnp.sum(weight) + 0.001)


def matchability_loss(cycle_matchability, margin):
    """L_match = Σ |1 − mc|·Mg / (Σ Mg + 0.001). Both (B, H, W, 1)."""
    return jnp.sum(jnp.abs(1.0 - cycle_matchability) * margin) / (jnp.sum(margin) + 0.001)


def flow_gradient(residual):
    """‖Δ(p + (1, 1)) − Δ(p)‖₂, the diagonal difference of an upsampled residual (B, H, W, 2) → (B, H−1, W−1, 1).

    Where the difference is exactly zero (a constant flow, e.g. a zero-initialised flow head) the gradient is 0,
    not the NaN of ``sqrt``'s infinite slope times zero, which would reach every parameter even with γ = 0.
    """
    diff = residual[:, 1:, 1:] - residual[:, :-1, :-1]
    squared = jnp.sum(diff**2, axis=-1, keepdims=True)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def gradient_loss(residual, cycle_matchability, margin):
    """L_grad = Σ ∇·(1 − mc)·Mg / (Σ (1 − mc)·Mg + 0.001) over the top-left (H−1)×(W−1) region."""
    weight = ((1.0 - cycle_matchability) * margin)[:, :-1, :-1]
    return jnp.sum(flow_gradient(residual) * weight) / (jnp.sum(weight) + 0.001)


def margin_mask(batch: int, size: int, margin: int, dtype=jnp.float32):
    """Mg: 1 on the central (size − 2·margin)² pixels, 0 elsewhere. (B, size, size, 1)."""
    inside = jnp.zeros((size, size), dtype).at[margin:size - margin, margin:size - margin].set(1.0)
    return jnp.broadcast_to(inside[None, :, :, None], (batch, size, size, 1))


# --------------------------------------------------------------------------------------------------
# One training step's weighted loss


MODES = ("flow", "flow+match", "grad")


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The weights of the cycle, matchability and gradient terms (the reconstruction term has weight 1)."""

    cycle: float = 0.0  # μ
    matchability: float = 0.0  # λ
    gradient: float = 0.0  # γ


def _apply(module, variables, name, x, train: bool):
    """Applies one sub-network of FineNetwork; returns (output, its new batch_stats)."""
    sub = {"params": variables["params"][name], "batch_stats": variables["batch_stats"][name]}
    if not train:
        return module.apply(sub, x, train=False), variables["batch_stats"][name]
    out, updates = module.apply(sub, x, train=True, mutable=["batch_stats"])
    return out, updates["batch_stats"]


def training_losses(variables: dict, image_1, image_2, *, mode: str, weights: LossWeights, margin: int):
    """The forward pass and weighted loss of one training step. Returns ``(loss, metrics, batch_stats)``.

    image_1, image_2: (B, S, S, 3) in [0, 1], coarse-aligned pairs. Each pair is used in both directions:
    images are stacked ``[I1_1..I1_B, I2_1..I2_B]`` and image k is the source for target
    ``r(k) = (k + B) mod 2B``, i.e. ``jnp.roll(·, B, axis=0)``. Modes:

    * ``flow`` (stages 1–2): L = L_rec(Mg) + μ L_cyc(Mg), Mg the central-region mask (``margin``);
    * ``flow+match`` (stage 3): L = L_rec(mc) + μ L_cyc(mc) + λ L_match (+ γ L_grad), mc the cycle
      matchability;
    * ``grad``: as ``flow+match`` with γ > 0, the feature extractor's BatchNorm on running statistics.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    batch, size = image_1.shape[0], image_1.shape[1]
    images = jnp.concatenate([image_1, image_2], axis=0)  # (2B, S, S, 3)
    partner = lambda x: jnp.roll(x, batch, axis=0)  # x[r(k)]
    with_match = mode != "flow"
    stats = dict(variables["batch_stats"])

    features, stats["feature_extractor"] = _apply(
        AntiAliasedTrunk(), variables, "feature_extractor", images, train=mode != "grad")
    features = l2_normalise(features)
    correlation = local_correlation(partner(features), features)  # Corr(f[r(k)], f[k])
    residual, stats["flow_decoder"] = _apply(FlowDecoder(), variables, "flow_decoder", correlation, train=True)

    identity = identity_grid(size, size, align_corners=True)
    upsampled = resize_bilinear(residual, (size, size), align_corners=True)  # legacy ×8 AC upsampling
    final = jnp.clip(identity + upsampled, -1.0, 1.0)  # (2B, S, S, 2): target r(k) pixel -> location in I[k]
    warped = grid_sample(images, final, align_corners=True)  # should resemble I[r(k)]
    cycle = grid_sample(partner(final), final, align_corners=True)  # should equal the identity
    margin_weight = margin_mask(2 * batch, size, margin)

    metrics = {}
    if with_match:
        match, stats["matchability_decoder"] = _apply(
            MatchabilityDecoder(), variables, "matchability_decoder", correlation, train=True)
        match = resize_bilinear(match, (size, size), align_corners=True) * margin_weight
        cycle_match = grid_sample(partner(match), final, align_corners=True) * match
        weight = cycle_match
        match_loss = matchability_loss(cycle_match, margin_weight)
        grad_loss = gradient_loss(upsampled, cycle_match, margin_weight)
        metrics.update(matchability_loss=match_loss, gradient_loss=grad_loss,
                       mean_matchability=jnp.sum(cycle_match) / jnp.sum(margin_weight))
    else:
        weight = margin_weight
        match_loss = grad_loss = 0.0
    rec_loss = reconstruction_loss(warped, partner(images), weight)
    cyc_loss = cycle_loss(cycle, identity, weight)
    loss = (rec_loss + weights.cycle * cyc_loss + weights.matchability * match_loss
            + weights.gradient * grad_loss)
    metrics.update(reconstruction_loss=rec_loss, cycle_loss=cyc_loss)
    return loss, metrics, stats
