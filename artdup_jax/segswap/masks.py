"""Sampling per-cell maps at predicted correspondences, and the masks built from it.

Correspondences ("flows") are the model's (x, y) channels: ``(..., h, w, 2)``, x first, normalised [0, 1]
over the *other* image, cell centre j at (j + 0.5) / w. ``S(m, C)`` samples map ``m`` bilinearly at C with
``align_corners=False`` (continuous cell coordinate C·w - 0.5); taps outside the map contribute zero.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from artdup_jax.geometry.sampling import grid_sample


def sample_at(values: jnp.ndarray, points: jnp.ndarray) -> jnp.ndarray:
    """``S(m, C)``: bilinear samples of per-cell maps at normalised [0, 1] points.

    Args:
      values: ``(B, h, w)`` maps (or ``(B, h, w, C)`` for several channels).
      points: ``(B, ho, wo, 2)``, x first, normalised [0, 1] over ``values``' width and height.
    Returns:
      ``(B, ho, wo)`` (or ``(B, ho, wo, C)``), zero where a tap falls outside the map.
    """
    chex.assert_rank(points, 4)
    single = values.ndim == 3
    image = values[..., None] if single else values
    out = grid_sample(image, 2 * points - 1, align_corners=False, padding_mode="zeros")
    return out[..., 0] if single else out


def transported_mask(output_source: jnp.ndarray, output_target: jnp.ndarray) -> jnp.ndarray:
    """The target's mask read at the source's predicted correspondences: ``S(O_t[mask], O_s[xy])``.

    Args:
      output_source: ``(B, hs, ws, 3)`` model output for the source (x, y, mask).
      output_target: ``(B, ht, wt, 3)`` model output for the target.
    Returns:
      ``(B, hs, ws)``.
    """
    return sample_at(output_target[..., 2], output_source[..., :2])


def joint_mask(output_source: jnp.ndarray, output_target: jnp.ndarray, prior: jnp.ndarray | float = 1.0) -> jnp.ndarray:
    """``M_joint = m_prior · O_s[mask] · S(O_t[mask], O_s[xy])``, ``(B, hs, ws)``; ``prior`` broadcasts."""
    return prior * output_source[..., 2] * transported_mask(output_source, output_target)


def cycle_consistent_masks(mask_1: jnp.ndarray, mask_2: jnp.ndarray, flow_12: jnp.ndarray,
                           flow_21: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Three-step cycle-consistent masks (Brueghel / Tokyo / Pitts query refinement).

    ``t = S(a, C21) · b``;  ``a' = a · S(t, C12)``;  ``b' = S(a', C21)``.

    Args:
      mask_1: ``(B, h1, w1)`` map a on grid 1; mask_2: ``(B, h2, w2)`` map b on grid 2.
      flow_12: ``(B, h1, w1, 2)`` image 1's predicted (x, y) into image 2; flow_21: ``(B, h2, w2, 2)``.
    Returns:
      ``(a', b')`` with the shapes of ``mask_1`` and ``mask_2``. (The demo also multiplies b' by b; the
      Internet pair filter uses the one-step ``a·S(b, C12)``: build those from ``sample_at`` directly.)
    """
    chex.assert_equal_shape_prefix([mask_1, flow_12], 3)
    chex.assert_equal_shape_prefix([mask_2, flow_21], 3)
    on_2 = sample_at(mask_1, flow_21) * mask_2
    refined_1 = mask_1 * sample_at(on_2, flow_12)
    return refined_1, sample_at(refined_1, flow_21)
