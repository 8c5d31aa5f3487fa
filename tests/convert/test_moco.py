"""MoCo-v2 checkpoints: module.encoder_q.* keys, MLP head, momentum encoder and queue around them."""

import argparse

import jax
import numpy as np
import pytest
import torch

from artdup_jax.convert import convert_state_dict, load_torch_checkpoint
from tests.convert.conftest import make_torch_resnet


@pytest.fixture(scope="module")
def resnet50_state_dict():
    return make_torch_resnet("resnet50").state_dict()


def numpy_state_dict_of(state_dict):
    return {k: v.numpy() for k, v in state_dict.items()}


def assert_same_variables(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def moco_v2_checkpoint(state_dict):
    """The layout of facebookresearch/moco's ``checkpoint_XXXX.pth.tar`` (head and queue kept small)."""
    body = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    model = {f"module.encoder_q.{k}": v for k, v in body.items()}
    model |= {f"module.encoder_k.{k}": v.clone() for k, v in body.items()}
    for encoder in ("encoder_q", "encoder_k"):
        model[f"module.{encoder}.fc.0.weight"] = torch.randn(2048, 2048)
        model[f"module.{encoder}.fc.0.bias"] = torch.randn(2048)
        model[f"module.{encoder}.fc.2.weight"] = torch.randn(128, 2048)
        model[f"module.{encoder}.fc.2.bias"] = torch.randn(128)
    model["module.queue"] = torch.randn(128, 16)
    model["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {"epoch": 800, "arch": "resnet50", "state_dict": model, "optimizer": {"param_groups": [{"lr": 0.03}]}}


def test_moco_v2_file_equals_plain_resnet50(resnet50_state_dict, tmp_path):
    torch.save(moco_v2_checkpoint(resnet50_state_dict), tmp_path / "moco.pth.tar")
    moco = load_torch_checkpoint("moco_resnet50", tmp_path / "moco.pth.tar")
    assert_same_variables(moco, convert_state_dict("resnet50", numpy_state_dict_of(resnet50_state_dict)))


def test_ransac_flow_moco_file_loads_as_resnet50(resnet50_state_dict, tmp_path):
    # the release's layout: {"model": {"module.<torchvision key>", ..., "module.fc.* (128-d)"}}, saved with
    # the training args (a Namespace), which torch.load(weights_only=True) refuses; our reader drops them.
    body = {f"module.{k}": v for k, v in resnet50_state_dict.items() if not k.startswith("fc.")}
    body |= {"module.fc.weight": torch.randn(128, 2048), "module.fc.bias": torch.randn(128)}
    torch.save({"model": body, "args": argparse.Namespace(lr=0.03)}, tmp_path / "resnet50_moco.pth")
    variables = load_torch_checkpoint("resnet50", tmp_path / "resnet50_moco.pth")
    assert_same_variables(variables, convert_state_dict("resnet50", numpy_state_dict_of(resnet50_state_dict)))
