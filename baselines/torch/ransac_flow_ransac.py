"""PyTorch port of RANSAC-Flow's homography RANSAC, run the way the official code runs it.

Reference for parity tests and the baseline of the throughput benchmark; never imported by ``artdup_jax``.
Semantics: draw ``nb_iter`` index 4-tuples with replacement, drop tuples with a repeated
index, then walk the survivors in chunks of 100: fit each chunk's hypotheses by unnormalised DLT with a
float64 NumPy SVD (one host round trip per chunk), score them in torch (transfer error from target to
source, strict ``< tol``, times ``[det > 1e-6]``), abort with no homography when a full chunk's best score is
0, keep a new best only when strictly better. No refit.

``canonicalise_sign=True`` flips each fitted matrix to ``M[2, 2] >= 0`` before the det gate (the documented
deviation our JAX version makes); ``False`` keeps whatever sign the SVD returned, as the original does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

CHUNK = 100
MIN_DET = 1e-6


class RansacFlowResult(NamedTuple):
    M: np.ndarray | None  # (3, 3) float32 mapping target to source; None when no homography
    num_inliers: int
    inliers: np.ndarray  # (N,) bool; all False when M is None
    scores: np.ndarray  # (S,) int64 scores of the S surviving hypotheses, in order (up to an abort)
    kept: np.ndarray  # (nb_iter,) bool: which drawn tuples survived the repeated-index filter


def draw_hypotheses(nb_iter: int, num_matches: int, generator: torch.Generator | None = None):
    """``(nb_iter, 4)`` int64 indices, uniform with replacement (the official draw)."""
    return torch.randint(num_matches, (nb_iter, 4), generator=generator)


def _dlt_svd(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``(C, 4, 2)`` -> ``(C, 3, 3)``: smallest right singular vector of the 8x9 DLT system, float64."""
    num = target.shape[0]
    A = np.zeros((num, 8, 9))
    for i in range(4):
        xt, yt = target[:, i, 0], target[:, i, 1]
        xs, ys = source[:, i, 0], source[:, i, 1]
        zero, one = np.zeros(num), np.ones(num)
        A[:, 2 * i] = np.stack([zero, zero, zero, -xt, -yt, -one, ys * xt, ys * yt, ys], axis=1)
        A[:, 2 * i + 1] = np.stack([xt, yt, one, zero, zero, zero, -xs * xt, -xs * yt, -xs], axis=1)
    _, _, vh = np.linalg.svd(A)
    return vh[:, 8].reshape(num, 3, 3)


def _transfer_error(target_h: torch.Tensor, source_h: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``(C, N)`` distance between source points and target points mapped by each ``M`` ``(C, 3, 3)``."""
    mapped = target_h.unsqueeze(0) @ M.transpose(1, 2)  # (C, N, 3)
    mapped = mapped / mapped[..., 2:]
    return torch.sqrt(torch.sum((source_h[None, :, :2] - mapped[..., :2]) ** 2, dim=2))


def _score_chunk(target_h, source_h, samples, tol, canonicalise_sign):
    M = _dlt_svd(target_h[samples, :2].cpu().numpy(), source_h[samples, :2].cpu().numpy())
    M = torch.from_numpy(M).float().to(target_h.device)
    if canonicalise_sign:
        M = torch.where(M[:, 2:3, 2:3] < 0, -M, M)
    inliers = _transfer_error(target_h, source_h, M) < tol
    return M, inliers.sum(dim=1) * (torch.det(M) > MIN_DET).long()


def ransac_flow_ransac(nb_iter: int, source_xy, target_xy, tol: float, *, hypothesis_indices=None,
                       generator: torch.Generator | None = None, canonicalise_sign: bool = True,
                       device: str = "cpu") -> RansacFlowResult:
    """RANSAC-Flow's RANSAC.

    Args:
      nb_iter: number of 4-tuples to draw (ignored when ``hypothesis_indices`` is given).
      source_xy, target_xy: ``(N, 2)`` array-likes, x first (normalised PC coordinates in RANSAC-Flow).
      tol: inlier iff transfer error < tol.
      hypothesis_indices: optional ``(I, 4)`` int tuples used instead of drawing.
      generator: torch generator for the draw (the original is unseeded).
      canonicalise_sign: see the module docstring.
    Returns:
      :class:`RansacFlowResult`; ``M`` maps target to source.
    """
    source = torch.as_tensor(np.asarray(source_xy, np.float32), device=device)
    target = torch.as_tensor(np.asarray(target_xy, np.float32), device=device)
    num = source.shape[0]
    empty = RansacFlowResult(None, 0, np.zeros((num,), bool), np.zeros((0,), np.int64), np.zeros((0,), bool))
    if num < 4:
        return empty
    ones = torch.ones((num, 1), device=device)
    source_h, target_h = torch.cat([source, ones], 1), torch.cat([target, ones], 1)

    if hypothesis_indices is None:
        samples = draw_hypotheses(nb_iter, num, generator).to(device)
    else:
        samples = torch.as_tensor(np.asarray(hypothesis_indices), dtype=torch.int64, device=device)
    repeated = torch.zeros(samples.shape[0], dtype=torch.bool, device=device)
    for i in range(4):
        for j in range(i + 1, 4):
            repeated |= samples[:, i] == samples[:, j]
    unique = samples[~repeated]
    kept = (~repeated).cpu().numpy()

    best_M, best_score, all_scores = None, 0, []
    num_full = len(unique) // CHUNK
    for c in range(num_full):
        M, scores = _score_chunk(target_h, source_h, unique[c * CHUNK:(c + 1) * CHUNK], tol,
                                 canonicalise_sign)
        all_scores.append(scores)
        best = int(torch.argmax(scores))
        if scores[best] == 0:
            return empty._replace(scores=torch.cat(all_scores).cpu().numpy(), kept=kept)
        if scores[best] > best_score:
            best_M, best_score = M[best], int(scores[best])
    if len(unique) > num_full * CHUNK:
        M, scores = _score_chunk(target_h, source_h, unique[num_full * CHUNK:], tol, canonicalise_sign)
        all_scores.append(scores)
        best = int(torch.argmax(scores))
        if scores[best] > best_score:
            best_M, best_score = M[best], int(scores[best])
    all_scores = torch.cat(all_scores).cpu().numpy() if all_scores else np.zeros((0,), np.int64)
    if best_M is None:  # the original crashes here (no chunk scored > 0)
        return empty._replace(scores=all_scores, kept=kept)
    inliers = (_transfer_error(target_h, source_h, best_M[None])[0] < tol).cpu().numpy()
    return RansacFlowResult(best_M.cpu().numpy(), best_score, inliers, all_scores, kept)
