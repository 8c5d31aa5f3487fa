"""``artdup_jax.nn.conv.conv_general_dilated``: the forward pass and the gradients of ``lax.conv_general_dilated``
(it only changes where XLA materialises the backward pass's operands), inside a flax layer too."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from artdup_jax.nn.conv import conv_general_dilated
from artdup_jax.nn.resnet import batch_norm, conv


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (1, 2), (7, 2)])
def test_values_and_gradients_equal_xla_convolution(kernel, stride):
    rng = np.random.default_rng(kernel + stride)
    x = jnp.asarray(rng.normal(size=(2, 13, 11, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 5, 6)), jnp.float32)
    options = dict(window_strides=(stride, stride), padding=((kernel // 2,) * 2,) * 2,
                   dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def loss(fn):
        return lambda x, w: jnp.sum(jnp.sin(fn(x, w, **options)))

    np.testing.assert_array_equal(conv_general_dilated(x, w, **options), lax.conv_general_dilated(x, w, **options))
    ours = jax.jit(jax.grad(loss(conv_general_dilated), argnums=(0, 1)))(x, w)
    xla = jax.jit(jax.grad(loss(lax.conv_general_dilated), argnums=(0, 1)))(x, w)
    for got, expected in zip(ours, xla):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


class _Block(nn.Module):
    materialised: bool

    @nn.compact
    def __call__(self, x):
        x = conv(8, 3, 2, name="conv1", materialised_backward=self.materialised)(x)
        x = nn.relu(batch_norm(True, name="bn1")(x))
        return conv(4, 3, name="conv2", materialised_backward=self.materialised)(x)


def test_resnet_conv_option_changes_nothing_but_the_backward_pass():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16, 16, 3)), jnp.float32)
    variables = _Block(False).init(jax.random.key(0), x)

    def loss(materialised):
        def f(params):
            out, _ = _Block(materialised).apply({**variables, "params": params}, x, mutable=["batch_stats"])
            return jnp.mean(out ** 2)
        return jax.jit(jax.value_and_grad(f))(variables["params"])

    (plain_loss, plain_grads), (loss_value, grads) = loss(False), loss(True)
    assert loss_value == plain_loss
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grads, plain_grads)
