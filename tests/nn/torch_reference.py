"""PyTorch references for the parity tests: a torchvision trunk cut and a port of RANSAC-Flow's anti-aliased trunk.

The trunk port reproduces its state_dict key names
(``maxpool.1.filt``, ``layerK.0.downsample.{0: blur, 1: 1x1 conv, 2: BN}``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def torchvision_trunk(model, x: torch.Tensor, last_stage: str) -> torch.Tensor:
    """Forward a torchvision ResNet up to and including ``last_stage``."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        if last_stage == "stem":
            break
        x = getattr(model, stage)(x)
        if stage == last_stage:
            break
    return x


class TorchBlurPool(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        binomial = torch.tensor([1.0, 2.0, 1.0])
        filt = binomial[:, None] * binomial[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class TorchAntiAliasedBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(
                TorchBlurPool(inplanes), nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchAntiAliasedTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.Sequential(nn.MaxPool2d(2, stride=1), TorchBlurPool(64))
        self.layer1 = nn.Sequential(TorchAntiAliasedBlock(64, 64, 1), TorchAntiAliasedBlock(64, 64, 1))
        self.layer2 = nn.Sequential(TorchAntiAliasedBlock(64, 128, 2), TorchAntiAliasedBlock(128, 128, 1))
        self.layer3 = nn.Sequential(TorchAntiAliasedBlock(128, 256, 2), TorchAntiAliasedBlock(256, 256, 1))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))
