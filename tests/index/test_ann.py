"""Nearest items by their best window pair: exact against a float64 brute force, IVF close to it."""

import numpy as np

from artdup_jax.index.ann import WindowIndex


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def brute_force(descriptors, k):
    """float64 max over window pairs; top k other items, ties to the lower id."""
    d = descriptors.astype(np.float64)
    sims = np.einsum("iwd,jvd->ijwv", d, d).max(axis=(2, 3))
    np.fill_diagonal(sims, -np.inf)
    return np.stack([np.lexsort((np.arange(len(d)), -row))[:k] for row in sims])


def clustered(rng, items, windows=4, depth=16, clusters=20):
    centres = rng.normal(size=(clusters, depth))
    picked = centres[rng.integers(0, clusters, size=(items, windows))]
    return unit(picked + 0.3 * rng.normal(size=(items, windows, depth)))


def test_exact_neighbours_equal_the_brute_force():
    rng = np.random.default_rng(0)
    descriptors = clustered(rng, 60)
    index = WindowIndex(16, 4, "flat")
    index.add(np.arange(60), descriptors)
    ids, sims = index.neighbours(np.arange(60), descriptors, 5)
    np.testing.assert_array_equal(ids, brute_force(descriptors, 5))
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_removed_items_are_not_found_and_short_lists_are_padded():
    rng = np.random.default_rng(1)
    descriptors = clustered(rng, 4)
    index = WindowIndex(16, 4, "flat")
    index.add(np.arange(4), descriptors)
    index.remove([2])
    ids, sims = index.neighbours(np.array([0]), descriptors[:1], 5)
    assert sorted(ids[0, :2]) == [1, 3] and list(ids[0, 2:]) == [-1, -1, -1] and np.isinf(sims[0, 2:]).all()


def test_ivf_recall_of_the_exact_neighbours():
    rng = np.random.default_rng(2)
    descriptors = clustered(rng, 2000, clusters=200)
    index = WindowIndex(16, 4, "ivf", num_lists=WindowIndex.lists_for(8000))
    index.train(descriptors)
    index.add(np.arange(2000), descriptors)
    ids, _ = index.neighbours(np.arange(200), descriptors[:200], 10)
    exact = brute_force(descriptors, 10)[:200]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall > 0.9, recall
