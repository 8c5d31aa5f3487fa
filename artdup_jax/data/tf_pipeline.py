"""tf.data pipelines that run NumPy/OpenCV example functions and feed JAX NumPy batches.

TensorFlow is imported here only, lazily, and configured so it neither grabs an accelerator nor spawns a
thread pool per core next to XLA's. Inference, evaluation and benchmarks never import this module. Where
TensorFlow is not installed (common CUDA images), ``indexed_batches`` falls back to a thread pool that yields
the same batches in the same order (``thread_batches``), with a warning.

Determinism: example ``i`` is always ``make_example(i)``; a process's batch for step ``s`` holds the global
indices ``s * global_batch + process_index * local_batch + k``, so a resumed run (or one with a different
device count) sees exactly the same data at every step.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import warnings
from typing import Callable, Iterator

import numpy as np

_MAX_STEPS = 2**40


@functools.cache
def import_tensorflow(threads: int = 1):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the console
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "training input pipelines need TensorFlow (tensorflow-cpu); install requirements.txt"
        ) from e
    tf.config.set_visible_devices([], "GPU")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def local_slice(global_batch: int, process_index: int, process_count: int) -> tuple[int, int]:
    """``(local_batch, offset)``: this process's examples of step ``s`` are the global indices
    ``s * global_batch + offset + [0, local_batch)`` (one contiguous slice per process)."""
    if global_batch % process_count:
        raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
    local_batch = global_batch // process_count
    return local_batch, process_index * local_batch


def indexed_batches(
    make_example: Callable[[int], dict],
    signature: dict[str, tuple[tuple[int, ...], np.dtype]],
    *,
    first_step: int,
    global_batch: int,
    process_index: int,
    process_count: int,
    threads: int = 2,
    prefetch: int = 2,
) -> Iterator[dict]:
    """Yields this process's local batches, ``{name: (local_batch, *shape) array}``, from step ``first_step`` on.

    ``make_example(index) -> {name: array}`` is any deterministic NumPy/OpenCV function of the global
    example index; ``signature`` gives each output's shape and dtype.
    """
    local_batch, offset = local_slice(global_batch, process_index, process_count)
    try:
        tf = import_tensorflow()
    except ImportError:
        warnings.warn("TensorFlow is not installed: training batches come from a thread pool instead of tf.data",
                      stacklevel=2)
        return thread_batches(make_example, signature, first_step=first_step, global_batch=global_batch,
                              process_index=process_index, process_count=process_count, threads=threads,
                              prefetch=prefetch)
    names = sorted(signature)
    dtypes = [tf.as_dtype(signature[n][1]) for n in names]

    def numpy_example(index):
        example = make_example(int(index))
        return tuple(np.asarray(example[n], dtype=signature[n][1]) for n in names)

    def tf_example(index):
        values = tf.numpy_function(numpy_example, [index], dtypes, stateful=False)
        return {n: tf.ensure_shape(v, signature[n][0]) for n, v in zip(names, values)}

    ds = tf.data.Dataset.range(first_step, _MAX_STEPS)
    ds = ds.map(lambda step: step * global_batch + offset + tf.range(local_batch, dtype=tf.int64)).unbatch()
    ds = ds.map(tf_example, num_parallel_calls=threads, deterministic=True)
    ds = ds.batch(local_batch, drop_remainder=True).prefetch(prefetch)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    options.deterministic = True
    return ds.with_options(options).as_numpy_iterator()


def thread_batches(
    make_example: Callable[[int], dict],
    signature: dict[str, tuple[tuple[int, ...], np.dtype]],
    *,
    first_step: int,
    global_batch: int,
    process_index: int,
    process_count: int,
    threads: int = 2,
    prefetch: int = 2,
) -> Iterator[dict]:
    """``indexed_batches`` without TensorFlow: the same batches, made by ``threads`` Python threads (NumPy and
    OpenCV release the GIL), ``prefetch`` steps ahead."""
    local_batch, offset = local_slice(global_batch, process_index, process_count)
    pool = concurrent.futures.ThreadPoolExecutor(max(1, threads), thread_name_prefix="indexed_batches")

    def example(index: int) -> dict:
        made = make_example(index)
        out = {}
        for name, (shape, dtype) in signature.items():
            out[name] = np.asarray(made[name], dtype=dtype)
            if out[name].shape != tuple(shape):
                raise ValueError(f"example {index}: {name!r} has shape {out[name].shape}, expected {tuple(shape)}")
        return out

    def submit(step: int) -> list:
        return [pool.submit(example, step * global_batch + offset + k) for k in range(local_batch)]

    pending = collections.deque(submit(step) for step in range(first_step, first_step + prefetch + 1))
    next_step = first_step + prefetch + 1
    try:
        while True:
            examples = [future.result() for future in pending.popleft()]
            pending.append(submit(next_step))
            next_step += 1
            yield {name: np.stack([e[name] for e in examples]) for name in sorted(signature)}
    finally:  # also when the generator is dropped: never wait on batches nobody will take
        pool.shutdown(wait=False, cancel_futures=True)
