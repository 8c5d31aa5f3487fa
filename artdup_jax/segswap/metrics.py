"""SegSwap's evaluation metrics: held-out masks, retrieval AP, co-segmentation P / J, place recall@N.

  mask_iou, foreground_auc    training's held-out synthetic pairs (``task.evaluate``): ``(N, h, w)`` cell maps
  average_precision           image-level retrieval AP, as the release (Brueghel, ``retrieval``)
  mask_scores, coseg_metrics  Internet co-segmentation: precision P (pixel accuracy) and Jaccard J per image,
                              P over every image and J over the images with an object (``eval/internet_coseg.py``)
  recall_at, spatial_nms      place recognition: recall@N within a distance (``eval/place_rerank.py``)

All NumPy, on host arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

RECALL_AT = (1, 5, 10, 100)


# ---------------------------------------------------------------------------------------- held-out pairs


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` probabilities and soft GT -> ``(N,)`` IoU of ``> 0.5`` against ``> 0.5`` (1 if both empty)."""
    p, t = predicted > 0.5, truth > 0.5
    union = np.sum(p | t, axis=(1, 2))
    return np.where(union > 0, np.sum(p & t, axis=(1, 2)) / np.maximum(union, 1), 1.0)


def foreground_auc(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Probability that a random GT-foreground cell (GT > 0.5) gets a higher mask than a random background
    cell (ties count half), over all cells of ``(N, h, w)`` maps; 0.5 if either set is empty. Threshold-free,
    so it shows a mask learning to rank cells before its probabilities cross 0.5."""
    foreground = truth.ravel() > 0.5
    count_fg, count_bg = int(foreground.sum()), int((~foreground).sum())
    if not count_fg or not count_bg:
        return 0.5
    ranks = rankdata(predicted.ravel())
    return float((ranks[foreground].sum() - count_fg * (count_fg + 1) / 2) / (count_fg * count_bg))


# ------------------------------------------------------------------------------------------------ retrieval


def average_precision(scores: np.ndarray, relevant: np.ndarray, *, exclude: int | None = None) -> float:
    """Image-level AP as the release: rank by score (descending, ties in collection order) without ``exclude``;
    the sum of the precisions at the relevant images over ``relevant.sum()`` (every relevant image, including an
    excluded one). 0 when nothing is relevant."""
    scores = np.asarray(scores, np.float64)
    relevant = np.asarray(relevant, bool)
    total = int(relevant.sum())
    if total == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    if exclude is not None:
        order = order[order != exclude]
    hits = relevant[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.sum(np.arange(1, len(ranks) + 1) / ranks) / total)


# --------------------------------------------------------------------------------------- co-segmentation


def mask_scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float | None]:
    """``(P, J)``: pixel accuracy, and IoU (None when the ground truth is empty)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"mask {predicted.shape} and ground truth {truth.shape} differ in size")
    precision = float(np.mean(predicted == truth))
    if not truth.any():
        return precision, None
    return precision, float(np.sum(predicted & truth) / np.sum(predicted | truth))


def coseg_metrics(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """P over every image, J over images with a non-empty ground truth, and the per-image values.

    Args:
      predicted, truth: one ``(H, W)`` bool mask per image (the image's own size); truth empty = no object.
      names: the images' names, for ``per_image``.
    Returns:
      ``{"P", "J" (None when no ground truth holds an object), "num_images", "num_with_object",
      "per_image": [{"image", "P", "J"}]}``.
    """
    per_image = []
    for name, mask, gt in zip(names, predicted, truth, strict=True):
        precision, jaccard = mask_scores(mask, gt)
        per_image.append({"image": name, "P": precision, "J": jaccard})
    jaccards = [r["J"] for r in per_image if r["J"] is not None]
    return {"P": float(np.mean([r["P"] for r in per_image])),
            "J": float(np.mean(jaccards)) if jaccards else None,
            "num_images": len(per_image), "num_with_object": len(jaccards), "per_image": per_image}


# --------------------------------------------------------------------------------------- place recognition


def spatial_nms(ranking: np.ndarray, group: int | None) -> np.ndarray:
    """Only the first candidate of each place ``index // group`` (no change when ``group`` is None)."""
    ranking = np.asarray(ranking)
    if not group:
        return ranking
    _, first = np.unique(ranking // group, return_index=True)
    return ranking[np.sort(first)]


def recall_at(rankings: Sequence[np.ndarray], query_utm: np.ndarray, database_utm: np.ndarray,
              ns: Sequence[int] = RECALL_AT, *, distance_m: float = 25.0, nms_group: int | None = None) -> dict:
    """``{N: fraction of queries with a candidate within distance_m among their first N}``."""
    hits = {n: [] for n in ns}
    for ranking, utm in zip(rankings, query_utm, strict=True):
        ranking = spatial_nms(ranking, nms_group)
        close = np.linalg.norm(database_utm[ranking] - utm, axis=1) <= distance_m
        for n in ns:
            hits[n].append(bool(close[:n].any()))
    return {n: float(np.mean(v)) if v else 0.0 for n, v in hits.items()}
