"""PyTorch port of one SegSwap stage-1 training iteration, written from the spec.

The throughput baseline of ``artdup_jax.segswap.task.loss_fn``; never imported by the library. It runs on the
model ports of ``baselines.torch.segswap`` (NCHW, ``key_padding_mask`` True = padded key) and follows the
official order of work:

1. frozen backbone on the A and B images under ``no_grad``, L2-normalised;
2. one coin for the whole batch swaps (A, B) -> (X, Y), with masks, padding masks and flows;
3. positive forward on (X, Y) with B's padding mask; 4. a second forward on the in-batch negatives
   (A_i, B_{i+s}), s = 1..3, without padding;
5. transported masks ``clamp(S(O_Y[mask], O_X[xy]))`` and ``clamp(S(O_X[mask], O_Y[xy]))`` (``grid_sample``,
   ``align_corners=False``, zero padding);
6. one ``binary_cross_entropy`` mean over every supervised map, negatives with target 0;
7. L1 correspondence loss on the cells where a GT mask equals its per-sample maximum, over 2 |K|;
8. ``L = BCE + eta L_corr``.

Then ``loss.backward()`` and ``Adam.step()`` on the transformer only (``training_step``).

Shapes (NCHW, cells h x w = image / 16): images ``(B, 3, H, W)`` in [0, 1]; masks ``(B, h, w)``; flows
``(B, h, w, 2)`` x first, normalised [0, 1] over the other image; ``key_mask_b`` ``(B, h, w)`` bool, True =
usable key (the JAX convention; inverted here for PyTorch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.torch.segswap import PROBABILITY_EPS, features

CORRESPONDENCE_WEIGHT = 8.0
NEGATIVES_PER_POSITIVE = 3


def transported_mask(output_source: torch.Tensor, output_target: torch.Tensor) -> torch.Tensor:
    """``clamp(S(O_t[mask], O_s[xy]))``: ``(B, 3, hs, ws)``, ``(B, 3, ht, wt)`` -> ``(B, hs, ws)``."""
    grid = 2 * output_source[:, :2].permute(0, 2, 3, 1) - 1
    sampled = F.grid_sample(output_target[:, 2:3], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[:, 0].clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)


def correspondence_loss(outputs, flows, masks) -> torch.Tensor:
    """Σ_K (|x̂ - x| + |ŷ - y|) / (2 |K|) over the peak cells K of every (output, flow, mask) given."""
    total, count = 0.0, 0.0
    for output, flow, mask in zip(outputs, flows, masks):
        peak = mask.amax(dim=(1, 2), keepdim=True)
        cells = (mask >= peak) & (peak > 0)  # (B, h, w)
        error = (output[:, :2].permute(0, 2, 3, 1) - flow).abs().sum(-1)
        total = total + (error * cells).sum()
        count = count + cells.sum()
    return total / torch.clamp(2.0 * count, min=1.0)


def training_losses(backbone: nn.Module, encoder: nn.Module, batch: dict, swap: bool, *,
                    correspondence_weight: float = CORRESPONDENCE_WEIGHT,
                    negatives_per_positive: int = NEGATIVES_PER_POSITIVE) -> tuple[torch.Tensor, dict]:
    """Steps 1-8 of the module docstring; ``batch`` holds ``image_a``, ``image_b``, ``mask_a``, ``mask_b``,
    ``flow_a``, ``flow_b``, ``key_mask_b``. Returns ``(loss, {"bce", "correspondence"})``."""
    if batch["image_a"].shape[0] <= negatives_per_positive:
        raise ValueError(f"in-batch negatives need more than {negatives_per_positive} pairs per batch")
    features_a = features(backbone, batch["image_a"])
    features_b = features(backbone, batch["image_b"])
    pad_b = ~batch["key_mask_b"].flatten(1)  # (B, h w), True = padded
    pad_a = torch.zeros_like(pad_b)

    def ordered(a, b):
        return (b, a) if swap else (a, b)

    features_x, features_y = ordered(features_a, features_b)
    pad_x, pad_y = ordered(pad_a, pad_b)
    mask_x, mask_y = ordered(batch["mask_a"], batch["mask_b"])
    flow_x, flow_y = ordered(batch["flow_a"], batch["flow_b"])
    out_x, out_y = encoder(features_x, features_y, pad_x, pad_y)

    shifts = range(1, negatives_per_positive + 1)
    negative_source = torch.cat([features_a] * len(shifts))
    negative_target = torch.cat([torch.roll(features_b, -s, dims=0) for s in shifts])
    negative_x, negative_y = encoder(negative_source, negative_target)

    predictions = [out_x[:, 2], out_y[:, 2], transported_mask(out_x, out_y), transported_mask(out_y, out_x),
                   negative_x[:, 2], negative_y[:, 2]]
    targets = [mask_x, mask_y, mask_x, mask_y, torch.zeros_like(negative_x[:, 2]),
               torch.zeros_like(negative_y[:, 2])]
    bce = F.binary_cross_entropy(torch.cat([p.flatten() for p in predictions]),
                                 torch.cat([t.flatten() for t in targets]))
    correspondence = correspondence_loss((out_x, out_y), (flow_x, flow_y), (mask_x, mask_y))
    return bce + correspondence_weight * correspondence, {"bce": bce, "correspondence": correspondence}


def training_step(backbone: nn.Module, encoder: nn.Module, optimiser: torch.optim.Optimizer, batch: dict,
                  swap: bool, **loss_options) -> dict:
    """One iteration: losses, backward, global gradient norm of the transformer, Adam step.

    Returns detached ``{"loss", "bce", "correspondence", "grad_norm"}``.
    """
    optimiser.zero_grad(set_to_none=True)
    loss, parts = training_losses(backbone, encoder, batch, swap, **loss_options)
    loss.backward()
    grads = [p.grad for p in encoder.parameters() if p.grad is not None]
    grad_norm = torch.sqrt(sum(torch.sum(g.square()) for g in grads))
    optimiser.step()
    return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), **{k: v.detach() for k, v in parts.items()}}
