"""PyTorch port of the RANSAC-Flow fine network and its inference recipes, as the official code
runs them.

Reference for the parity tests of ``artdup_jax.ransac_flow``; never imported by the library.
Modules reproduce the released state_dict keys (§2.8): ``FeatureExtractor`` (93 entries, ``maxpool.1.filt``,
``layerK.0.downsample.{0: blur, 1: 1x1 conv, 2: BN}``), ``CorrNeigh`` (none), ``NetFlowCoarse`` and
``NetMatchability`` (19 each). Layout NCHW; grids ``(B, H, W, 2)``, x first, normalised, align_corners=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL_SIZE = 7


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


class BlurPool(nn.Module):
    """Fixed depthwise 3x3 binomial blur, reflect pad 1, stride 2; the filter is the buffer ``filt``."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                BlurPool(in_ch), nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class FeatureExtractor(nn.Module):
    """``netFeatCoarse``: anti-aliased ResNet-18-like trunk cut after layer3 (§2.2). (B,3,H,W) -> (B,256,h,w)."""

    def __init__(self):
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Sequential(nn.MaxPool2d(2, stride=1), BlurPool(64))
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        _init_convs(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class CorrNeigh(nn.Module):
    """``netCorr``: ``corr[:, 7i + j, r, c] = <x[:, :, r, c], y_pad[:, :, r + i, c + j]>`` (dy-major), §2.3."""

    def __init__(self, kernel_size: int = KERNEL_SIZE):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x, y):
        radius = self.kernel_size // 2
        _, _, height, width = x.shape
        padded = F.pad(y, (radius, radius, radius, radius))
        return torch.stack(
            [
                (x * padded[:, :, i : i + height, j : j + width]).sum(1)
                for i in range(self.kernel_size)
                for j in range(self.kernel_size)
            ],
            dim=1,
        )


class _DecoderTrunk(nn.Module):
    def __init__(self, kernel_size: int, out_ch: int):
        super().__init__()
        self.conv1 = _conv3x3(kernel_size * kernel_size, 512)
        self.bn1 = nn.BatchNorm2d(512)
        self.conv2 = _conv3x3(512, 256)
        self.bn2 = nn.BatchNorm2d(256)
        self.conv3 = _conv3x3(256, 128)
        self.bn3 = nn.BatchNorm2d(128)
        self.conv4 = _conv3x3(128, out_ch)
        self.relu = nn.ReLU(inplace=True)
        _init_convs(self)

    def logits(self, corr):
        x = self.relu(self.bn1(self.conv1(corr)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.conv4(x)


class NetFlowCoarse(_DecoderTrunk):
    """``netFlowCoarse``: (B,49,h,w) -> (B,2,h,w) residual, x = 2/w Σ p·dx, y = 2/h Σ p·dy (§2.4)."""

    def __init__(self, kernel_size: int = KERNEL_SIZE):
        super().__init__(kernel_size, kernel_size * kernel_size)
        radius = kernel_size // 2
        k = torch.arange(kernel_size * kernel_size)
        # Not part of the state_dict (the released one has 19 entries).
        self.register_buffer("dx", (k % kernel_size - radius).float().view(1, -1, 1, 1), persistent=False)
        self.register_buffer("dy", (k // kernel_size - radius).float().view(1, -1, 1, 1), persistent=False)

    def forward(self, corr):
        _, _, height, width = corr.shape
        p = F.softmax(self.logits(corr), dim=1)
        return torch.cat([(p * self.dx).sum(1, keepdim=True) * (2.0 / width),
                          (p * self.dy).sum(1, keepdim=True) * (2.0 / height)], dim=1)


class NetMatchability(_DecoderTrunk):
    """``netMatch``: (B,49,h,w) -> (B,1,h,w) in (0, 1) (§2.5)."""

    def __init__(self, kernel_size: int = KERNEL_SIZE):
        super().__init__(kernel_size, 1)
        nn.init.normal_(self.conv4.weight, 0.0, 1e-4)

    def forward(self, corr):
        return torch.sigmoid(self.logits(corr))


def _init_convs(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FineNetworkTorch(nn.Module):
    """The four released networks under their checkpoint names."""

    def __init__(self):
        super().__init__()
        self.netFeatCoarse = FeatureExtractor()
        self.netCorr = CorrNeigh()
        self.netFlowCoarse = NetFlowCoarse()
        self.netMatch = NetMatchability()

    def released_checkpoint(self) -> dict:
        """The structure of the released ``.pth``: ``{name: state_dict}`` for the four networks."""
        return {name: getattr(self, name).state_dict()
                for name in ("netFeatCoarse", "netCorr", "netFlowCoarse", "netMatch")}

    def load_released_checkpoint(self, checkpoint: dict) -> None:
        for name, state_dict in checkpoint.items():
            getattr(self, name).load_state_dict(state_dict, strict=True)

    def features(self, images):
        return F.normalize(self.netFeatCoarse(images), p=2, dim=1, eps=1e-12)


def identity_grid(height: int, width: int, dtype=torch.float32):
    """AC identity grid ``(1, H, W, 2)``, x first (evenly spaced from -1 to 1 inclusive)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, dtype=dtype),
                            torch.linspace(-1, 1, width, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=-1)[None]


def homography_grid(homography, height: int, width: int):
    """kornia-0.1.4 warp grid: ``(3,3)`` or ``(B,3,3)`` applied to the AC grid, plain division -> (B,H,W,2)."""
    homography = homography.reshape(-1, 3, 3)
    g = identity_grid(height, width, homography.dtype).reshape(1, -1, 2)
    points = torch.cat([g, torch.ones_like(g[..., :1])], dim=-1)  # (1, HW, 3)
    mapped = (homography[:, None, :, :] * points[:, :, None, :]).sum(-1)  # (B, HW, 3), no matmul
    return (mapped[..., :2] / mapped[..., 2:]).reshape(-1, height, width, 2)


@torch.no_grad()
def fine_flow(net: FineNetworkTorch, source, target) -> dict:
    """Training-time recipe on a coarse-aligned pair (NCHW in [0,1]): residual, m_TS, AC-upsampled grid."""
    net.eval()
    _, _, height, width = target.shape
    f_target, f_source = net.features(target), net.features(source)
    corr = net.netCorr(f_target, f_source)
    residual = net.netFlowCoarse(corr)
    upsampled = F.interpolate(residual, size=(height, width), mode="bilinear", align_corners=True)
    grid = torch.clamp(identity_grid(height, width) + upsampled.permute(0, 2, 3, 1), -1, 1)
    return {"residual": residual, "matchability": net.netMatch(corr), "grid": grid}


@torch.no_grad()
def refine(net: FineNetworkTorch, source, target, homography) -> dict:
    """Evaluation-script recipe (§2.7): returns ``grid`` (B,H,W,2) and ``matchability`` (B,H,W)."""
    net.eval()
    batch, _, height, width = target.shape
    coarse_grid = homography_grid(homography, height, width).expand(batch, -1, -1, -1)
    coarse_source = F.grid_sample(source, coarse_grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    f_target, f_source = net.features(target), net.features(coarse_source)
    corr_ts = net.netCorr(f_target, f_source)
    corr_st = net.netCorr(f_source, f_target)
    residual = net.netFlowCoarse(corr_ts)
    match_ts, match_st = net.netMatch(corr_ts), net.netMatch(corr_st)

    def upsample(x):  # HP: F.interpolate's default align_corners=False
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)

    residual_grid = torch.clamp(identity_grid(height, width) + upsample(residual).permute(0, 2, 3, 1), -1, 1)
    final = F.grid_sample(coarse_grid.permute(0, 3, 1, 2), residual_grid, mode="bilinear",
                          padding_mode="zeros", align_corners=True).permute(0, 2, 3, 1)
    backward = F.grid_sample(upsample(match_st), residual_grid, mode="bilinear",
                             padding_mode="zeros", align_corners=True)
    inside = (final.abs() <= 1).all(dim=-1).float()
    matchability = upsample(match_ts)[:, 0] * backward[:, 0] * inside
    return {"grid": final, "matchability": matchability}
