"""The steps of MAGSAC++ on one pair and their batched driver: normalise (:func:`prepare`), search
(:mod:`artdup_jax.geometry.magsac_search`), polish (:func:`polish`), refit where the residuals look Gaussian
(:func:`refit`), back to pixels (:func:`finish`); :func:`run_batch` runs them on a batch of pairs.

The estimator and its public API are described in :mod:`artdup_jax.geometry.magsac`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from artdup_jax.geometry.homography import compose, invert, normalise_scale
from artdup_jax.geometry.magsac_flagged import map_flagged, map_flagged_compact
from artdup_jax.geometry.magsac_local import Best, gaussian_cut, sigma_consensus, truncated_least_squares
from artdup_jax.geometry.magsac_sampling import prosac_schedule, sample_order, stratified_rows
from artdup_jax.geometry.magsac_scoring import Thresholds, sigma_quantile, squared_residuals
from artdup_jax.geometry.magsac_search import (
    GROUP_FRACTION,
    PREEMPTION_ROWS,
    Problem,
    State,
    initial_state,
    search,
    search_batch,
)
from artdup_jax.geometry.ransac import MODELS

DEFAULT_MAX_THRESHOLD = 8.0  # px; k * sigma_max when sigma_max is not given (OpenCV USAC's homography default)
_POLISH_ROUNDS = 2  # sigma-consensus++ rounds on the final model
_LS_ROUNDS = 2  # truncated least-squares rounds (final polishing)


class MagsacResult(NamedTuple):
    """Output of the MAGSAC++ estimator; leading ``(P,)`` dims for a batch of pairs.

    H: ``(..., 3, 3)`` float32 mapping src to dst, ``H[2, 2] = 1`` (affine: last row ``0 0 1``); the identity
      where ``found`` is False.
    inliers: ``(..., N)`` bool, reprojection distance below the reference threshold; all False if not found.
    score: ``(...,)`` float32 MAGSAC++ score, a soft inlier count in ``[0, n_valid]``; 0 if not found.
    found: ``(...,)`` bool.
    iterations: ``(...,)`` int32 minimal samples drawn (a multiple of the chunk, at most ``max_iterations``).
    num_inliers: ``(...,)`` int32, ``inliers.sum(-1)``.
    """

    H: jax.Array
    inliers: jax.Array
    score: jax.Array
    found: jax.Array
    iterations: jax.Array
    num_inliers: jax.Array


# ----------------------------------------------------------------------------------------------------
# One pair
# ----------------------------------------------------------------------------------------------------


def usable_rows(src, dst, valid):
    """``valid`` without rows holding non-finite coordinates; ``(..., N)`` bool."""
    finite = [jnp.isfinite(a[..., i]) for a in (src, dst) for i in (0, 1)]  # no reductions over a size-2 axis
    return jnp.asarray(valid, bool) & finite[0] & finite[1] & finite[2] & finite[3]


def _normalising_similarity(xy, valid):
    """Hartley's normalisation of ``(N, 2)`` points: the ``(3, 3)`` similarity taking the valid points' centroid
    to 0 and their mean distance from it to sqrt(2) (as ``homography._hartley_transform``, written per
    coordinate: XLA:CPU reduces over a size-2 axis slowly)."""
    x, y, w = xy[:, 0], xy[:, 1], jnp.where(valid, 1.0, 0.0)
    total = jnp.maximum(jnp.sum(w), 1.0)
    cx, cy = jnp.sum(w * x) / total, jnp.sum(w * y) / total
    mean_distance = jnp.sum(w * jnp.sqrt((x - cx) ** 2 + (y - cy) ** 2)) / total
    s = jnp.sqrt(2.0) / jnp.maximum(mean_distance, jnp.finfo(xy.dtype).eps)
    zero, one = jnp.zeros_like(s), jnp.ones_like(s)
    return jnp.stack([jnp.stack([s, zero, -s * cx]), jnp.stack([zero, s, -s * cy]), jnp.stack([zero, zero, one])])


class _Frames(NamedTuple):
    t_src: jax.Array  # (3, 3) Hartley similarity of src
    t_dst: jax.Array  # (3, 3) ... of dst


def prepare(src, dst, valid, order, threshold, sigma_max, max_iterations, confidence, seed, *,
             model: str, prosac: bool) -> tuple[Problem, _Frames]:
    """Normalise one pair (``(N, 2)`` points, ``(N,)`` valid and order) for the search."""
    src, dst = jnp.where(valid[:, None], src, 0.0), jnp.where(valid[:, None], dst, 0.0)
    n_valid = jnp.sum(valid, dtype=jnp.int32)
    # Hartley-normalised coordinates for well-conditioned fits; a similarity scales distances uniformly.
    t_src, t_dst = _normalising_similarity(src, valid), _normalising_similarity(dst, valid)
    max_threshold = jnp.where(sigma_max > 0, sigma_quantile() * sigma_max,
                              jnp.maximum(DEFAULT_MAX_THRESHOLD, threshold))
    # Materialised once: fused into the loops' consumers, XLA would redo the normalisation in every pass.
    src_n, dst_n = jax.lax.optimization_barrier((src * t_src[0, 0] + t_src[:2, 2], dst * t_dst[0, 0] + t_dst[:2, 2]))
    problem = Problem(
        src=src_n,
        dst=dst_n,
        valid=valid,
        order=order,
        schedule=(prosac_schedule(n_valid, src.shape[0], MODELS[model], max_iterations) if prosac
                  else jnp.zeros((0,), jnp.float32)),
        subset=stratified_rows(order, n_valid, min(PREEMPTION_ROWS, src.shape[0])),
        thresholds=Thresholds(inv_max_sq=1.0 / (max_threshold * t_dst[0, 0]) ** 2,
                              reference_sq=(threshold * t_dst[0, 0]) ** 2),
        key_bits=jax.random.bits(jax.random.key(seed), (2,), jnp.uint32),
        n_valid=n_valid,
        max_iterations=max_iterations,
        confidence=confidence,
    )
    return problem, _Frames(t_src, t_dst)


def polish(problem: Problem, state: State, *, model: str):
    """More sigma-consensus++ rounds on the best model; with the least-squares cut and the Gaussian test of
    :func:`artdup_jax.geometry.magsac_local.gaussian_cut`: ``(Best, cut_sq, gaussian)``."""
    p = problem
    polished = sigma_consensus(state.best, p.src, p.dst, p.valid, p.thresholds, model=model, rounds=_POLISH_ROUNDS)
    return (polished, *gaussian_cut(polished.H, p.src, p.dst, p.valid, p.thresholds, model))


def refit(problem: Problem, polished: Best, cut_sq, *, model: str) -> Best:
    """Truncated least squares from the polished model. Under Gaussian noise least squares is the more accurate
    (MAGSAC++'s weights lose some efficiency there); on heavier-tailed residuals, as real keypoint matches
    have, the MAGSAC++ fit is, so callers keep this fit only where the residuals look Gaussian."""
    p = problem
    return truncated_least_squares(polished, p.src, p.dst, p.valid, p.thresholds, cut_sq, model=model,
                                   rounds=_LS_ROUNDS)


def finish(problem: Problem, frames: _Frames, state: State, polished: Best, *, model: str) -> MagsacResult:
    """The final model in pixels, its inliers at the reference threshold, and whether it counts as found."""
    p, k = problem, MODELS[model]
    inliers = p.valid & (squared_residuals(polished.H[None], p.src, p.dst, model)[0] < p.thresholds.reference_sq)
    H = normalise_scale(compose(invert(frames.t_dst), compose(polished.H, frames.t_src)))
    if model == "affine":
        H = H.at[2].set(jnp.asarray([0.0, 0.0, 1.0], H.dtype))
    found = (state.best.score > 0) & (jnp.sum(inliers) >= k) & jnp.all(jnp.isfinite(H))
    return MagsacResult(
        H=jnp.where(found, H, jnp.eye(3, dtype=H.dtype)),
        inliers=inliers & found,
        score=jnp.where(found, polished.score, 0.0),
        found=found,
        iterations=jnp.minimum(state.drawn, p.max_iterations),
        num_inliers=jnp.where(found, jnp.sum(inliers, dtype=jnp.int32), 0),
    )


# ----------------------------------------------------------------------------------------------------
# A batch of pairs
# ----------------------------------------------------------------------------------------------------


def run_batch(src, dst, valid, quality, threshold, sigma_max, max_iterations, confidence, seed, *, model, chunk):
    """``magsac.magsac_pair`` on ``(P, N, ...)`` arrays (``quality`` None or ``(P, N)``), with
    :func:`artdup_jax.geometry.magsac_search.search_batch`."""
    valid = usable_rows(src, dst, valid)
    order = sample_order(valid, quality)  # outside vmap: one in-order test for the whole batch
    prepare_one = functools.partial(prepare, threshold=threshold, sigma_max=sigma_max, max_iterations=max_iterations,
                                confidence=confidence, model=model, prosac=quality is not None)
    problems, frames = jax.vmap(lambda s, d, v, o, sd: prepare_one(s, d, v, o, seed=sd))(src, dst, valid, order, seed)
    states = jax.tree.map(lambda a: jnp.broadcast_to(a, (src.shape[0],) + a.shape), initial_state())
    static = dict(model=model, chunk=chunk, prosac=quality is not None)
    if src.shape[0] <= GROUP_FRACTION:  # a few pairs: the plain vmapped loop, without the gathers and scatters
        states = jax.vmap(functools.partial(search, **static))(problems, states)
        polished, cut_sq, gaussian = jax.vmap(functools.partial(polish, model=model))(problems, states)
        polished = map_flagged(functools.partial(refit, model=model), gaussian, polished, (problems, polished, cut_sq),
                               GROUP_FRACTION)
    else:  # search, polish and refit a group at a time, each pair on the rows it uses
        states = search_batch(problems, states, **static)
        found = states.best.score > 0  # a pair without a model stays not found whatever its polish
        default = (states.best, jnp.zeros_like(states.best.score), jnp.zeros_like(found))
        polished, cut_sq, gaussian = map_flagged_compact(
            functools.partial(polish, model=model), found, default, problems, (states,), GROUP_FRACTION,
            PREEMPTION_ROWS)
        polished = map_flagged_compact(functools.partial(refit, model=model), gaussian, polished, problems,
                                       (polished, cut_sq), GROUP_FRACTION, PREEMPTION_ROWS)
    return jax.vmap(functools.partial(finish, model=model))(problems, frames, states, polished)
