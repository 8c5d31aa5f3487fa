"""MAGSAC++'s local optimisation and final polishing of one model, on Hartley-normalised points.

* :func:`sigma_consensus`: sigma-consensus++, iteratively reweighted least squares with the MAGSAC++ weights
  (weighted DLT for homographies, weighted affine least squares), the best-scoring iterate kept;
* :func:`truncated_least_squares`: least squares of the transfer error over the matches within the 0.9999
  quantile of the residual under the noise level estimated from the model (:func:`noise_variance`), i.e.
  the Gaussian maximum-likelihood fit; :func:`gaussian_cut` gives that cut and a kurtosis test of whether
  the residuals look Gaussian (only then is the fit worth its cost).

Points ``src, dst`` are ``(N, 2)``, ``valid`` ``(N,)`` bool; models ``(3, 3)`` map src to dst.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.homography import normalise_scale
from artdup_jax.geometry.magsac_fitting import gauss_newton_step, weighted_dlt
from artdup_jax.geometry.magsac_scoring import (
    Thresholds,
    magsac_weight,
    score_models,
    score_residuals,
    squared_residuals,
)
from artdup_jax.geometry.ransac import MODELS, _fit_affine_least_squares


_GAUSSIAN_KURTOSIS = 2.3  # 2 for 2-D Gaussian residuals; SIFT matches measured 2.4-3.3


class Best(NamedTuple):
    """A model with its MAGSAC++ score (float32) and inlier count at the reference threshold (int32)."""

    H: jax.Array
    score: jax.Array
    count: jax.Array


def keep_better(best: Best, H, src, dst, valid, thresholds: Thresholds, model: str) -> Best:
    """Score ``H`` ``(3, 3)`` and keep it if it beats ``best`` (non-finite fits never do)."""
    score, count = score_models(H[None], src, dst, valid, thresholds, model)
    better = jnp.all(jnp.isfinite(H)) & (score[0] > best.score)
    return Best(jnp.where(better, H, best.H), jnp.where(better, score[0], best.score),
                jnp.where(better, count[0], best.count))


def sigma_consensus(best: Best, src, dst, valid, thresholds: Thresholds, *, model: str, rounds: int) -> Best:
    """sigma-consensus++: ``rounds`` of reweight-and-refit from ``best.H``; the best-scoring model is kept.

    Each round weights the matches by the MAGSAC++ weight of their residual under the current model and
    refits by weighted least squares (DLT with ``h33 = 1``, or the affine normal equations); rounds go on
    from the refit even when it scores lower.
    """
    k = MODELS[model]

    def round_(_, state):
        H, kept = state
        r2 = squared_residuals(H[None], src, dst, model)[0]
        weights = jnp.where(valid, magsac_weight(r2 * thresholds.inv_max_sq), 0.0)
        fit = (weighted_dlt(src, dst, weights) if model == "homography"
               else _fit_affine_least_squares(src, dst, weights))
        usable = (jnp.sum(jnp.where(weights > 0, 1.0, 0.0)) >= k) & jnp.all(jnp.isfinite(fit))
        H = jnp.where(usable, fit, H)
        return H, keep_better(kept, H, src, dst, valid, thresholds, model)

    return jax.lax.fori_loop(0, rounds, round_, (best.H, best))[1]


def noise_variance(H, src, dst, valid, thresholds: Thresholds, model: str, rounds: int = 3):
    """Noise variance ``sigma^2`` (normalised dst units) of the matches under ``H``: the fixed point of
    ``sigma^2 = E[r^2 | r < k sigma] / (2 c)``, iterated from ``sigma_max``.

    Under 2-D Gaussian noise ``r^2 / (2 sigma^2)`` is Exp(1), whose mean below its 0.99 quantile ``q`` is ``c``;
    the first rounds shed the outliers.
    """
    r2 = squared_residuals(H[None], src, dst, model)[0]
    q = np.log(100.0)
    truncated_mean = (1.0 - (1.0 + q) / 100.0) / 0.99
    variance = 1.0 / (thresholds.inv_max_sq * 2.0 * q)
    for _ in range(rounds):
        inside = valid & (r2 < 2.0 * q * variance)
        mean = jnp.sum(jnp.where(inside, r2, 0.0)) / jnp.maximum(jnp.sum(jnp.where(inside, 1.0, 0.0)), 1.0)
        variance = jnp.clip(mean / (2.0 * truncated_mean), 1e-12, variance)
    return variance


def gaussian_cut(H, src, dst, valid, thresholds: Thresholds, model: str):
    """The least-squares cut and whether the residuals of ``H`` look Gaussian: ``(cut_sq, gaussian)``.

    The cut is the 0.9999 quantile of the residual at the noise level of :func:`noise_variance` (squared,
    normalised dst units). The kurtosis ``E[r^4] / E[r^2]^2`` of the matches within it is 2 for 2-D Gaussian
    noise and well above for the heavier tails of real keypoint matches, where the MAGSAC++ fit is more
    accurate than least squares.
    """
    cut_sq = jnp.minimum(2.0 * np.log(1e4) * noise_variance(H, src, dst, valid, thresholds, model),
                         1.0 / thresholds.inv_max_sq)
    r2 = squared_residuals(H[None], src, dst, model)[0]
    inside = valid & (r2 < cut_sq)
    n = jnp.maximum(jnp.sum(jnp.where(inside, 1.0, 0.0)), 1.0)
    second = jnp.sum(jnp.where(inside, r2, 0.0)) / n
    fourth = jnp.sum(jnp.where(inside, r2 * r2, 0.0)) / n
    return cut_sq, fourth <= _GAUSSIAN_KURTOSIS * second * second


def truncated_least_squares(best: Best, src, dst, valid, thresholds: Thresholds, cut_sq, *, model: str,
                            rounds: int) -> Best:
    """Least squares of the transfer error over the matches below ``cut_sq`` (from :func:`gaussian_cut`),
    re-selected every round: the Gaussian maximum-likelihood fit. (A cut at the usual 0.99 quantile biases the
    fit towards its starting point.) Homographies take Gauss-Newton steps, each kept only if it lowers the
    cost; affine maps are solved exactly. Returns the fit with its MAGSAC++ score.
    """
    k = MODELS[model]

    def round_(_, state):
        H, r2 = state
        weights = jnp.where(valid & (r2 < cut_sq), 1.0, 0.0)
        if model == "homography":
            H_new = gauss_newton_step(H, src, dst, weights)
        else:
            H_new = _fit_affine_least_squares(src, dst, weights)
        r2_new = squared_residuals(H_new[None], src, dst, model)[0]
        lower = jnp.sum(jnp.where(weights > 0, r2_new, 0.0)) <= jnp.sum(jnp.where(weights > 0, r2, 0.0))
        take = lower & (jnp.sum(weights) >= 2 * k) & jnp.all(jnp.isfinite(H_new))
        return jnp.where(take, H_new, H), jnp.where(take, r2_new, r2)

    H = normalise_scale(best.H)
    H, r2 = jax.lax.fori_loop(0, rounds, round_, (H, squared_residuals(H[None], src, dst, model)[0]))
    score, count = score_residuals(r2, valid, thresholds)
    return Best(H, score, count)
