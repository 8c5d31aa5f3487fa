"""The SegSwap pair score S(s, t) from model outputs and backbone features (no model call here).

For a source (query) image s and a target (database) image t:

  M_joint(p) = m_prior(p) · O_s[mask](p) · S(O_t[mask], O_s[xy])(p)
  t(p)       = (round(y_p · (ht - 1)), round(x_p · (wt - 1)))     with (x_p, y_p) = O_s[xy](p),
               round half to even. This is the scoring code's convention, *not* the cell-centre one.
  s(p)       = M_joint(p) · <F_s(p), F_t(t(p))>     (L2-normalised 1024-d backbone features)
  S(s, t)    = Σ over distinct target cells u of max(0, max{s(p) : p ∈ P, t(p) = u})

P is the evaluation region (default: every source cell); only its cells are read (``region_cells``), so a
Brueghel query box of 36 cells gathers 36 feature pairs per image pair, not h·w. The score is directional:
S(s, t) uses the source's region, prior, mask and correspondences, so S(s, t) ≠ S(t, s) in general, even for
outputs of one forward pass. ``inference.score_against_collection`` runs the model and scores in one call.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.segswap.masks import sample_at


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


def region_cells(region, shape: tuple[int, ...], size: int | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The source cells a score reads: flat indices and a validity flag, padded to one length.

    Args:
      region: ``(hs, ws)`` or ``(B, hs, ws)`` bool evaluation region P, or None (every cell).
      shape: ``(B, hs, ws)``.
      size: the padded length K (default: the largest region's cell count); padding is index 0, not valid.
    Returns:
      ``(cells, valid)``, ``(B, K)`` int32 and bool. A concrete region (NumPy, or a JAX array outside a trace)
      gives its own cells only, so the score gathers K features instead of hs·ws; a traced region can only
      be a mask, so it gives every cell, valid where the region is True.
    """
    batch, hs, ws = shape
    if region is None:
        region = np.ones((hs, ws), bool)
    try:
        region = np.broadcast_to(np.asarray(region, bool), (batch, hs, ws)).reshape(batch, hs * ws)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        cells = jnp.broadcast_to(jnp.arange(hs * ws, dtype=jnp.int32), (batch, hs * ws))
        return cells, jnp.broadcast_to(jnp.asarray(region, bool), (batch, hs, ws)).reshape(batch, hs * ws)
    counts = region.sum(axis=1)
    size = max(int(counts.max(initial=0)), 1) if size is None else size
    if size < counts.max(initial=0):
        raise ValueError(f"size {size} is below the region's {int(counts.max())} cells")
    cells = np.zeros((batch, size), np.int32)
    valid = np.zeros((batch, size), bool)
    for i, row in enumerate(region):
        found = np.flatnonzero(row)
        cells[i, :len(found)] = found
        valid[i, :len(found)] = True
    return jnp.asarray(cells), jnp.asarray(valid)


def every_cell(region) -> bool:
    """Whether ``region`` (None, or a concrete bool mask) is every cell: scores then read the source maps whole
    instead of gathering each cell (faster: no gather)."""
    if region is None:
        return True
    try:
        return bool(np.all(np.asarray(region, bool)))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False


def score_at_cells(output_source, output_target, features_source, features_target, prior, cells=None, valid=None):
    """S(s, t) for one pair, reading only the source cells ``cells`` (no batch axis).

    Args:
      output_source: ``(hs, ws, 3)`` model output for the source (x, y, mask); output_target: ``(ht, wt, 3)``.
      features_source: ``(hs, ws, C)``, features_target: ``(ht, wt, C)``: L2-normalised backbone features.
      prior: ``(hs, ws)`` prior mask m_prior.
      cells: ``(K,)`` int32 flat source cells ``row · ws + col`` (the region P), or None: every cell, in order
        (``K = hs · ws``, nothing gathered on the source side); valid: ``(K,)`` bool, False on padding (None:
        all valid).
    Returns:
      scalar float32. Only K source and K target feature vectors are read.
    """
    hs, ws, _ = output_source.shape
    ht, wt, _ = output_target.shape

    def at_cells(x):  # (hs, ws, ...) -> (K, ...)
        flat = x.reshape(hs * ws, *x.shape[2:])
        return flat if cells is None else flat[cells]

    source = at_cells(output_source)  # (K, 3)
    flow = source[:, :2]
    transported = sample_at(output_target[None, ..., 2], flow[None, None])[0, 0]  # (K,)
    joint = at_cells(prior) * source[:, 2] * transported
    targets = target_cells(flow, (ht, wt))  # (K,)
    cosine = jnp.sum(at_cells(features_source) * features_target.reshape(ht * wt, -1)[targets], axis=-1)
    contribution = joint * cosine if valid is None else jnp.where(valid, joint * cosine, -jnp.inf)
    best = jax.ops.segment_max(contribution, targets, num_segments=ht * wt)  # -inf where nothing lands
    return jnp.sum(jnp.maximum(best, 0.0))


def pair_score(output_source, output_target, features_source, features_target, prior=None, region=None):
    """S(s, t) for one pair (no batch axis).

    Args:
      output_source: ``(hs, ws, 3)`` model output for the source (x, y, mask); output_target: ``(ht, wt, 3)``.
      features_source: ``(hs, ws, C)``, features_target: ``(ht, wt, C)``: L2-normalised backbone features.
      prior: ``(hs, ws)`` prior mask m_prior (None: ones).
      region: ``(hs, ws)`` bool evaluation region P (None: every cell); see ``region_cells``.
    Returns:
      scalar float32.
    """
    chex.assert_rank([output_source, output_target, features_source, features_target], 3)
    return pair_scores(output_source[None], output_target[None], features_source[None], features_target[None],
                       prior, region)[0]


def pair_scores(output_source, output_target, features_source, features_target, prior=None, region=None):
    """``pair_score`` over a batch of pairs: outputs ``(B, h, w, 3)``, features ``(B, h, w, C)`` -> ``(B,)``.

    ``prior`` / ``region`` may be ``(hs, ws)`` (shared by every pair), ``(B, hs, ws)`` or None. Pass the
    region as a NumPy array (a static argument under ``jit``) so that only its cells are gathered.
    """
    batch, hs, ws, _ = output_source.shape
    prior = jnp.ones((hs, ws), jnp.float32) if prior is None else jnp.asarray(prior, jnp.float32)
    prior = jnp.broadcast_to(prior, (batch, hs, ws))
    if every_cell(region):
        return jax.vmap(score_at_cells)(output_source, output_target, features_source, features_target, prior)
    cells, valid = region_cells(region, (batch, hs, ws))
    return jax.vmap(score_at_cells)(output_source, output_target, features_source, features_target, prior, cells,
                                    valid)


def region_location(output_source: jnp.ndarray, region: jnp.ndarray) -> jnp.ndarray:
    """Mean predicted (x, y) over the region's cells ("coarse location").

    ``output_source`` ``(B, hs, ws, 3)``, ``region`` ``(hs, ws)`` bool -> ``(B, 2)``.
    """
    weights = region.astype(jnp.float32)[None, :, :, None]
    return jnp.sum(output_source[..., :2] * weights, axis=(1, 2)) / jnp.maximum(jnp.sum(weights), 1.0)


def padded_cell_count(count: int, total: int) -> int:
    """The next power of two ≥ ``count`` (at most ``total``): queries with similar regions share a compilation."""
    return min(1 << max(count - 1, 0).bit_length(), total)


@functools.partial(jax.jit, static_argnames="batch_size")
def _score_outputs(out_query, out_collection, query_features, collection_features, prior, cells, valid, batch_size):
    def score(pair):
        out_q, out_c, features_c = pair
        return score_at_cells(out_q, out_c, query_features, features_c, prior, cells, valid)

    return jax.lax.map(score, (out_query, out_collection, collection_features), batch_size=batch_size)


def score_outputs(out_query, out_collection, query_features, collection_features, *, prior=None, region=None,
                  batch_size: int = 250) -> jnp.ndarray:
    """Scores of one query against N images from transformer outputs already computed: one compiled program
    that scores ``batch_size`` pairs at a time (``lax.map``), gathering only the region's cells.

    Args:
      out_query: ``(N, h, w, 3)`` the query's output in each pair; out_collection: ``(N, h', w', 3)``.
      query_features: ``(h, w, C)``; collection_features: ``(N, h', w', C)`` (keep them on the device).
      prior: ``(h, w)`` (None: ones); region: ``(h, w)`` bool (None: every cell), a host array.
    Returns:
      ``(N,)`` float32, ``pair_scores`` of the N pairs.
    """
    h, w = query_features.shape[:2]
    prior = jnp.ones((h, w), jnp.float32) if prior is None else jnp.asarray(prior, jnp.float32)
    cells, valid = (None, None) if every_cell(region) else (a[0] for a in region_cells(region, (1, h, w)))
    return _score_outputs(out_query, out_collection, query_features, collection_features, prior, cells, valid,
                          batch_size)
