"""train=True: BatchNorm uses batch statistics and updates batch_stats like torch's train mode."""

import functools

import jax
import numpy as np
import torch
import torchvision

from artdup_jax.convert import build_model, convert_state_dict
from artdup_jax.checkpoints.torchvision import torchvision_module
from baselines.torch.randomise import randomise_batchnorm
from tests.nn.torch_reference import torchvision_trunk


def numpy_state_dict(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_train_mode_matches_torch_batch_statistics():
    torch.manual_seed(0)
    torch_model = randomise_batchnorm(torchvision.models.resnet18(), seed=3)
    before = convert_state_dict("resnet18", numpy_state_dict(torch_model))
    x = np.random.default_rng(4).normal(size=(4, 3, 64, 64)).astype(np.float32)

    samples_per_bn = {}  # torch module name -> n = B*H*W, the count behind its unbiased variance

    def record_sample_count(name):
        def hook(module, inputs, output):
            samples_per_bn[name] = inputs[0][:, 0].numel()

        return hook

    for name, module in torch_model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_hook(record_sample_count(name))
    torch_model.train()
    with torch.no_grad():
        expected = torchvision_trunk(torch_model, torch.from_numpy(x), "layer3").numpy().transpose(0, 2, 3, 1)
    after_torch = convert_state_dict("resnet18", numpy_state_dict(torch_model))["batch_stats"]

    out, updates = jax.jit(functools.partial(build_model("resnet18").apply, train=True, mutable=["batch_stats"]))(
        before, x.transpose(0, 2, 3, 1)
    )
    out = np.asarray(out)
    error = np.abs(out - expected).max()
    print(f"\nresnet18 layer3 train mode: max abs err {error:.3g}, relative {error / np.abs(expected).max():.3g}")
    assert error <= 1e-4 * np.abs(expected).max()

    flat_flax = dict(jax.tree_util.tree_flatten_with_path(updates["batch_stats"])[0])
    assert len(flat_flax) == len(samples_per_bn) * 2  # every BN up to layer3 ran and was updated
    for path, new in flat_flax.items():
        names = tuple(k.key for k in path)
        old = before["batch_stats"]
        ref = after_torch
        for name in names:
            old, ref = old[name], ref[name]
        new = np.asarray(new)
        assert not np.allclose(new, old)
        if names[-1] == "mean":
            np.testing.assert_allclose(new, ref, rtol=1e-5, atol=1e-6)
        else:
            # Flax feeds the biased batch variance into the running average, torch the unbiased one.
            n = samples_per_bn[torchvision_module(names[:-1])]
            np.testing.assert_allclose(0.9 * old + (new - 0.9 * old) * n / (n - 1), ref, rtol=1e-5, atol=1e-6)
