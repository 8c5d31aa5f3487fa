"""Max-pooling whose gradient avoids XLA's ``select_and_scatter``.

``jax.grad`` of ``lax.reduce_window(max)`` lowers to ``select_and_scatter``, which XLA:CPU runs as a scalar
loop, many times slower than the forward pass (the measurements are in BENCHMARKS.md). Here the backward pass
is written as one running arg-max over the window offsets and one strided placement per offset (elementwise
passes that XLA fuses): equal gradients, in a fraction of the time.

Ties go to the first maximum in row-major window order, as PyTorch's ``max_pool2d`` routes them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]


def _forward(x: jax.Array, window: tuple[int, int], strides: tuple[int, int], padding: Padding) -> jax.Array:
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                             ((0, 0), *padding, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: jax.Array, window: tuple[int, int], strides: tuple[int, int], padding: Padding) -> jax.Array:
    """Max over ``window`` every ``strides``, padding with -inf (``((top, bottom), (left, right))``).

    ``x``: ``(N, H, W, C)`` float -> ``(N, Ho, Wo, C)``, the same numbers as ``flax.linen.max_pool``.
    """
    return _forward(x, window, strides, padding)


def _max_pool_fwd(x, window, strides, padding):
    return _forward(x, window, strides, padding), x


def _max_pool_bwd(window, strides, padding, x, grad_pooled):
    (top, bottom), (left, right) = padding
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-jnp.inf)
    batch, height, width, channels = padded.shape
    out_h, out_w = grad_pooled.shape[1:3]
    (stride_h, stride_w), (window_h, window_w) = strides, window
    span_h, span_w = stride_h * (out_h - 1) + 1, stride_w * (out_w - 1) + 1

    def window_offset(row, col):  # (N, Ho, Wo, C): each window's element at (row, col)
        return lax.slice(padded, (0, row, col, 0), (batch, row + span_h, col + span_w, channels),
                         (1, stride_h, stride_w, 1))

    # The winner is found again here, from ``padded`` alone, not by comparing with the forward's output: XLA
    # may recompute ``x`` in another fusion, one ulp apart, and an equality test would then drop gradients.
    offsets = [(row, col) for row in range(window_h) for col in range(window_w)]
    best, winner = window_offset(*offsets[0]), jnp.zeros(grad_pooled.shape, jnp.int32)
    for index, offset in enumerate(offsets[1:], start=1):
        candidate = window_offset(*offset)
        better = candidate > best  # strict: the first maximum keeps a tie
        best, winner = jnp.where(better, candidate, best), jnp.where(better, index, winner)

    zero = jnp.zeros((), grad_pooled.dtype)
    grad_padded = jnp.zeros(padded.shape, grad_pooled.dtype)
    for index, (row, col) in enumerate(offsets):
        routed = jnp.where(winner == index, grad_pooled, zero)
        grad_padded = grad_padded + lax.pad(routed, zero, ((0, 0, 0), (row, height - row - span_h, stride_h - 1),
                                                           (col, width - col - span_w, stride_w - 1), (0, 0, 0)))
    return (grad_padded[:, top:height - bottom, left:width - right],)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
