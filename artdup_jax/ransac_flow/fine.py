"""The fine stage: the fine network applied to a pair, at inference.

* :func:`fine_flow`: on a pair that is already coarsely aligned (the training-time parameterisation).
* :func:`refine`: on top of a coarse homography (the evaluation scripts' recipe).
* :func:`refine_two_levels`: KITTI's variant, the fine network at two target sizes composed at full size.

Images are ``(B, H, W, 3)`` float32 RGB in [0, 1]. Grids map a target pixel to the source location to read,
``(..., 2)``, x first, normalised AC. The network's 1/8-resolution outputs are upsampled half-pixel style
(``align_corners=False``) at inference and align-corners style in ``fine_flow`` (as in training).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from artdup_jax.geometry.homography import homography_grid
from artdup_jax.geometry.resize import resize_bilinear
from artdup_jax.geometry.sampling import grid_sample, identity_grid
from artdup_jax.ransac_flow.model import FineNetwork


def _check_images(source: jnp.ndarray, target: jnp.ndarray) -> None:
    chex.assert_rank([source, target], 4)
    chex.assert_axis_dimension(source, -1, 3)
    chex.assert_axis_dimension(target, -1, 3)


@jax.jit
def fine_flow(variables: dict, source: jnp.ndarray, target: jnp.ndarray) -> dict:
    """Fine network on a pair that is already coarsely aligned (training-time parameterisation).

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
    """Fine alignment on top of a coarse homography: the evaluation scripts' recipe.

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

    residual_grid = _residual_grid(out["residual"], (height, width))
    final_grid = grid_sample(coarse_grid, residual_grid, align_corners=True)
    forward = upsample(out["matchability"])[..., 0]
    backward = grid_sample(upsample(out["matchability_backward"]), residual_grid, align_corners=True)[..., 0]
    inside = jnp.all(jnp.abs(final_grid) <= 1.0, axis=-1)
    return {"grid": final_grid, "matchability": forward * backward * inside.astype(forward.dtype)}


def _residual_grid(residual, size_hw):
    """``P = clamp(g + U(Δ), -1, 1)``: ``(B, H, W, 2)`` from a ``(B, h, w, 2)`` residual, with ``g`` the AC
    identity grid and ``U`` the half-pixel bilinear resize to ``size_hw``."""
    h, w = size_hw
    return jnp.clip(identity_grid(h, w, align_corners=True) + resize_bilinear(residual, (h, w), align_corners=False),
                    -1.0, 1.0)


@jax.jit
def _fine_on_grid(variables, source, target, coarse_grid):
    """Fine network on ``(T, grid_sample(source, coarse_grid))``: residual, m_TS, m_ST at 1/8 resolution."""
    coarse_source = grid_sample(source, coarse_grid, align_corners=True)
    return FineNetwork().apply(variables, target, coarse_source, train=False)


@functools.partial(jax.jit, static_argnames=("size_hw",))
def _level_one_grid(H, residual_1, *, size_hw):
    """Level 2's "coarse" grid: the level-1 result at level 2's size (upsampled Δ1, clamped, composed with the
    homography grid of that size)."""
    return grid_sample(homography_grid(H, *size_hw)[None], _residual_grid(residual_1, size_hw), align_corners=True)


@functools.partial(jax.jit, static_argnames=("out_hw",))
def _compose_two_levels(H, residual_1, level_2, *, out_hw):
    """At ``out_hw``: homography ∘ level 1 ∘ level 2, and the bidirectional matchability."""
    p_1 = _residual_grid(residual_1, out_hw)
    p_2 = _residual_grid(level_2["residual"], out_hw)
    grid_1 = grid_sample(homography_grid(H, *out_hw)[None], p_1, align_corners=True)
    grid = grid_sample(grid_1, p_2, align_corners=True)
    forward = resize_bilinear(level_2["matchability"], out_hw, align_corners=False)[..., 0]
    backward = grid_sample(resize_bilinear(level_2["matchability_backward"], out_hw, align_corners=False), p_2,
                           align_corners=True)[..., 0]
    inside = jnp.all(jnp.abs(grid) <= 1.0, axis=-1).astype(jnp.float32)
    return grid[0], (forward * backward * inside)[0]


def refine_two_levels(variables: dict, source: jnp.ndarray, target_1: jnp.ndarray, target_2: jnp.ndarray,
                      homography: jnp.ndarray, *, out_hw) -> tuple[jnp.ndarray, jnp.ndarray]:
    """KITTI's two-level fine alignment for one homography, composed at ``out_hw`` (the original size).

    Level 1 refines the homography on ``target_1`` (``(1, H1, W1, 3)``, half the fine size); level 2 refines
    level 1's result on ``target_2`` (``(1, H2, W2, 3)``). source: ``(1, Hs, Ws, 3)``. homography: ``(3, 3)``
    target-normalised → source-normalised (AC). Returns the grid ``(H, W, 2)`` and the matchability ``(H, W)``
    at ``out_hw``. The two fine passes are separate jitted calls (one compilation per level size, reused
    across pairs).
    """
    H = jnp.asarray(homography, jnp.float32)
    h1, w1 = target_1.shape[1:3]
    level_1 = _fine_on_grid(variables, source, target_1, homography_grid(H, h1, w1)[None])
    coarse_2 = _level_one_grid(H, level_1["residual"], size_hw=tuple(target_2.shape[1:3]))
    level_2 = _fine_on_grid(variables, source, target_2, coarse_2)
    return _compose_two_levels(H, level_1["residual"], level_2, out_hw=tuple(out_hw))
