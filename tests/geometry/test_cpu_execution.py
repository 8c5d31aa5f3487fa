"""Batched geometry on CPU: compiled with the CPU options, split across cores, with the same results."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artdup_jax.geometry import cpu_execution
from artdup_jax.geometry.cpu_execution import cpu_jit, map_core_shards, shard_count
from artdup_jax.geometry.magsac import magsac_homographies
from tests.geometry.random_models import random_homography


def _per_element(x, y):
    return {"sum": jnp.sum(x, axis=1) + y, "first": x[:, 0] * 2}


@pytest.mark.parametrize("size", [7, 32, 33])
def test_shards_give_the_whole_batch_result(size):
    x = np.random.default_rng(size).normal(size=(size, 5)).astype(np.float32)
    y = np.arange(size, dtype=np.float32)
    whole = _per_element(x, y)
    split = map_core_shards(_per_element, (x, y), min_shard=2, workers=3)
    assert shard_count(size, 2, 3) == 3
    for key in whole:
        np.testing.assert_array_equal(np.asarray(split[key]), np.asarray(whole[key]))
        assert split[key].shape == (size,)


def test_shards_run_on_several_threads_at_once():
    seen, both_inside = set(), threading.Barrier(2, timeout=10)

    def fn(x):
        seen.add(threading.get_ident())
        both_inside.wait()  # would time out (BrokenBarrierError) if the shards ran one after the other
        return x + 1

    out = map_core_shards(fn, (np.arange(8),), min_shard=4, workers=2)
    np.testing.assert_array_equal(np.asarray(out), np.arange(8) + 1)
    assert len(seen) == 2


def test_small_batches_traced_arrays_and_nested_calls_run_whole():
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x * 2

    map_core_shards(fn, (np.arange(5),), min_shard=4, workers=2)
    assert calls == [5]  # fewer than two shards' worth
    jax.jit(lambda x: map_core_shards(fn, (x,), min_shard=1, workers=2))(jnp.arange(6))
    assert calls[-1] == 6  # traced: one call on the whole batch

    def outer(x):
        return map_core_shards(fn, (x,), min_shard=1, workers=2)

    calls.clear()
    map_core_shards(outer, (np.arange(8),), min_shard=4, workers=2)
    assert sorted(calls) == [4, 4]  # the inner calls, one per shard thread, did not split again


def test_cpu_jit_matches_jit_and_takes_static_arguments():
    def f(x, *, power):
        return jnp.sum(x ** power, axis=-1)

    x = np.random.default_rng(0).normal(size=(64, 100)).astype(np.float32)
    ours = cpu_jit(f, static_argnames=("power",))
    expected = jax.jit(f, static_argnames="power")(x, power=3)
    np.testing.assert_allclose(np.asarray(ours(x, power=3)), np.asarray(expected), rtol=1e-6, atol=1e-5)


def test_magsac_batch_split_across_cores_equals_one_call(monkeypatch):
    rng = np.random.default_rng(3)
    pairs, rows = 40, 48
    src = rng.uniform(0, 300, (pairs, rows, 2)).astype(np.float32)
    dst = np.empty_like(src)
    for p in range(pairs):
        H = random_homography(rng)
        mapped = np.concatenate([src[p], np.ones((rows, 1), np.float32)], 1) @ H.T
        dst[p] = mapped[:, :2] / mapped[:, 2:]
    dst[:, ::3] = rng.uniform(0, 300, (pairs, len(range(0, rows, 3)), 2))  # a third are outliers
    valid = rng.uniform(size=(pairs, rows)) > 0.1
    results = {}
    for cores in (1, 2):
        monkeypatch.setattr(cpu_execution, "cpu_cores", lambda cores=cores: cores)
        results[cores] = jax.device_get(magsac_homographies(src, dst, valid, threshold=3.0, seed=np.arange(pairs)))
    for field in results[1]._fields:
        np.testing.assert_array_equal(getattr(results[2], field), getattr(results[1], field), err_msg=field)
    assert results[1].found.sum() >= pairs - 2


def test_magsac_batch_without_rows_finds_nothing():
    result = magsac_homographies(np.zeros((3, 0, 2)), np.zeros((3, 0, 2)), np.zeros((3, 0), bool))
    assert result.inliers.shape == (3, 0)
    assert not np.any(np.asarray(result.found))
    np.testing.assert_array_equal(np.asarray(result.H), np.broadcast_to(np.eye(3), (3, 3, 3)))
