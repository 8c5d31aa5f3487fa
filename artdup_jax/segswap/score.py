"""Pair scores from the model outputs (segswap.md §4.1) and one-query-against-a-collection scoring.

For a source (query) image s and a target (database) image t:

  M_joint(p) = m_prior(p) · O_s[mask](p) · S(O_t[mask], O_s[xy])(p)
  t(p)       = (round(y_p · (ht - 1)), round(x_p · (wt - 1)))     with (x_p, y_p) = O_s[xy](p),
               round half to even. This is the scoring code's convention, *not* the cell-centre one.
  s(p)       = M_joint(p) · <F_s(p), F_t(t(p))>     (L2-normalised 1024-d backbone features)
  S(s, t)    = Σ over distinct target cells u of max(0, max{s(p) : p ∈ P, t(p) = u})

P is the evaluation region (default: every source cell). The score is directional: S(s, t) uses the
source's region, prior, mask and correspondences, so S(s, t) ≠ S(t, s) in general, even for outputs of
one forward pass.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.segswap.masks import joint_mask
from artdup_jax.segswap.model import extract_features, predict_from_features
from artdup_jax.segswap.transformer import SMALL, TransformerConfig


def target_cells(flow: jnp.ndarray, target_hw: tuple[int, int]) -> jnp.ndarray:
    """Rounded flat target cell ``row · wt + col`` for every source cell.

    Args:
      flow: ``(..., 2)`` predicted (x, y) in [0, 1]; target_hw: ``(ht, wt)``.
    Returns:
      ``(...)`` int32 in [0, ht·wt).
    """
    height, width = target_hw
    col = jnp.clip(jnp.round(flow[..., 0] * (width - 1)), 0, width - 1).astype(jnp.int32)
    row = jnp.clip(jnp.round(flow[..., 1] * (height - 1)), 0, height - 1).astype(jnp.int32)
    return row * width + col


def pair_score(output_source, output_target, features_source, features_target, prior=None, region=None):
    """S(s, t) for one pair (no batch axis).

    Args:
      output_source: ``(hs, ws, 3)`` model output for the source (x, y, mask); output_target: ``(ht, wt, 3)``.
      features_source: ``(hs, ws, C)``, features_target: ``(ht, wt, C)``: L2-normalised backbone features.
      prior: ``(hs, ws)`` prior mask m_prior (None: ones).
      region: ``(hs, ws)`` bool evaluation region P (None: every cell).
    Returns:
      scalar float32.
    """
    chex.assert_rank([output_source, output_target, features_source, features_target], 3)
    hs, ws, _ = output_source.shape
    ht, wt, _ = output_target.shape
    prior = jnp.ones((hs, ws), jnp.float32) if prior is None else prior
    region = jnp.ones((hs, ws), bool) if region is None else region.astype(bool)
    joint = joint_mask(output_source[None], output_target[None], prior)[0]
    cells = target_cells(output_source[..., :2], (ht, wt)).reshape(-1)
    gathered = features_target.reshape(ht * wt, -1)[cells]
    cosine = jnp.sum(features_source.reshape(hs * ws, -1) * gathered, axis=-1)
    contribution = jnp.where(region.reshape(-1), joint.reshape(-1) * cosine, -jnp.inf)
    best = jax.ops.segment_max(contribution, cells, num_segments=ht * wt)  # -inf where nothing lands
    return jnp.sum(jnp.maximum(best, 0.0))


def pair_scores(output_source, output_target, features_source, features_target, prior=None, region=None):
    """``pair_score`` over a batch of pairs: outputs ``(B, h, w, 3)``, features ``(B, h, w, C)`` -> ``(B,)``.

    ``prior`` / ``region`` may be ``(hs, ws)`` (shared by every pair), ``(B, hs, ws)`` or None.
    """
    batch, hs, ws, _ = output_source.shape
    prior = jnp.ones((hs, ws), jnp.float32) if prior is None else jnp.asarray(prior, jnp.float32)
    region = jnp.ones((hs, ws), bool) if region is None else jnp.asarray(region, bool)
    prior = jnp.broadcast_to(prior, (batch, hs, ws))
    region = jnp.broadcast_to(region, (batch, hs, ws))
    return jax.vmap(pair_score)(output_source, output_target, features_source, features_target, prior, region)


def region_location(output_source: jnp.ndarray, region: jnp.ndarray) -> jnp.ndarray:
    """Mean predicted (x, y) over the region's cells ("coarse location").

    ``output_source`` ``(B, hs, ws, 3)``, ``region`` ``(hs, ws)`` bool -> ``(B, 2)``.
    """
    weights = region.astype(jnp.float32)[None, :, :, None]
    return jnp.sum(output_source[..., :2] * weights, axis=(1, 2)) / jnp.maximum(jnp.sum(weights), 1.0)


@functools.partial(jax.jit, static_argnames="config")
def _score_block(variables, query_features, block_features, prior, region, config):
    batch = block_features.shape[0]
    query = jnp.broadcast_to(query_features[None], (batch, *query_features.shape))
    out_query, out_block = predict_from_features(variables, query, block_features, config=config)
    return pair_scores(out_query, out_block, query, block_features, prior, region), region_location(out_query, region)


def _blocks(array: np.ndarray, batch_size: int):
    """Yields ``(block, valid)`` with every block padded (with zeros) to ``batch_size``: one compilation."""
    for start in range(0, len(array), batch_size):
        block = np.asarray(array[start:start + batch_size])
        valid = len(block)
        if valid < batch_size:
            block = np.concatenate([block, np.zeros((batch_size - valid, *block.shape[1:]), block.dtype)])
        yield block, valid


def collection_features(variables: dict, images, *, batch_size: int = 32,
                        config: TransformerConfig = SMALL) -> np.ndarray:
    """``(N, H, W, 3)`` RGB in [0, 1] -> L2-normalised features ``(N, h, w, 1024)`` (NumPy), in batches."""
    variables = jax.device_put(variables)  # once, not once per block (converted variables are NumPy)
    chunks = [np.asarray(extract_features(variables, jnp.asarray(block, jnp.float32), config=config))[:valid]
              for block, valid in _blocks(np.asarray(images), batch_size)]
    return np.concatenate(chunks)


def score_against_collection(variables: dict, query, collection, *, prior=None, region=None, batch_size: int = 32,
                             config: TransformerConfig = SMALL) -> dict:
    """Scores one query against every image of a collection, ``batch_size`` pairs per compiled call.

    The query is the source of every pair (official Brueghel / Tokyo / Pitts convention).

    Args:
      variables: ``SegSwap`` variables.
      query: ``(H, W, 3)`` RGB image in [0, 1], or its features ``(h, w, C)`` from ``extract_features``.
      collection: ``(N, H', W', 3)`` images in [0, 1], or features ``(N, h', w', C)`` (e.g. a cache from
        ``collection_features``). A last axis of 3 means images. Host (NumPy) arrays are fine: only one
        block at a time goes to the device.
      prior: ``(h, w)`` prior mask on the query cells (None: ones). The Brueghel recipe refines it first
        with ``masks.cycle_consistent_masks`` on the query's self-pair.
      region: ``(h, w)`` bool evaluation region P (None: every cell).
    Returns:
      ``{"score": (N,) float32, "location": (N, 2) float32}`` (NumPy): S(query, image) and the mean predicted
      (x, y) over the region, in [0, 1] of each collection image.
    """
    variables = jax.device_put(variables)
    query = jnp.asarray(query, jnp.float32)
    if query.shape[-1] == 3:
        query = extract_features(variables, query[None], config=config)[0]
    if np.shape(collection)[-1] == 3:
        collection = collection_features(variables, collection, batch_size=batch_size, config=config)
    h, w, _ = query.shape
    prior = jnp.ones((h, w), jnp.float32) if prior is None else jnp.asarray(prior, jnp.float32)
    region = jnp.ones((h, w), bool) if region is None else jnp.asarray(region, bool)
    scores, locations = [], []
    for block, valid in _blocks(np.asarray(collection), batch_size):
        score, location = _score_block(variables, query, jnp.asarray(block, jnp.float32), prior, region, config)
        scores.append(np.asarray(score)[:valid])
        locations.append(np.asarray(location)[:valid])
    return {"score": np.concatenate(scores), "location": np.concatenate(locations)}
