"""Counter-based random draws: uniform numbers from a hash of ``(key, counter)`` and minimal samples of
distinct indices built on them.

A draw is a pure function of the key and its global counter (e.g. the hypothesis number), so any chunk of
hypotheses, or any pair of a batch, can be drawn on its own and gives the same values however the work is
split. Used by RANSAC (:mod:`artdup_jax.geometry.ransac`) and ArtMiner's affine verification.
"""

from __future__ import annotations

import jax.numpy as jnp


def _fmix32(x):
    """MurmurHash3's 32-bit finaliser: a bijective avalanche mix of ``uint32`` values."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hash_uniform(key_bits, counter, stream: int = 0):
    """Uniform [0, 1) float32, one per ``uint32`` counter, from a counter-based hash keyed by ``key_bits``
    (two ``uint32``); ``stream`` gives independent sequences from the same key.

    RANSAC needs decorrelated draws, not cryptographic ones; this is ~10x cheaper than threefry on CPU and,
    being a function of the global hypothesis number, lets any chunk (or any pair of a batch) be drawn on its own.
    """
    x = _fmix32(_fmix32(counter * jnp.uint32(0x9E3779B9) + key_bits[0] + jnp.uint32(stream)) ^ key_bits[1])
    return (x >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def sorted_ascending(values):
    """Sort a short list of arrays elementwise with min/max (a sorting network; meant for a few values)."""
    values = list(values)
    for i in range(len(values)):
        for j in range(len(values) - 1 - i):
            lo, hi = jnp.minimum(values[j], values[j + 1]), jnp.maximum(values[j], values[j + 1])
            values[j], values[j + 1] = lo, hi
    return values


def sample_indices(key_bits, valid_rows, n_valid, first, size: int, k: int):
    """Minimal samples ``first .. first + size - 1``: ``(size, k)`` int32 indices of distinct valid rows.

    Each sample is uniform over ordered k-subsets of the valid rows: its j-th index is drawn among the
    ``n_valid - j`` ranks not taken yet and shifted past the earlier picks. ``valid_rows`` lists the valid
    rows first, so only the number of valid rows matters, not where they sit.
    """
    hypothesis = (first + jnp.arange(size, dtype=jnp.int32)).astype(jnp.uint32)
    counter = hypothesis[:, None] * jnp.uint32(k) + jnp.arange(k, dtype=jnp.uint32)
    remaining = jnp.maximum(n_valid - jnp.arange(k, dtype=jnp.int32), 1)
    # floor(u * m): the bias from 24-bit u is ~m / 2^24, far below sampling noise.
    draws = (hash_uniform(key_bits, counter) * remaining.astype(jnp.float32)).astype(jnp.int32)
    draws = jnp.minimum(draws, remaining - 1)
    picks = [draws[:, 0]]
    for j in range(1, k):
        rank = draws[:, j]
        for taken in sorted_ascending(picks):
            rank = rank + (rank >= taken)
        picks.append(rank)
    ranks = jnp.clip(jnp.stack(picks, -1), 0, valid_rows.shape[0] - 1)
    return valid_rows[ranks]
