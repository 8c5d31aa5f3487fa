"""Fine network structure: sizes, parameter counts, initialisation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.ransac_flow import FineNetwork, fine_flow, init_fine_network
from baselines.torch.ransac_flow_fine import FineNetworkTorch


@pytest.fixture(scope="module")
def variables():
    return init_fine_network(jax.random.key(0), (64, 64))


def count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def test_parameter_counts_match_the_spec(variables):
    params = variables["params"]
    assert count(params["feature_extractor"]) == 2_775_104
    assert count(params["flow_decoder"]) == 1_758_592
    assert count(params["matchability_decoder"]) == 1_703_296


def test_torch_port_has_the_released_checkpoint_layout():
    checkpoint = FineNetworkTorch().released_checkpoint()
    assert {k: len(v) for k, v in checkpoint.items()} == {
        "netFeatCoarse": 93, "netCorr": 0, "netFlowCoarse": 19, "netMatch": 19
    }
    assert checkpoint["netFeatCoarse"]["layer2.0.downsample.0.filt"].shape == (64, 1, 3, 3)
    assert checkpoint["netFeatCoarse"]["layer2.0.downsample.1.weight"].shape == (128, 64, 1, 1)
    assert checkpoint["netFlowCoarse"]["conv4.weight"].shape == (49, 128, 3, 3)
    assert checkpoint["netMatch"]["conv4.weight"].shape == (1, 128, 3, 3)


def test_fine_flow_shapes_64x64_give_8x8_cells(variables):
    images = jnp.full((1, 64, 64, 3), 0.5)
    out = fine_flow(variables, images, images)
    assert out["residual"].shape == (1, 8, 8, 2)
    assert out["matchability"].shape == (1, 8, 8, 1)
    assert out["grid"].shape == (1, 64, 64, 2)


def test_trunk_of_225x223_gives_28x28_unit_norm_features(variables):
    images = jax.ShapeDtypeStruct((1, 225, 223, 3), jnp.float32)
    apply = functools.partial(FineNetwork().apply, method=FineNetwork.features)
    assert jax.eval_shape(apply, variables, images).shape == (1, 28, 28, 256)


def test_features_are_unit_norm(variables):
    images = jax.random.uniform(jax.random.key(1), (1, 32, 40, 3))
    features = FineNetwork().apply(variables, images, method=FineNetwork.features)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(features), axis=-1), 1.0, atol=1e-5)


def test_initial_matchability_is_one_half(variables):
    images = jax.random.uniform(jax.random.key(2), (1, 64, 64, 3))
    out = fine_flow(variables, images, images)
    np.testing.assert_allclose(np.asarray(out["matchability"]), 0.5, atol=1e-2)


def test_residual_is_bounded_by_three_cells(variables):
    images = jax.random.uniform(jax.random.key(3), (2, 48, 64, 3))
    residual = np.asarray(fine_flow(variables, images, images[::-1])["residual"])
    assert np.all(np.abs(residual[..., 0]) < 3 * 2 / 8) and np.all(np.abs(residual[..., 1]) < 3 * 2 / 6)
