"""PyTorch port of one ArtMiner feature-learning step, written from the spec.

The throughput baseline of ``artdup_jax.artminer.losses``' loss on mined pairs; never imported by the
library. As the release trains: for each of the ``B`` kept pairs, each image runs alone through the network
(``baselines.torch.artminer.ArtMinerNet``) in **train mode at batch size 1**, at its own size, so BatchNorm
normalises with the image's own statistics and updates the running ones at every forward pass. For each pair
and each corner ``j`` of the 12x12 training region (top-left ``position - 5``, corners at offsets 0 and 11):

* ``s_pos``: max cosine between image 1's corner cell and the 3x3 neighbourhood (clipped) of image 2's;
* ``s_neg``: the larger of the two directions' mean top-10 cosine of a corner cell against every cell of the
  other image;
* ``l = max(0, s_neg - (1 - lambda)) + max(0, lambda - s_pos)``, lambda = 0.8.

The loss is the mean of the ``4 B`` terms; ``loss.backward()`` and ``Adam.step()`` on every parameter.

Shapes: images ``(1, 3, H, W)`` ImageNet-normalised (``H = 16 rows - 1``); positions ``(B, 2, 2)`` int, each
image's 2x2 block top-left ``(row, col)`` cell; cells per image ``(rows, cols)``.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-7
CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))  # in units of (training_cells - 1)


def unit_cells(feature_map: torch.Tensor) -> torch.Tensor:
    """``(D, R, C)`` -> per-cell ``x / (||x|| + 1e-7)``."""
    return feature_map / (feature_map.norm(dim=0, keepdim=True) + EPS)


def pair_terms(map_1: torch.Tensor, map_2: torch.Tensor, position_1, position_2, *, training_cells: int = 12,
               threshold: float = 0.8, negatives_top_k: int = 10) -> dict[str, torch.Tensor]:
    """The 4 loss terms of one pair; maps ``(D, R, C)`` raw features. Returns ``{"loss", "positive",
    "negative"}``, each ``(4,)``."""
    offset, last = (training_cells - 2) // 2, training_cells - 1
    unit_1, unit_2 = unit_cells(map_1), unit_cells(map_2)
    losses, positives, negatives = [], [], []
    for dr, dc in CORNERS:
        r1, c1 = position_1[0] - offset + dr * last, position_1[1] - offset + dc * last
        r2, c2 = position_2[0] - offset + dr * last, position_2[1] - offset + dc * last
        corner_1, corner_2 = unit_1[:, r1, c1], unit_2[:, r2, c2]  # (D,)
        near = unit_2[:, max(r2 - 1, 0):r2 + 2, max(c2 - 1, 0):c2 + 2]
        positive = torch.einsum("d,dhw->hw", corner_1, near).max()
        to_2 = torch.einsum("d,dhw->hw", corner_1, unit_2).flatten()
        to_1 = torch.einsum("d,dhw->hw", corner_2, unit_1).flatten()
        negative = torch.maximum(to_2.topk(negatives_top_k).values.mean(), to_1.topk(negatives_top_k).values.mean())
        losses.append(torch.relu(negative - (1 - threshold)) + torch.relu(threshold - positive))
        positives.append(positive)
        negatives.append(negative)
    return {"loss": torch.stack(losses), "positive": torch.stack(positives), "negative": torch.stack(negatives)}


def training_losses(net: nn.Module, images: list[tuple[torch.Tensor, torch.Tensor]], positions, **options):
    """Mean hinge loss over the pairs; ``images[b] = (image_1, image_2)`` each ``(1, 3, H, W)``;
    ``positions[b] = ((row_1, col_1), (row_2, col_2))``. Returns ``(loss, {"positive", "negative"})``."""
    terms = []
    for (image_1, image_2), (position_1, position_2) in zip(images, positions):
        map_1, map_2 = net(image_1)[0], net(image_2)[0]  # one train-mode forward per image, batch 1
        terms.append(pair_terms(map_1, map_2, position_1, position_2, **options))
    loss = torch.cat([t["loss"] for t in terms]).mean()
    return loss, {"positive": torch.cat([t["positive"] for t in terms]).mean(),
                  "negative": torch.cat([t["negative"] for t in terms]).mean()}


def training_step(net: nn.Module, optimiser: torch.optim.Optimizer, images, positions, **options) -> dict:
    """Train mode, losses, backward, global gradient norm, Adam step (taken even when every hinge is 0, as
    the JAX harness does; the release would skip it). Returns detached ``{"loss", "positive", "negative",
    "grad_norm"}``."""
    net.train()
    optimiser.zero_grad(set_to_none=True)
    loss, parts = training_losses(net, images, positions, **options)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    grad_norm = torch.sqrt(sum(torch.sum(g.square()) for g in grads))
    optimiser.step()
    return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), **{k: v.detach() for k, v in parts.items()}}
