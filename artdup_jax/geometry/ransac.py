"""RANSAC for homographies and affine maps as one jit-compiled, vmapped program.

Points are ``(..., N, 2)``, x first, in any Euclidean frame (pixels for the NumPy wrappers, as
``cv2.findHomography``); ``threshold`` is a reprojection distance in the units of ``dst``. The returned
``H`` maps src to dst (``dst ~ H src``). Match sets of different sizes share one static shape through a
validity mask: invalid rows are never sampled, never counted and never refit on, so padding a set does
not change its result.

:func:`ransac` (and the NumPy wrappers :func:`find_homography`, :func:`find_homographies`) draws minimal
samples of distinct valid matches, hypothesis ``i`` from a counter-based hash of ``(key, i)``
(:mod:`artdup_jax.geometry.random_draws`, so the draws do not depend on the chunking), fits them in closed form
(4-point homography, 3-point affine) in Hartley-normalised coordinates, rejects degenerate samples (collinear
or repeated points, flipped orientation, non-finite fits), generates and scores hypotheses against every
match one chunk at a time inside a ``while_loop`` (memory ``O(chunk * N)``), keeps the first maximum of the
inlier count, optionally stops adaptively, then optionally refits on the inliers (weighted least squares).
Deterministic for a key. RANSAC-Flow's own routine is ``artdup_jax.ransac_flow.official_ransac``.

Point transforms and scores are written elementwise (no ``@``) so that GPU matmuls cannot drop to TF32.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.homography import (
    _hartley_transform,
    compose,
    fit_homography_least_squares,
    invert,
    normalise_scale,
)
from artdup_jax.geometry.random_draws import sample_indices

MODELS = {"homography": 4, "affine": 3}  # model name -> minimal sample size

# Twice the signed triangle area below which a minimal sample counts as collinear (Hartley units: the
# points' mean distance to their centroid is sqrt(2), so 1e-5 is ~1e-5 of a typical triangle).
_MIN_AREA = 1e-5
_MAX_REFIT_ROUNDS = 10  # refit rounds stop earlier once the inlier set is stable
_GN_STEPS = 5


class RansacResult(NamedTuple):
    """Output of :func:`ransac`; leading ``(P,)`` dims when called on a batch of pairs.

    H: ``(..., 3, 3)`` float32 mapping src to dst, ``H[2, 2] = 1``; the identity where ``found`` is False.
    inliers: ``(..., N)`` bool, all False where ``found`` is False.
    found: ``(...,)`` bool.
    num_inliers: ``(...,)`` int32.
    """

    H: jax.Array
    inliers: jax.Array
    found: jax.Array
    num_inliers: jax.Array


# ----------------------------------------------------------------------------------------------------
# Minimal samples and closed-form fits
# ----------------------------------------------------------------------------------------------------


def _twice_area(p, i: int, j: int, l: int):
    """Signed twice-area of the triangle ``(p_i, p_j, p_l)``; ``p`` is ``(..., k, 2)``."""
    ax, ay = p[..., j, 0] - p[..., i, 0], p[..., j, 1] - p[..., i, 1]
    bx, by = p[..., l, 0] - p[..., i, 0], p[..., l, 1] - p[..., i, 1]
    return ax * by - ay * bx


def _sample_is_usable(src, dst, model: str):
    """``(...,)`` bool for minimal samples ``(..., k, 2)``.

    Homography: no three of the four points collinear (repeated points included) in either image, and every
    triangle keeps its orientation from src to dst, as OpenCV checks; a sample that mirrors some triangles
    cannot come from a homography that is finite over the points, and the check also rejects reflections.
    Affine: the three points are not collinear in either image (reflections are allowed).
    """
    triples = ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)) if model == "homography" else ((0, 1, 2),)
    ok = jnp.ones(src.shape[:-2], bool)
    for t in triples:
        a_src, a_dst = _twice_area(src, *t), _twice_area(dst, *t)
        ok &= (jnp.abs(a_src) > _MIN_AREA) & (jnp.abs(a_dst) > _MIN_AREA)
        if model == "homography":
            ok &= (a_src > 0) == (a_dst > 0)
    return ok


def _adjugate(m):
    """Adjugate of ``(..., 3, 3)`` (the inverse times the determinant), elementwise."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    g, h, i = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    return jnp.stack([
        jnp.stack([e * i - f * h, c * h - b * i, b * f - c * e], -1),
        jnp.stack([f * g - d * i, a * i - c * g, c * d - a * f], -1),
        jnp.stack([d * h - e * g, b * g - a * h, a * e - b * d], -1),
    ], -2)


def _square_to_quad(p):
    """``(..., 3, 3)`` homography (up to scale) from the unit square (0,0), (1,0), (1,1), (0,1) to ``p``.

    The projective square-to-quadrilateral map (Heckbert 1989), multiplied through by its denominator so that
    no division is needed; a degenerate quadrilateral gives a singular matrix rather than inf/NaN.
    """
    x0, x1, x2, x3 = (p[..., i, 0] for i in range(4))
    y0, y1, y2, y3 = (p[..., i, 1] for i in range(4))
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
    den = dx1 * dy2 - dx2 * dy1
    g = sx * dy2 - dx2 * sy
    h = dx1 * sy - sx * dy1
    return jnp.stack([
        jnp.stack([(x1 - x0) * den + g * x1, (x3 - x0) * den + h * x3, x0 * den], -1),
        jnp.stack([(y1 - y0) * den + g * y1, (y3 - y0) * den + h * y3, y0 * den], -1),
        jnp.stack([g, h, den], -1),
    ], -2)


def _unit_frobenius(m):
    norm = jnp.sqrt(jnp.sum(m * m, axis=(-2, -1), keepdims=True))
    return m / jnp.where(norm > 0, norm, 1)


def _minimal_homography(src, dst):
    """Exact homography through 4 correspondences ``(..., 4, 2)``, unit Frobenius norm (closed form)."""
    return _unit_frobenius(compose(_square_to_quad(dst), _adjugate(_square_to_quad(src))))


def _affine_from_3x3(m23):
    """Append the row (0, 0, 1) to ``(..., 2, 3)``."""
    last = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 1.0], m23.dtype), m23.shape[:-2] + (1, 3))
    return jnp.concatenate([m23, last], axis=-2)


def _minimal_affine(src, dst):
    """Exact affine map through 3 correspondences ``(..., 3, 2)``: ``D S^-1`` with homogeneous columns."""
    one = jnp.ones_like(src[..., 0])
    s = jnp.stack([src[..., 0], src[..., 1], one], -2)  # (..., 3, 3): columns are (x, y, 1)
    s_inv = invert(s)  # collinear samples give inf/NaN here and are rejected by the caller
    d = jnp.stack([dst[..., 0], dst[..., 1]], -2)  # (..., 2, 3)
    m23 = jnp.sum(d[..., :, :, None] * s_inv[..., None, :, :], axis=-2)
    return _affine_from_3x3(m23)


def _fit_affine_least_squares(src, dst, weights):
    """Weighted least-squares affine map ``(3, 3)`` from ``(N, 2)`` correspondences (elementwise sums)."""
    total = jnp.maximum(jnp.sum(weights), jnp.finfo(src.dtype).tiny)
    mean_s = jnp.sum(weights[:, None] * src, 0) / total
    mean_d = jnp.sum(weights[:, None] * dst, 0) / total
    p, q = src - mean_s, dst - mean_d
    w = weights[:, None, None]
    cov_pp = jnp.sum(w * p[:, :, None] * p[:, None, :], 0)  # (2, 2)
    cov_qp = jnp.sum(w * q[:, :, None] * p[:, None, :], 0)  # (2, 2)
    det = cov_pp[0, 0] * cov_pp[1, 1] - cov_pp[0, 1] * cov_pp[1, 0]
    inv_pp = jnp.stack([jnp.stack([cov_pp[1, 1], -cov_pp[0, 1]]),
                        jnp.stack([-cov_pp[1, 0], cov_pp[0, 0]])]) / det
    linear = jnp.sum(cov_qp[:, :, None] * inv_pp[None, :, :], axis=1)
    translation = mean_d - jnp.sum(linear * mean_s[None, :], axis=1)
    return _affine_from_3x3(jnp.concatenate([linear, translation[:, None]], axis=1))


def _refine_homography_geometric(H, src, dst, weights, steps: int):
    """Gauss-Newton on the weighted squared transfer error ``sum_i w_i |pi(H src_i) - dst_i|^2``.

    Parameters are the 8 entries of ``H / H[2, 2]``; a step is taken only if it lowers the cost (so the
    result is never worse than the input). The 8x8 normal equations are accumulated at
    HIGHEST precision and solved with ``solve``.
    """
    H = normalise_scale(H)
    x, y, X, Y = src[:, 0], src[:, 1], dst[:, 0], dst[:, 1]

    def residuals(h):
        z = h[6] * x + h[7] * y + 1.0
        u = (h[0] * x + h[1] * y + h[2]) / z
        v = (h[3] * x + h[4] * y + h[5]) / z
        return u, v, z

    def cost(h):
        u, v, _ = residuals(h)
        return jnp.sum(weights * ((u - X) ** 2 + (v - Y) ** 2))

    def step(_, state):
        h, c = state
        u, v, z = residuals(h)
        inv_z, zero = 1.0 / z, jnp.zeros_like(z)
        ju = jnp.stack([x * inv_z, y * inv_z, inv_z, zero, zero, zero, -x * u * inv_z, -y * u * inv_z], -1)
        jv = jnp.stack([zero, zero, zero, x * inv_z, y * inv_z, inv_z, -x * v * inv_z, -y * v * inv_z], -1)
        w = weights[:, None]
        hp = jax.lax.Precision.HIGHEST  # no TF32 on GPU
        jtj = (jnp.einsum("ni,nj->ij", w * ju, ju, precision=hp)
               + jnp.einsum("ni,nj->ij", w * jv, jv, precision=hp))
        jtr = (jnp.einsum("ni,n->i", w * ju, u - X, precision=hp)
               + jnp.einsum("ni,n->i", w * jv, v - Y, precision=hp))
        damping = 1e-6 * jnp.trace(jtj) / 8
        delta = jnp.linalg.solve(jtj + damping * jnp.eye(8, dtype=jtj.dtype), -jtr[:, None])[:, 0]
        h_new = h + delta
        c_new = cost(h_new)
        better = jnp.isfinite(c_new) & (c_new < c)
        return jnp.where(better, h_new, h), jnp.where(better, c_new, c)

    h0 = H.reshape(9)[:8]
    h, _ = jax.lax.fori_loop(0, steps, step, (h0, cost(h0)))
    return jnp.concatenate([h, jnp.ones_like(h[:1])]).reshape(3, 3)


# ----------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------


def _inlier_matrix(H, src, dst, valid, threshold_sq, model: str):
    """``(C, N)`` bool: match n is an inlier of hypothesis c (squared transfer error < threshold_sq).

    H: ``(C, 3, 3)``; src, dst: ``(N, 2)``; valid: ``(N,)``. For a homography the test
    ``|(u, v)/z - dst|^2 < t^2`` is evaluated as ``|(u, v) - z dst|^2 < t^2 z^2`` (no division; identical
    for every z != 0, and z = 0 never passes).
    """
    h = H[:, :, :, None]  # (C, 3, 3, 1) broadcasts against (N,)
    x, y = src[:, 0], src[:, 1]
    u = h[:, 0, 0] * x + h[:, 0, 1] * y + h[:, 0, 2]
    v = h[:, 1, 0] * x + h[:, 1, 1] * y + h[:, 1, 2]
    if model == "homography":
        z = h[:, 2, 0] * x + h[:, 2, 1] * y + h[:, 2, 2]
        ex, ey = u - dst[:, 0] * z, v - dst[:, 1] * z
        return (ex * ex + ey * ey < threshold_sq * (z * z)) & valid
    ex, ey = u - dst[:, 0], v - dst[:, 1]
    return (ex * ex + ey * ey < threshold_sq) & valid


def _count_inliers(H, src, dst, valid, threshold_sq, model: str):
    # A float sum vectorises better than an integer one on CPU; exact up to 2^24 matches.
    inliers = _inlier_matrix(H, src, dst, valid, threshold_sq, model)
    return jnp.sum(jnp.where(inliers, 1.0, 0.0), axis=-1).astype(jnp.int32)


def _required_iterations(num_inliers, n_valid, k: int, confidence):
    """Standard adaptive RANSAC stopping rule: samples needed to draw one all-inlier sample w.p. confidence.

    ``confidence`` is traced; 0 disables the rule (infinitely many samples needed).
    """
    ratio = num_inliers.astype(jnp.float32) / jnp.maximum(n_valid, 1).astype(jnp.float32)
    p_good = jnp.clip(ratio, 0.0, 1.0) ** k
    num = jnp.log(jnp.maximum(1.0 - confidence, 1e-30))
    den = jnp.log1p(-jnp.minimum(p_good, 1.0 - 1e-7))
    return jnp.where((p_good > 0) & (confidence > 0), num / den, jnp.inf)


def _best_hypothesis(make_hypotheses, iterations: int, src, dst, valid, threshold_sq, *, model, chunk,
                     confidence, n_valid):
    """First maximum of the inlier count over hypotheses ``0 .. iterations - 1``, a chunk at a time.

    ``make_hypotheses(first, size)`` returns ``(size, 3, 3)`` matrices and a ``(size,)`` usable flag for
    hypotheses ``first .. first + size - 1``; unusable ones score -1. Generating inside the loop keeps
    memory at ``O(chunk * N)`` and lets the adaptive rule skip the generation of unused hypotheses.
    With ``confidence`` > 0, stops after the chunk at which the adaptive rule is met.
    Returns ``(H, count)``.
    """
    num_chunks = -(-iterations // chunk)
    k = MODELS[model]

    def body(state):
        c, best_H, best_count = state
        first = c * chunk
        hyps, usable = make_hypotheses(first, chunk)
        usable &= first + jnp.arange(chunk) < iterations  # the last chunk may overhang
        counts = jnp.where(usable, _count_inliers(hyps, src, dst, valid, threshold_sq, model), -1)
        i = jnp.argmax(counts)
        better = counts[i] > best_count  # strict: earlier chunks win ties
        return c + 1, jnp.where(better, hyps[i], best_H), jnp.where(better, counts[i], best_count)

    def cond(state):
        c, _, best_count = state
        needed = _required_iterations(best_count, n_valid, k, confidence)
        return (c < num_chunks) & ((c * chunk).astype(jnp.float32) < needed)

    init = (jnp.int32(0), jnp.eye(3, dtype=src.dtype), jnp.int32(-1))
    _, best_H, best_count = jax.lax.while_loop(cond, body, init)
    return best_H, best_count


# ----------------------------------------------------------------------------------------------------
# RANSAC
# ----------------------------------------------------------------------------------------------------


def _ransac_single(key, src, dst, valid, threshold, confidence, *, iterations, model, refine, chunk):
    k = MODELS[model]
    dtype = jnp.float32
    src, dst = jnp.asarray(src, dtype), jnp.asarray(dst, dtype)
    finite = jnp.all(jnp.isfinite(src), -1) & jnp.all(jnp.isfinite(dst), -1)
    valid = jnp.asarray(valid, bool) & finite
    src = jnp.where(valid[:, None], src, 0)
    dst = jnp.where(valid[:, None], dst, 0)
    n_valid = jnp.sum(valid, dtype=jnp.int32)

    # Work in Hartley-normalised coordinates: well-conditioned fits, and a similarity keeps distances
    # proportional, so the dst threshold just scales.
    t_src = _hartley_transform(src, valid.astype(dtype))
    t_dst = _hartley_transform(dst, valid.astype(dtype))
    src_n = src * t_src[0, 0] + t_src[:2, 2]
    dst_n = dst * t_dst[0, 0] + t_dst[:2, 2]
    threshold_sq = (jnp.asarray(threshold, dtype) * t_dst[0, 0]) ** 2

    key_bits = jax.random.bits(key, (2,), jnp.uint32)
    (valid_rows,) = jnp.nonzero(valid, size=valid.shape[0], fill_value=0)  # valid rows first, in order
    minimal_fit = _minimal_homography if model == "homography" else _minimal_affine

    def make_hypotheses(first, size):
        idx = sample_indices(key_bits, valid_rows, n_valid, first, size, k)
        sample_src, sample_dst = src_n[idx], dst_n[idx]  # (size, k, 2)
        hyps = minimal_fit(sample_src, sample_dst)
        usable = (_sample_is_usable(sample_src, sample_dst, model)
                  & jnp.all(jnp.isfinite(hyps), axis=(-2, -1)) & (n_valid >= k))
        return hyps, usable

    H, best_count = _best_hypothesis(
        make_hypotheses, iterations, src_n, dst_n, valid, threshold_sq,
        model=model, chunk=min(chunk, iterations), confidence=confidence, n_valid=n_valid)
    inliers = _inlier_matrix(H[None], src_n, dst_n, valid, threshold_sq, model)[0]
    count = jnp.sum(inliers, dtype=jnp.int32)

    if refine:
        fit = fit_homography_least_squares if model == "homography" else _fit_affine_least_squares

        def refit(state):
            # Least-squares fit on the current inliers, re-scored. The inlier count is a coarse criterion
            # (a more accurate fit can lose a few borderline matches), so the fit is kept unless it loses
            # over 10% of them.
            rounds, H, inliers, count, _ = state
            H_new = fit(src_n, dst_n, inliers.astype(dtype))
            if model == "homography":
                # The DLT refit minimises an algebraic error; polish the transfer error, as OpenCV's
                # Levenberg-Marquardt step does.
                H_new = _refine_homography_geometric(H_new, src_n, dst_n, inliers.astype(dtype), _GN_STEPS)
            inliers_new = _inlier_matrix(H_new[None], src_n, dst_n, valid, threshold_sq, model)[0]
            count_new = jnp.sum(inliers_new, dtype=jnp.int32)
            take = jnp.all(jnp.isfinite(H_new)) & (10 * count_new >= 9 * count) & (count_new >= k)
            # Go on while the inlier set changes: the last fit must be the fit of the returned inliers.
            go_on = take & jnp.any(inliers_new != inliers)
            return (rounds + 1, jnp.where(take, H_new, H), jnp.where(take, inliers_new, inliers),
                    jnp.where(take, count_new, count), go_on)

        def more(state):
            rounds, *_, go_on = state
            return go_on & (rounds < _MAX_REFIT_ROUNDS)

        _, H, inliers, count, _ = jax.lax.while_loop(
            more, refit, (jnp.int32(0), H, inliers, count, count >= k))

    H = normalise_scale(compose(invert(t_dst), compose(H, t_src)))
    found = (best_count >= k) & jnp.all(jnp.isfinite(H))
    return RansacResult(
        H=jnp.where(found, H, jnp.eye(3, dtype=dtype)),
        inliers=inliers & found,
        found=found,
        num_inliers=jnp.where(found, count, 0),
    )


@functools.partial(jax.jit, static_argnames=("iterations", "model", "refine", "chunk"))
def _ransac_jit(key, src, dst, valid, threshold, confidence, *, iterations, model, refine, chunk):
    run = functools.partial(_ransac_single, iterations=iterations, model=model, refine=refine, chunk=chunk)
    if src.ndim == 2:
        return run(key, src, dst, valid, threshold, confidence)
    threshold_axis = 0 if jnp.ndim(threshold) == 1 else None
    return jax.vmap(run, in_axes=(0, 0, 0, 0, threshold_axis, None))(key, src, dst, valid, threshold,
                                                                      confidence)


def ransac(key, src, dst, valid, *, threshold, iterations: int = 10000, model: str = "homography",
           refine: bool = True, chunk: int = 256, confidence: float | None = None) -> RansacResult:
    """RANSAC on one match set or a batch of padded match sets, as one jit-compiled XLA program.

    Args:
      key: a PRNG key (``jax.random.key`` or ``PRNGKey``); one key per pair (leading ``(P,)``) for a batch.
        It seeds a counter-based hash that draws the minimal samples (``random_draws.hash_uniform``).
      src, dst: ``(N, 2)`` or ``(P, N, 2)`` float, x first; ``H`` maps src to dst.
      valid: ``(N,)`` or ``(P, N)`` bool; invalid rows (and rows with non-finite coordinates) are ignored.
      threshold: inlier iff the transfer distance ``|dst - H(src)|`` is below it (units of dst). Scalar
        or ``(P,)``.
      iterations: number of minimal samples (static).
      model: "homography" (4-point, orientation-preserving samples) or "affine" (3-point).
      refine: refit on the inliers (weighted least squares: Hartley-normalised DLT then Gauss-Newton on the
        transfer error for homographies, normal equations for affine maps), re-score, and keep the refit
        unless it loses over 10% of the inliers; repeated until the inlier set is stable (at most 10 rounds).
      chunk: hypotheses generated and scored per step; memory is ``O(chunk * N)`` (static).
      confidence: None: score all ``iterations`` hypotheses (fixed budget). A float in (0, 1): stop after
        the first chunk at which the standard adaptive rule ``log(1-confidence)/log(1-w^k)`` is met, as
        OpenCV's RANSAC does (under vmap the batch runs until every pair has stopped). Traced, so both
        modes share one compiled program.
    Returns:
      :class:`RansacResult` (leading ``(P,)`` for a batch). Fewer than the minimal number of usable matches,
      or only degenerate samples, gives ``found=False``, the identity and no inliers, never NaN.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be None or in (0, 1), got {confidence}")
    return _ransac_jit(key, src, dst, valid, jnp.asarray(threshold, jnp.float32),
                       jnp.float32(0.0 if confidence is None else confidence),
                       iterations=iterations, model=model, refine=refine, chunk=chunk)


# ----------------------------------------------------------------------------------------------------
# NumPy wrappers (OpenCV-like)
# ----------------------------------------------------------------------------------------------------

_MIN_ROWS = 128


def _padded_rows(n: int) -> int:
    """Pad match sets to a power of two (>= 128): a few compiled shapes serve every N (padding is free of
    effect on the result, and compiling costs seconds where scoring costs milliseconds)."""
    return max(_MIN_ROWS, 1 << (n - 1).bit_length())


def _as_points(xy, name):
    xy = np.asarray(xy, np.float32)
    if xy.ndim == 3 and xy.shape[1] == 1:  # OpenCV's (N, 1, 2)
        xy = xy[:, 0]
    if xy.ndim != 2 or xy.shape[-1] != 2:
        raise ValueError(f"{name} must be (N, 2), got {xy.shape}")
    return xy


def find_homography(src_xy, dst_xy, *, threshold, iterations=10000, seed=0, refine=True,
                    model="homography", confidence=None):
    """``cv2.findHomography(src, dst, RANSAC, threshold)`` in JAX, for one match set.

    Args:
      src_xy, dst_xy: ``(N, 2)`` (or OpenCV's ``(N, 1, 2)``) pixel coordinates, x first.
      threshold: reprojection threshold in dst pixels (inlier iff distance < threshold).
      iterations, refine, model, confidence: see :func:`ransac`.
      seed: int; the PRNG key is ``jax.random.key(seed)``.
    Returns:
      ``(H, inlier_mask)``: ``H`` ``(3, 3)`` float64 with ``H[2, 2] = 1`` mapping src to dst, or **None when no
      model is found** (fewer than 4 (affine: 3) usable matches, degenerate configurations); ``inlier_mask``
      ``(N,)`` bool (all False when ``H`` is None).
    """
    src, dst = _as_points(src_xy, "src_xy"), _as_points(dst_xy, "dst_xy")
    if src.shape != dst.shape:
        raise ValueError(f"src_xy and dst_xy differ in shape: {src.shape} vs {dst.shape}")
    n = src.shape[0]
    if n < MODELS.get(model, 0):
        if model not in MODELS:
            raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
        return None, np.zeros((n,), bool)
    rows = _padded_rows(n)
    pad = ((0, rows - n), (0, 0))
    valid = np.arange(rows) < n
    result = ransac(jax.random.key(seed), np.pad(src, pad), np.pad(dst, pad), valid,
                    threshold=np.float32(threshold), iterations=iterations, model=model,
                    refine=refine, confidence=confidence)
    if not bool(result.found):
        return None, np.zeros((n,), bool)
    return np.asarray(result.H, np.float64), np.asarray(result.inliers)[:n]


def find_homographies(src_xy, dst_xy, valid, *, threshold, iterations=10000, seed=0, refine=True,
                      model="homography", confidence=None) -> "HomographyBatch":
    """Many padded match sets at once (one compiled call).

    Args:
      src_xy, dst_xy: ``(P, N, 2)`` pixel coordinates, x first.
      valid: ``(P, N)`` bool, which rows are real matches.
      threshold: scalar or ``(P,)``, dst pixels.
      seed: int (every pair uses ``jax.random.key(seed)``, so pair p gives exactly what
        :func:`find_homography` gives on its valid rows with the same seed) or a ``(P,)`` sequence of ints.
      iterations, refine, model, confidence: see :func:`ransac`.
    Returns:
      :class:`HomographyBatch` of NumPy arrays: ``H`` ``(P, 3, 3)`` float64 (identity where not found),
      ``inliers`` ``(P, N)`` bool, ``found`` ``(P,)`` bool, ``num_inliers`` ``(P,)`` int32. Unpacks as
      ``H, inliers`` (the other fields by name).
    """
    src = np.asarray(src_xy, np.float32)
    dst = np.asarray(dst_xy, np.float32)
    valid = np.asarray(valid, bool)
    if src.ndim != 3 or src.shape[-1] != 2 or src.shape != dst.shape or valid.shape != src.shape[:2]:
        raise ValueError(f"expected (P, N, 2) points and (P, N) valid, got {src.shape}, {dst.shape}, "
                         f"{valid.shape}")
    num_pairs = src.shape[0]
    seeds = np.broadcast_to(np.asarray(seed), (num_pairs,))
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    threshold = np.asarray(threshold, np.float32)
    result = ransac(keys, src, dst, valid, threshold=threshold, iterations=iterations, model=model,
                    refine=refine, confidence=confidence)
    return HomographyBatch(H=np.asarray(result.H, np.float64), inliers=np.asarray(result.inliers),
                           found=np.asarray(result.found), num_inliers=np.asarray(result.num_inliers))


@dataclasses.dataclass(frozen=True)
class HomographyBatch:
    """:func:`find_homographies`' result. Unpacks like ``cv2.findHomography``'s pair: ``H, inliers = ...``.

    H: ``(P, 3, 3)`` float64, the identity where not found. inliers: ``(P, N)`` bool.
    found: ``(P,)`` bool. num_inliers: ``(P,)`` int32.
    """

    H: np.ndarray
    inliers: np.ndarray
    found: np.ndarray
    num_inliers: np.ndarray

    def __iter__(self):
        return iter((self.H, self.inliers))
