"""Weighted least-squares fits for MAGSAC++'s IRLS, written for large batches of small problems.

Points are ``(N, 2)`` in a well-conditioned frame (Hartley-normalised: centroid 0, mean distance sqrt 2) with
``(N,)`` non-negative weights (0 removes a point). Homographies are ``(3, 3)`` with ``H[2, 2] = 1``, which is
safe in that frame (``H[2, 2] = 0`` would send the points' centroid to infinity). The 8x8 normal equations
are read off a few weighted moments of the points and solved by Gauss-Jordan elimination written in jnp,
which vectorises across a vmapped batch (a batched LAPACK call costs about ten times more on CPU). The one
matmul runs at HIGHEST precision, so GPU matmuls cannot drop to TF32.
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


def _normal_layout():
    """Where each entry of the 8x8 normal matrix and of the right-hand side sits among the (6, 7) moments
    ``sum_i monomial_r(x_i, y_i) * coefficient_c(i)`` (flattened row-major), with its sign."""
    def at(r, c):
        return 7 * r + c

    xx, xy, yy, x, y, one = range(6)  # monomials
    a, au, av, ar, eu, ev, er = range(7)  # per-point coefficients
    pp = [[at(xx, a), at(xy, a), at(x, a)], [at(xy, a), at(yy, a), at(y, a)], [at(x, a), at(y, a), at(one, a)]]
    pq_u = [[at(xx, au), at(xy, au)], [at(xy, au), at(yy, au)], [at(x, au), at(y, au)]]
    pq_v = [[at(xx, av), at(xy, av)], [at(xy, av), at(yy, av)], [at(x, av), at(y, av)]]
    qq = [[at(xx, ar), at(xy, ar)], [at(xy, ar), at(yy, ar)]]
    index = np.zeros((8, 8), np.int32)
    sign = np.ones((8, 8), np.float32)
    index[0:3, 0:3] = index[3:6, 3:6] = pp
    index[0:3, 3:6] = index[3:6, 0:3] = at(one, a)
    sign[0:3, 3:6] = sign[3:6, 0:3] = 0.0
    index[0:3, 6:8], index[3:6, 6:8], index[6:8, 6:8] = pq_u, pq_v, qq
    index[6:8, 0:3], index[6:8, 3:6] = np.transpose(pq_u), np.transpose(pq_v)
    sign[0:6, 6:8] = sign[6:8, 0:6] = -1.0
    rhs = [at(x, eu), at(y, eu), at(one, eu), at(x, ev), at(y, ev), at(one, ev), at(x, er), at(y, er)]
    return index, sign, np.array(rhs, np.int32), np.array([1, 1, 1, 1, 1, 1, -1, -1], np.float32)


_NORMAL_INDEX, _NORMAL_SIGN, _RHS_INDEX, _RHS_SIGN = _normal_layout()


def _normal_equations(x, y, a, cu, cv, eu, ev, batched: bool):
    """Normal equations ``(8, 8), (8,)`` of the rows ``s [p, 0, -cu q]`` and ``s [0, p, -cv q]`` (one pair per
    point, ``p = (x, y, 1)``, ``q = (x, y)``) with weights ``w`` and right-hand sides ``ru, rv``, from the per-point
    ``a = w s^2``, ``cu, cv`` and ``eu = w s ru``, ``ev = w s rv`` (all ``(N,)``).

    The DLT and the Gauss-Newton step both have this structure, so the whole system is read off the
    ``(6, 7)`` moments of six point monomials against seven per-point coefficients, about 5x fewer operations
    than the generic ``J^T W J``. One pair: one small matmul (one kernel instead of dozens). ``batched``
    (under a vmap over many pairs): separate sums, each fused with its products, since XLA:CPU's batched
    thin matmuls are slow and stacking the factors costs more memory traffic than the sums themselves.
    """
    monomials = [x * x, x * y, y * y, x, y, jnp.ones_like(x)]
    coefficients = [a, a * cu, a * cv, a * (cu * cu + cv * cv), eu, ev, eu * cu + ev * cv]
    if batched:
        moments = jnp.stack([jnp.sum(m * c) for m in monomials for c in coefficients])
    else:
        moments = jnp.dot(jnp.stack(monomials), jnp.stack(coefficients, 1),
                          precision=jax.lax.Precision.HIGHEST).reshape(-1)
    return moments[_NORMAL_INDEX] * _NORMAL_SIGN, moments[_RHS_INDEX] * _RHS_SIGN


def _from_params(h):
    return jnp.concatenate([h, jnp.ones_like(h[:1])]).reshape(3, 3)


def weighted_dlt(src, dst, weights, *, batched: bool = False):
    """Weighted DLT with ``h33 = 1``: the ``H`` minimising ``sum_i w_i |(u_i, v_i) z_i - (H src_i)_{x, y}|^2``.

    Args:
      src, dst: ``(N, 2)``; weights: ``(N,)``. batched: see :func:`_normal_equations`.
    Returns:
      ``(3, 3)``, ``H[2, 2] = 1``.
    """
    u, v = dst[:, 0], dst[:, 1]
    normal, rhs = _normal_equations(src[:, 0], src[:, 1], weights, u, v, weights * u, weights * v, batched)
    return _from_params(solve_spd(normal, rhs))


def transfer_error_sq(H, src, dst):
    """``(N,)`` squared forward transfer error ``|pi(H src) - dst|^2`` of one ``(3, 3)`` model."""
    x, y = src[:, 0], src[:, 1]
    z = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    safe_z = jnp.where(jnp.abs(z) > jnp.finfo(z.dtype).tiny, z, 1.0)
    u = (H[0, 0] * x + H[0, 1] * y + H[0, 2]) / safe_z
    v = (H[1, 0] * x + H[1, 1] * y + H[1, 2]) / safe_z
    return jnp.where(z > 0, (u - dst[:, 0]) ** 2 + (v - dst[:, 1]) ** 2, jnp.inf)


def gauss_newton_step(H, src, dst, weights, *, batched: bool = False):
    """One Gauss-Newton step on ``sum_i w_i |pi(H src_i) - dst_i|^2`` over the 8 entries of ``H / H[2, 2]``.

    Args:
      H: ``(3, 3)`` with ``H[2, 2] != 0``; src, dst: ``(N, 2)``; weights: ``(N,)``; batched: see
        :func:`_normal_equations`.
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
                                    weights * inv_z * (dst[:, 1] - v), batched)
    return _from_params(H.reshape(9)[:8] + solve_spd(normal, rhs))
