"""Mismatched checkpoints are refused with every offending key named; known-unused keys are not."""

import numpy as np
import pytest

from artdup_jax.convert import CheckpointMismatchError, convert_state_dict, expected_torch_shapes
from tests.convert.conftest import numpy_state_dict


@pytest.fixture
def state_dict(resnet18_pth):
    return numpy_state_dict(resnet18_pth[0])


def mismatch(state_dict, **options) -> CheckpointMismatchError:
    with pytest.raises(CheckpointMismatchError) as info:
        convert_state_dict("resnet18", state_dict, **options)
    assert isinstance(info.value, ValueError)
    return info.value


def test_missing_key_is_named_with_its_expected_shape(state_dict):
    del state_dict["layer2.0.downsample.1.running_var"]
    error = mismatch(state_dict)
    assert error.problems == ["missing: layer2.0.downsample.1.running_var (expected shape (128,))"]


def test_unexpected_key_is_named(state_dict):
    state_dict["layer3.1.conv3.weight"] = np.zeros((256, 256, 1, 1), np.float32)
    assert "unexpected: layer3.1.conv3.weight (shape (256, 256, 1, 1))" in str(mismatch(state_dict))


def test_wrong_shape_is_named_with_both_shapes(state_dict):
    state_dict["layer1.0.conv2.weight"] = np.zeros((64, 64, 1, 1), np.float32)
    assert "wrong shape: layer1.0.conv2.weight (expected (64, 64, 3, 3), got (64, 64, 1, 1))" in str(mismatch(state_dict))


def test_all_problems_are_reported_at_once(state_dict):
    del state_dict["conv1.weight"]
    state_dict["bn1.weight"] = np.zeros(3, np.float32)
    state_dict["extra"] = np.zeros(1, np.float32)
    assert len(mismatch(state_dict).problems) == 3


def test_layer4_is_ignored_only_when_cut_before_it(state_dict):
    del state_dict["layer4.1.bn2.bias"]
    convert_state_dict("resnet18", state_dict, last_stage="layer3")
    assert "missing: layer4.1.bn2.bias (expected shape (512,))" in str(mismatch(state_dict, last_stage="layer4"))


def test_expected_shapes_exclude_ignored_keys():
    shapes = expected_torch_shapes("resnet18", last_stage="layer2")
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["bn1.running_var"] == (64,)
    assert not any(k.startswith(("layer3.", "fc.")) or k.endswith("num_batches_tracked") for k in shapes)


def test_unknown_family_lists_the_known_ones(state_dict):
    with pytest.raises(KeyError, match="moco_resnet50"):
        convert_state_dict("resnet51", state_dict)
