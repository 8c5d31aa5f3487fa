"""torchvision-layout ResNet trunks (v1.5) in Flax Linen, cut after a chosen stage.

Layout conventions:
  * Input and output are NHWC. The trunk does no input normalisation; see ``normalise.imagenet_normalise``.
  * Bottlenecks put the stride on the 3x3 conv (torchvision "v1.5"); the projection shortcut is a 1x1
    conv (with the block's stride) + BN, created when the stride or the channel count changes.
  * Every padding is explicit and symmetric, as in PyTorch. ``"SAME"`` would pad (0, 1) for a stride-2
    conv on even sizes and shift the whole feature map by one pixel.
  * Submodule names mirror torchvision's state_dict keys with ``.`` turned into ``_``
    (``layer2.0.downsample.1`` -> ``layer2_0/downsample_bn``), so ``artdup_jax.convert`` maps them by rule.

BatchNorm: eps 1e-5, Flax momentum 0.9 (= PyTorch momentum 0.1). ``train=False`` normalises with the
running averages in ``batch_stats``; ``train=True`` uses batch statistics and must be applied with
``mutable=["batch_stats"]``. One known difference from PyTorch in train mode: Flax updates the running
variance with the biased batch variance, PyTorch with the unbiased one (factor n/(n-1), n = B*H*W).

On GPU/TPU, float32 convs may run at reduced internal precision by default; wrap parity checks in
``jax.default_matmul_precision("highest")``.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from artdup_jax.nn.conv import conv_general_dilated
from artdup_jax.nn.pooling import max_pool

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")

# torchvision's init: kaiming normal, fan_out, ReLU gain (untruncated).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv(features: int, kernel: int, stride: int = 1, *, name: str, dtype: Any = jnp.float32,
         materialised_backward: bool = False) -> nn.Conv:
    """Bias-free conv with PyTorch's symmetric padding ``kernel // 2``. ``materialised_backward``: gradients
    through ``artdup_jax.nn.conv`` (faster on CPU for networks that are not vmapped over examples)."""
    pad = kernel // 2
    return nn.Conv(
        features,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=conv_kernel_init,
        dtype=dtype,
        name=name,
        conv_general_dilated=conv_general_dilated if materialised_backward else lax.conv_general_dilated,
    )


# For networks that are never vmapped over examples (RANSAC-Flow's trunk and decoders): the backward pass that
# materialises its operands (``artdup_jax.nn.conv``; the stage-3 training step 11-13 % faster on CPU).
conv_materialised_backward = functools.partial(conv, materialised_backward=True)


def batch_norm(train: bool, *, name: str, dtype: Any = jnp.float32) -> nn.BatchNorm:
    # Two-pass variance (use_fast_variance=False) to stay close to PyTorch's batch statistics.
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        use_fast_variance=False,
        dtype=dtype,
        name=name,
    )


class BasicBlock(nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32
    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        shortcut = x
        y = conv(self.features, 3, self.strides, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(y))
        y = conv(self.features, 3, name="conv2", dtype=self.dtype)(y)
        y = batch_norm(train, name="bn2", dtype=self.dtype)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = conv(self.features, 1, self.strides, name="downsample_conv", dtype=self.dtype)(x)
            shortcut = batch_norm(train, name="downsample_bn", dtype=self.dtype)(shortcut)
        return nn.relu(y + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> BN -> ReLU -> 3x3(stride) -> BN -> ReLU -> 1x1 (x4 channels) -> BN, + shortcut, ReLU."""

    features: int  # width of the 3x3 conv; the block outputs 4 * features channels
    strides: int = 1
    dtype: Any = jnp.float32
    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        out_features = self.features * self.expansion
        shortcut = x
        y = conv(self.features, 1, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(y))
        y = conv(self.features, 3, self.strides, name="conv2", dtype=self.dtype)(y)
        y = nn.relu(batch_norm(train, name="bn2", dtype=self.dtype)(y))
        y = conv(out_features, 1, name="conv3", dtype=self.dtype)(y)
        y = batch_norm(train, name="bn3", dtype=self.dtype)(y)
        if self.strides != 1 or x.shape[-1] != out_features:
            shortcut = conv(out_features, 1, self.strides, name="downsample_conv", dtype=self.dtype)(x)
            shortcut = batch_norm(train, name="downsample_bn", dtype=self.dtype)(shortcut)
        return nn.relu(y + shortcut)


def check_stage(last_stage: str) -> str:
    if last_stage not in STAGES:
        raise ValueError(f"last_stage must be one of {STAGES}, got {last_stage!r}")
    return last_stage


class ResNet(nn.Module):
    """ResNet trunk: conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3x3/2 ("stem") -> layer1..layer4.

    ``last_stage`` cuts the network after that stage; there is never an avgpool or fc.

    Input:  (B, H, W, 3), already normalised by the caller.
    Output: (B, ceil(H/s), ceil(W/s), C) with (s, C) = stem (4, 64), layer1 (4, 64·e), layer2 (8, 128·e),
            layer3 (16, 256·e), layer4 (32, 512·e), where e = 1 (BasicBlock) or 4 (Bottleneck).
            Non-negative (every stage ends with a ReLU).
    """

    block_cls: type[BasicBlock] | type[Bottleneck]
    stage_sizes: Sequence[int]
    last_stage: str = "layer3"
    dtype: Any = jnp.float32

    @property
    def out_channels(self) -> int:
        stage = STAGES.index(check_stage(self.last_stage))
        return 64 if stage == 0 else 64 * 2 ** (stage - 1) * self.block_cls.expansion

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        last = STAGES.index(check_stage(self.last_stage))
        x = conv(64, 7, 2, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(x))
        # Pads with -inf, like torch's max_pool2d.
        x = max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
        for stage, num_blocks in enumerate(self.stage_sizes[:last], start=1):
            for index in range(num_blocks):
                x = self.block_cls(
                    features=64 * 2 ** (stage - 1),
                    strides=2 if stage > 1 and index == 0 else 1,
                    dtype=self.dtype,
                    name=f"layer{stage}_{index}",
                )(x, train)
        return x


def resnet18(last_stage: str = "layer3", **kwargs) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), last_stage=check_stage(last_stage), **kwargs)


def resnet34(last_stage: str = "layer3", **kwargs) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), last_stage=check_stage(last_stage), **kwargs)


def resnet50(last_stage: str = "layer3", **kwargs) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), last_stage=check_stage(last_stage), **kwargs)
