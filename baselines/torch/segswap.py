"""PyTorch port of SegSwap (backbone, transformer, official scoring loop), written from the
official code's behaviour.

Reference for the parity tests of ``artdup_jax.segswap`` and the future throughput baseline; never imported
by the library. Modules reproduce the released checkpoint's keys (§2.4):

  backbone  ``nn.Sequential`` of torchvision ResNet-50's conv1, bn1, relu, maxpool, layer1..layer3 (``0.weight``,
            ``4.0.conv1.weight``, ``6.5.bn3.running_var``, ...)
  encoder   ``TransEncoder``: ``net.feat_proj``, ``net.encoder_blocks.{k}.layer{1,2}.{inner,cross}_encoder_layer``
            (``nn.TransformerEncoderLayer``, post-norm), ``net.final_linear``

As in the official code, each layer runs one attention over the concatenated ``[X; Y]`` token sequence
(length Nx + Ny, sequence-first) with a block ``attn_mask`` (I: own image only, C: other image only) and a
``key_padding_mask`` (True = padded, PyTorch's convention). Layout NCHW; outputs ``(B, 3, h, w)`` with
channels (x, y, mask).

The scoring functions reproduce the official evaluation loop (§6): a Python loop over pairs, then over
query cells, one indexing op and one ``.item()`` per cell, dictionary de-duplication by target cell.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROBABILITY_EPS = 1e-7


def resnet50_layer3() -> nn.Sequential:
    """torchvision ResNet-50 (v1.5) truncated after layer3, as the released ``backbone`` Sequential."""
    resnet = torchvision.models.resnet50(weights=None)
    return nn.Sequential(*list(resnet.children())[:7])


class PositionEncodingSine(nn.Module):
    """DETR-style normalised sine encoding: (row | column) channels, interleaved sin/cos. No parameters."""

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        """-> ``(batch, 2 · num_pos_feats, height, width)``."""
        ones = torch.ones(batch, height, width, device=device)
        y_embed = ones.cumsum(1, dtype=torch.float32)
        x_embed = ones.cumsum(2, dtype=torch.float32)
        eps, scale = 1e-6, 2 * math.pi
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _block_mask(nx: int, ny: int, same_image: bool, device) -> torch.Tensor:
    """``(Nx+Ny, Nx+Ny)`` bool attn_mask, True = not allowed. same_image: I layer (own image only); else C."""
    image = torch.cat([torch.zeros(nx, dtype=torch.bool), torch.ones(ny, dtype=torch.bool)]).to(device)
    same = image[:, None] == image[None, :]
    return ~same if same_image else same


def _padding(x_pad, y_pad, batch, nx, ny, device):
    if x_pad is None and y_pad is None:
        return None
    x_pad = torch.zeros(batch, nx, dtype=torch.bool, device=device) if x_pad is None else x_pad
    y_pad = torch.zeros(batch, ny, dtype=torch.bool, device=device) if y_pad is None else y_pad
    return torch.cat([x_pad, y_pad], dim=1)


def _encoder_layer(d_model, nhead, dim_feedforward, dropout) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation="relu")


class EncoderLayerInnerAttention(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, pos_weight):
        super().__init__()
        self.pos_weight = pos_weight
        self.inner_encoder_layer = _encoder_layer(d_model, nhead, dim_feedforward, dropout)

    def forward(self, x, y, x_pad, y_pad, pos_x, pos_y):
        """x ``(Nx, B, d)``, y ``(Ny, B, d)``, pads ``(B, N)`` bool or None, pos ``(N, B, d)``."""
        nx, ny = x.shape[0], y.shape[0]
        tokens = torch.cat([x + self.pos_weight * pos_x, y + self.pos_weight * pos_y], dim=0)
        out = self.inner_encoder_layer(tokens, src_mask=_block_mask(nx, ny, True, x.device),
                                       src_key_padding_mask=_padding(x_pad, y_pad, x.shape[1], nx, ny, x.device))
        return out[:nx], out[nx:]


class EncoderLayerCrossAttention(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, pos_weight):
        super().__init__()
        self.cross_encoder_layer = _encoder_layer(d_model, nhead, dim_feedforward, dropout)

    def forward(self, x, y, x_pad, y_pad, pos_x, pos_y):
        nx, ny = x.shape[0], y.shape[0]
        out = self.cross_encoder_layer(torch.cat([x, y], dim=0), src_mask=_block_mask(nx, ny, False, x.device),
                                       src_key_padding_mask=_padding(x_pad, y_pad, x.shape[1], nx, ny, x.device))
        return out[:nx], out[nx:]


class EncoderLayerEmpty(nn.Module):
    def __init__(self, *args):
        super().__init__()

    def forward(self, x, y, x_pad, y_pad, pos_x, pos_y):
        return x, y


_LAYERS = {"I": EncoderLayerInnerAttention, "C": EncoderLayerCrossAttention, "N": EncoderLayerEmpty}


class EncoderLayerBlock(nn.Module):
    def __init__(self, layer1: nn.Module, layer2: nn.Module):
        super().__init__()
        self.layer1 = layer1
        self.layer2 = layer2

    def forward(self, x, y, x_pad, y_pad, pos_x, pos_y):
        x, y = self.layer1(x, y, x_pad, y_pad, pos_x, pos_y)
        return self.layer2(x, y, x_pad, y_pad, pos_x, pos_y)


class Encoder(nn.Module):
    def __init__(self, feat_dim=1024, d_model=256, nhead=2, dim_feedforward=256, dropout=0.1,
                 layer_types="ICICIN", pos_weight=0.1, feat_weight=1.0):
        super().__init__()
        self.feat_weight = feat_weight
        self.feat_proj = nn.Conv2d(feat_dim, d_model, kernel_size=1)
        self.dropout_feat = nn.Dropout2d(dropout)
        self.pos_encoder = PositionEncodingSine(d_model // 2)
        args = (d_model, nhead, dim_feedforward, dropout, pos_weight)
        self.encoder_blocks = nn.ModuleList([
            EncoderLayerBlock(_LAYERS[layer_types[i]](*args), _LAYERS[layer_types[i + 1]](*args))
            for i in range(0, len(layer_types), 2)
        ])
        self.final_linear = nn.Conv2d(d_model, 3, kernel_size=1)

    def forward(self, x, y, x_pad=None, y_pad=None):
        """x ``(B, 1024, hx, wx)``, y ``(B, 1024, hy, wy)``; pads ``(B, h·w)`` bool, True = padded key."""
        batch, _, hx, wx = x.shape
        _, _, hy, wy = y.shape
        x = self.dropout_feat(self.feat_weight * self.feat_proj(x))
        y = self.dropout_feat(self.feat_weight * self.feat_proj(y))
        pos_x = self.pos_encoder(batch, hx, wx, x.device).flatten(2).permute(2, 0, 1)
        pos_y = self.pos_encoder(batch, hy, wy, y.device).flatten(2).permute(2, 0, 1)
        x = x.flatten(2).permute(2, 0, 1)  # (N, B, d), row-major tokens
        y = y.flatten(2).permute(2, 0, 1)
        for block in self.encoder_blocks:
            x, y = block(x, y, x_pad, y_pad, pos_x, pos_y)
        return self._head(x, hx, wx), self._head(y, hy, wy)

    def _head(self, tokens, height, width):
        maps = tokens.permute(1, 2, 0).reshape(tokens.shape[1], -1, height, width)
        return torch.sigmoid(self.final_linear(maps)).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)


class TransEncoder(nn.Module):
    """Top-level ``encoder`` entry of the checkpoint (keys ``net.*``)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.net = Encoder(**kwargs)

    def forward(self, x, y, x_pad=None, y_pad=None):
        return self.net(x, y, x_pad, y_pad)


def released_checkpoint(backbone: nn.Module, encoder: nn.Module) -> dict:
    """``{"backbone", "encoder", "optimiser"}`` as in ``hard_mining_neg5.pth``; the Adam state holds moments."""
    optimiser = torch.optim.Adam(encoder.parameters(), lr=0.0)
    for parameter in encoder.parameters():
        parameter.grad = torch.randn_like(parameter)
    optimiser.step()  # lr 0: fills exp_avg / exp_avg_sq without changing the weights
    optimiser.zero_grad(set_to_none=True)
    return {"backbone": backbone.state_dict(), "encoder": encoder.state_dict(), "optimiser": optimiser.state_dict()}


def imagenet_normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    return (images - mean) / std


@torch.no_grad()
def features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> L2-normalised ``(B, 1024, H/16, W/16)``."""
    return F.normalize(backbone(imagenet_normalise(images)), dim=1)


@torch.no_grad()
def predict(backbone: nn.Module, encoder: nn.Module, source: torch.Tensor, target: torch.Tensor) -> dict:
    """Eval-mode forward of a pair; same keys as ``artdup_jax.segswap.predict`` but NCHW."""
    features_source, features_target = features(backbone, source), features(backbone, target)
    out_source, out_target = encoder(features_source, features_target)
    return {"source": out_source, "target": out_target,
            "features_source": features_source, "features_target": features_target}


@torch.no_grad()
def official_pair_scores(out_query, out_database, features_query, features_database, prior=None, region=None):
    """The official per-pair, per-cell scoring loop (§4.1, §6).

    Args:
      out_query ``(N, 3, hq, wq)``, out_database ``(N, 3, ht, wt)``: model outputs of N pairs.
      features_query ``(N, C, hq, wq)``, features_database ``(N, C, ht, wt)``: L2-normalised backbone features.
      prior ``(hq, wq)`` float (None: ones); region ``(hq, wq)`` bool (None: all cells).
    Returns:
      list of N Python floats.
    """
    n, _, hq, wq = out_query.shape
    _, _, ht, wt = out_database.shape
    prior = torch.ones(hq, wq) if prior is None else prior
    region = torch.ones(hq, wq, dtype=torch.bool) if region is None else region
    cells = region.nonzero().tolist()
    scores = []
    for i in range(n):
        flow = out_query[i, :2]
        grid = (flow.permute(1, 2, 0) * 2 - 1)[None]
        transported = F.grid_sample(out_database[i, 2][None, None], grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)[0, 0]
        joint = prior * out_query[i, 2] * transported
        best = {}
        for row, col in cells:
            tx = int(torch.round(flow[0, row, col] * (wt - 1)).item())
            ty = int(torch.round(flow[1, row, col] * (ht - 1)).item())
            cosine = torch.sum(features_query[i, :, row, col] * features_database[i, :, ty, tx])
            value = (joint[row, col] * cosine).item()
            if (ty, tx) not in best or value > best[(ty, tx)]:
                best[(ty, tx)] = value
        scores.append(sum(max(value, 0.0) for value in best.values()))
    return scores


@torch.no_grad()
def official_score_collection(encoder, features_query, features_database, prior=None, region=None, batch=32):
    """The official retrieval pass: query features expanded to ``batch``, transformer per batch, scoring loop.

    features_query ``(1, C, hq, wq)``, features_database ``(N, C, ht, wt)`` -> list of N floats.
    """
    scores = []
    for start in range(0, features_database.shape[0], batch):
        block = features_database[start:start + batch]
        query = features_query.expand(block.shape[0], -1, -1, -1)
        out_query, out_block = encoder(query, block)
        scores.extend(official_pair_scores(out_query, out_block, query, block, prior, region))
    return scores
