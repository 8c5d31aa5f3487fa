"""Shared network primitives: torchvision-layout ResNet trunks, blur-pool, input normalisation."""

from artdup_jax.nn.blurpool import AntiAliasedBasicBlock, AntiAliasedTrunk, BlurPool
from artdup_jax.nn.normalise import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalise
from artdup_jax.nn.resnet import (
    STAGES,
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet18,
    resnet34,
    resnet50,
)

__all__ = [
    "AntiAliasedBasicBlock",
    "AntiAliasedTrunk",
    "BasicBlock",
    "BlurPool",
    "Bottleneck",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ResNet",
    "STAGES",
    "imagenet_normalise",
    "resnet18",
    "resnet34",
    "resnet50",
]
