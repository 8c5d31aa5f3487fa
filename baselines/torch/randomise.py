"""Random BatchNorm parameters for parity tests and benchmarks: eval-mode BN that is not a near-identity."""

from __future__ import annotations

import torch
from torch import nn


def randomise_batchnorm(model: nn.Module, seed: int | torch.Generator) -> nn.Module:
    """In place, every ``BatchNorm2d``: weight U(0.5, 1.5), bias N(0, 0.1²), running mean N(0, 0.1²), running
    variance U(0.5, 2.0), ``num_batches_tracked`` 1234 (a converter must ignore it). Returns ``model``.

    ``seed``: an int, or a ``torch.Generator`` to keep drawing from afterwards (e.g. for other layer types).
    """
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                module.num_batches_tracked.fill_(1234)
    return model
