"""Pair verification: the discovery score of directional ``(reference, target)`` pairs, batched.

Pair score of a reference I1 and a target I2, for every pair of a batch at once:

1. The feature bank's prepared cells (``bank``): I1's ``N1 = R1 x C1`` cropped, normalised (and weighted) cells;
   I2's normalised cells at every scale.
2. Per scale, mutual nearest neighbours (``matching``; ``screening`` finds the same ones from the few rows of the
   similarity matrix that can hold one), kept in a dense ``(N1, S)`` layout: one mutual match at most per
   reference cell and scale.
3. Hough initialisation (``hough``): the scale with the strictly highest smoothed vote peak wins; its matches
   within ``tau_c`` of the peak are the sampling set (all pooled matches with ``hough=False``).
4. Affine RANSAC with ``tau = tau_c / reference_cells`` (normalised I1 units; ``affine`` draws and fits the
   hypotheses): fewer than 4 sampling matches give 0. Each map is scored on *all* pooled matches:
   ``sum over I1 cells of max over its matches with e < tau of s exp(-e^2 / tau^2)``; first strict maximum > 0.
5. Post-processing (``postprocess``): per I1 cell its inlier with the highest similarity; the virtual I2 grid
   ``(R2', C2')`` from T's unit vectors in I1 cells (0 or >= 1000: score 0); one-to-one on that grid (best
   similarity per I2 cell); iterative removal of matches in 8-connected components of fewer than
   ``min_component`` cells on either side (at most ``min_component`` matches left: score 0).
6. Score = sum of the surviving (unweighted) similarities / N1.

Static shapes: reference cells are padded to the bank's largest ``R1 C1``, each scale's target cells to the
largest ``R2 C2`` (both rounded up to multiples of 64), matches to ``(N1, S)``, hypotheses to ``iterations``;
masks say what is real, and padding never changes a result (tested). Hypotheses are scored in chunks
(``hypothesis_chunk``). Steps 3-6 run only for the pairs that can reach 4 sampling matches.

Boxes are ``[x1, y1, x2, y2]`` pixels of the original image (x = column). The reference's matched cells map
to the pixels they cover in the resized image (16 px a cell, margin included, as the release's mask), the
target's cells to equal fractions of its virtual grid.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.discovery.affine import _affine_fits, _hypotheses, _squared_errors, subset_table
from artdup_jax.artminer.discovery.bank import FeatureBank, _round_up, prepare_reference, prepare_target
from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.discovery.hough import _hough_sampling_set
from artdup_jax.artminer.discovery.matching import COORD_OFFSET, _reference_grid, dense_mutual_matches, first_argmax
from artdup_jax.artminer.discovery.postprocess import _one_to_one, _remove_small_components
from artdup_jax.artminer.discovery.screening import (screen_reference, screen_target, screened_mutual_matches,
                                                     screening_basis)
from artdup_jax.artminer.resize_rule import STRIDE

MAX_VIRTUAL_CELLS = 1000  # a virtual target grid side at or above this gives score 0 (the release)
# Added to the virtual grid size before truncation (deliberate deviation, also in the PyTorch port): the size is
# often a whole number that float32 (or float64) rounding would otherwise truncate to the integer below.
VIRTUAL_NUDGE = 1e-3
PAD_GRID = 8  # Hough grids are padded to multiples of this (fewer distinct shapes, fewer compilations)
REFERENCES_PER_CALL = 8  # screened matching: references against one target per call (one compiled shape)
DENSE_MATCH_BYTES = 512 * 2**20  # dense matching: similarity matrices held at once (bounds the pairs per call)


def _pair_matches(reference, reference_valid, reference_hw, targets, target_valid, target_hw, *, tolerance_cells,
                  hough, grids):
    """Phase 1 of one directional pair (steps 2-3), dense: mutual matches per scale, then ``_pair_sampling``."""
    found = [dense_mutual_matches(reference, target, reference_valid, valid_b)
             for target, valid_b in zip(targets, target_valid)]
    has, index, sims = (jnp.stack(x, 1) for x in zip(*found))
    return _pair_sampling(has, index, sims, reference_hw, target_hw, tolerance_cells=tolerance_cells, hough=hough,
                          grids=grids)


def _pair_sampling(has, index, sims, reference_hw, target_hw, *, tolerance_cells, hough, grids):
    """Step 3 of one directional pair from its matches ``has`` / ``index`` (target cell) / ``sims``, each
    ``(N1, S)``: target coordinates and the RANSAC sampling list. Returns ``{"has", "sims" (N1, S), "x2"
    (N1, S, 2), "listed" (S N1,), "n"}``."""
    n1, num_scales = has.shape
    rows1, cols1 = reference_hw[0], reference_hw[1]
    r1, c1, _ = _reference_grid(reference_hw, n1)
    x2s, peaks, hough_sets = [], [], []
    for s in range(num_scales):
        rows2, cols2 = target_hw[s, 0], target_hw[s, 1]
        b, matched = index[:, s], has[:, s]
        r2, c2 = b // jnp.maximum(cols2, 1), b % jnp.maximum(cols2, 1)
        x2s.append(jnp.stack([(r2 + COORD_OFFSET) / rows2, (c2 + COORD_OFFSET) / cols2], -1).astype(jnp.float32))
        peak, hough_set = _hough_sampling_set(r1, c1, r2, c2, matched, rows1, cols1, rows2, cols2, grids[s],
                                              tolerance_cells)
        peaks.append(peak)
        hough_sets.append(hough_set)
    if hough:
        peaks = jnp.stack(peaks)
        best_scale = jnp.argmax(peaks)  # first maximum: a later scale must be strictly higher
        sampling = jnp.stack(hough_sets, 1) & (jnp.arange(num_scales)[None, :] == best_scale) & (peaks[best_scale] > 0)
    else:
        sampling = has
    # Sampling list in the release's pooled order: scale by scale, then cell order.
    flat_sampling = sampling.T.reshape(-1)
    (listed,) = jnp.nonzero(flat_sampling, size=flat_sampling.shape[0], fill_value=0)
    return {"has": has, "sims": sims, "x2": jnp.stack(x2s, 1), "listed": listed.astype(jnp.int32),
            "n": jnp.sum(flat_sampling, dtype=jnp.int32)}


def _pair_ransac(pair_ids, matches, reference_hw, seed, subsets, subset_count, *, tolerance, iterations,
                 min_component, chunk):
    """Phase 2 of one directional pair (steps 4-6): RANSAC, post-processing, score and matched extents."""
    has, sims, x2, listed, n = (matches[k] for k in ("has", "sims", "x2", "listed", "n"))
    n1 = has.shape[0]
    rows1, cols1 = reference_hw[0], reference_hw[1]
    r1, c1, x1 = _reference_grid(reference_hw, n1)
    bits = jax.random.bits(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), pair_ids[0]), pair_ids[1]),
                           (2,), jnp.uint32)
    index, hyp_valid = _hypotheses(bits, n, iterations, subsets, subset_count)
    flat_id = listed[jnp.clip(index, 0, listed.shape[0] - 1)]  # (H, 3) = scale * N1 + cell
    sample_cell, sample_scale = flat_id % n1, flat_id // n1
    T = _affine_fits(x2[sample_cell, sample_scale], x1[sample_cell])  # (H, 3, 2)
    hyp_valid = hyp_valid & jnp.all(jnp.isfinite(T), axis=(-2, -1))

    tol2 = jnp.float32(tolerance) ** 2
    num_chunks = -(-iterations // chunk)
    pad = num_chunks * chunk - iterations
    T_chunks = jnp.pad(T, ((0, pad), (0, 0), (0, 0))).reshape(num_chunks, chunk, 3, 2)
    valid_chunks = jnp.pad(hyp_valid, (0, pad)).reshape(num_chunks, chunk)

    def score_chunk(best, inputs):
        t, ok, c = inputs
        err2 = _squared_errors(t, x1, x2)
        weight = jnp.where(has[None] & (err2 < tol2), sims[None] * jnp.exp(-err2 / tol2), 0.0)
        scores = jnp.where(ok, jnp.sum(jnp.max(weight, axis=2), axis=1), -1.0)
        i, _ = first_argmax(scores, 0)
        better = scores[i] > best[0]  # strict: the first maximum wins; 0 never does
        return (jnp.where(better, scores[i], best[0]), jnp.where(better, c * chunk + i, best[1])), None

    (best_score, best_index), _ = lax.scan(score_chunk, (jnp.float32(0.0), jnp.int32(-1)),
                                           (T_chunks, valid_chunks, jnp.arange(num_chunks)))
    found = best_index >= 0
    T_best = T[jnp.maximum(best_index, 0)]

    # Inliers of the best map; per I1 cell the one with the highest unweighted similarity (first scale on ties).
    err2 = _squared_errors(T_best[None], x1, x2)[0]
    inlier = has & (err2 < tol2) & found
    pick = jnp.argmax(jnp.where(inlier, sims, -1.0), axis=1)
    keep = jnp.any(inlier, axis=1)
    sim_kept = jnp.take_along_axis(sims, pick[:, None], 1)[:, 0]
    x2_kept = jnp.take_along_axis(x2, pick[:, None, None], 1)[:, 0]

    # Virtual I2 grid at I1's cell size: T's unit vectors measured in I1 cells (int, as the release).
    virtual_rows = jnp.sqrt((T_best[0, 0] * rows1) ** 2 + (T_best[0, 1] * cols1) ** 2)
    virtual_cols = jnp.sqrt((T_best[1, 0] * rows1) ** 2 + (T_best[1, 1] * cols1) ** 2)
    grid_ok = (jnp.isfinite(virtual_rows) & jnp.isfinite(virtual_cols) & (virtual_rows + VIRTUAL_NUDGE >= 1)
               & (virtual_cols + VIRTUAL_NUDGE >= 1) & (virtual_rows + VIRTUAL_NUDGE < MAX_VIRTUAL_CELLS)
               & (virtual_cols + VIRTUAL_NUDGE < MAX_VIRTUAL_CELLS))
    # Truncated as the release, after a nudge of VIRTUAL_NUDGE: exact copies often give a whole number of cells
    # that float rounding would otherwise put on either side of the integer.
    virtual_rows = jnp.where(grid_ok, virtual_rows + VIRTUAL_NUDGE, 1.0).astype(jnp.int32)
    virtual_cols = jnp.where(grid_ok, virtual_cols + VIRTUAL_NUDGE, 1.0).astype(jnp.int32)
    keep = keep & grid_ok
    q = jnp.stack([(x2_kept[:, 0] * virtual_rows).astype(jnp.int32),
                   (x2_kept[:, 1] * virtual_cols).astype(jnp.int32)], -1)

    keep = _one_to_one(q, sim_kept, keep)

    cells1 = jnp.stack([r1, c1], -1)
    keep = _remove_small_components(cells1, q, keep, min_component)
    total = jnp.sum(jnp.where(keep, sim_kept, 0.0))
    score = total / (rows1 * cols1).astype(jnp.float32)

    big = jnp.int32(1 << 30)

    def extent(values):
        return (jnp.min(jnp.where(keep, values, big)), jnp.max(jnp.where(keep, values, -1)) + 1)

    rr0, rr1 = extent(r1)
    rc0, rc1 = extent(c1)
    tr0, tr1 = extent(q[:, 0])
    tc0, tc1 = extent(q[:, 1])
    any_kept = jnp.any(keep)
    return {
        "score": jnp.where(any_kept, score, 0.0),
        "num_matches": jnp.sum(keep, dtype=jnp.int32),
        "reference_cells": jnp.where(any_kept, jnp.stack([rc0, rr0, rc1, rr1]), 0),  # [c0, r0, c1, r1) cropped grid
        "target_fraction": jnp.where(any_kept, jnp.stack([tc0 / virtual_cols, tr0 / virtual_rows, tc1 / virtual_cols,
                                                          tr1 / virtual_rows]).astype(jnp.float32), 0.0),
        "virtual_hw": jnp.stack([virtual_rows, virtual_cols]),
        "ransac_score": best_score,
    }


_MATCH_STATIC = ("tolerance_cells", "hough", "grids")
_RANSAC_STATIC = ("tolerance", "iterations", "min_component", "chunk")


@functools.partial(jax.jit, static_argnames=_MATCH_STATIC)
def _match_batch(reference, reference_valid, reference_hw, targets, target_valid, target_hw, **static):
    return jax.vmap(functools.partial(_pair_matches, **static))(reference, reference_valid, reference_hw, targets,
                                                                target_valid, target_hw)


@functools.partial(jax.jit, static_argnames=_RANSAC_STATIC)
def _ransac_batch(pair_ids, matches, reference_hw, seed, subsets, subset_count, **static):
    return jax.vmap(functools.partial(_pair_ransac, **static), in_axes=(0, 0, 0, None, None, None))(
        pair_ids, matches, reference_hw, seed, subsets, subset_count)


@jax.jit
def _dense_match_batch(reference, reference_valid, targets, target_valid):
    """Dense mutual matches of a batch of pairs: ``(P, N1, S)`` matched, target cell, similarity."""
    def one(reference, reference_valid, targets, target_valid):
        found = [dense_mutual_matches(reference, t, reference_valid, v) for t, v in zip(targets, target_valid)]
        return tuple(jnp.stack(x, 1) for x in zip(*found))

    return jax.vmap(one)(reference, reference_valid, targets, target_valid)


@jax.jit
def _screened_match_target(references, reference_valid, targets, target_valid, basis):
    """Screened mutual matches of references ``(R, N1, D)`` against one target at every scale: ``(R, N1, S)``
    matched, target cell, similarity (``screening.screened_mutual_matches``; equal to the dense ones).

    The target is prepared once; the references run one after another (``lax.map``), each for only as many
    rows as its bounds ask for. A reference without valid cells (padding) costs one block of rows.
    """
    prepared = [screen_target(t, v, basis) for t, v in zip(targets, target_valid)]

    def one(reference):
        reference = screen_reference(*reference, basis)
        found = [screened_mutual_matches(reference, target) for target in prepared]
        return tuple(jnp.stack(x, 1) for x in zip(*found))

    return lax.map(one, (references, reference_valid))


@functools.partial(jax.jit, static_argnames=_MATCH_STATIC)
def _sampling_batch(has, index, sims, reference_hw, target_hw, **static):
    return jax.vmap(functools.partial(_pair_sampling, **static))(has, index, sims, reference_hw, target_hw)


def _static_args(config: DiscoveryConfig, grids) -> tuple[dict, dict]:
    """Static arguments of the two phases."""
    return (dict(tolerance_cells=float(config.tolerance_cells), hough=bool(config.hough), grids=tuple(grids)),
            dict(tolerance=float(config.tolerance), iterations=int(config.iterations),
                 min_component=int(config.min_component), chunk=int(min(config.hypothesis_chunk, config.iterations))))


def _empty_outputs(count: int, num_cells: int) -> dict[str, np.ndarray]:
    """Phase-2 outputs of pairs with fewer than 4 sampling matches: score 0, nothing matched."""
    return {"score": np.zeros(count, np.float32), "num_matches": np.zeros(count, np.int32),
            "reference_cells": np.zeros((count, 4), np.int32), "target_fraction": np.zeros((count, 4), np.float32),
            "virtual_hw": np.zeros((count, 2), np.int32), "ransac_score": np.zeros(count, np.float32)}


@dataclasses.dataclass
class PairScores:
    """Directional pair scores; one row per ``(reference, target)`` pair.

    pairs: ``(P, 2)`` int (reference, target) image indices.
    scores: ``(P,)`` float32 discovery score, in [0, 1].
    num_matches: ``(P,)`` surviving matches.
    reference_boxes, target_boxes: ``(P, 4)`` float ``[x1, y1, x2, y2]`` pixels of the original images around
      the matched cells (zeros where nothing survived).
    """

    pairs: np.ndarray
    scores: np.ndarray
    num_matches: np.ndarray
    reference_boxes: np.ndarray
    target_boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.pairs)


def _reference_boxes(cells, reference_hw, margin, image_hw):
    """Cropped-grid cell ranges ``[c0, r0, c1, r1)`` -> pixel boxes: cell k covers resized pixels
    ``[16 (k + margin), 16 (k + margin + 1))`` of a ``16 (R + 2 margin) - 1`` px image."""
    cells = np.asarray(cells, np.float64)
    full = reference_hw.astype(np.float64) + 2 * margin  # (P, 2) rows, cols
    size_px = STRIDE * full - 1
    height, width = image_hw[:, 0].astype(np.float64), image_hw[:, 1].astype(np.float64)
    x0 = np.clip(STRIDE * (cells[:, 0] + margin) / size_px[:, 1], 0, 1) * width
    y0 = np.clip(STRIDE * (cells[:, 1] + margin) / size_px[:, 0], 0, 1) * height
    x1 = np.clip(STRIDE * (cells[:, 2] + margin) / size_px[:, 1], 0, 1) * width
    y1 = np.clip(STRIDE * (cells[:, 3] + margin) / size_px[:, 0], 0, 1) * height
    return np.stack([x0, y0, x1, y1], 1)


def _batches(count: int, size: int):
    """Index arrays of ``size`` (the last padded by repeating its first index) and how many are real."""
    for start in range(0, count, size):
        index = np.arange(start, min(start + size, count))
        real = len(index)
        yield np.concatenate([index, np.repeat(index[:1], size - real)]), real


def _dense_matches(bank: FeatureBank, pairs: np.ndarray, matches: dict, rows: np.ndarray, size: int) -> None:
    """Fills ``matches`` rows ``rows`` with the dense mutual matches of ``pairs[rows]``, ``size`` pairs a call."""
    for index, real in _batches(len(rows), size):
        a, b = pairs[rows[index], 0], pairs[rows[index], 1]
        found = _dense_match_batch(jnp.asarray(bank.reference[a], jnp.float32), jnp.asarray(bank.reference_valid[a]),
                                   tuple(jnp.asarray(t[b], jnp.float32) for t in bank.targets),
                                   tuple(jnp.asarray(v[b]) for v in bank.target_valid))
        for key, value in zip(("has", "index", "sims"), found):
            matches[key][rows[index[:real]]] = np.asarray(value)[:real]


def _screened_matches(bank: FeatureBank, pairs: np.ndarray, matches: dict) -> None:
    """Fills ``matches`` with the screened mutual matches of every pair: pairs grouped by target (its maps are
    copied and prepared once for all its references), ``REFERENCES_PER_CALL`` references a call (fewer: padded
    with references without valid cells)."""
    basis = jnp.asarray(screening_basis([(bank.reference, bank.reference_valid, pairs[:, 0])]
                                        + [(t, v, pairs[:, 1]) for t, v in zip(bank.targets, bank.target_valid)]))
    order = np.argsort(pairs[:, 1], kind="stable")
    targets = pairs[order, 1]
    starts = np.flatnonzero(np.r_[True, targets[1:] != targets[:-1]])
    calls = [(targets[begin], order[start:min(start + REFERENCES_PER_CALL, end)])
             for begin, end in zip(starts, np.r_[starts[1:], len(order)])
             for start in range(begin, end, REFERENCES_PER_CALL)]
    for b, rows in calls:
        a = np.concatenate([pairs[rows, 0], np.repeat(pairs[rows[:1], 0], REFERENCES_PER_CALL - len(rows))])
        valid = np.asarray(bank.reference_valid[a]) & (np.arange(REFERENCES_PER_CALL) < len(rows))[:, None]
        found = _screened_match_target(jnp.asarray(bank.reference[a], jnp.float32), jnp.asarray(valid),
                                       tuple(jnp.asarray(t[b], jnp.float32) for t in bank.targets),
                                       tuple(jnp.asarray(v[b]) for v in bank.target_valid), basis)
        for key, value in zip(("has", "index", "sims"), found):
            matches[key][rows] = np.asarray(value)[:len(rows)]


def score_pairs(bank: FeatureBank, pairs: np.ndarray, config: DiscoveryConfig = DiscoveryConfig(), *,
                group: int = 64, screen: bool | None = None) -> PairScores:
    """Scores directional ``(reference, target)`` pairs of ``bank`` (which may hold only the images of the pairs).

    Three jitted phases, each over only the pairs that need it:

    1. mutual matches of every pair at every scale: screened (``screening``: the rows of each similarity matrix
       that can hold a mutual match, the others ruled out by bounds; pairs grouped by target) or dense (pairs
       vmapped in batches whose similarity matrices fit ``DENSE_MATCH_BYTES``). Both give the same matches.
       ``screen`` defaults to screening saliency-weighted references (the release's discovery, where a few
       rows win every column) on the CPU; elsewhere the dense product is as fast or faster;
    2. Hough sampling sets, ``config.pairs_per_batch`` pairs a call, of the pairs with at least 4 matches at some
       scale (with ``hough=False``: in all): the others cannot reach 4 sampling matches;
    3. RANSAC and post-processing of the pairs with at least 4 sampling matches (the others score 0, as in the
       release), ``config.pairs_per_batch`` a call.

    The last batch of a phase is padded with copies of its first pair, so every call has the same shape.
    ``group`` is no longer used (kept for callers).
    """
    del group
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs[:, 0].max() >= len(bank.reference) or pairs[:, 1].max() >= len(bank)):
        raise ValueError(f"pair indices out of range: {len(bank.reference)} references, {len(bank)} targets")
    grids = tuple((_round_up(bank.reference_hw[:, 0].max() + bank.target_hw[:, s, 0].max(), PAD_GRID),
                   _round_up(bank.reference_hw[:, 1].max() + bank.target_hw[:, s, 1].max(), PAD_GRID))
                  for s in range(len(bank.targets))) if len(bank) else ()
    match_static, ransac_static = _static_args(config, grids)
    size = config.pairs_per_batch
    num_cells, num_scales = bank.reference.shape[1], len(bank.targets)
    out = _empty_outputs(len(pairs), num_cells)
    out["sampling_size"] = np.zeros(len(pairs), np.int32)
    matches = {"has": np.zeros((len(pairs), num_cells, num_scales), bool),
               "index": np.zeros((len(pairs), num_cells, num_scales), np.int32),
               "sims": np.zeros((len(pairs), num_cells, num_scales), np.float32)}
    if screen is None:
        screen = config.saliency and jax.default_backend() == "cpu"
    if screen and len(pairs):
        _screened_matches(bank, pairs, matches)
    elif len(pairs):
        similarities = 4 * num_cells * sum(t.shape[1] for t in bank.targets)  # bytes per pair
        _dense_matches(bank, pairs, matches, np.arange(len(pairs)),
                       max(1, min(size, DENSE_MATCH_BYTES // similarities)))

    counts = matches["has"].sum(1)  # (P, S)
    todo = np.flatnonzero((counts.max(1, initial=0) if config.hough else counts.sum(1)) >= 4)
    sampled = {}
    for index, real in _batches(len(todo), size):
        rows = todo[index]
        found = _sampling_batch(*(jnp.asarray(matches[k][rows]) for k in ("has", "index", "sims")),
                                jnp.asarray(bank.reference_hw[pairs[rows, 0]]),
                                jnp.asarray(bank.target_hw[pairs[rows, 1]]), **match_static)
        for key, value in found.items():
            sampled.setdefault(key, []).append(np.asarray(value)[:real])
    sampled = {k: np.concatenate(v) for k, v in sampled.items()}
    if len(todo):
        out["sampling_size"][todo] = sampled["n"]
        todo, sampled = todo[sampled["n"] >= 4], {k: v[sampled["n"] >= 4] for k, v in sampled.items()}

    subsets, subset_count = (jnp.asarray(a) for a in subset_table(config.seed, config.iterations))
    for index, real in _batches(len(todo), size):
        rows = todo[index]
        found = _ransac_batch(jnp.asarray(pairs[rows], jnp.int32),
                              {k: jnp.asarray(v[index]) for k, v in sampled.items()},
                              jnp.asarray(bank.reference_hw[pairs[rows, 0]]), jnp.uint32(config.seed), subsets,
                              subset_count, **ransac_static)
        for key, value in found.items():
            if key in out:
                out[key][rows[:real]] = np.asarray(value)[:real]
    a, b = pairs[:, 0], pairs[:, 1]
    reference_hw_px = bank.image_hw if bank.reference_image_hw is None else bank.reference_image_hw
    reference_boxes = _reference_boxes(out["reference_cells"], bank.reference_hw[a], bank.margin, reference_hw_px[a])
    target_boxes = out["target_fraction"].astype(np.float64) * np.stack(
        [bank.image_hw[b, 1], bank.image_hw[b, 0]] * 2, 1).reshape(-1, 4)
    empty = out["num_matches"] == 0
    reference_boxes[empty] = 0
    target_boxes[empty] = 0
    return PairScores(pairs, out["score"].astype(np.float32), out["num_matches"], reference_boxes, target_boxes)


def pair_score(reference_map, target_maps: Sequence, config: DiscoveryConfig = DiscoveryConfig(), *,
               pair_ids: tuple[int, int] = (0, 1)) -> dict:
    """The score of one pair from raw feature maps, unpadded (the per-pair reference for ``score_pairs``).

    Args:
      reference_map: raw ``(R, C, D)`` I1 features at ``config.reference_cells``.
      target_maps: raw ``(R_s, C_s, D)`` I2 features, one per scale of ``config.scales``.
      pair_ids: the ``(reference, target)`` indices whose RANSAC draws to use (``score_pairs`` keys every pair
        by its indices, so equal ids give equal draws).
    Returns:
      ``{"score", "num_matches", "sampling_size", "reference_cells", "target_fraction", "virtual_hw",
      "ransac_score"}`` as NumPy values.
    """
    if len(target_maps) != len(config.scales):
        raise ValueError(f"{len(target_maps)} target maps for {len(config.scales)} scales")
    reference = prepare_reference(reference_map, config.margin, config.saliency)
    targets = [prepare_target(t) for t in target_maps]
    grids = tuple((reference.shape[0] + t.shape[0], reference.shape[1] + t.shape[1]) for t in targets)
    n1 = reference.shape[0] * reference.shape[1]
    match_static, ransac_static = _static_args(config, grids)
    reference_hw = jnp.asarray([reference.shape[:2]], jnp.int32)
    matches = _match_batch(jnp.asarray(reference.reshape(1, n1, -1)), jnp.ones((1, n1), bool), reference_hw,
                           tuple(jnp.asarray(t.reshape(1, -1, t.shape[-1])) for t in targets),
                           tuple(jnp.ones((1, t.shape[0] * t.shape[1]), bool) for t in targets),
                           jnp.asarray([[t.shape[:2] for t in targets]], jnp.int32), **match_static)
    n = int(matches["n"][0])
    if n < 4:
        out = {k: v[0] for k, v in _empty_outputs(1, n1).items()}
    else:
        found = _ransac_batch(jnp.asarray([pair_ids], jnp.int32), matches, reference_hw, jnp.uint32(config.seed),
                              *(jnp.asarray(a) for a in subset_table(config.seed, config.iterations)), **ransac_static)
        out = {k: np.asarray(v)[0] for k, v in found.items()}
    out["sampling_size"] = np.int32(n)
    return out
