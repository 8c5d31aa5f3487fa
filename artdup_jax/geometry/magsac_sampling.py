"""Minimal samples for MAGSAC++: PROSAC's progressive sampling (Chum & Matas, CVPR 2005) or uniform.

Matches are addressed by *rank*: ``order`` (``(N,)`` int32) lists the valid rows first, best quality first
under PROSAC, so rank ``i`` is row ``order[i]`` and only the number of valid rows ``n_valid`` matters.
Hypothesis ``t`` (0-based, global) is drawn from a counter-based hash of ``(key, t)``
(:func:`artdup_jax.geometry.random_draws.hash_uniform`), so its sample depends neither on how hypotheses are
chunked nor on the other pairs of a batch.

PROSAC draws sample ``t`` from the ``n(t)`` best matches only, ``n(t)`` growing from the minimal size ``k`` to
``n_valid``: each sample holds the ``n``-th best match and ``k - 1`` others drawn from the ``n - 1`` better ones;
once ``n = n_valid`` and its schedule is passed, sampling is uniform. The schedule is the paper's
``T'_n = 1 + sum_{j=k+1..n} ceil(T_j - T_{j-1})`` (``T_n = growth * C(n, k) / C(n_valid, k)``) with each ceiling
replaced by its upper bound ``T_j - T_{j-1} + 1``: a closed form, so no cumulative sum is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from artdup_jax.geometry.random_draws import hash_uniform, sorted_ascending


def _sorted_rows(valid, quality):
    """Rows valid first, then by decreasing quality (NaN last among the valid), ties by row: one sort of
    packed ``uint32`` keys (row in the low bits), several times faster on CPU than a float argsort."""
    size = valid.shape[0]
    row_bits = max(1, (size - 1).bit_length())
    if row_bits > 24:
        raise ValueError(f"at most 2^24 matches per pair, got {size}")
    levels = min((1 << (31 - row_bits)) - 2, 1 << 23)  # quality levels 0..levels, exact in float32
    # ``levels + 1`` marks invalid rows, so they sort last
    rows = jnp.arange(size, dtype=jnp.uint32)
    if quality is None:
        level = jnp.where(valid, 0, levels + 1)
    else:
        good = valid & ~jnp.isnan(quality)
        best = jnp.max(jnp.where(good, quality, -jnp.inf))
        worst = jnp.min(jnp.where(good, quality, jnp.inf))
        spread = jnp.where(best > worst, best - worst, 1.0)
        scaled = jnp.clip(jnp.round((best - jnp.where(good, quality, worst)) / spread * levels), 0, levels)
        level = jnp.where(valid, jnp.where(good, scaled, levels).astype(jnp.int32), levels + 1)
    keys = (level.astype(jnp.uint32) << row_bits) | rows
    return (jnp.sort(keys) & jnp.uint32((1 << row_bits) - 1)).astype(jnp.int32)


def _in_order(valid, quality):
    """Whether the rows are already valid first and (with a quality) by non-increasing quality."""
    ok = jnp.all(valid[1:] <= valid[:-1])
    if quality is not None:
        ok &= jnp.all((quality[:-1] >= quality[1:]) | ~valid[1:])
    return ok


def sample_order(valid, quality=None):
    """``(N,)`` int32 rows, valid first (by decreasing ``quality`` if given); ``valid``, ``quality``: ``(N,)``.

    Also takes ``(P, N)`` batches. Rows already in that order (what the NumPy wrapper passes) skip the sort;
    for a batch, the test covers the whole batch, so call this outside ``vmap`` to keep the fast path.
    """
    rows = jnp.broadcast_to(jnp.arange(valid.shape[-1], dtype=jnp.int32), valid.shape)
    sort = _sorted_rows if valid.ndim == 1 else jax.vmap(_sorted_rows, in_axes=(0, None if quality is None else 0))
    check = _in_order if valid.ndim == 1 else jax.vmap(_in_order, in_axes=(0, None if quality is None else 0))
    return jax.lax.cond(jnp.all(check(valid, quality)), lambda: rows, lambda: sort(valid, quality))


def prosac_schedule(n_valid, size: int, k: int, growth):
    """``T'_n`` for ``n = 1 .. size`` (entry ``n - 1``): ``(size,)`` float32, non-decreasing.

    0 below ``k`` (the subset starts at ``k``), +inf beyond ``n_valid``. ``n_valid`` and ``growth`` are traced.
    """
    n = jnp.arange(1, size + 1, dtype=jnp.float32)
    n_valid_f = jnp.maximum(n_valid, k).astype(jnp.float32)
    t_n = jnp.asarray(growth, jnp.float32) * jnp.ones_like(n)
    for i in range(k):
        t_n = t_n * jnp.clip((n - i) / (n_valid_f - i), 0.0, 1.0)
    t_prime = 1.0 + (n - k) + t_n  # T_k is below 1 / C(n_valid, k) and dropped
    return jnp.where(n < k, 0.0, jnp.where(n > n_valid_f, jnp.inf, t_prime))


def _subset_sizes(schedule, first, size: int, n_valid, k: int):
    """``n(t)`` for the ``size`` samples from number ``first`` (0-based) on, ``(size,)`` int32, and whether the
    ``n``-th match is forced in.

    ``n(t) - 1`` is the number of schedule entries below ``t`` (1-based). Entries from ``k - 1`` on grow by about 1
    or more per step, so the samples ``t .. t + size - 1`` need only the ``size + 1`` entries from ``n(t) - 1`` on:
    one count per chunk and a comparison window, instead of a binary search (a chain of gathers) per sample.
    """
    t = (first + 1 + jnp.arange(size, dtype=jnp.int32)).astype(jnp.float32)
    # entries below the first sample number (>= k - 1: those are 0); a count, where a binary search is a loop
    base = jnp.sum(jnp.where(schedule < t[0], 1, 0), dtype=jnp.int32)
    window = jax.lax.dynamic_slice(jnp.concatenate([schedule, jnp.full((size + 1,), jnp.inf, schedule.dtype)]),
                                   (base,), (size + 1,))  # entries base .. base + size (one spare: rounding)
    below = base + jnp.sum(jnp.where(window[None, :] < t[:, None], 1, 0), axis=1, dtype=jnp.int32)
    # The first entry not below t is entry n - 1, so t <= schedule[n - 1], unless that is past the last finite
    # entry (n_valid - 1; the rest are +inf) and n is clipped back to n_valid.
    last = jnp.maximum(n_valid, k)
    return jnp.maximum(jnp.minimum(below + 1, last), k), below + 1 <= last


def draw_samples(key_bits, order, n_valid, first, size: int, k: int, schedule=None):
    """Minimal samples ``first .. first + size - 1``: ``(size, k)`` int32 rows, distinct valid rows each.

    Args:
      key_bits: ``(2,)`` uint32 hash key.
      order: ``(N,)`` int32 from :func:`sample_order`.
      n_valid: int32 number of valid rows.
      first: int32 number of the first sample.
      schedule: None for uniform samples over the valid rows, or :func:`prosac_schedule`'s ``(N,)`` array.
    """
    sample = first + jnp.arange(size, dtype=jnp.int32)
    if schedule is None:
        n = jnp.broadcast_to(jnp.maximum(n_valid, k), sample.shape)
        forced = jnp.zeros(sample.shape, bool)
    else:
        n, forced = _subset_sizes(schedule, first, size, n_valid, k)
    pool = n - forced.astype(jnp.int32)  # ranks 0 .. pool - 1 are drawn from
    counter = sample.astype(jnp.uint32)[:, None] * jnp.uint32(k) + jnp.arange(k, dtype=jnp.uint32)
    u = hash_uniform(key_bits, counter)  # (size, k)
    picks = []
    for j in range(k):
        remaining = jnp.maximum(pool - j, 1)
        rank = jnp.minimum((u[:, j] * remaining.astype(jnp.float32)).astype(jnp.int32), remaining - 1)
        for taken in sorted_ascending(picks):  # shift past the earlier picks: distinct ranks
            rank = rank + (rank >= taken)
        if j == k - 1:
            rank = jnp.where(forced, n - 1, rank)  # the newest match of PROSAC's subset
        picks.append(rank)
    ranks = jnp.clip(jnp.stack(picks, -1), 0, order.shape[0] - 1)
    # Materialise the ranks: fused into the gathers below, XLA would recompute the chain of picks per element.
    return order[jax.lax.optimization_barrier(ranks)]


def stratified_rows(order, n_valid, size: int):
    """``size`` valid rows spread evenly over the ranks (all of them, then invalid slots, if there are fewer):
    ``(size,)`` int32 rows and ``(size,)`` bool validity."""
    slot = jnp.arange(size, dtype=jnp.int32)
    spread = ((slot.astype(jnp.float32) + 0.5) * n_valid.astype(jnp.float32) / size).astype(jnp.int32)
    ranks = jnp.where(n_valid > size, spread, slot)
    return order[jnp.clip(ranks, 0, order.shape[0] - 1)], slot < n_valid
