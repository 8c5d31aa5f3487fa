"""The ``segswap`` converter family: layout of the variables and errors that name the offending keys."""

import copy

import numpy as np
import pytest
import torch

from artdup_jax.convert import CheckpointMismatchError, expected_torch_shapes, load_torch_checkpoint

IN_PROJ = "net.encoder_blocks.1.layer2.cross_encoder_layer.self_attn.in_proj_weight"


def save(checkpoint, tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    return path


def test_released_layout_converts_to_backbone_and_transformer(segswap_variables, released_checkpoint):
    assert set(segswap_variables) == {"params", "batch_stats"}
    assert set(segswap_variables["params"]) == {"backbone", "transformer"}
    assert set(segswap_variables["batch_stats"]) == {"backbone"}
    encoder = released_checkpoint["encoder"]
    assert len(encoder) == 64
    layer = segswap_variables["params"]["transformer"]["encoder_blocks_1"]["layer2"]["cross_encoder_layer"]
    np.testing.assert_array_equal(layer["self_attn"]["in_proj"]["kernel"], encoder[IN_PROJ].numpy().T)
    np.testing.assert_array_equal(segswap_variables["params"]["backbone"]["layer3_5"]["conv2"]["kernel"],
                                  released_checkpoint["backbone"]["6.5.conv2.weight"].numpy().transpose(2, 3, 1, 0))


def test_every_expected_key_is_in_the_released_layout(released_checkpoint):
    flat = {f"{part}.{key}" for part in ("backbone", "encoder") for key in released_checkpoint[part]}
    flat = {key.replace("in_proj_weight", "in_proj.weight").replace("in_proj_bias", "in_proj.bias") for key in flat}
    expected = set(expected_torch_shapes("segswap"))
    assert expected <= flat
    assert {key for key in flat - expected if not key.endswith("num_batches_tracked")} == set()


def test_missing_attention_projection_is_named(released_checkpoint, tmp_path):
    checkpoint = copy.copy(released_checkpoint)
    checkpoint["encoder"] = {k: v for k, v in released_checkpoint["encoder"].items() if k != IN_PROJ}
    with pytest.raises(CheckpointMismatchError,
                       match=r"missing: encoder\.net\.encoder_blocks\.1\.layer2\.cross_encoder_layer"
                             r"\.self_attn\.in_proj\.weight"):
        load_torch_checkpoint("segswap", save(checkpoint, tmp_path))


def test_missing_backbone_statistic_is_named(released_checkpoint, tmp_path):
    checkpoint = copy.copy(released_checkpoint)
    checkpoint["backbone"] = {k: v for k, v in released_checkpoint["backbone"].items() if k != "5.2.bn2.running_var"}
    with pytest.raises(CheckpointMismatchError, match=r"missing: backbone\.5\.2\.bn2\.running_var"):
        load_torch_checkpoint("segswap", save(checkpoint, tmp_path))


def test_unexpected_key_is_named(released_checkpoint, tmp_path):
    checkpoint = copy.copy(released_checkpoint)
    checkpoint["encoder"] = {**released_checkpoint["encoder"],
                             "net.encoder_blocks.2.layer2.cross_encoder_layer.norm1.weight": torch.ones(256)}
    with pytest.raises(CheckpointMismatchError,
                       match=r"unexpected: encoder\.net\.encoder_blocks\.2\.layer2\.cross_encoder_layer"
                             r"\.norm1\.weight"):
        load_torch_checkpoint("segswap", save(checkpoint, tmp_path))


def test_mis_shaped_key_is_named(released_checkpoint, tmp_path):
    checkpoint = copy.copy(released_checkpoint)
    checkpoint["encoder"] = {**released_checkpoint["encoder"], "net.final_linear.weight": torch.zeros(2, 256, 1, 1)}
    with pytest.raises(CheckpointMismatchError,
                       match=r"wrong shape: encoder\.net\.final_linear\.weight "
                             r"\(expected \(3, 256, 1, 1\), got \(2, 256, 1, 1\)\)"):
        load_torch_checkpoint("segswap", save(checkpoint, tmp_path))


def test_layer4_in_the_backbone_is_unexpected(released_checkpoint, tmp_path):
    checkpoint = copy.copy(released_checkpoint)
    checkpoint["backbone"] = {**released_checkpoint["backbone"], "7.0.conv1.weight": torch.zeros(512, 1024, 1, 1)}
    with pytest.raises(CheckpointMismatchError, match=r"unexpected: backbone\.7\.0\.conv1\.weight"):
        load_torch_checkpoint("segswap", save(checkpoint, tmp_path))
