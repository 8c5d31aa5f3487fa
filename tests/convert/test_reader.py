"""Reading .pth files, dtypes, and importing the library without torch."""

import subprocess
import sys

import numpy as np
import torch

from artdup_jax.convert import convert_state_dict, read_state_dict
from tests.convert.conftest import numpy_state_dict


def test_library_imports_without_torch():
    code = (  # an import hook that refuses torch, as on a machine without it (other packages probe for it)
        "import sys, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import artdup_jax.nn, artdup_jax.convert\n"
        "assert 'moco_resnet50' in artdup_jax.convert.FAMILIES\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_nested_dicts_are_flattened_and_non_tensors_dropped(tmp_path):
    checkpoint = {"netFeatCoarse": {"conv1.weight": torch.ones(2, 3)}, "netCorr": {}, "epoch": 3}
    torch.save(checkpoint, tmp_path / "nested.pth")
    state_dict = read_state_dict(tmp_path / "nested.pth")
    assert list(state_dict) == ["netFeatCoarse.conv1.weight"]
    np.testing.assert_array_equal(state_dict["netFeatCoarse.conv1.weight"], np.ones((2, 3), np.float32))


def test_bfloat16_tensors_are_read_as_float32(tmp_path):
    torch.save({"w": torch.full((2,), 1.5, dtype=torch.bfloat16)}, tmp_path / "bf16.pth")
    assert read_state_dict(tmp_path / "bf16.pth")["w"].dtype == np.float32


def test_half_precision_weights_are_cast_to_the_model_dtype(resnet18_pth):
    state_dict = numpy_state_dict(resnet18_pth[0])
    half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in state_dict.items()}
    variables = convert_state_dict("resnet18", half)
    assert variables["params"]["conv1"]["kernel"].dtype == np.float32
    assert variables["batch_stats"]["bn1"]["var"].dtype == np.float32
