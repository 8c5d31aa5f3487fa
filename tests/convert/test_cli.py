"""``python -m artdup_jax.convert`` and the Orbax round trip."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from artdup_jax.convert import load_torch_checkpoint, load_variables, save_variables


def assert_same_variables(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_cli_writes_what_load_torch_checkpoint_returns(resnet18_pth, tmp_path):
    _, pth = resnet18_pth
    result = subprocess.run(
        [sys.executable, "-m", "artdup_jax.convert", "resnet18", str(pth), str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    # Up to layer3: 15 convs + 15 BNs (scale, bias, mean, var) = 75 tensors.
    assert "resnet18: 75 tensors, 2,782,784 parameters" in result.stdout
    assert_same_variables(load_variables(tmp_path / "out"), load_torch_checkpoint("resnet18", pth))


def test_cli_reports_mismatch_and_fails(resnet18_pth, tmp_path):
    _, pth = resnet18_pth
    result = subprocess.run(
        [sys.executable, "-m", "artdup_jax.convert", "resnet50", str(pth), str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "missing: layer1.0.conv3.weight" in result.stderr
    assert not (tmp_path / "out").exists()


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    first = {"params": {"w": np.zeros(2, np.float32)}}
    second = {"params": {"w": np.ones(2, np.float32)}}
    save_variables(first, tmp_path / "ckpt")
    with pytest.raises(FileExistsError):
        save_variables(second, tmp_path / "ckpt")
    assert_same_variables(load_variables(tmp_path / "ckpt"), first)
    save_variables(second, tmp_path / "ckpt", overwrite=True)
    assert_same_variables(load_variables(tmp_path / "ckpt"), second)
