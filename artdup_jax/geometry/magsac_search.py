"""MAGSAC++'s hypothesis search for one pair (steps 1-4 of :mod:`artdup_jax.geometry.magsac`), and its
scheduling over a batch of pairs.

A :class:`Problem` is one pair in Hartley-normalised coordinates with what the sampler needs; a
:class:`State` is the number of minimal samples drawn and the best model so far. :func:`search` draws,
fits and scores a chunk of hypotheses at a time until the adaptive stopping rule is met; :func:`search_batch`
does the same for a vmapped batch of problems without letting its slowest pair set the cost of all, nor
its pairs without a new best pay for the local optimisation of the others
(:func:`artdup_jax.geometry.magsac_flagged.map_flagged_compact`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from artdup_jax.geometry.magsac_flagged import map_flagged_compact
from artdup_jax.geometry.magsac_local import Best, sigma_consensus
from artdup_jax.geometry.magsac_sampling import draw_samples
from artdup_jax.geometry.magsac_scoring import Thresholds, score_models, squared_residuals
from artdup_jax.geometry.ransac import (
    MODELS,
    _minimal_affine,
    _required_iterations,
    _sample_is_usable,
)

PREEMPTION_ROWS = 64  # matches every hypothesis is scored on first (when there are more)
_FULLY_SCORED = 2  # hypotheses per chunk then scored on every match
_LO_ROUNDS = 1  # sigma-consensus++ rounds on a new best hypothesis
GROUP_FRACTION = 8  # a batch's search advances P / 8 pairs (at least 1) per step
TAIL_FRACTIONS = (64,)  # ... P / 64 once no more than that many pairs are left
_LO_FRACTION = 4  # ... and optimises its new bests a quarter of those at a time


class Problem(NamedTuple):
    """One pair, ready for the search: Hartley-normalised points and everything the sampler needs."""

    src: jax.Array  # (N, 2) normalised
    dst: jax.Array  # (N, 2) normalised
    valid: jax.Array  # (N,) bool
    order: jax.Array  # (N,) int32 sampling order
    schedule: jax.Array  # (N,) float32 PROSAC schedule; (0,) without a quality
    subset: tuple  # preemption rows (S,) int32 and their validity (S,) bool
    thresholds: Thresholds
    key_bits: jax.Array  # (2,) uint32
    n_valid: jax.Array  # int32
    max_iterations: jax.Array  # int32
    confidence: jax.Array  # float32


class State(NamedTuple):
    drawn: jax.Array  # int32 minimal samples drawn so far
    best: Best


def initial_state(dtype=jnp.float32) -> State:
    return State(jnp.int32(0), Best(jnp.eye(3, dtype=dtype), jnp.asarray(-1.0, dtype), jnp.int32(0)))


def _square_to_quad(x, y):
    """Entries (row-major list of 9) of the homography, up to scale, from the unit square to the quadrilaterals
    ``x, y`` (lists of 4 arrays): ``ransac._square_to_quad`` written on separate arrays, one per entry."""
    sx, sy = x[0] - x[1] + x[2] - x[3], y[0] - y[1] + y[2] - y[3]
    dx1, dx2, dy1, dy2 = x[1] - x[2], x[3] - x[2], y[1] - y[2], y[3] - y[2]
    den = dx1 * dy2 - dx2 * dy1
    g, h = sx * dy2 - dx2 * sy, dx1 * sy - sx * dy1
    return [(x[1] - x[0]) * den + g * x[1], (x[3] - x[0]) * den + h * x[3], x[0] * den,
            (y[1] - y[0]) * den + g * y[1], (y[3] - y[0]) * den + h * y[3], y[0] * den, g, h, den]


def _minimal_homographies(sample_src, sample_dst):
    """Exact homographies through minimal samples ``(C, 4, 2)``: ``(C, 3, 3)``, unit Frobenius norm, the sign
    chosen so that the sample's src points have ``z > 0`` in sum (as ``ransac._minimal_homography``, then
    oriented). Computed on ``(C,)`` arrays, one per matrix entry: ``(C, 3, 3)`` layouts vectorise poorly on CPU.
    """
    xs, ys = [sample_src[:, i, 0] for i in range(4)], [sample_src[:, i, 1] for i in range(4)]
    a, b, c, d, e, f, g, h, i = _square_to_quad(xs, ys)
    adjugate = [e * i - f * h, c * h - b * i, b * f - c * e, f * g - d * i, a * i - c * g, c * d - a * f,
                d * h - e * g, b * g - a * h, a * e - b * d]
    q = _square_to_quad([sample_dst[:, j, 0] for j in range(4)], [sample_dst[:, j, 1] for j in range(4)])
    m = [q[3 * r] * adjugate[col] + q[3 * r + 1] * adjugate[3 + col] + q[3 * r + 2] * adjugate[6 + col]
         for r in range(3) for col in range(3)]
    # Materialised once: fused into each consumer, XLA would recompute the whole chain for every entry.
    m = list(jax.lax.optimization_barrier(m))
    norm = jnp.sqrt(sum(v * v for v in m))
    z = sum(m[6] * x + m[7] * y + m[8] for x, y in zip(xs, ys))
    scale = jnp.where(z < 0, -1.0, 1.0) / jnp.where(norm > 0, norm, 1.0)
    return jnp.stack([v * scale for v in m], -1).reshape(-1, 3, 3)


def _orient(H, sample_src):
    """Flip the sign of ``(C, 3, 3)`` so that the sample points ``(C, k, 2)`` have ``z > 0``."""
    z = H[:, 2:3, 0] * sample_src[..., 0] + H[:, 2:3, 1] * sample_src[..., 1] + H[:, 2:3, 2]
    return jnp.where(jnp.sum(z, -1) < 0, -1.0, 1.0)[:, None, None] * H


def _hypotheses(problem: Problem, first, *, model: str, chunk: int, prosac: bool):
    """Hypotheses ``first .. first + chunk - 1``: ``(chunk, 3, 3)`` (identity where unusable), ``(chunk,)`` usable."""
    k = MODELS[model]
    rows = draw_samples(problem.key_bits, problem.order, problem.n_valid, first, chunk, k,
                        problem.schedule if prosac else None)
    sample_src, sample_dst = problem.src[rows], problem.dst[rows]  # (chunk, k, 2)
    if model == "homography":
        H = _minimal_homographies(sample_src, sample_dst)
    else:
        H = _orient(_minimal_affine(sample_src, sample_dst), sample_src)
    usable = (_sample_is_usable(sample_src, sample_dst, model) & jnp.all(jnp.isfinite(H), axis=(-2, -1))
              & (problem.n_valid >= k) & (first + jnp.arange(chunk) < problem.max_iterations))
    return jnp.where(usable[:, None, None], H, jnp.eye(3, dtype=H.dtype)), usable


def _rough_scores(H, src, dst, valid, thresholds: Thresholds, model: str):
    """``(C,)`` cheap stand-ins for the MAGSAC++ scores of ``H`` ``(C, 3, 3)``, for ranking only: the gain
    replaced by ``max(0, 1 - u)``, ``u = r^2 / (k sigma_max)^2`` (also 1 at 0, decreasing to 0 at the maximum
    threshold), which needs no square root."""
    u = squared_residuals(H, src, dst, model) * thresholds.inv_max_sq
    return jnp.sum(jnp.where(valid & (u < 1.0), 1.0 - u, 0.0), -1)


def _best_of_chunk(problem: Problem, H, usable, *, model: str) -> Best:
    """The chunk's best hypothesis by MAGSAC++ score (``score`` -1 if none is usable).

    Where there are more matches than :data:`PREEMPTION_ROWS`, every hypothesis is ranked on that many first
    (by :func:`_rough_scores`) and only the :data:`_FULLY_SCORED` best of those are scored on every match
    (preemptive verification: most hypotheses are poor, and a few dozen matches tell them apart).
    """
    p = problem
    if p.src.shape[0] > PREEMPTION_ROWS:
        rows, subset_valid = p.subset
        rough = _rough_scores(H, p.src[rows], p.dst[rows], subset_valid, p.thresholds, model)
        _, top = jax.lax.top_k(jnp.where(usable, rough, -1.0), _FULLY_SCORED)
        H, usable = H[top], usable[top]
    score, count = score_models(H, p.src, p.dst, p.valid, p.thresholds, model)
    i = jnp.argmax(jnp.where(usable, score, -1.0))
    return Best(H[i], jnp.where(usable[i], score[i], -1.0), count[i])


def _candidate(problem: Problem, state: State, *, model: str, chunk: int, prosac: bool) -> Best:
    """Draw, fit and score the next ``chunk`` hypotheses: the best of them."""
    H, usable = _hypotheses(problem, state.drawn, model=model, chunk=chunk, prosac=prosac)
    return _best_of_chunk(problem, H, usable, model=model)


def _optimise(problem: Problem, candidate: Best, *, model: str) -> Best:
    """Local optimisation of a new best: :data:`_LO_ROUNDS` sigma-consensus++ rounds."""
    p = problem
    return sigma_consensus(candidate, p.src, p.dst, p.valid, p.thresholds, model=model, rounds=_LO_ROUNDS)


def _keep(state: State, candidate: Best, chunk: int) -> State:
    better = candidate.score > state.best.score
    best = jax.tree.map(lambda new, old: jnp.where(better, new, old), candidate, state.best)
    return State(state.drawn + chunk, best)


def _step(problem: Problem, state: State, *, model: str, chunk: int, prosac: bool) -> State:
    """One chunk: draw, fit and score ``chunk`` hypotheses; locally optimise a new best; keep the best."""
    candidate = _candidate(problem, state, model=model, chunk=chunk, prosac=prosac)
    # Only a new best is optimised (under vmap both branches run, then select).
    candidate = jax.lax.cond(candidate.score > state.best.score,
                             lambda c: _optimise(problem, c, model=model), lambda c: c, candidate)
    return _keep(state, candidate, chunk)


def _unfinished(problem: Problem, state: State, *, model: str):
    """Budget left and the adaptive rule not yet met (on the inlier count of the best model)."""
    needed = _required_iterations(state.best.count, problem.n_valid, MODELS[model], problem.confidence)
    return (state.drawn < problem.max_iterations) & (state.drawn.astype(jnp.float32) < needed)


def search(problem: Problem, state: State, **static) -> State:
    """Chunks until :func:`_unfinished` says stop."""
    return jax.lax.while_loop(lambda s: _unfinished(problem, s, model=static["model"]),
                              lambda s: _step(problem, s, **static), state)


def search_batch(problems: Problem, states: State, **static) -> State:
    """:func:`search` on a batch ``(P, ...)`` without letting its slowest pair set the cost of all.

    A vmapped while loop would run every pair until the last one stops. Instead each loop step gathers the
    ``P / 8`` unfinished pairs that have drawn the fewest hypotheses, runs one chunk on them (vmapped) and
    scatters them back: every pair gets a first chunk, then the hard ones share the steps that follow. Once
    few pairs are left, the steps gather fewer (``P / 64``: :data:`TAIL_FRACTIONS`), so that a long
    tail of a few very hard pairs does not pay for a full group each step. Every pair still sees exactly its
    own sequence of chunks.
    """
    model, chunk, prosac = static["model"], static["chunk"], static["prosac"]
    num_pairs = problems.n_valid.shape[0]
    sizes = sorted({max(1, num_pairs // f) for f in (GROUP_FRACTION, *TAIL_FRACTIONS)}, reverse=True)
    unfinished = jax.vmap(functools.partial(_unfinished, model=model))
    tie_break = jnp.arange(num_pairs, dtype=jnp.float32) / num_pairs

    def step_group(states, waiting, group):
        priority = jnp.where(waiting, -states.drawn.astype(jnp.float32) - tie_break, -jnp.inf)
        _, rows = jax.lax.top_k(priority, group)
        take = functools.partial(jax.tree.map, lambda a: a[rows])

        group_problems, group_states, go = take(problems), take(states), waiting[rows]
        candidates = jax.vmap(functools.partial(_candidate, model=model, chunk=chunk, prosac=prosac))(
            group_problems, group_states)
        # Only the pairs with a new best are optimised, a few at a time (a vmapped cond would optimise all).
        improved = go & (candidates.score > group_states.best.score)
        optimise = functools.partial(_optimise, model=model)
        candidates = map_flagged_compact(optimise, improved, candidates, group_problems, (candidates,),
                                         _LO_FRACTION, PREEMPTION_ROWS)
        stepped = jax.vmap(functools.partial(_keep, chunk=chunk))(group_states, candidates)
        done = jax.tree.map(lambda new, old: jnp.where(go.reshape(go.shape + (1,) * (new.ndim - 1)), new, old),
                            stepped, group_states)
        return jax.tree.map(lambda all_, part: all_.at[rows].set(part), states, done)

    def step(states):
        waiting = unfinished(problems, states)
        # the smallest group that holds every unfinished pair, or the largest
        branch = jnp.sum(jnp.sum(waiting, dtype=jnp.int32) <= jnp.asarray(sizes[1:], jnp.int32))
        branches = [functools.partial(step_group, group=size) for size in sizes]
        return jax.lax.switch(branch, branches, states, waiting) if len(sizes) > 1 else branches[0](states, waiting)

    return jax.lax.while_loop(lambda s: jnp.any(unfinished(problems, s)), step, states)
