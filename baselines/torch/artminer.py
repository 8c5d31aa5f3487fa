"""PyTorch port of ArtMiner's one-shot detection as the release runs it.

Written from the specification: one image at a time, one scale at a time, batch 1, PIL resizes (NEAREST,
the Pillow <= 6 default the published numbers used), a ``conv2d`` with the query as kernel, per-image top-k,
NumPy NMS and a final sort over the collection. Python 2 semantics are reproduced where they matter
(rounding halves away from zero, floor division). Used as the parity reference of
``artdup_jax.artminer.detection`` and as the throughput baseline; never imported by the library.

``ArtMinerNet`` has the release's state_dict layout (``model.conv1.weight`` ... ``model.layer3.1.bn2.*``).
Boxes are ``[x1, y1, x2, y2]`` pixels (x = column); PIL sizes are (width, height).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

STRIDE, MIN_INPUT, EPS = 16, 15, 1e-7
SCALES = (80, 74, 68, 60, 49, 36, 20)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Layer3Trunk(nn.Module):
    """torchvision ResNet-18 without layer4 / avgpool / fc."""

    def __init__(self, resnet: torchvision.models.ResNet):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class ArtMinerNet(nn.Module):
    """The release's wrapper: its only child is ``model``, so state_dict keys start with ``model.``."""

    def __init__(self, resnet: torchvision.models.ResNet | None = None):
        super().__init__()
        self.model = _Layer3Trunk(resnet if resnet is not None else torchvision.models.resnet18())

    def forward(self, x):
        return self.model(x)


def py2_round(x: float) -> int:
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def resize_cells(w: float, h: float, longer: int, minimum: int) -> tuple[int, int]:
    """(cells_w, cells_h) of the release's resize rule: ratio in double, Python 2 round."""
    ratio = float(w) / h
    if ratio < 1:
        return max(py2_round(ratio * longer), minimum), longer
    return longer, max(py2_round(longer / ratio), minimum)


def resize_pixels(w: float, h: float, longer: int, minimum: int) -> tuple[int, int]:
    """PIL (width, height) = 16 (cells - 1) + 15 per axis."""
    cells_w, cells_h = resize_cells(w, h, longer, minimum)
    return STRIDE * (cells_w - 1) + MIN_INPUT, STRIDE * (cells_h - 1) + MIN_INPUT


def to_input(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) ImageNet-normalised (ToTensor + Normalize)."""
    x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return x[None]


def open_rgb(path: str) -> Image.Image:
    return Image.open(path).convert("RGB")


@torch.no_grad()
def query_feature(net: nn.Module, image: Image.Image, box, *, longer: int = 8, minimum: int = 1, margin: int = 5,
                  resample=Image.NEAREST) -> torch.Tensor:
    """(1, 256, h, w) query block divided by its global norm (§3.1)."""
    w, h = image.size
    x1, y1, x2, y2 = box
    new_w, new_h = resize_pixels(x2 - x1, y2 - y1, longer, minimum)
    w_ratio, h_ratio = float(new_w) / (x2 - x1), float(new_h) / (y2 - y1)
    b0, b1, b2, b3 = x1 * w_ratio, y1 * h_ratio, x2 * w_ratio, y2 * h_ratio
    resized = image.resize((int(w * w_ratio), int(h * h_ratio)), resample)
    left = max(min(int(b0) // STRIDE, margin), 0)
    top = max(min(int(b1) // STRIDE, margin), 0)
    right = max(min(int(resized.size[0] - b2) // STRIDE, margin), 0)
    bottom = max(min(int(resized.size[1] - b3) // STRIDE, margin), 0)
    # PIL rounds a float crop box; under Python 2 that rounding sent halves away from zero.
    crop = resized.crop(tuple(py2_round(v) for v in (b0 - left * STRIDE, b1 - top * STRIDE,
                                                      b2 + right * STRIDE, b3 + bottom * STRIDE)))
    feat = net(to_input(crop))
    feat = feat[:, :, top:feat.shape[2] - bottom, left:feat.shape[3] - right].contiguous()
    return feat / (torch.sqrt(torch.sum(feat**2)) + EPS)


@torch.no_grad()
def search_features(net: nn.Module, image: Image.Image, scales=SCALES, minimum: int = 8,
                    resample=Image.NEAREST) -> dict[int, torch.Tensor]:
    """scale -> (1, 256, R, C), one forward pass per scale (§3.2)."""
    w, h = image.size
    return {scale: net(to_input(image.resize(resize_pixels(w, h, scale, minimum), resample))) for scale in scales}


def cosine_map(feat: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(R - h + 1, C - w + 1) cosine between the unit kernel and every window (§3.3)."""
    ones = torch.ones((1, kernel.shape[1], kernel.shape[2], kernel.shape[3]))
    dot = F.conv2d(feat, kernel)
    norm = F.conv2d(feat**2, ones) ** 0.5 + EPS
    return (dot / norm)[0, 0]


def nms_any_overlap(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.0) -> list[int]:
    """Greedy by score; removes boxes whose intersection / own area exceeds ``threshold``."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    remaining = list(np.argsort(-scores, kind="stable"))
    keep = []
    while remaining:
        i = remaining.pop(0)
        keep.append(i)
        rest = np.array(remaining, dtype=np.int64)
        if not len(rest):
            break
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = iw * ih / area[rest]
        remaining = [int(j) for j, o in zip(rest, overlap) if not o > threshold]
    return keep


def image_candidates(query: torch.Tensor, feats: dict[int, torch.Tensor], image_size, *, k: int = 8,
                     per_image: int = 40):
    """One image: top-k per scale, best ``per_image`` overall, boxes, NMS (§3.4).

    Returns a list of (score, [x1, y1, x2, y2] float, scale, row, col), best first.
    """
    w_img, h_img = image_size
    kh, kw = query.shape[2], query.shape[3]
    found = []
    for scale, feat in feats.items():
        score = cosine_map(feat, query)
        cols = score.shape[1]
        values, index = score.reshape(-1).topk(min(k, score.numel()))
        found += [(float(v), scale, int(i) // cols, int(i) % cols) for v, i in zip(values, index)]
    order = sorted(range(len(found)), key=lambda j: -found[j][0])[:per_image]
    found = [found[j] for j in order]
    boxes = []
    for _, scale, r, c in found:
        cells_w, cells_h = resize_cells(w_img, h_img, scale, max(kh, kw))
        top = r / float(cells_h) * h_img
        left = c / float(cells_w) * w_img
        bottom = min((r + kh) / float(cells_h), 1) * h_img
        right = min((c + kw) / float(cells_w), 1) * w_img
        boxes.append([left, top, right, bottom])
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    scores = np.array([f[0] for f in found], np.float64)
    return [(found[i][0], boxes[i], found[i][1], found[i][2], found[i][3]) for i in nms_any_overlap(boxes, scores)]


@torch.no_grad()
def detect(net: nn.Module, query_path: str, box, collection: list[str], *, scales=SCALES, num_predictions: int = 1000,
           longer: int = 8, margin: int = 5, image_minimum: int = 8):
    """Ranked [(path, score, box int [x1, y1, x2, y2], scale, (row, col))] over ``collection`` minus the query's
    own image (§3.5)."""
    net.eval()
    query = query_feature(net, open_rgb(query_path), box, longer=longer, margin=margin)
    entries = []
    for path in collection:
        if os.path.abspath(path) == os.path.abspath(query_path):
            continue
        image = open_rgb(path)
        feats = search_features(net, image, scales, image_minimum)
        for score, bb, scale, r, c in image_candidates(query, feats, image.size, k=longer, per_image=5 * longer):
            entries.append((path, score, bb, scale, (r, c)))
    scores = np.array([e[1] for e in entries])
    order = np.argsort(scores)[::-1][:num_predictions]
    return [(entries[i][0], entries[i][1], entries[i][2].astype(int), entries[i][3], entries[i][4]) for i in order]
