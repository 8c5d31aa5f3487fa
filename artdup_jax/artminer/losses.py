"""ArtMiner's hard-positive loss on the pairs that mining keeps, computed on device.

The pairs ``mining.mine`` kept are run again in **train mode** at their stored scales, BN statistics per image
and running statistics updated image by image (``mining.train_canvas_features``). For each pair and each corner
``j`` of the 12x12 training region (top-left ``position - 5``; corners at offsets 0 and 11):

* ``s_pos``: max cosine between image 1's corner cell and the 3x3 neighbourhood (clipped) of image 2's;
* ``s_neg``: the larger of the two directions' mean top-10 cosine of a corner cell against every cell of the
  other image (the true match included);
* ``l = max(0, s_neg - (1 - lambda)) + max(0, lambda - s_pos)`` (lambda = 0.8): the paper's
  ``max(s(P1, N1), 1 - lambda) - min(s(P1, P2), lambda)`` minus the constant ``2 lambda - 1``.

The loss is the mean over the ``4 B`` terms. Gradients flow through both images, the top-10 and the 3x3 max.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from artdup_jax.artminer import mining
from artdup_jax.artminer.model import EPS


def _normalise(x: jnp.ndarray) -> jnp.ndarray:
    """Per-cell ``x / (||x|| + 1e-7)`` with a finite gradient at 0 (cells beyond an image, dead cells)."""
    squares = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    positive = squares > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)
    return x / (norm + EPS)


def hard_positive_terms(maps: jnp.ndarray, cells: jnp.ndarray, position: jnp.ndarray, config: mining.MiningConfig,
                        *, threshold: float = 0.8, negatives_top_k: int = 10) -> dict[str, jnp.ndarray]:
    """The ``(B, 4)`` loss terms (module docstring) and their parts.

    Args:
      maps: ``(B, 2, R, C, D)`` raw train-mode features of each pair's two images (0 beyond ``cells``).
      cells: ``(B, 2, 2)`` int valid ``(rows, cols)``; position: ``(B, 2, 2)`` the 2x2 block's top-left.
    Returns ``{"loss", "positive", "negative"}``, each ``(B, 4)``.
    """
    last = config.training_cells - 1
    corners = jnp.asarray([(0, 0), (0, last), (last, 0), (last, last)])
    corner = position[:, :, None, :] - config.training_offset + corners[None, None]  # (B, 2, 4, 2)
    unit = _normalise(maps)
    pair = jnp.arange(maps.shape[0])[:, None]
    corner_1 = unit[pair, 0, corner[:, 0, :, 0], corner[:, 0, :, 1]]  # (B, 4, D)
    corner_2 = unit[pair, 1, corner[:, 1, :, 0], corner[:, 1, :, 1]]
    to_2 = jnp.einsum("bjd,bhwd->bjhw", corner_1, unit[:, 1], precision=jax.lax.Precision.HIGHEST)
    to_1 = jnp.einsum("bjd,bhwd->bjhw", corner_2, unit[:, 0], precision=jax.lax.Precision.HIGHEST)
    row = jnp.arange(maps.shape[2])[None, None, :, None]
    col = jnp.arange(maps.shape[3])[None, None, None, :]

    def inside(side):  # (B, 1, R, C)
        return (row < cells[:, side, 0, None, None, None]) & (col < cells[:, side, 1, None, None, None])

    near = (jnp.abs(row - corner[:, 1, :, 0, None, None]) <= 1) & (jnp.abs(col - corner[:, 1, :, 1, None, None]) <= 1)
    positive = jnp.max(jnp.where(near & inside(1), to_2, -jnp.inf), axis=(-2, -1))

    def mean_top(cosine, side):
        flat = jnp.where(inside(side), cosine, -jnp.inf).reshape(*cosine.shape[:2], -1)
        values, _ = jax.lax.top_k(flat, negatives_top_k)
        return jnp.mean(values, axis=-1)

    negative = jnp.maximum(mean_top(to_2, 1), mean_top(to_1, 0))
    loss = jax.nn.relu(negative - (1.0 - threshold)) + jax.nn.relu(threshold - positive)
    return {"loss": loss, "positive": positive, "negative": negative}


def pair_inputs(batch: dict, mined: mining.MinedPairs):
    """Canvases ``(2 B, P, P, 3)`` and cells ``(2 B, 2)`` of the kept pairs' images at their scales, ordered
    pair 0 image 1, pair 0 image 2, pair 1 image 1, ..."""
    image, scale = mined.image.reshape(-1), mined.scale.reshape(-1)
    canvases = mining.canvas_images(batch["source"][image], batch["pixel_rows"][image, scale],
                                    batch["pixel_cols"][image, scale])
    return canvases, batch["cells"][image, scale]


def training_loss(variables: dict, batch: dict, rng, config: mining.MiningConfig, *, threshold: float = 0.8,
                  negatives_top_k: int = 10):
    """Mining with the current weights, then the loss on the kept pairs.

    Returns ``(loss, metrics, new batch_stats)`` (the harness's ``loss_fn`` contract).
    """
    mined = mining.mine(variables, batch, rng, config)
    canvases, cells = pair_inputs(batch, mined)
    maps, batch_stats = mining.train_canvas_features(variables, canvases, cells)
    pairs = mined.image.shape[0]
    terms = hard_positive_terms(maps.reshape(pairs, 2, *maps.shape[1:]), cells.reshape(pairs, 2, 2),
                                mined.position, config, threshold=threshold, negatives_top_k=negatives_top_k)
    loss = jnp.mean(terms["loss"])
    metrics = {"positive": jnp.mean(terms["positive"]), "negative": jnp.mean(terms["negative"]),
               "active_terms": jnp.mean((terms["loss"] > 0).astype(jnp.float32)),
               "kept_votes": jnp.mean(mined.votes.astype(jnp.float32)),
               "candidate_votes": jnp.mean(mined.candidate_votes.astype(jnp.float32))}
    return loss, metrics, batch_stats
