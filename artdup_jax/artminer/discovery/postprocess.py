"""Post-processing of a pair's inliers on the device: one match per cell, no small connected components.

Components are labelled by min-label propagation with pointer jumping over 8-neighbour lists found by sorting
(no ``K x K`` matrices, no grid of the unbounded virtual target size).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

_OFFSETS = np.array([(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc], np.int32)  # 8-neighbours


def _neighbours(cells, valid):
    """``(K, 8)`` index of each valid cell's 8-neighbours among the valid cells (-1: none). The valid cells must be
    distinct (one-to-one matches are, on both sides). Sort-and-search: ``O(K log K)``, no ``K x K`` matrix."""
    k = cells.shape[0]
    width = jnp.max(jnp.where(valid, cells[:, 1], 0)) + 3  # columns shifted by 1, so -1 and max + 1 fit
    big = jnp.iinfo(jnp.int32).max
    keys = jnp.where(valid, (cells[:, 0] + 1) * width + cells[:, 1] + 1, big)
    order = jnp.argsort(keys)
    sorted_keys = keys[order]
    wanted = keys[:, None] + _OFFSETS[None, :, 0] * width + _OFFSETS[None, :, 1]  # (K, 8)
    position = jnp.clip(jnp.searchsorted(sorted_keys, wanted), 0, k - 1)
    found = (sorted_keys[position] == wanted) & valid[:, None]
    return jnp.where(found, order[position], -1)


def _propagate(labels, neighbours, keep):
    """One round of min-label propagation plus two pointer jumps; a label is always a kept cell of the same
    component with an index no larger, so the labels settle on each component's smallest index."""
    k = labels.shape[0]
    present = (neighbours >= 0) & keep[jnp.maximum(neighbours, 0)]
    new = jnp.minimum(labels, jnp.min(jnp.where(present, labels[jnp.maximum(neighbours, 0)], k), axis=1))
    new = jnp.where(keep, new, jnp.arange(k))
    new = new[new]
    return new[new]


def _sizes(labels, keep):
    counts = jnp.zeros(labels.shape, jnp.int32).at[labels].add(keep.astype(jnp.int32))
    return jnp.where(keep, counts[labels], 0)


def _remove_small_components(cells1, cells2, valid, min_component: int):
    """The release's small-component removal, on one-to-one matches (so a mask's components are components of the
    matches' cells): drop matches lying in an 8-connected component of fewer than ``min_component`` cells on
    either side, until nothing changes; none are left once at most ``min_component`` remain.

    One flat loop: labels of both sides are propagated until they settle, then the small components are
    dropped and the labels restart (nested loops compile much slower under vmap).
    """
    neighbours1, neighbours2 = _neighbours(cells1, valid), _neighbours(cells2, valid)
    index = jnp.arange(cells1.shape[0])

    def step(state):
        keep, labels1, labels2, _ = state
        new1, new2 = _propagate(labels1, neighbours1, keep), _propagate(labels2, neighbours2, keep)
        settled = jnp.all(new1 == labels1) & jnp.all(new2 == labels2)
        enough = jnp.sum(keep) > min_component
        pruned = (keep & enough & (_sizes(new1, keep) >= min_component) & (_sizes(new2, keep) >= min_component))
        changed = jnp.any(pruned != keep)
        keep = jnp.where(settled, pruned, keep)
        restart = settled & changed
        return (keep, jnp.where(restart, index, new1), jnp.where(restart, index, new2), ~settled | changed)

    keep, _, _, _ = lax.while_loop(lambda s: s[3], step, (valid, index, index, jnp.bool_(True)))
    return keep


def _one_to_one(cells, similarity, keep):
    """Per distinct cell of ``cells (K, 2)`` only its kept match with the highest similarity (the lowest index on
    ties) stays kept: one sort by (cell, -similarity, index), the first of each run wins."""
    k = cells.shape[0]
    width = jnp.max(jnp.where(keep, cells[:, 1], 0)) + 1
    key = jnp.where(keep, cells[:, 0] * width + cells[:, 1], jnp.iinfo(jnp.int32).max)
    order = jnp.lexsort((jnp.arange(k), -similarity, key))
    sorted_key = key[order]
    first = jnp.concatenate([jnp.ones((1,), bool), sorted_key[1:] != sorted_key[:-1]])
    return keep & jnp.zeros((k,), bool).at[order].set(first)
