"""Shapes, cuts and names of the ResNet trunks (abstract evaluation only; nothing is computed)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.nn import imagenet_normalise, resnet18, resnet50


def abstract_run(model, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    return variables, jax.eval_shape(functools.partial(model.apply, train=False), variables, x)


@pytest.mark.parametrize(
    "constructor, last_stage, expected",
    [
        (resnet18, "stem", (56, 56, 64)),
        (resnet18, "layer1", (56, 56, 64)),
        (resnet18, "layer2", (28, 28, 128)),
        (resnet18, "layer3", (14, 14, 256)),
        (resnet18, "layer4", (7, 7, 512)),
        (resnet50, "layer1", (56, 56, 256)),
        (resnet50, "layer3", (14, 14, 1024)),
        (resnet50, "layer4", (7, 7, 2048)),
    ],
)
def test_cut_gives_torchvision_stride_and_channels(constructor, last_stage, expected):
    model = constructor(last_stage)
    _, out = abstract_run(model, (2, 224, 224, 3))
    assert out.shape == (2, *expected)
    assert model.out_channels == expected[-1]


def test_odd_sizes_round_up_like_pytorch_symmetric_padding():
    # ArtMiner feeds 16n - 1 pixels and expects n cells.
    _, out = abstract_run(resnet18("layer3"), (1, 16 * 5 - 1, 16 * 3 - 1, 3))
    assert out.shape == (1, 5, 3, 256)


def test_resnet50_layer3_parameter_count_and_names():
    variables, _ = abstract_run(resnet50("layer3"), (1, 64, 64, 3))
    params = variables["params"]
    assert sum(x.size for x in jax.tree.leaves(params)) == 8_543_296
    assert set(params) == {"conv1", "bn1", *(f"layer1_{i}" for i in range(3)),
                           *(f"layer2_{i}" for i in range(4)), *(f"layer3_{i}" for i in range(6))}
    assert params["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 128, 128)  # stride sits on the 3x3 (v1.5)
    assert params["layer1_0"]["downsample_conv"]["kernel"].shape == (1, 1, 64, 256)
    assert set(variables["batch_stats"]["layer1_0"]["downsample_bn"]) == {"mean", "var"}


def test_basic_block_stage1_has_no_projection_shortcut():
    variables, _ = abstract_run(resnet18("layer2"), (1, 64, 64, 3))
    assert "downsample_conv" not in variables["params"]["layer1_0"]
    assert "downsample_conv" in variables["params"]["layer2_0"]


def test_unknown_last_stage_is_rejected():
    with pytest.raises(ValueError, match="last_stage"):
        resnet18("layer5")


def test_imagenet_normalise_matches_per_channel_formula():
    images = np.random.default_rng(0).uniform(size=(2, 4, 5, 3)).astype(np.float32)
    expected = (images - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(imagenet_normalise(images), expected, rtol=1e-6, atol=1e-6)
