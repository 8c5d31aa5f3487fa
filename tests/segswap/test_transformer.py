"""Structure of the co-segmentation transformer, on a tiny configuration."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.segswap import SMALL, CoSegmentationTransformer, TransformerConfig
from artdup_jax.segswap.transformer import PROBABILITY_EPS
from tests.segswap.conftest import random_features

TINY = TransformerConfig(feature_dim=16, d_model=32, num_heads=2, dim_feedforward=24)


def init(config, features_x, features_y, seed=0):
    return CoSegmentationTransformer(config).init(jax.random.key(seed), features_x, features_y)


def apply(config, variables, *args, **kwargs):
    return [np.asarray(o) for o in CoSegmentationTransformer(config).apply(variables, *args, **kwargs)]


def test_released_configuration_has_the_published_parameter_count():
    shapes = jax.eval_shape(functools.partial(init, SMALL), jnp.zeros((1, 3, 3, 1024)), jnp.zeros((1, 3, 3, 1024)))
    assert sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes)) == 2_242_051
    assert "layer2" not in shapes["params"]["encoder_blocks_2"]  # the N slot has no parameters


def test_outputs_are_clamped_probabilities_on_each_images_grid():
    x, y = random_features(0, (2, 3, 5, 16)), random_features(1, (2, 4, 2, 16))
    out_x, out_y = apply(TINY, init(TINY, x, y), x, y)
    assert out_x.shape == (2, 3, 5, 3) and out_y.shape == (2, 4, 2, 3)
    for out in (out_x, out_y):
        assert out.min() >= PROBABILITY_EPS and out.max() <= 1 - PROBABILITY_EPS


def test_masked_keys_never_influence_other_tokens():
    x, y = random_features(2, (1, 3, 4, 16)), random_features(3, (1, 3, 4, 16))
    keys_y = np.random.default_rng(4).uniform(size=(1, 3, 4)) < 0.5
    keys_y[0, 0, 0] = True
    variables = init(TINY, x, y)
    changed_y = np.where(keys_y[..., None], y, random_features(5, y.shape))
    before = apply(TINY, variables, x, y, None, keys_y)
    after = apply(TINY, variables, x, changed_y, None, keys_y)
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)
    np.testing.assert_allclose(after[1][keys_y], before[1][keys_y], atol=1e-6)
    assert np.abs(after[1][~keys_y] - before[1][~keys_y]).max() > 1e-4  # masked tokens still get outputs


def test_fully_masked_keys_give_finite_outputs():
    x, y = random_features(6, (1, 2, 2, 16)), random_features(7, (1, 2, 2, 16))
    out_x, out_y = apply(TINY, init(TINY, x, y), x, y, None, np.zeros((1, 2, 2), bool))
    assert np.isfinite(out_x).all() and np.isfinite(out_y).all()


def test_images_interact_only_through_cross_layers():
    x, y = random_features(8, (1, 3, 3, 16)), random_features(9, (1, 3, 3, 16))
    other_y = random_features(10, y.shape)
    no_cross = TransformerConfig(**{**TINY.__dict__, "layer_types": "ININ"})
    variables = init(no_cross, x, y)
    np.testing.assert_array_equal(apply(no_cross, variables, x, y)[0], apply(no_cross, variables, x, other_y)[0])
    variables = init(TINY, x, y)
    assert np.abs(apply(TINY, variables, x, y)[0] - apply(TINY, variables, x, other_y)[0]).max() > 1e-4


def test_dropout_only_when_not_deterministic():
    x, y = random_features(11, (1, 3, 3, 16)), random_features(12, (1, 3, 3, 16))
    variables = init(TINY, x, y)
    eval_a, eval_b = apply(TINY, variables, x, y)[0], apply(TINY, variables, x, y)[0]
    np.testing.assert_array_equal(eval_a, eval_b)
    train = [apply(TINY, variables, x, y, deterministic=False, rngs={"dropout": jax.random.key(k)})[0] for k in (0, 1)]
    assert np.abs(train[0] - eval_a).max() > 1e-4 and np.abs(train[0] - train[1]).max() > 1e-4


def test_layer_types_are_validated():
    with pytest.raises(ValueError, match="pairs of I/C/N"):
        TransformerConfig(layer_types="ICI")
