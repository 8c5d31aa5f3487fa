"""``nn.pooling.max_pool``: flax's numbers forward, PyTorch's routing backward, robust under jit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from artdup_jax.nn.pooling import max_pool

CASES = [  # (input shape NHWC, window, strides, padding)
    ((2, 17, 14, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),  # the ResNet stem's pool, odd and even sides
    ((2, 9, 12, 4), (2, 2), (1, 1), ((0, 0), (0, 0))),  # RANSAC-Flow's stem pool
    ((1, 7, 8, 2), (2, 2), (2, 2), ((0, 1), (0, 0))),  # the VGG ceil-mode pool on an odd height
]


def _torch_max_pool_grad(x: np.ndarray, grad_out: np.ndarray, window, strides, padding) -> np.ndarray:
    (top, bottom), (left, right) = padding
    t = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    padded = torch.nn.functional.pad(t, (left, right, top, bottom), value=-float("inf"))
    pooled = torch.nn.functional.max_pool2d(padded, window, strides)
    (pooled * torch.tensor(grad_out).permute(0, 3, 1, 2)).sum().backward()
    return t.grad.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("shape, window, strides, padding", CASES)
def test_forward_and_gradient_equal_flax_on_distinct_values(shape, window, strides, padding):
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    ours = max_pool(x, window, strides, padding)
    np.testing.assert_array_equal(ours, nn.max_pool(x, window, strides, padding=padding))
    weights = jnp.asarray(np.random.default_rng(1).normal(size=ours.shape), jnp.float32)
    grad = jax.grad(lambda v: jnp.sum(max_pool(v, window, strides, padding) * weights))(x)
    reference = jax.grad(lambda v: jnp.sum(nn.max_pool(v, window, strides, padding=padding) * weights))(x)
    np.testing.assert_allclose(grad, reference, atol=1e-6)


@pytest.mark.parametrize("shape, window, strides, padding", CASES)
def test_ties_go_to_the_first_maximum_as_in_pytorch(shape, window, strides, padding):
    # Few distinct values: most windows hold a tie for the maximum.
    x = np.random.default_rng(2).integers(0, 3, size=shape).astype(np.float32)
    pooled_shape = max_pool(jnp.asarray(x), window, strides, padding).shape
    grad_out = np.random.default_rng(3).normal(size=pooled_shape).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(max_pool(v, window, strides, padding) * grad_out))(jnp.asarray(x))
    np.testing.assert_allclose(grad, _torch_max_pool_grad(x, grad_out, window, strides, padding), atol=1e-6)


def test_every_output_gradient_lands_once_under_jit_after_a_fused_producer():
    """Under jit XLA may recompute the pool's input in another fusion; no output's gradient may be lost."""
    rng = np.random.default_rng(4)
    a, b, c = (jnp.asarray(rng.normal(size=(2, 32, 32, 8)), jnp.float32) for _ in range(3))
    weights = jnp.asarray(rng.uniform(0.5, 1.5, size=(2, 16, 16, 8)), jnp.float32)

    def loss(a):
        x = jax.nn.relu(a * b + c / (1.0 + a * a))  # elementwise, fusible into both passes
        return jnp.sum(max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1))) * weights)

    def loss_through_pool_input(x):
        return jnp.sum(max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1))) * weights)

    x = jax.nn.relu(a * b + c / (1.0 + a * a))
    np.testing.assert_allclose(jnp.sum(jax.jit(jax.grad(loss_through_pool_input))(x)), jnp.sum(weights), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(a), jax.grad(loss)(a), rtol=1e-5, atol=1e-5)
