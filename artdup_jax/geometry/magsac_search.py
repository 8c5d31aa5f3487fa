"""MAGSAC++'s hypothesis search for one pair (steps 1-4 of :mod:`artdup_jax.geometry.magsac`), and its
scheduling over a batch of pairs.

A :class:`Problem` is one pair in Hartley-normalised coordinates with what the sampler needs; a
:class:`State` is the number of minimal samples drawn and the best model so far. :func:`search` draws,
fits and scores a chunk of hypotheses at a time until the adaptive stopping rule is met; :func:`search_batch`
does the same for a vmapped batch of problems without letting its slowest pair set the cost of all.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from artdup_jax.geometry.magsac_local import Best, sigma_consensus
from artdup_jax.geometry.magsac_sampling import draw_samples
from artdup_jax.geometry.magsac_scoring import Thresholds, score_models
from artdup_jax.geometry.ransac import (
    MODELS,
    _minimal_affine,
    _minimal_homography,
    _required_iterations,
    _sample_is_usable,
)

PREEMPTION_ROWS = 64  # matches every hypothesis is scored on first (when there are more)
_FULLY_SCORED = 2  # hypotheses per chunk then scored on every match
_LO_ROUNDS = 1  # sigma-consensus++ rounds on a new best hypothesis
GROUP_FRACTION = 8  # a batch's search advances P / 8 pairs (at least 1) per step


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
    fit = _minimal_homography if model == "homography" else _minimal_affine
    H = fit(sample_src, sample_dst)
    usable = (_sample_is_usable(sample_src, sample_dst, model) & jnp.all(jnp.isfinite(H), axis=(-2, -1))
              & (problem.n_valid >= k) & (first + jnp.arange(chunk) < problem.max_iterations))
    H = jnp.where(usable[:, None, None], H, jnp.eye(3, dtype=H.dtype))
    return _orient(H, sample_src), usable


def _best_of_chunk(problem: Problem, H, usable, *, model: str) -> Best:
    """The chunk's best hypothesis by MAGSAC++ score (``score`` -1 if none is usable).

    Where there are more matches than :data:`PREEMPTION_ROWS`, every hypothesis is scored on that many
    first and only the :data:`_FULLY_SCORED` best of those on every match (preemptive verification: most
    hypotheses are poor, and a few dozen matches tell them apart).
    """
    p = problem
    if p.src.shape[0] > PREEMPTION_ROWS:
        rows, subset_valid = p.subset
        rough, _ = score_models(H, p.src[rows], p.dst[rows], subset_valid, p.thresholds, model)
        _, top = jax.lax.top_k(jnp.where(usable, rough, -1.0), _FULLY_SCORED)
        H, usable = H[top], usable[top]
    score, count = score_models(H, p.src, p.dst, p.valid, p.thresholds, model)
    i = jnp.argmax(jnp.where(usable, score, -1.0))
    return Best(H[i], jnp.where(usable[i], score[i], -1.0), count[i])


def _step(problem: Problem, state: State, *, model: str, chunk: int, prosac: bool, batched: bool) -> State:
    """One chunk: draw, fit and score ``chunk`` hypotheses; locally optimise a new best; keep the best."""
    p = problem
    H, usable = _hypotheses(p, state.drawn, model=model, chunk=chunk, prosac=prosac)
    candidate = _best_of_chunk(p, H, usable, model=model)

    def optimise(c):
        return sigma_consensus(c, p.src, p.dst, p.valid, p.thresholds, model=model, rounds=_LO_ROUNDS,
                               batched=batched)

    # Only a new best is optimised (under vmap both branches run, then select).
    candidate = jax.lax.cond(candidate.score > state.best.score, optimise, lambda c: c, candidate)
    better = candidate.score > state.best.score
    best = jax.tree.map(lambda new, old: jnp.where(better, new, old), candidate, state.best)
    return State(state.drawn + chunk, best)


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
    scatters them back: every pair gets a first chunk, then the few hard ones share the steps that follow.
    Every pair still sees exactly its own sequence of chunks.
    """
    model = static["model"]
    num_pairs = problems.n_valid.shape[0]
    group = max(1, num_pairs // GROUP_FRACTION)
    unfinished = jax.vmap(functools.partial(_unfinished, model=model))
    tie_break = jnp.arange(num_pairs, dtype=jnp.float32) / num_pairs

    def step_group(states):
        waiting = unfinished(problems, states)
        priority = jnp.where(waiting, -states.drawn.astype(jnp.float32) - tie_break, -jnp.inf)
        _, rows = jax.lax.top_k(priority, group)
        take = functools.partial(jax.tree.map, lambda a: a[rows])

        def advance(problem, state, go):
            stepped = _step(problem, state, **static)
            return jax.tree.map(lambda new, old: jnp.where(go, new, old), stepped, state)

        done = jax.vmap(advance)(take(problems), take(states), waiting[rows])
        return jax.tree.map(lambda all_, part: all_.at[rows].set(part), states, done)

    return jax.lax.while_loop(lambda s: jnp.any(unfinished(problems, s)), step_group, states)
