"""RANSAC-Flow's fine network: shared feature extractor, local correlation, flow and matchability decoders.

Conventions: images are ``(B, H, W, 3)`` float32 RGB in [0, 1], with no mean/std
normalisation (the fine network was trained on raw RGB). Grids are ``(..., 2)``, x first, normalised
[-1, 1] with align_corners=True (AC), and map a target pixel to the source location to read.
Feature maps are ``(B, h, w, C)`` with ``h = H / 8`` when 8 divides H (exact sizes in ``AntiAliasedTrunk``).

On GPUs, float32 convs may run at TF32 precision; wrap parity checks in
``jax.default_matmul_precision("highest")``.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from artdup_jax.nn.blurpool import AntiAliasedTrunk
from artdup_jax.ransac_flow.correlation import local_correlation
from artdup_jax.ransac_flow.decoders import FlowDecoder, MatchabilityDecoder

L2_EPS = 1e-12


def l2_normalise(features: jnp.ndarray, eps: float = L2_EPS) -> jnp.ndarray:
    """``x / max(|x|_2, eps)`` over the channel axis (torch ``F.normalize`` semantics)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True))
    return features / jnp.maximum(norm, eps)


class FineNetwork(nn.Module):
    """Feature extractor (``netFeatCoarse``) + flow decoder (``netFlowCoarse``) + matchability (``netMatch``).

    ``__call__(target, source)`` runs both images through the shared extractor as one batch (as in
    training, so train-mode BatchNorm sees both), correlates ``Corr(f_T, f_S)`` and ``Corr(f_S, f_T)``
    and returns, at feature resolution ``(h, w)``:

      residual               ``(B, h, w, 2)`` flow decoder on Corr(f_T, f_S), normalised offsets, x first
      matchability           ``(B, h, w, 1)`` matchability decoder on Corr(f_T, f_S) (m_TS)
      matchability_backward  ``(B, h, w, 1)`` matchability decoder on Corr(f_S, f_T) (m_ST)

    ``backward=False`` skips m_ST (the key is then absent). The matchability decoder sees both
    correlations as one batch, so train-mode BatchNorm statistics cover both directions.
    ``source=None`` correlates the target with itself (enough to initialise the variables).
    """

    dtype: Any = jnp.float32

    def setup(self):
        self.feature_extractor = AntiAliasedTrunk(dtype=self.dtype)
        self.flow_decoder = FlowDecoder(dtype=self.dtype)
        self.matchability_decoder = MatchabilityDecoder(dtype=self.dtype)

    def features(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """``(B, H, W, 3)`` in [0, 1] -> L2-normalised ``(B, h, w, 256)`` float32."""
        return l2_normalise(self.feature_extractor(images, train).astype(jnp.float32))

    def __call__(
        self, target: jnp.ndarray, source: jnp.ndarray | None = None, train: bool = False, backward: bool = True
    ) -> dict:
        if source is None:
            source = target
        chex.assert_equal_shape([target, source])
        chex.assert_rank(target, 4)
        features = self.features(jnp.concatenate([target, source], axis=0), train)
        f_target, f_source = jnp.split(features, 2, axis=0)
        corr_ts = local_correlation(f_target, f_source)
        out = {"residual": self.flow_decoder(corr_ts, train)}
        if not backward:
            out["matchability"] = self.matchability_decoder(corr_ts, train)
            return out
        corr_st = local_correlation(f_source, f_target)
        matchability = self.matchability_decoder(jnp.concatenate([corr_ts, corr_st], axis=0), train)
        out["matchability"], out["matchability_backward"] = jnp.split(matchability, 2, axis=0)
        return out


def init_fine_network(rng: jax.Array, image_size: tuple[int, int] = (64, 64)) -> dict:
    """Fresh variables ``{"params": ..., "batch_stats": ...}`` for ``FineNetwork`` (the official init).

    ``image_size`` ``(H, W)`` only sets the shapes traced at init; the variables work at any size.
    """
    height, width = image_size
    return jax.jit(FineNetwork().init, static_argnames="train")(
        rng, jnp.zeros((1, height, width, 3), jnp.float32), train=False
    )
