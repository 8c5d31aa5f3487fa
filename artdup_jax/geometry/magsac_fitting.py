"""Weighted least-squares fits for MAGSAC++'s IRLS, written for large batches of small problems.

Points are ``(N, 2)`` in a well-conditioned frame (Hartley-normalised: centroid 0, mean distance sqrt 2) with
``(N,)`` non-negative weights (0 removes a point). Homographies are ``(3, 3)`` with ``H[2, 2] = 1``, which is
safe in that frame (``H[2, 2] = 0`` would send the points' centroid to infinity). The 8x8 normal equations
are read off 27 weighted moments of the points, summed in one pass, and solved by Gauss-Jordan elimination
written in jnp, which vectorises across a vmapped batch (a batched LAPACK call costs about ten times more on
CPU). No matmul, so GPU matmuls cannot drop to TF32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_DAMPING = 1e-7  # relative Tikhonov term: keeps the factorisation finite for (near-)singular systems


def solve_spd(A, b):
    """``x`` with ``A x = b`` for a symmetric positive (semi)definite ``A`` ``(n, n)`` and ``b`` ``(n,)``.

    Gauss-Jordan elimination without pivoting (stable for SPD matrices, like Cholesky) on
    ``A + damping * mean(diag A) * I``, one rank-1 update per column; a singular system gives a finite answer,
    not NaN.
    """
    n = A.shape[-1]
    jitter = _DAMPING * jnp.trace(A) / n + jnp.finfo(A.dtype).tiny
    m = jnp.concatenate([A + jitter * jnp.eye(n, dtype=A.dtype), b[:, None]], axis=1)  # (n, n + 1)
    rows = np.arange(n)[:, None]
    for j in range(n):  # unrolled, elementwise only (no scatter): XLA fuses it into a few kernels
        pivot = m[j, j]
        row = m[j] / jnp.where(jnp.abs(pivot) > jnp.finfo(m.dtype).tiny, pivot, 1.0)
        m = jnp.where(rows == j, row[None, :], m - m[:, j:j + 1] * row[None, :])
    return m[:, n]


# The moments the 8x8 normal equations use: (monomial, per-point coefficient) pairs, 27 of the 6 x 7.
_XX, _XY, _YY, _X, _Y, _ONE = range(6)  # monomials of the src point
_A, _AU, _AV, _AR, _EU, _EV, _ER = range(7)  # per-point coefficients
_MOMENTS = ([(m, _A) for m in range(6)] + [(m, _AU) for m in range(5)] + [(m, _AV) for m in range(5)]
            + [(m, _AR) for m in range(3)] + [(m, c) for c in (_EU, _EV) for m in (_X, _Y, _ONE)]
            + [(_X, _ER), (_Y, _ER)])


def _normal_layout():
    """Where each entry of the 8x8 normal matrix and of the right-hand side sits among the 27 moments
    ``sum_i monomial_m(x_i, y_i) * coefficient_c(i)`` of :data:`_MOMENTS`, with its sign."""
    at = {pair: i for i, pair in enumerate(_MOMENTS)}
    xx, xy, yy, x, y, one = _XX, _XY, _YY, _X, _Y, _ONE
    pp = [[at[xx, _A], at[xy, _A], at[x, _A]], [at[xy, _A], at[yy, _A], at[y, _A]],
          [at[x, _A], at[y, _A], at[one, _A]]]
    pq_u = [[at[xx, _AU], at[xy, _AU]], [at[xy, _AU], at[yy, _AU]], [at[x, _AU], at[y, _AU]]]
    pq_v = [[at[xx, _AV], at[xy, _AV]], [at[xy, _AV], at[yy, _AV]], [at[x, _AV], at[y, _AV]]]
    qq = [[at[xx, _AR], at[xy, _AR]], [at[xy, _AR], at[yy, _AR]]]
    index = np.zeros((8, 8), np.int32)
    sign = np.ones((8, 8), np.float32)
    index[0:3, 0:3] = index[3:6, 3:6] = pp
    index[0:3, 3:6] = index[3:6, 0:3] = at[one, _A]
    sign[0:3, 3:6] = sign[3:6, 0:3] = 0.0
    index[0:3, 6:8], index[3:6, 6:8], index[6:8, 6:8] = pq_u, pq_v, qq
    index[6:8, 0:3], index[6:8, 3:6] = np.transpose(pq_u), np.transpose(pq_v)
    sign[0:6, 6:8] = sign[6:8, 0:6] = -1.0
    rhs = [at[x, _EU], at[y, _EU], at[one, _EU], at[x, _EV], at[y, _EV], at[one, _EV], at[x, _ER], at[y, _ER]]
    return index, sign, np.array(rhs, np.int32), np.array([1, 1, 1, 1, 1, 1, -1, -1], np.float32)


_NORMAL_INDEX, _NORMAL_SIGN, _RHS_INDEX, _RHS_SIGN = _normal_layout()


def _sums(terms):
    """Sums over the last axis of same-shape arrays, in one variadic reduction: one pass that computes the
    terms once and keeps every accumulator in registers (separate sums re-read the inputs once each)."""
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    sums = jax.lax.reduce(tuple(terms), zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)),
                          (terms[0].ndim - 1,))
    return jnp.stack(sums, -1)


def _normal_equations(x, y, a, cu, cv, eu, ev):
    """Normal equations ``(8, 8), (8,)`` of the rows ``s [p, 0, -cu q]`` and ``s [0, p, -cv q]`` (one pair per
    point, ``p = (x, y, 1)``, ``q = (x, y)``) with weights ``w`` and right-hand sides ``ru, rv``, from the per-point
    ``a = w s^2``, ``cu, cv`` and ``eu = w s ru``, ``ev = w s rv`` (all ``(N,)``).

    The DLT and the Gauss-Newton step both have this structure, so the whole system is read off 27 moments
    of six point monomials against seven per-point coefficients, about 5x fewer operations than the generic
    ``J^T W J``, summed in a single pass over the points.
    """
    # Materialised first: fused into the reduction, their producers (residuals, weights) would be recomputed
    # for every moment.
    x, y, a, cu, cv, eu, ev = jax.lax.optimization_barrier((x, y, a, cu, cv, eu, ev))
    monomials = [x * x, x * y, y * y, x, y, jnp.ones_like(x)]
    coefficients = [a, a * cu, a * cv, a * (cu * cu + cv * cv), eu, ev, eu * cu + ev * cv]
    moments = _sums([monomials[m] * coefficients[c] if m != _ONE else coefficients[c] for m, c in _MOMENTS])
    return moments[_NORMAL_INDEX] * _NORMAL_SIGN, moments[_RHS_INDEX] * _RHS_SIGN


def _from_params(h):
    return jnp.concatenate([h, jnp.ones_like(h[:1])]).reshape(3, 3)


def weighted_dlt(src, dst, weights):
    """Weighted DLT with ``h33 = 1``: the ``H`` minimising ``sum_i w_i |(u_i, v_i) z_i - (H src_i)_{x, y}|^2``.

    Args:
      src, dst: ``(N, 2)``; weights: ``(N,)``.
    Returns:
      ``(3, 3)``, ``H[2, 2] = 1``.
    """
    u, v = dst[:, 0], dst[:, 1]
    normal, rhs = _normal_equations(src[:, 0], src[:, 1], weights, u, v, weights * u, weights * v)
    return _from_params(solve_spd(normal, rhs))


def transfer_error_sq(H, src, dst):
    """``(N,)`` squared forward transfer error ``|pi(H src) - dst|^2`` of one ``(3, 3)`` model."""
    x, y = src[:, 0], src[:, 1]
    z = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    safe_z = jnp.where(jnp.abs(z) > jnp.finfo(z.dtype).tiny, z, 1.0)
    u = (H[0, 0] * x + H[0, 1] * y + H[0, 2]) / safe_z
    v = (H[1, 0] * x + H[1, 1] * y + H[1, 2]) / safe_z
    return jnp.where(z > 0, (u - dst[:, 0]) ** 2 + (v - dst[:, 1]) ** 2, jnp.inf)


def gauss_newton_step(H, src, dst, weights):
    """One Gauss-Newton step on ``sum_i w_i |pi(H src_i) - dst_i|^2`` over the 8 entries of ``H / H[2, 2]``.

    Args:
      H: ``(3, 3)`` with ``H[2, 2] != 0``; src, dst: ``(N, 2)``; weights: ``(N,)``.
    Returns:
      ``(3, 3)`` with ``H[2, 2] = 1`` (callers keep it only if it lowers their cost).
    """
    H = H / H[2, 2]
    x, y = src[:, 0], src[:, 1]
    z = H[2, 0] * x + H[2, 1] * y + 1.0
    inv_z = 1.0 / jnp.where(jnp.abs(z) > jnp.finfo(z.dtype).tiny, z, 1.0)
    u = (H[0, 0] * x + H[0, 1] * y + H[0, 2]) * inv_z
    v = (H[1, 0] * x + H[1, 1] * y + H[1, 2]) * inv_z
    weights = jnp.where(z > 0, weights, 0.0)
    normal, rhs = _normal_equations(x, y, weights * inv_z * inv_z, u, v, weights * inv_z * (dst[:, 0] - u),
                                    weights * inv_z * (dst[:, 1] - v))
    return _from_params(H.reshape(9)[:8] + solve_spd(normal, rhs))
