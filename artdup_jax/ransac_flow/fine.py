"""RANSAC-Flow fine network (ransac_flow.md §2) and its two inference recipes.

Conventions (ransac_flow.md §0): images are ``(B, H, W, 3)`` float32 RGB in [0, 1], with no mean/std
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

from artdup_jax.geometry.homography import homography_grid
from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import grid_sample, identity_grid
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
    """Fresh variables ``{"params": ..., "batch_stats": ...}`` (§2.5 init) for ``FineNetwork``.

    ``image_size`` ``(H, W)`` only sets the shapes traced at init; the variables work at any size.
    """
    height, width = image_size
    return jax.jit(FineNetwork().init, static_argnames="train")(
        rng, jnp.zeros((1, height, width, 3), jnp.float32), train=False
    )


def _check_images(source: jnp.ndarray, target: jnp.ndarray) -> None:
    chex.assert_rank([source, target], 4)
    chex.assert_axis_dimension(source, -1, 3)
    chex.assert_axis_dimension(target, -1, 3)


@jax.jit
def fine_flow(variables: dict, source: jnp.ndarray, target: jnp.ndarray) -> dict:
    """Fine network on a pair that is already coarsely aligned (training-time parameterisation, §2.6).

    Args:
      variables: ``FineNetwork`` variables ``{"params", "batch_stats"}`` (BN in inference mode).
      source: ``(B, H, W, 3)`` coarse-aligned source S_c, RGB in [0, 1].
      target: ``(B, H, W, 3)`` target T, RGB in [0, 1].
    Returns:
      residual:     ``(B, h, w, 2)`` flow decoder on Corr(f_T, f_S); normalised offsets in units of
                    2/w (x) and 2/h (y) of the feature map, x first.
      matchability: ``(B, h, w, 1)`` in (0, 1), matchability decoder on the same correlation.
      grid:         ``(B, H, W, 2)`` = clamp(AC identity grid + AC-resize of the residual to (H, W), -1, 1):
                    target pixel -> source location, normalised AC, x first. For 8 | H, W this is the
                    legacy x8 align-corners upsampling used in training and training-time validation.
    """
    _check_images(source, target)
    chex.assert_equal_shape([source, target])
    _, height, width, _ = target.shape
    out = FineNetwork().apply(variables, target, source, train=False, backward=False)
    upsampled = resize_bilinear(out["residual"], (height, width), align_corners=True)
    grid = jnp.clip(identity_grid(height, width, align_corners=True) + upsampled, -1.0, 1.0)
    return {"residual": out["residual"], "matchability": out["matchability"], "grid": grid}


@jax.jit
def refine(variables: dict, source: jnp.ndarray, target: jnp.ndarray, homography: jnp.ndarray) -> dict:
    """Fine alignment on top of a coarse homography: the evaluation scripts' recipe (§2.6, §2.7).

    1. ``G = homography_grid(homography)`` on the target's AC lattice; ``S_c = grid_sample(source, G)``.
    2. Fine network on ``(T, S_c)``: residual Δ, m_TS = Match(Corr(f_T, f_S)), m_ST = Match(Corr(f_S, f_T)).
    3. ``P = clamp(g + U(Δ), -1, 1)`` with ``U`` the half-pixel bilinear resize to ``(H, W)``.
    4. ``F = grid_sample(G, P)``, i.e. F(p) = G(P(p)) (AC, zero padding).
    5. ``match = U(m_TS) * grid_sample(U(m_ST), P) * [|F_x| <= 1 and |F_y| <= 1]``.

    Args:
      variables: ``FineNetwork`` variables.
      source: ``(B, Hs, Ws, 3)`` scale-1 source image, RGB in [0, 1] (usually at the target's size; any
        size works since everything is in normalised coordinates).
      target: ``(B, H, W, 3)`` target image, RGB in [0, 1].
      homography: ``(3, 3)`` (shared) or ``(B, 3, 3)``, mapping target-normalised to source-normalised
        coordinates (AC), kornia-0.1.4 warp-grid convention.
    Returns:
      grid:         ``(B, H, W, 2)`` final flow F: target pixel -> location in ``source``, normalised AC,
                    x first (may leave [-1, 1] where the homography does).
      matchability: ``(B, H, W)`` in [0, 1].
    """
    _check_images(source, target)
    batch, height, width, _ = target.shape
    coarse_grid = homography_grid(homography.astype(jnp.float32), height, width)
    coarse_grid = jnp.broadcast_to(coarse_grid, (batch, height, width, 2))
    coarse_source = grid_sample(source, coarse_grid, align_corners=True)

    out = FineNetwork().apply(variables, target, coarse_source, train=False)

    def upsample(x):  # HP resize: the inference / result scripts' convention
        return resize_bilinear(x, (height, width), align_corners=False)

    residual_grid = jnp.clip(identity_grid(height, width, align_corners=True) + upsample(out["residual"]), -1.0, 1.0)
    final_grid = grid_sample(coarse_grid, residual_grid, align_corners=True)
    forward = upsample(out["matchability"])[..., 0]
    backward = grid_sample(upsample(out["matchability_backward"]), residual_grid, align_corners=True)[..., 0]
    inside = jnp.all(jnp.abs(final_grid) <= 1.0, axis=-1)
    return {"grid": final_grid, "matchability": forward * backward * inside.astype(forward.dtype)}
