"""SegSwap's training loss, pure jnp.

  L = BCE + η · L_corr,  η = 8.

BCE is *one* mean over every supervised map element (PyTorch ``BCELoss`` on probabilities, which the
model's clamp keeps in [1e-7, 1 - 1e-7]):
  positives           O_X[mask] -> M_X,  O_Y[mask] -> M_Y       (the soft ground-truth masks)
  transported masks   Ŵ_X = S(O_Y[mask], O_X[xy]) -> M_X,  Ŵ_Y = S(O_X[mask], O_Y[xy]) -> M_Y
  negatives           N_X[mask] -> 0,  N_Y[mask] -> 0           (in-batch and hard negatives)
so with P positives and 3P negatives the effective weights are 20 % / 20 % / 60 %. A negative pair can be
dropped with weight 0 (pairs whose images share content); with all weights 1 this is the paper's mean.

L_corr is L1 on both coordinates of the predicted correspondences, on the cells where a GT mask equals its
own maximum (per sample and per image, usually the interior), normalised by 2 · (number of such cells).

Shapes: outputs ``(B, h, w, 3)`` (x, y, mask); masks ``(B, h, w)``; flows ``(B, h, w, 2)``, x first,
normalised [0, 1] over the other image, cell centre j at (j + 0.5) / w.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from artdup_jax.segswap.masks import transported_mask
from artdup_jax.segswap.transformer import PROBABILITY_EPS

CORRESPONDENCE_WEIGHT = 8.0  # η
_LOG_FLOOR = -100.0  # PyTorch's BCELoss clamps the logs here


def binary_cross_entropy(probabilities: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
    """Elementwise ``-(t log p + (1 - t) log(1 - p))`` with PyTorch's log floor of -100."""
    log_p = jnp.maximum(jnp.log(probabilities), _LOG_FLOOR)
    log_not_p = jnp.maximum(jnp.log1p(-probabilities), _LOG_FLOOR)
    return -(targets * log_p + (1 - targets) * log_not_p)


def correspondence_cells(mask: jnp.ndarray) -> jnp.ndarray:
    """``(B, h, w)`` soft GT masks -> bool, True where the mask equals its per-sample maximum (and is > 0)."""
    peak = jnp.max(mask, axis=(1, 2), keepdims=True)
    return (mask >= peak) & (peak > 0)


def correspondence_loss(predicted_x, flow_x, mask_x, predicted_y, flow_y, mask_y) -> jnp.ndarray:
    """``Σ_K (|x̂ - x| + |ŷ - y|) / (2 |K|)`` over the cells K of both images (``correspondence_cells``)."""
    total, count = 0.0, 0.0
    for predicted, flow, mask in ((predicted_x, flow_x, mask_x), (predicted_y, flow_y, mask_y)):
        cells = correspondence_cells(mask)
        error = jnp.sum(jnp.abs(predicted - flow), axis=-1)
        total = total + jnp.sum(jnp.where(cells, error, 0.0))
        count = count + jnp.sum(cells)
    return total / jnp.maximum(2.0 * count, 1.0)


def segswap_loss(output_x: jnp.ndarray, output_y: jnp.ndarray, mask_x: jnp.ndarray, mask_y: jnp.ndarray,
                 flow_x: jnp.ndarray, flow_y: jnp.ndarray, negative_x: jnp.ndarray, negative_y: jnp.ndarray,
                 negative_weight: jnp.ndarray | None = None,
                 correspondence_weight: float = CORRESPONDENCE_WEIGHT) -> tuple[jnp.ndarray, dict]:
    """The total loss and its parts.

    Args:
      output_x, output_y: ``(P, h, w, 3)`` model outputs on the positive pairs.
      mask_x, mask_y: ``(P, h, w)`` soft GT masks; flow_x, flow_y: ``(P, h, w, 2)`` GT correspondences.
      negative_x, negative_y: ``(N, h, w, 3)`` outputs on negative pairs (N may be 0).
      negative_weight: ``(N,)`` weight of each negative pair in the BCE mean (default 1).
    Returns:
      ``(loss, metrics)``; metrics: ``bce``, ``correspondence``, ``positive_bce``, ``transported_bce``,
      ``negative_bce`` (each part's own mean) and ``negative_mask`` (mean predicted mask on negatives).
    """
    chex.assert_equal_shape([output_x[..., 2], mask_x])
    chex.assert_equal_shape([output_y[..., 2], mask_y])
    chex.assert_equal_shape([output_x[..., :2], flow_x])
    chex.assert_equal_shape([output_y[..., :2], flow_y])
    if negative_weight is None:
        negative_weight = jnp.ones(negative_x.shape[0], jnp.float32)
    clamp = lambda m: jnp.clip(m, PROBABILITY_EPS, 1 - PROBABILITY_EPS)  # noqa: E731
    transported_x = clamp(transported_mask(output_x, output_y))
    transported_y = clamp(transported_mask(output_y, output_x))

    positive_sum = (jnp.sum(binary_cross_entropy(output_x[..., 2], mask_x))
                    + jnp.sum(binary_cross_entropy(output_y[..., 2], mask_y)))
    transported_sum = (jnp.sum(binary_cross_entropy(transported_x, mask_x))
                       + jnp.sum(binary_cross_entropy(transported_y, mask_y)))
    cells_x, cells_y = mask_x[0].size, mask_y[0].size
    positive_count = output_x.shape[0] * (cells_x + cells_y)
    per_negative = (jnp.sum(binary_cross_entropy(negative_x[..., 2], 0.0), axis=(1, 2))
                    + jnp.sum(binary_cross_entropy(negative_y[..., 2], 0.0), axis=(1, 2)))
    negative_sum = jnp.sum(negative_weight * per_negative)
    negative_count = jnp.sum(negative_weight) * (negative_x[0, ..., 0].size + negative_y[0, ..., 0].size) \
        if negative_x.shape[0] else 0.0
    bce = (positive_sum + transported_sum + negative_sum) / (2 * positive_count + negative_count)
    correspondence = correspondence_loss(output_x[..., :2], flow_x, mask_x, output_y[..., :2], flow_y, mask_y)
    loss = bce + correspondence_weight * correspondence

    negative_mask = (jnp.sum(negative_weight[:, None, None] * negative_x[..., 2])
                     + jnp.sum(negative_weight[:, None, None] * negative_y[..., 2]))
    metrics = {
        "bce": bce,
        "correspondence": correspondence,
        "positive_bce": positive_sum / positive_count,
        "transported_bce": transported_sum / positive_count,
        "negative_bce": negative_sum / jnp.maximum(negative_count, 1.0),
        "negative_mask": negative_mask / jnp.maximum(negative_count, 1.0),
    }
    return loss, metrics
