"""One training step's forward pass and losses (ransac_flow.md §3.3–3.4), for the three stage modes.

Mode ``flow`` (stages 1–2): L = L_rec(Mg) + μ L_cyc(Mg).
Mode ``flow+match`` (stage 3): L = L_rec(mc) + μ L_cyc(mc) + λ L_match (+ γ L_grad).
Mode ``grad``: as ``flow+match`` with γ > 0, the feature extractor's BatchNorm on running statistics.

Each pair is used in both directions: images are stacked ``[I1_1..I1_B, I2_1..I2_B]`` and image k is the
source for target ``r(k) = (k + B) mod 2B``, i.e. ``jnp.roll(·, B, axis=0)``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import grid_sample, identity_grid
from artdup_jax.nn.blurpool import AntiAliasedTrunk
from artdup_jax.ransac_flow import losses
from artdup_jax.ransac_flow.correlation import local_correlation
from artdup_jax.ransac_flow.decoders import FlowDecoder, MatchabilityDecoder
from artdup_jax.ransac_flow.fine import l2_normalise

MODES = ("flow", "flow+match", "grad")


@dataclasses.dataclass(frozen=True)
class LossWeights:
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
    """image_1, image_2: (B, S, S, 3) in [0, 1] (coarse-aligned pairs). Returns (loss, metrics, batch_stats)."""
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
    margin_mask = losses.margin_mask(2 * batch, size, margin)

    metrics = {}
    if with_match:
        match, stats["matchability_decoder"] = _apply(
            MatchabilityDecoder(), variables, "matchability_decoder", correlation, train=True)
        match = resize_bilinear(match, (size, size), align_corners=True) * margin_mask
        cycle_match = grid_sample(partner(match), final, align_corners=True) * match
        weight = cycle_match
        match_loss = losses.matchability_loss(cycle_match, margin_mask)
        grad_loss = losses.gradient_loss(upsampled, cycle_match, margin_mask)
        metrics.update(matchability_loss=match_loss, gradient_loss=grad_loss,
                       mean_matchability=jnp.sum(cycle_match) / jnp.sum(margin_mask))
    else:
        weight = margin_mask
        match_loss = grad_loss = 0.0
    rec_loss = losses.reconstruction_loss(warped, partner(images), weight)
    cyc_loss = losses.cycle_loss(cycle, identity, weight)
    loss = (rec_loss + weights.cycle * cyc_loss + weights.matchability * match_loss
            + weights.gradient * grad_loss)
    metrics.update(reconstruction_loss=rec_loss, cycle_loss=cyc_loss)
    return loss, metrics, stats
