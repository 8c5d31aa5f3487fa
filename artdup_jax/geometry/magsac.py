"""MAGSAC++ (Barath, Noskova, Ivashechkin & Matas, CVPR 2020) for homographies and affine maps, in JAX.

Conventions as :mod:`artdup_jax.geometry.ransac`: points ``(..., N, 2)``, x first, pixels; ``H`` maps src to
dst (``dst ~ H src``); a validity mask lets match sets of different sizes share one static shape (invalid rows
are never sampled, scored or fitted on, so padding does not change a result). The residual is the forward
reprojection distance in dst pixels.

The estimator, per pair:

1. minimal samples (4 matches for a homography, 3 for an affine map) drawn PROSAC-style in order of a match
   quality, or uniformly without one (:mod:`artdup_jax.geometry.magsac_sampling`), fitted in closed form in
   Hartley-normalised coordinates; degenerate samples are rejected (collinear or repeated points, flipped
   orientation, non-finite fits);
2. hypotheses scored with the MAGSAC++ loss, marginalised over the noise scale up to ``sigma_max``, with no
   inlier threshold (:mod:`artdup_jax.geometry.magsac_scoring`); a chunk at a time inside a ``while_loop``,
   each hypothesis first on a stratified subset of the matches and the best few on all of them (preemptive
   verification);
3. local optimisation of a new best hypothesis by sigma-consensus++: iteratively reweighted least squares
   with the MAGSAC++ weights (weighted DLT / weighted affine least squares), the best-scoring iterate kept
   (:mod:`artdup_jax.geometry.magsac_local`);
4. adaptive stopping: after each chunk, the standard rule ``log(1 - confidence) / log(1 - w^k)`` on the
   fraction ``w`` of matches within the reference ``threshold`` of the best model, up to ``max_iterations``
   hypotheses;
5. polishing of the best model: more sigma-consensus++ rounds; then, only where its residuals look
   Gaussian (kurtosis test; real keypoint matches have heavier tails, where MAGSAC++'s weights are the more
   accurate), a least-squares refit of the transfer error on the matches within the 0.9999 quantile of the
   residual at the estimated noise level, the Gaussian maximum-likelihood fit, which replaces the MAGSAC++ fit.

:func:`magsac_pair` is one pair as a pure function (jit it, vmap it; its steps are in
:mod:`artdup_jax.geometry.magsac_pipeline`); :func:`magsac_homographies` is the
batched, jitted API, whose search advances the unfinished pairs a group at a time so that a few hard pairs
do not hold up a large batch, and whose local optimisation, polish and refit run only on the pairs that need
them, a small match set on its own rows rather than on the padded batch's
(:mod:`artdup_jax.geometry.magsac_flagged`);
:func:`find_homography_magsac` is the OpenCV-like NumPy wrapper.

The reference ``threshold`` sets only the stopping rule and the returned inlier mask (as OpenCV's USAC
does); the score depends on ``sigma_max`` alone. Deterministic for a seed. Point transforms are written
elementwise (no ``@``), so GPU matmuls cannot drop to TF32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.cpu_execution import cpu_jit, map_core_shards
from artdup_jax.geometry.magsac_pipeline import (
    MagsacResult,
    finish,
    polish,
    prepare,
    refit,
    run_batch,
    usable_rows,
)
from artdup_jax.geometry.magsac_sampling import sample_order
from artdup_jax.geometry.magsac_search import initial_state, search
from artdup_jax.geometry.ransac import MODELS, _as_points

DEFAULT_CHUNK = 32  # hypotheses per loop step
SINGLE_PAIR_CHUNK = 128  # ... for one pair (find_homography_magsac): no batch shares a step's fixed cost
_MIN_SHARD = 16  # pairs: a batch is split across the CPU's cores in shards of at least this many


def magsac_pair(src_xy, dst_xy, valid, quality=None, *, threshold=3.0, sigma_max=None, max_iterations=10_000,
                confidence=0.999, seed=0, model: str = "homography", chunk: int = DEFAULT_CHUNK) -> MagsacResult:
    """MAGSAC++ on one padded match set; pure and traceable, so it can be jitted and vmapped.

    Args:
      src_xy, dst_xy: ``(N, 2)`` float pixels, x first; ``H`` maps src to dst.
      valid: ``(N,)`` bool; invalid rows (and rows with non-finite coordinates) are ignored.
      quality: None (uniform sampling) or ``(N,)`` float, higher is better (e.g. ``-ratio`` of Lowe's test):
        PROSAC sampling in decreasing quality, growing to all valid matches over ``max_iterations`` samples.
        Rows already sorted that way (valid first) skip a sort.
      threshold: reference inlier threshold (dst pixels) for the stopping rule and the inlier mask.
      sigma_max: largest noise scale (dst pixels) marginalised over; None (or <= 0): ``max(8, threshold) / k``
        (``k = 3.03``, so that the maximum threshold ``k sigma_max`` is ``max(8 px, threshold)``).
      max_iterations: minimal-sample budget (>= 1).
      confidence: in (0, 1) for adaptive stopping; 0 draws the whole budget.
      seed: int (traced); hypothesis ``t`` is drawn from a hash of ``(seed, t)``.
      model: "homography" or "affine" (static).
      chunk: hypotheses generated and scored per loop step (static); memory is ``O(chunk * N)``.
    Returns:
      :class:`MagsacResult`. Fewer than 4 (affine: 3) usable matches, or only degenerate samples
      (collinear or repeated points), give ``found=False``, the identity, score 0 and no inliers, never NaN.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    src, dst = jnp.asarray(src_xy, jnp.float32), jnp.asarray(dst_xy, jnp.float32)
    valid = usable_rows(src, dst, valid)
    quality = None if quality is None else jnp.asarray(quality, jnp.float32)
    problem, frames = prepare(
        src, dst, valid, sample_order(valid, quality), jnp.asarray(threshold, jnp.float32),
        jnp.asarray(-1.0 if sigma_max is None else sigma_max, jnp.float32), jnp.asarray(max_iterations, jnp.int32),
        jnp.asarray(confidence, jnp.float32), seed, model=model, prosac=quality is not None)
    state = search(problem, initial_state(), model=model, chunk=chunk, prosac=quality is not None)
    polished, cut_sq, gaussian = polish(problem, state, model=model)
    polished = jax.lax.cond(gaussian, lambda b: refit(problem, b, cut_sq, model=model), lambda b: b, polished)
    return finish(problem, frames, state, polished, model=model)


# ----------------------------------------------------------------------------------------------------
# Batched API and the OpenCV-like wrapper
# ----------------------------------------------------------------------------------------------------


@cpu_jit(static_argnames=("model", "chunk", "has_quality"))
def _magsac_batch(src, dst, valid, quality, threshold, sigma_max, max_iterations, confidence, seed, *,
                  model, chunk, has_quality):
    return run_batch(src, dst, valid, quality if has_quality else None, threshold, sigma_max, max_iterations,
                      confidence, seed, model=model, chunk=chunk)


@cpu_jit(static_argnames=("model", "chunk", "has_quality"))
def _magsac_packed(matches, params, seed, *, model, chunk, has_quality):
    """One pair, packed to save host-device transfers (a few each way cost as much as a small problem).

    matches: ``(N, 6)`` float32 columns src x, y, dst x, y, quality, valid. params: ``(4,)`` float32
    threshold, sigma_max, max_iterations, confidence. Returns ``(10 + N,)`` float32: ``H`` (9), found, inliers.
    """
    m = matches[None]
    result = run_batch(m[..., 0:2], m[..., 2:4], m[..., 5] > 0, m[..., 4] if has_quality else None, params[0],
                        params[1], params[2].astype(jnp.int32), params[3], seed[None], model=model, chunk=chunk)
    return jnp.concatenate([result.H[0].reshape(9), result.found.astype(jnp.float32),
                            result.inliers[0].astype(jnp.float32)])


def magsac_homographies(src_xy, dst_xy, valid, quality=None, *, model: str = "homography", threshold=3.0,
                        sigma_max=None, max_iterations=10_000, confidence=0.999, seed=0,
                        chunk: int = DEFAULT_CHUNK) -> MagsacResult:
    """MAGSAC++ on a batch of padded match sets: one jit-compiled program, run on CPU in one shard of pairs
    per core (:func:`artdup_jax.geometry.cpu_execution.map_core_shards`; the results are the same).

    Args:
      src_xy, dst_xy: ``(P, N, 2)`` float pixels, x first.
      valid: ``(P, N)`` bool.
      quality: None or ``(P, N)`` float match quality, higher is better (PROSAC order). A batch whose rows
        are all already sorted (valid first, non-increasing quality) skips the sort.
      seed: int (the same for every pair) or ``(P,)``.
      model, threshold, sigma_max, max_iterations, confidence, chunk: see :func:`magsac_pair`; all but
        ``model`` and ``chunk`` are traced, so changing them does not recompile.
    Returns:
      :class:`MagsacResult` with a leading ``(P,)``; pair p equals :func:`magsac_pair` on pair p with its seed
      (up to float32 rounding). Each loop step advances the ``P / 8`` unfinished pairs with the fewest
      hypotheses drawn by one chunk, so a few hard pairs do not hold up the whole batch. ``N = 0`` gives
      ``found=False`` everywhere.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    if isinstance(max_iterations, int) and max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    shapes = (np.shape(src_xy), np.shape(dst_xy), np.shape(valid))
    if len(shapes[0]) != 3 or shapes[0][-1] != 2 or shapes[0] != shapes[1] or shapes[2] != shapes[0][:2]:
        raise ValueError(f"expected (P, N, 2) points and (P, N) valid, got {shapes}")
    if shapes[0][1] == 0:
        return _nothing_found(shapes[0][0])
    has_quality = quality is not None
    if not has_quality:
        quality = np.zeros(shapes[2], np.float32)
    seed = np.broadcast_to(np.asarray(seed, np.uint32), shapes[2][:1])
    sigma_max = np.float32(-1.0 if sigma_max is None else sigma_max)

    def run(src, dst, valid, quality, seed):
        return _magsac_batch(src, dst, valid, quality, np.float32(threshold), sigma_max, np.int32(max_iterations),
                             np.float32(confidence), seed, model=model, chunk=chunk, has_quality=has_quality)

    return map_core_shards(run, (src_xy, dst_xy, valid, quality, seed), min_shard=_MIN_SHARD)


def _nothing_found(num_pairs: int) -> MagsacResult:
    """The result for ``num_pairs`` pairs without a single match."""
    zeros = jnp.zeros((num_pairs,), jnp.int32)
    return MagsacResult(H=jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (num_pairs, 3, 3)),
                        inliers=jnp.zeros((num_pairs, 0), bool), score=jnp.zeros((num_pairs,), jnp.float32),
                        found=jnp.zeros((num_pairs,), bool), iterations=zeros, num_inliers=zeros)


_MIN_ROWS = 64


def _bucket_rows(n: int) -> int:
    """Pad to 64, 96, 128, 192, 256, ...: few compiled shapes, at most 1.5x the rows."""
    rows = _MIN_ROWS
    while rows < n:
        rows = rows * 3 // 2 if rows & (rows - 1) == 0 else rows * 4 // 3
    return rows


def find_homography_magsac(src_xy, dst_xy, *, quality=None, threshold=3.0, sigma_max=None,
                           max_iterations=10_000, confidence=0.999, seed=0, model="homography"):
    """``cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold)`` in JAX, for one match set.

    Args:
      src_xy, dst_xy: ``(N, 2)`` (or OpenCV's ``(N, 1, 2)``) pixel coordinates, x first.
      quality: None or ``(N,)`` match quality, higher is better (PROSAC order; sorted here, on the host).
      threshold, sigma_max, max_iterations, confidence, seed, model: see :func:`magsac_pair`.
    Returns:
      ``(H, inlier_mask)``: ``H`` ``(3, 3)`` float64 with ``H[2, 2] = 1`` mapping src to dst, or None when no
      model is found; ``inlier_mask`` ``(N,)`` bool (all False when ``H`` is None). ``N`` is padded to one of a
      few sizes, so that calls with different ``N`` rarely recompile. Hypotheses are drawn
      :data:`SINGLE_PAIR_CHUNK` at a time: a loop step has a fixed cost that one pair alone pays.
    """
    src, dst = _as_points(src_xy, "src_xy"), _as_points(dst_xy, "dst_xy")
    if src.shape != dst.shape:
        raise ValueError(f"src_xy and dst_xy differ in shape: {src.shape} vs {dst.shape}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    n = src.shape[0]
    if n < MODELS[model]:
        return None, np.zeros((n,), bool)
    order = slice(None)
    matches = np.zeros((_bucket_rows(n), 6), np.float32)
    if quality is not None:
        quality = np.asarray(quality, np.float32).reshape(n)
        order = np.argsort(-quality, kind="stable")  # the in-jit sort is then skipped
        matches[:n, 4], matches[n:, 4] = quality[order], -np.inf
    matches[:n, 0:2], matches[:n, 2:4], matches[:n, 5] = src[order], dst[order], 1.0
    params = np.array([threshold, -1.0 if sigma_max is None else sigma_max, max_iterations, confidence], np.float32)
    out = np.asarray(_magsac_packed(matches, params, np.uint32(seed), model=model, chunk=SINGLE_PAIR_CHUNK,
                                    has_quality=quality is not None))
    mask = np.zeros((n,), bool)
    if not out[9] > 0:
        return None, mask
    mask[order] = out[10:10 + n] > 0
    return out[:9].reshape(3, 3).astype(np.float64), mask
