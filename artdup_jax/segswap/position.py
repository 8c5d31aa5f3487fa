"""DETR-style normalised sine position encoding of a feature grid.

For an ``h x w`` grid, with 1-based row r and column c:
  ŷ = r / (h + 1e-6) · 2π,   x̂ = c / (w + 1e-6) · 2π          (so both span (0, 2π] whatever the size)
  ω_m = 10000^(-2m / F), m = 0 … F/2 - 1, with F = channels / 2 per axis
  channel 2m = sin(ŷ ω_m), 2m + 1 = cos(ŷ ω_m)   (channels 0 … F-1: rows, interleaved sin/cos)
  channel F + 2m = sin(x̂ ω_m), F + 2m + 1 = cos(x̂ ω_m)   (channels F … 2F-1: columns)

The float32 operation order follows the PyTorch code, so the encoding matches it to rounding.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

TEMPERATURE = 10000.0
SCALE = 2 * math.pi
EPS = 1e-6


def sine_position_encoding(height: int, width: int, channels: int = 256) -> jnp.ndarray:
    """Position encoding of an ``height x width`` grid.

    Returns:
      ``(height, width, channels)`` float32; ``channels`` must be a multiple of 4 (half for rows, half
      for columns, each interleaved sin/cos).
    """
    if channels % 4:
        raise ValueError(f"channels must be a multiple of 4, got {channels}")
    per_axis = channels // 2
    rows = jnp.arange(1, height + 1, dtype=jnp.float32) / (jnp.float32(height) + EPS) * SCALE
    cols = jnp.arange(1, width + 1, dtype=jnp.float32) / (jnp.float32(width) + EPS) * SCALE
    index = jnp.arange(per_axis, dtype=jnp.float32)
    frequencies_inv = TEMPERATURE ** (2 * jnp.floor(index / 2) / per_axis)  # (per_axis,), pairs share a frequency

    def encode(positions):  # (n,) -> (n, per_axis): sin on even channels, cos on odd ones
        angles = positions[:, None] / frequencies_inv
        return jnp.stack([jnp.sin(angles[:, 0::2]), jnp.cos(angles[:, 1::2])], axis=-1).reshape(-1, per_axis)

    pos_y = jnp.broadcast_to(encode(rows)[:, None, :], (height, width, per_axis))
    pos_x = jnp.broadcast_to(encode(cols)[None, :, :], (height, width, per_axis))
    return jnp.concatenate([pos_y, pos_x], axis=-1)
