"""A drop-in ``lax.conv_general_dilated`` whose backward pass materialises its operands first.

XLA:CPU computes a convolution's kernel gradient as another convolution that wants the activations and the
output cotangent in channel-major layouts (``(C, H, W, N)``), so it inserts layout-changing copies. Left
alone, XLA fuses the producers of those tensors (the BatchNorm/ReLU recomputation of the saved input, the
elementwise BatchNorm backward of the cotangent) into the copies, and the fused loops read every operand with
a cache-hostile stride (the RANSAC-Flow stage-3 training step spends much of its time in three such copies).
An ``optimization_barrier`` on the saved input and the cotangent makes XLA compute them in their natural
layout first; the copies then move one array each. Same operations, same numbers, a faster step (measured in
BENCHMARKS.md).

The forward pass is ``lax.conv_general_dilated`` itself. Reverse mode only (``custom_vjp``: no ``jax.jvp``).
Not for networks vmapped over examples with shared weights: a ``custom_vjp`` under ``vmap`` computes one kernel
gradient per example (a grouped convolution) and sums them, which makes ArtMiner's per-image-BN training step
slower. So it is opt-in (``nn.resnet.conv(...,
materialised_backward=True)``); the RANSAC-Flow networks use it.
"""

from __future__ import annotations

import functools

import jax
from jax import lax


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **options) -> jax.Array:
    """``lax.conv_general_dilated(lhs, rhs, window_strides, padding, **options)`` (same arguments, e.g. as
    ``flax.linen.Conv(conv_general_dilated=...)`` passes them), with the backward pass described above."""
    conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides, padding=padding, **options)

    @jax.custom_vjp
    def apply(lhs, rhs):
        return conv(lhs, rhs)

    def forward(lhs, rhs):
        return conv(lhs, rhs), (lhs, rhs)

    def backward(saved, cotangent):
        lhs, rhs = saved
        lhs, cotangent = lax.optimization_barrier((lhs, cotangent))
        return jax.vjp(conv, lhs, rhs)[1](cotangent)

    apply.defvjp(forward, backward)
    return apply(lhs, rhs)
