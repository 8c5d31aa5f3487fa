"""Per-pair steps of MAGSAC++ run on only the pairs of a batch that need them, and on only the rows they use.

A batch runs a step (a local optimisation, a polish, a refit) vmapped over all its pairs, even where only a
few need it. :func:`map_flagged` runs it on the flagged pairs only, a fixed-size group at a time, inside one
compiled loop. Real match sets of one batch differ widely in size (the tool's discovery candidates hold 12 to
256 matches, half of them fewer than 35), and a padded batch makes every pair pay for the largest:
:func:`map_flagged_compact` runs the pairs whose valid matches all fit in a few rows on those rows only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

COMPACT_FACTOR = 4  # padded rows / compact rows from which small pairs run compacted


def map_flagged(fn, flags, default, args, fraction: int):
    """``fn`` vmapped over the pairs where ``flags`` ``(P,)`` is set, ``default`` (a pytree with leading ``(P,)``)
    elsewhere: ``fn(*args[p])`` for flagged ``p``. A few flagged pairs do not make the whole batch pay: the
    flagged pairs are taken ``P / fraction`` at a time (none at all if none is flagged).
    """
    num_pairs = flags.shape[0]
    group = max(1, num_pairs // fraction)
    first_rows = -jnp.arange(num_pairs, dtype=jnp.float32)

    def step(carry):
        out, todo = carry
        _, rows = jax.lax.top_k(jnp.where(todo, first_rows, -jnp.inf), group)
        go = todo[rows]
        done = jax.vmap(fn)(*jax.tree.map(lambda a: a[rows], args))
        part = jax.vmap(lambda g, new, old: jax.tree.map(lambda u, v: jnp.where(g, u, v), new, old))(
            go, done, jax.tree.map(lambda a: a[rows], out))
        return jax.tree.map(lambda all_, p: all_.at[rows].set(p), out, part), todo.at[rows].set(False)

    return jax.lax.while_loop(lambda c: jnp.any(c[1]), step, (default, flags))[0]


def compact(problem):
    """A search problem (``magsac_search.Problem``) on its preemption rows only (``subset``, valid rows in
    sampling order): for a pair with no more valid matches than those rows, they hold every valid match, so a
    fit or a score on the compact problem equals the one on the full problem up to float32 summation order."""
    rows, valid = problem.subset
    return problem._replace(src=problem.src[rows], dst=problem.dst[rows], valid=valid)


def map_flagged_compact(fn, flags, default, problems, args: tuple, fraction: int, compact_rows: int):
    """:func:`map_flagged` of ``fn(problem, *args)`` over a batch of search problems ``problems`` (leading
    ``(P,)``), where the pairs with at most ``compact_rows`` valid matches (the size of their ``subset``) run on
    their :func:`compact` problem. ``fn`` may use only the problem's points, validity and thresholds.

    The small and the other pairs then take a loop each; where the padded rows are fewer than
    :data:`COMPACT_FACTOR` times ``compact_rows``, the rows saved do not pay for the second loop, and every
    flagged pair runs on all rows.
    """
    if problems.src.shape[-2] < COMPACT_FACTOR * compact_rows:
        return map_flagged(fn, flags, default, (problems, *args), fraction)
    small = problems.n_valid <= compact_rows
    out = map_flagged(lambda p, *a: fn(compact(p), *a), flags & small, default, (problems, *args), fraction)
    return map_flagged(fn, flags & ~small, out, (problems, *args), fraction)
