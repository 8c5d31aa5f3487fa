"""MAGSAC++'s marginalised loss and IRLS weight (Barath et al., CVPR 2020), as polynomials.

MAGSAC++ scores a model without an inlier-outlier threshold: the residual ``r`` of an inlier is taken to
follow a chi distribution with ``DEGREES_OF_FREEDOM`` (the 2-D forward reprojection error) scaled by an unknown
noise scale ``sigma``, which is marginalised out under a uniform prior on ``[0, sigma_max]``. A point counts
for a given ``sigma`` only while ``r < k sigma`` (``k`` = :data:`SIGMA_QUANTILE`, the chi's 0.99 quantile),
so nothing beyond the *maximum threshold* ``k sigma_max`` counts at all. With ``S = r^2 / (2 sigma_max^2)``,
``a = (DoF - 1) / 2`` and upper / lower incomplete gamma functions ``Gu`` / ``gl``, up to constants:

* IRLS weight (the marginal inlier likelihood): ``w(r) ~ Gu(a, S) - Gu(a, k^2 / 2)``;
* loss (the M-estimator with that weight, ``rho'(r) = r w(r)``): ``rho(r) ~ gl(a + 1, S) + S w(r)``,
  constant from ``r = k sigma_max`` on (every outlier costs the same).

Both are read off polynomials in ``t = r / (k sigma_max)`` (:data:`POLYNOMIAL_DEGREE`), interpolated once
(NumPy/SciPy, first use) at Chebyshev points of ``[0, 1]`` and evaluated by Horner's rule: a few
multiply-adds per residual, where a lookup table costs a gather (slow on CPU), and within 5e-6 of the
exact functions (:func:`_exact`). Both are smooth in ``t`` (not in ``r^2``: the
weight falls linearly from ``r = 0``). Both are scaled to ``[0, 1]``: ``w(0) = 1`` and the outlier loss is 1.
Scores use the *gain* ``1 - rho``: a perfect fit scores 1 per point, an outlier 0, so the score of a model
reads as a soft inlier count.

The residual is the forward reprojection distance in dst: ``|pi(H src) - dst|``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DEGREES_OF_FREEDOM = 2  # the residual is a 2-D reprojection error in the destination image
POLYNOMIAL_DEGREE = 10  # in t = r / (k sigma_max): within 5e-6 of the exact gain and weight in float32


@functools.cache
def sigma_quantile(dof: int = DEGREES_OF_FREEDOM) -> float:
    """``k``: the 0.99 quantile of a chi distribution with ``dof`` degrees of freedom (3.035 for 2)."""
    from scipy.stats import chi2

    return float(np.sqrt(chi2.ppf(0.99, dof)))


def _exact(t, dof: int):
    """Float64 ``(gain, weight)`` at ``t = r / (k sigma_max)`` in ``[0, 1]`` (array), from the closed forms."""
    from scipy.special import gamma, gammainc, gammaincc

    k = sigma_quantile(dof)
    a = (dof - 1) / 2.0
    s = (np.asarray(t, np.float64) * k) ** 2 / 2.0  # S = r^2 / (2 sigma_max^2)
    upper_at_k = gammaincc(a, k * k / 2.0) * gamma(a)  # scipy's are regularised
    weight = np.maximum(gammaincc(a, s) * gamma(a) - upper_at_k, 0.0)
    loss = gammainc(a + 1.0, s) * gamma(a + 1.0) + s * weight
    outlier_loss = gammainc(a + 1.0, k * k / 2.0) * gamma(a + 1.0)
    return 1.0 - loss / outlier_loss, weight / (gamma(a) - upper_at_k)


@functools.cache
def _polynomials(dof: int, degree: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Monomial coefficients (highest power first) of the gain and the weight in ``t``: the interpolants at
    the ``degree + 1`` Chebyshev-Lobatto points of ``[0, 1]`` (exact at both ends)."""
    nodes = 0.5 - 0.5 * np.cos(np.pi * np.arange(degree + 1) / degree)
    out = []
    for values in _exact(nodes, dof):
        fit = np.polynomial.Chebyshev.fit(nodes, values, degree, domain=[0.0, 1.0])
        out.append(tuple(float(c) for c in fit.convert(kind=np.polynomial.Polynomial).coef[::-1]))
    return out[0], out[1]


def _evaluate(coefficients, r2_over_max):
    """The polynomial at ``t = sqrt(u)``, ``u = r2_over_max`` (any shape), clipped to ``[0, 1]``; 0 for
    ``u >= 1``, inf and NaN."""
    inside = r2_over_max < 1.0  # NaN fails the test
    t = jnp.sqrt(jnp.where(inside, jnp.maximum(r2_over_max, 0.0), 1.0))
    value = jnp.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        value = value * t + c
    return jnp.where(inside, jnp.clip(value, 0.0, 1.0), 0.0)


def magsac_gain(r2_over_max):
    """``1 - rho``: MAGSAC++ score of residuals, given as ``r^2 / (k sigma_max)^2`` (any shape).

    1 for a perfect fit, decreasing to 0 at the maximum threshold ``k sigma_max`` and 0 beyond it.
    """
    return _evaluate(_polynomials(DEGREES_OF_FREEDOM, POLYNOMIAL_DEGREE)[0], r2_over_max)


def magsac_weight(r2_over_max):
    """MAGSAC++ IRLS weight of residuals given as ``r^2 / (k sigma_max)^2`` (any shape): 1 at 0, 0 from 1."""
    return _evaluate(_polynomials(DEGREES_OF_FREEDOM, POLYNOMIAL_DEGREE)[1], r2_over_max)


def magsac_gain_reference(r, sigma_max, dof: int = DEGREES_OF_FREEDOM):
    """Float64 NumPy ``1 - rho(r)`` for residuals ``r`` (any shape) in the units of ``sigma_max``, by
    numerical integration of ``rho' = r w`` from the definition of ``w``; for testing the polynomials."""
    from scipy.integrate import quad
    from scipy.special import gammaincc

    k = sigma_quantile(dof)
    a = (dof - 1) / 2.0

    def weight(x):
        return max(gammaincc(a, x * x / (2 * sigma_max ** 2)) - gammaincc(a, k * k / 2), 0.0)

    def rho(x):
        return quad(lambda t: t * weight(t), 0.0, min(x, k * sigma_max))[0]

    outlier = rho(k * sigma_max)
    return np.vectorize(lambda x: 1.0 - rho(x) / outlier)(np.asarray(r, np.float64))


# ----------------------------------------------------------------------------------------------------
# Residuals and scores of models
# ----------------------------------------------------------------------------------------------------


class Thresholds(NamedTuple):
    """Squared thresholds in the units of the (normalised) dst points; traced scalars."""

    inv_max_sq: jax.Array  # 1 / (k sigma_max)^2, the maximum threshold's
    reference_sq: jax.Array  # the reference inlier threshold's square (stopping rule, inlier masks)


def squared_residuals(H, src, dst, model: str):
    """``(C, N)`` squared forward reprojection distances of models ``H`` ``(C, 3, 3)`` on ``(N, 2)`` points.

    A point mapped onto or behind the line at infinity (``z <= 0``; hypotheses are oriented so that their
    sample has ``z > 0``) gets +inf. Written elementwise (no ``@``), so GPU matmuls cannot drop to TF32.
    """
    h = H[:, :, :, None]  # (C, 3, 3, 1) broadcasts against (N,)
    x, y = src[:, 0], src[:, 1]
    u = h[:, 0, 0] * x + h[:, 0, 1] * y + h[:, 0, 2]
    v = h[:, 1, 0] * x + h[:, 1, 1] * y + h[:, 1, 2]
    if model == "affine":
        return (u - dst[:, 0]) ** 2 + (v - dst[:, 1]) ** 2
    z = h[:, 2, 0] * x + h[:, 2, 1] * y + h[:, 2, 2]
    ex, ey = u - dst[:, 0] * z, v - dst[:, 1] * z
    r2 = (ex * ex + ey * ey) / jnp.maximum(z * z, jnp.finfo(z.dtype).tiny)
    return jnp.where(z > 0, r2, jnp.inf)


def score_residuals(r2, valid, thresholds: Thresholds):
    """MAGSAC++ scores ``(...,)`` and inlier counts at the reference threshold ``(...,)`` int32 from squared
    residuals ``(..., N)`` and ``valid`` ``(N,)``."""
    gain = jnp.where(valid, magsac_gain(r2 * thresholds.inv_max_sq), 0.0)
    inliers = jnp.where(valid & (r2 < thresholds.reference_sq), 1.0, 0.0)  # float sums vectorise better on CPU
    return jnp.sum(gain, -1), jnp.sum(inliers, -1).astype(jnp.int32)


def score_models(H, src, dst, valid, thresholds: Thresholds, model: str):
    """MAGSAC++ scores ``(C,)`` float32 and reference-threshold inlier counts ``(C,)`` of ``H`` ``(C, 3, 3)``."""
    return score_residuals(squared_residuals(H, src, dst, model), valid, thresholds)
