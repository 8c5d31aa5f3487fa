"""PyTorch port of the naoto0804 AdaIN networks, written from the layer list of the
official ``net.py`` (reference for ``artdup_jax.segswap.style``'s parity test; never imported by the library).

``vgg()`` is the whole 53-module "normalised VGG-19" Sequential (so its state dict has the
``vgg_normalised.pth`` keys); ``encoder(vgg)`` is its first 31 modules (up to relu4_1). ``decoder()`` is the
29-module mirrored Sequential (``decoder.pth`` keys). Layout NCHW, images in [0, 1], no normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

VARIANCE_EPS = 1e-5

# Output channels of the 3×3 convs per VGG stage, relu1_1 … relu5_4; a max pool ends stages 1-4.
_VGG_STAGES = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
# The decoder: (output channels, nearest ×2 upsampling after this conv's ReLU).
_DECODER_CONVS = ((256, True), (256, False), (256, False), (256, False), (128, True), (128, False), (64, True),
                  (64, False), (3, False))
ENCODER_MODULES = 31  # up to and including relu4_1


def vgg() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    channels = 3
    for stage, widths in enumerate(_VGG_STAGES):
        for width in widths:
            layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(channels, width, (3, 3)), nn.ReLU()]
            channels = width
        if stage < len(_VGG_STAGES) - 1:
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
    return nn.Sequential(*layers)


def encoder(full_vgg: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*list(full_vgg.children())[:ENCODER_MODULES])


def decoder() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 512
    for index, (width, upsample_after) in enumerate(_DECODER_CONVS):
        layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(channels, width, (3, 3))]
        if index < len(_DECODER_CONVS) - 1:
            layers.append(nn.ReLU())
        if upsample_after:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        channels = width
    return nn.Sequential(*layers)


def mean_std(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, 1, 1) mean and sqrt(unbiased variance + eps) over each channel's spatial positions."""
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat.mean(dim=2).reshape(n, c, 1, 1), (flat.var(dim=2) + VARIANCE_EPS).sqrt().reshape(n, c, 1, 1)


def adaptive_instance_normalization(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    content_mean, content_std = mean_std(content)
    style_mean, style_std = mean_std(style)
    return (content - content_mean) / content_std * style_std + style_mean


@torch.no_grad()
def style_transfer(vgg_encoder: nn.Module, decoder_net: nn.Module, content: torch.Tensor, style: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """As the official ``test.py``: encode both, AdaIN, mix with α, decode (not clamped)."""
    content_features = vgg_encoder(content)
    style_features = vgg_encoder(style)
    features = alpha * adaptive_instance_normalization(content_features, style_features) \
        + (1 - alpha) * content_features
    return decoder_net(features)
