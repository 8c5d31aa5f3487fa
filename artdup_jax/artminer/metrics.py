"""Detection AP and mAP as the release's ``eval.py`` computes them.

AP of one query's ranked list: walk its first ``num_predictions`` predictions; a prediction in the image of a
not-yet-matched ground truth with IoU > 0.3 (strict; widths ``x2 - x1``) matches it and adds the precision at its
rank; AP = sum of those precisions / number of ground truths (non-interpolated, recall capped by the cut). Two
averages, as the release prints them: over all queries, and over the classes of each class's mean.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from artdup_jax.artminer.annotations import AnnotatedQuery

PAPER_METRIC = ("mAP_per_query: the release README's 58.0 (ImageNet) / 75.3 (Brueghel-trained) are expected to be the "
                "mean over all queries; this is unverified, so both averages are given")


def iou(box: Sequence[float], boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x1, y1, x2, y2]`` box with ``(N, 4)`` boxes; widths are ``x2 - x1`` (no +1)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    ih = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / union


def average_precision(predictions: Sequence[tuple[str, Sequence[float]]], gt: Sequence[tuple[str, Sequence[float]]],
                      *, iou_threshold: float = 0.3, num_predictions: int = 1000) -> tuple[float, list[int]]:
    """Non-interpolated AP of one ranked list, as the release's ``eval.py``.

    Walks the first ``num_predictions`` predictions ``(image, box)``; each unmatched ground truth in the same
    image with IoU > ``iou_threshold`` is matched (a prediction may match several), adding the precision at that
    rank. Returns ``(sum of precisions / len(gt), matched)`` with ``matched[j]`` = 1-based index of the
    ground truth prediction ``j`` matched last, 0 for a false positive.
    """
    used = np.zeros(len(gt), bool)
    precisions: list[float] = []
    matched = []
    for rank, (image, box) in enumerate(predictions[:num_predictions]):
        hit = 0
        for k, (gt_image, gt_box) in enumerate(gt):
            if not used[k] and gt_image == image and iou(box, gt_box)[0] > iou_threshold:
                precisions.append((len(precisions) + 1) / (rank + 1))
                used[k] = True
                hit = k + 1
        matched.append(hit)
    return float(np.sum(precisions) / len(gt)), matched


def summarise(queries: Sequence[AnnotatedQuery], aps: Sequence[float]) -> dict:
    """Both averages and the per-class means."""
    per_class: dict[str, list[float]] = {}
    for q, ap in zip(queries, aps):
        per_class.setdefault(q.category, []).append(ap)
    class_means = {c: float(np.mean(v)) for c, v in per_class.items()}
    return {
        "mAP_per_query": float(np.mean(aps)),
        "mAP_per_class": float(np.mean(list(class_means.values()))),
        "paper_metric": PAPER_METRIC,
        "per_class": {c: {"AP": class_means[c], "queries": len(per_class[c])} for c in per_class},
    }
