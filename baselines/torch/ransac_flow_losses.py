"""PyTorch port of RANSAC-Flow's training losses as the official code computes them (NCHW).

Parity reference for ``artdup_jax.ransac_flow.losses``; never imported by the library.
"""

import math

import torch
import torch.nn.functional as F


def _gaussian(size=11, sigma=1.5):
    g = torch.tensor([math.exp(-((x - size // 2) ** 2) / (2 * sigma**2)) for x in range(size)])
    g = g / g.sum()
    return (g[:, None] @ g[None, :]).float()


def ssim_loss(img1, img2, match):
    """img (B,3,H,W), match (B,1,H,W) → scalar, official weighting."""
    channels = img1.size(1)
    window = _gaussian().expand(channels, 1, 11, 11).contiguous()
    mu1 = F.conv2d(img1, window, padding=5, groups=channels)
    mu2 = F.conv2d(img2, window, padding=5, groups=channels)
    mu1_sq, mu2_sq, mu12 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    s1 = F.conv2d(img1 * img1, window, padding=5, groups=channels) - mu1_sq
    s2 = F.conv2d(img2 * img2, window, padding=5, groups=channels) - mu2_sq
    s12 = F.conv2d(img1 * img2, window, padding=5, groups=channels) - mu12
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    box = torch.ones(1, 1, 11, 11) / 121.0
    weight = F.conv2d(match.detach(), box, padding=5) + 1e-7
    weight = (weight > 0.5).float() + 1e-7
    return torch.sum((1 - ssim) * weight) / (weight.sum() * 3)


def cycle_loss(cycle_grid, identity, weight):
    """grids (B,H,W,2) as the official code keeps them, weight (B,1,H,W)."""
    error = (torch.abs(cycle_grid[..., 0] - identity[..., 0]) + torch.abs(cycle_grid[..., 1] - identity[..., 1])) / 2
    return torch.sum(error.unsqueeze(1) * weight) / (torch.sum(weight) + 0.001)


def matchability_loss(cycle_match, margin):
    return torch.sum(torch.abs(1 - cycle_match) * margin) / (torch.sum(margin) + 0.001)


def gradient_loss(residual, cycle_match, margin):
    """residual (B,2,H,W); cycle_match, margin (B,1,H,W)."""
    diff = residual[:, :, 1:, 1:] - residual[:, :, :-1, :-1]
    grad = torch.sqrt(torch.sum(diff**2, dim=1, keepdim=True))
    weight = ((1 - cycle_match) * margin)[:, :, :-1, :-1]
    return torch.sum(grad * weight) / (torch.sum(weight) + 0.001)
