"""How the batched geometry runs on CPU: compiled for the CPU's widest vectors, and split across its cores.

:func:`cpu_jit` is ``jax.jit`` with XLA:CPU options that suit many small elementwise kernels and reductions
(the robust estimators): loops vectorised for the widest registers the CPU has (LLVM's default stops at 256
bits), and reductions emitted by XLA itself rather than handed to the YNNPACK library, whose per-call cost
dominates on small arrays. The options belong to the compiled program only (nothing process-wide) and are
left out on other backends.

:func:`map_core_shards` runs a batched function on its batch split across the CPU's cores. XLA:CPU runs the
kernels of one program one after another and splits only its larger loops across threads. A program made of
many small kernels, as a while loop over small batched steps is (the robust estimators' searches), keeps
about one core busy. Split into one equal shard per core, each run from its own host thread
(a running program does not hold Python's GIL), the same batch keeps every core busy. Results are exactly
those of one call on the whole batch when the function treats its batch elements independently, which is
the one requirement on ``fn``.

Only on the CPU backend and only for concrete (not traced) arrays; elsewhere, and for small batches, ``fn``
runs once on the whole batch.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np

_POOL_LOCK = threading.Lock()
_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_IN_SHARD = threading.local()  # set in the pool's threads: a nested call runs whole (no waiting on itself)


CPU_COMPILER_OPTIONS = {
    "xla_cpu_prefer_vector_width": 512,  # a preference: CPUs without 512-bit registers keep their widest
    "xla_cpu_experimental_ynn_fusion_type": "",  # no YNNPACK library fusions
}


def cpu_jit(fn=None, **jit_kwargs):
    """``jax.jit(fn, **jit_kwargs)`` compiled with :data:`CPU_COMPILER_OPTIONS` when the default backend is
    the CPU. The backend is looked up at the first call, not at import (a process may still set XLA flags
    then). Usable as a decorator, with or without keyword arguments."""
    if fn is None:
        return functools.partial(cpu_jit, **jit_kwargs)
    compiled = {}
    lock = threading.Lock()

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "jitted" not in compiled:
            with lock:
                if "jitted" not in compiled:
                    options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
                    compiled["jitted"] = jax.jit(fn, compiler_options=options, **jit_kwargs)
        return compiled["jitted"](*args, **kwargs)

    return call


def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    with _POOL_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="core-shard")
        return _POOLS[workers]


def shard_count(batch: int, min_shard: int, workers: int | None = None) -> int:
    """Shards a batch of ``batch`` elements is split into: one per core, each of at least ``min_shard``
    elements, and 1 off the CPU backend."""
    if jax.default_backend() != "cpu":
        return 1
    workers = cpu_cores() if workers is None else workers
    return max(1, min(workers, batch // max(1, min_shard)))


def _is_traced(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def map_core_shards(fn, batched, *, min_shard: int = 16, workers: int | None = None):
    """``fn(*batched)``, computed shard by shard on all cores; the same pytree of outputs.

    Args:
      fn: a function of the arrays in ``batched`` returning a pytree of arrays, each with the same leading
        batch axis, whose element ``p`` depends only on element ``p`` of the inputs (a vmapped or batched
        jitted function).
      batched: a tuple of arrays with a common leading batch size ``P`` (None entries are passed as None).
      min_shard: the smallest shard worth its own call (a call has a fixed cost).
      workers: shards at most (default: the cores this process may use).
    Returns:
      ``fn``'s outputs for the whole batch: shards of equal size (the last padded with copies of the last
      element, whose outputs are dropped), concatenated along the batch axis.
    """
    present = [a for a in batched if a is not None]
    if not present or _is_traced(present) or getattr(_IN_SHARD, "active", False):
        return fn(*batched)
    size = int(np.shape(present[0])[0])
    shards = shard_count(size, min_shard, workers)
    if shards == 1:
        return fn(*batched)
    per_shard = -(-size // shards)
    padded = [None if a is None else _pad_to(np.asarray(a), per_shard * shards) for a in batched]
    pieces = [tuple(None if a is None else a[s * per_shard:(s + 1) * per_shard] for a in padded)
              for s in range(shards)]
    futures = [_pool(shards).submit(_run_ready, fn, piece) for piece in pieces]
    return _concatenate([future.result() for future in futures], size)


@functools.partial(jax.jit, static_argnums=1)
def _concatenate(outputs, size: int):
    """The shards' output pytrees joined along the batch axis and cut to ``size``: one program for all leaves
    (a concatenation per leaf costs a dispatch each)."""
    return jax.tree.map(lambda *parts: jnp.concatenate(parts)[:size], *outputs)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[0] == size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - array.shape[0], axis=0)])


def _run_ready(fn, arrays):
    """``fn(*arrays)`` waited for in this thread (a dispatched program otherwise finishes on another)."""
    _IN_SHARD.active = True
    try:
        return jax.block_until_ready(fn(*arrays))
    finally:
        _IN_SHARD.active = False
