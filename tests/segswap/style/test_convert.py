"""The ``adain`` converter family: two files, the official key layout, errors that name the offending keys."""

import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from artdup_jax.convert import CheckpointMismatchError, load_torch_checkpoint, load_variables


def save(state_dict, path):
    torch.save(state_dict, path)
    return path


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_converted_layout_has_ten_encoder_and_nine_decoder_convs(converted, torch_networks):
    params = converted["params"]
    assert set(converted) == {"params"}
    assert sorted(params["encoder"]) == sorted(["conv0", "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                                "conv3_2", "conv3_3", "conv3_4", "conv4_1"])
    assert len(params["decoder"]) == 9
    np.testing.assert_array_equal(params["encoder"]["conv1_1"]["kernel"],
                                  torch_networks[0].state_dict()["2.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["decoder"]["conv4_1"]["bias"],
                                  torch_networks[1].state_dict()["1.bias"].numpy())


def test_wrapped_decoder_loads_the_same(official_files, converted, tmp_path):
    vgg_path, decoder_path = official_files
    decoder = torch.load(decoder_path)
    wrapped = save({"state_dict": {f"module.{k}": v for k, v in decoder.items()}, "iter": 160_000},
                   tmp_path / "Adain_decoder_iter160K.pth.tar")
    assert_same(load_torch_checkpoint("adain", [vgg_path, wrapped]), converted)
    nested = save({"decoder": decoder}, tmp_path / "nested.pth")
    assert_same(load_torch_checkpoint("adain", [vgg_path, nested]), converted)


def test_missing_decoder_conv_is_named(official_files, tmp_path):
    vgg_path, decoder_path = official_files
    decoder = {k: v for k, v in torch.load(decoder_path).items() if k != "18.weight"}
    with pytest.raises(CheckpointMismatchError, match=r"missing: decoder\.18\.weight \(expected shape "
                                                      r"\(128, 128, 3, 3\)\)"):
        load_torch_checkpoint("adain", [vgg_path, save(decoder, tmp_path / "decoder.pth")])


def test_unexpected_and_misshaped_keys_are_named(official_files, tmp_path):
    vgg_path, decoder_path = official_files
    vgg = torch.load(vgg_path)
    vgg["53.weight"] = torch.zeros(3)
    vgg["29.bias"] = torch.zeros(256)
    with pytest.raises(CheckpointMismatchError) as error:
        load_torch_checkpoint("adain", [save(vgg, tmp_path / "vgg.pth"), decoder_path])
    assert "unexpected: vgg.53.weight (shape (3,))" in error.value.problems
    assert "wrong shape: vgg.29.bias (expected (512,), got (256,))" in error.value.problems


def test_files_swapped_are_refused(official_files):
    vgg_path, decoder_path = official_files
    with pytest.raises(CheckpointMismatchError, match=r"missing: vgg\.0\.weight"):
        load_torch_checkpoint("adain", [decoder_path, vgg_path])


def test_one_file_is_refused(official_files):
    with pytest.raises(ValueError, match=r"takes 2 checkpoint file\(s\) \(vgg, decoder\), got 1"):
        load_torch_checkpoint("adain", official_files[0])


def test_cli_converts_the_two_files(official_files, converted, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "artdup_jax.convert", "adain", *map(str, official_files), str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "adain: 38 tensors" in result.stdout
    assert_same(load_variables(tmp_path / "out"), converted)
