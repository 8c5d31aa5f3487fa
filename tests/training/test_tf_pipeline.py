"""tf.data batches are a function of (step, process): resuming and re-sharding see the same examples."""

import numpy as np

from artdup_jax.data.tf_pipeline import indexed_batches

SIGNATURE = {"index": ((), np.int64), "square": ((2,), np.float32)}


def _example(index):
    return {"index": index, "square": np.array([index, index * index], np.float32)}


def _batches(first_step, steps, process_index=0, process_count=1, global_batch=4):
    iterator = indexed_batches(_example, SIGNATURE, first_step=first_step, global_batch=global_batch,
                               process_index=process_index, process_count=process_count, threads=2)
    return [next(iterator) for _ in range(steps)]


def test_batch_for_a_step_does_not_depend_on_where_the_run_started():
    from_start = _batches(0, 5)
    resumed = _batches(3, 2)
    for step in (3, 4):
        np.testing.assert_array_equal(resumed[step - 3]["index"], from_start[step]["index"])
    np.testing.assert_array_equal(from_start[2]["index"], [8, 9, 10, 11])


def test_processes_read_disjoint_slices_that_make_up_the_global_batch():
    whole = _batches(1, 1)[0]
    halves = [_batches(1, 1, process_index=p, process_count=2)[0] for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([h["index"] for h in halves]), whole["index"])
    np.testing.assert_array_equal(whole["square"][:, 1], whole["index"].astype(np.float32) ** 2)


def test_thread_pool_fallback_yields_the_same_batches():
    from artdup_jax.data.tf_pipeline import thread_batches

    expected = _batches(2, 3, process_index=1, process_count=2)
    iterator = thread_batches(_example, SIGNATURE, first_step=2, global_batch=4, process_index=1, process_count=2,
                              threads=3)
    for want in expected:
        got = next(iterator)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
            assert got[name].dtype == want[name].dtype
