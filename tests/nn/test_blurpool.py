"""BlurPool and the anti-aliased trunk against a PyTorch port."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from artdup_jax.convert import Family, convert_state_dict
from artdup_jax.checkpoints.torchvision import torchvision_module
from artdup_jax.nn import AntiAliasedTrunk, BlurPool
from baselines.torch.randomise import randomise_batchnorm
from tests.nn.torch_reference import TorchAntiAliasedTrunk, TorchBlurPool

# An unregistered family built from the engine's parts: the shortcut is downsample.{0: blur, 1: conv, 2: BN}.
ANTIALIASED = Family(
    name="test_antialiased_trunk",
    build_model=lambda: AntiAliasedTrunk(),
    torch_module=functools.partial(torchvision_module, downsample_indices=(1, 2)),
    ignore=lambda: (r"\.filt$",),  # constant blur buffers; BlurPool rebuilds them
)


def trunk_output_shape(height, width):
    x = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    model = AntiAliasedTrunk()
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    return variables, jax.eval_shape(model.apply, variables, x).shape


@pytest.mark.parametrize(
    "size, cells", [((224, 224), (28, 28)), ((225, 223), (28, 28)), ((480, 640), (60, 80)), ((481, 641), (60, 80))]
)
def test_trunk_has_stride_8_and_256_channels(size, cells):
    assert trunk_output_shape(*size)[1] == (1, *cells, 256)


def test_trunk_parameter_count_matches_spec():
    variables, _ = trunk_output_shape(64, 64)
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 2_775_104


def test_torch_port_has_the_released_key_layout():
    state_dict = TorchAntiAliasedTrunk().state_dict()
    assert len(state_dict) == 93
    assert state_dict["maxpool.1.filt"].shape == (64, 1, 3, 3)
    assert state_dict["layer3.0.downsample.1.weight"].shape == (256, 128, 1, 1)


@pytest.mark.parametrize("shape", [(2, 8, 16, 16), (1, 5, 7, 9)])
def test_blurpool_matches_reflect_padded_depthwise_conv(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = TorchBlurPool(shape[1])(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    got = BlurPool().apply({}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def trunks():
    torch.manual_seed(0)
    torch_trunk = randomise_batchnorm(TorchAntiAliasedTrunk(), seed=1).eval()
    variables = convert_state_dict(ANTIALIASED, {k: v.numpy() for k, v in torch_trunk.state_dict().items()})
    return torch_trunk, variables, jax.jit(functools.partial(AntiAliasedTrunk().apply, train=False))


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 37, 45)])
def test_trunk_matches_torch_port(trunks, shape):
    torch_trunk, variables, apply = trunks
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_trunk(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    assert got.shape == expected.shape
    error = np.abs(got - expected).max()
    scale = np.abs(expected).max()
    print(f"\nanti-aliased trunk {shape}: max abs err {error:.3g}, relative {error / scale:.3g}")
    assert error <= 1e-4 * scale
