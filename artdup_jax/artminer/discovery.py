"""Discovery: spatially consistent matches between images, pair scores and groups (artminer.md §4).

  bank = extract_features(variables, paths, config)        # features once per image (FeatureCache)
  pairs = candidate_pairs(bank.descriptors, config.top_k)  # or all_pairs(len(bank))
  scores = score_pairs(bank, directed(pairs), config)      # batched: vmap over pairs, no Python loop
  result = discover(variables, paths, config)              # all of it, plus groups and region groups

Pair score of a reference I1 and a target I2 (§4.1-§4.5), for every pair of a batch at once:

1. I1 at ``reference_cells`` on its longer side (shorter >= 2 margin + 1), per-cell L2 normalisation, optional
   saliency weighting (each cell times 1 - the mean cosine with its 4 neighbours; border cells 0), then
   ``margin`` cells cropped: the ``N1 = R1 x C1`` reference cells. I2 at every scale of ``scales`` (shorter
   side >= 1), per-cell L2 normalisation.
2. Per scale, mutual nearest neighbours (the rule of ``geometry.matching``), kept in a dense ``(N1, S)`` layout:
   one mutual match at most per reference cell and scale. Coordinates are ``((row + 0.49) / R, (col + 0.49) / C)``
   on the cropped I1 grid and on I2's grid at that scale (row first).
3. Hough initialisation: per scale each match votes for its cell shift ``(r1 - r2, c1 - c2)``, offset by
   ``(R2 - 2, C2 - 2)`` (so the most extreme shift lands on index -1, which wraps to the last bin, as the
   release); the grid is convolved ('same', zeros) with ``exp(-(dx^2 + dy^2) / tau_c^2)`` on
   ``[-tau_c, tau_c]^2``; the first maximum in row-major order is the peak; the scale with the strictly highest
   peak wins; its matches within ``tau_c`` (Chebyshev) of the peak are the sampling set.
4. Affine RANSAC with ``tau = tau_c / reference_cells`` (normalised I1 units): fewer than 4 sampling matches
   give 0; fewer than 50: distinct 3-subsets, a random ``min(C(n, 3), iterations)`` of them (drawn once per seed
   and size, ``subset_table``); otherwise ``iterations`` random triples of distinct matches (keyed by the pair's
   indices, so a pair draws the same in any batch). Each affine map (I2 -> I1, least squares through 3 points,
   minimum-norm when they are collinear, as ``numpy.linalg.lstsq``) is scored on *all* pooled matches:
   ``sum over I1 cells of max over its matches with e < tau of s exp(-e^2 / tau^2)``; first strict maximum > 0.
5. Post-processing (§4.5): per I1 cell its inlier with the highest similarity; the virtual I2 grid
   ``(R2', C2')`` from T's unit vectors in I1 cells (0 or >= 1000: score 0); one-to-one on that grid (best
   similarity per I2 cell); iterative removal of matches in 8-connected components of fewer than
   ``min_component`` cells on either side (at most ``min_component`` matches left: score 0).
6. Score = sum of the surviving (unweighted) similarities / N1.

Static shapes: reference cells are padded to the collection's largest ``R1 C1``, each scale's target cells to
the largest ``R2 C2`` (both rounded up to multiples of 64), matches to ``(N1, S)``, hypotheses to ``iterations``;
masks say what is real, and padding never changes a result (tested). Hypotheses are scored in chunks
(``hypothesis_chunk``); components are labelled by min-label propagation with pointer jumping over 8-neighbour
lists found by sorting (no ``K x K`` matrices, no grid of the unbounded virtual I2 size).

Groups (§4.7): the symmetric score of an unordered pair is the larger of its two directions; pairs scoring
above ``threshold`` are edges; connected components (union-find) of at least ``min_group_images`` images are
groups. Region groups: within a group, two edges are linked when they share an image and their matched
regions on it (boxes around the surviving cells) overlap with IoU > ``region_iou``; components of linked
edges that cover at least ``min_group_images`` images are region groups.

Boxes are ``[x1, y1, x2, y2]`` pixels of the original image (x = column). The reference's matched cells map
to the pixels they cover in the resized image (16 px a cell, margin included, as the release's mask), the
target's cells to equal fractions of its virtual grid.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.features import EPS, SCALES, STRIDE, l2_normalise
from artdup_jax.data.images import ImageReadError
from artdup_jax.geometry.matching import cosine_similarity
from artdup_jax.geometry.ransac import hash_uniform

ENUMERATE_BELOW = 50  # fewer sampling matches than this: hypotheses are distinct 3-subsets (the release)
MAX_VIRTUAL_CELLS = 1000  # a virtual target grid side at or above this gives score 0 (the release)
COORD_OFFSET = 0.49  # cell centre offset of the release's normalised coordinates
# Added to the virtual grid size before truncation (deliberate deviation, also in the PyTorch port): the size is
# often a whole number that float32 (or float64) rounding would otherwise truncate to the integer below.
VIRTUAL_NUDGE = 1e-3
PAD_CELLS = 64  # bank cell lists are padded to multiples of this (fewer distinct shapes, fewer compilations)
PAD_GRID = 8  # Hough grids likewise


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """Settings; the defaults are the release's LTLL / Brueghel discovery (artminer.md §4)."""

    reference_cells: int = 40  # I1 longer side (cells); also the divisor of the RANSAC tolerance
    margin: int = 3  # I1 border cells cropped after the network
    scales: tuple[int, ...] = SCALES  # I2 longer sides (cells)
    target_min_cells: int = 1
    tolerance_cells: float = 2.0  # tau_c: Hough kernel half-width and Hough-set radius (cells)
    iterations: int = 1000  # RANSAC hypotheses
    hough: bool = True  # sample from the best scale's Hough set (False: from all pooled matches)
    saliency: bool = True  # reference reweighting of §4.1 (LTLL, Brueghel; not Oxford)
    min_component: int = 3  # cells per connected component kept (minFeatCC)
    resample: str = "nearest"  # PIL filter of every resize (the release: NEAREST)
    threshold: float = 0.015  # edge threshold of the groups (the release's default; LTLLCluster.sh: 0.03)
    min_group_images: int = 3
    region_iou: float = 0.3
    top_k: int = 10  # candidate neighbours per image from the global descriptor
    descriptor_cells: int = 20  # longer side of the map the global descriptor pools (the smallest scale)
    exhaustive: bool = False  # score every pair instead of the top-k candidates
    symmetric: bool = True  # score both directions and keep the larger (clustering); False: i -> j only
    pairs_per_batch: int = 32
    hypothesis_chunk: int = 128
    seed: int = 0
    max_batch: int | None = None  # images per network call (None: collection.default_max_batch())

    @property
    def reference_min_cells(self) -> int:
        return 2 * self.margin + 1

    @property
    def tolerance(self) -> float:
        """RANSAC inlier distance in normalised I1 units: tau_c / reference longer side (uncropped)."""
        return self.tolerance_cells / self.reference_cells


# ------------------------------------------------------------------------------------------ features


def saliency_weights(normalised: jnp.ndarray) -> jnp.ndarray:
    """``(R, C)`` weight ``1 - a``: ``a`` = mean cosine of an interior cell with its 4 neighbours; border cells
    get ``a = 1`` (weight 0). ``normalised``: ``(R, C, D)`` per-cell unit features."""
    centre = normalised[1:-1, 1:-1]
    dots = [jnp.sum(centre * normalised[2:, 1:-1], -1), jnp.sum(centre * normalised[:-2, 1:-1], -1),
            jnp.sum(centre * normalised[1:-1, :-2], -1), jnp.sum(centre * normalised[1:-1, 2:], -1)]
    a = jnp.ones(normalised.shape[:2], normalised.dtype).at[1:-1, 1:-1].set(jnp.mean(jnp.stack(dots), 0))
    return 1.0 - a


def prepare_reference(raw_map, margin: int, saliency: bool) -> np.ndarray:
    """Raw ``(R, C, D)`` I1 map -> ``(R - 2 margin, C - 2 margin, D)`` normalised (and weighted) cells (§4.1)."""
    feats = l2_normalise(jnp.asarray(raw_map, jnp.float32))
    if saliency:
        feats = feats * saliency_weights(feats)[..., None]
    rows, cols = feats.shape[:2]
    return np.asarray(feats[margin:rows - margin, margin:cols - margin])


def prepare_target(raw_map) -> np.ndarray:
    """Raw ``(R, C, D)`` I2 map at one scale -> per-cell L2-normalised."""
    return np.asarray(l2_normalise(jnp.asarray(raw_map, jnp.float32)))


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def _pad_flat(maps: Sequence[np.ndarray], dtype, multiple: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(R, C, D)`` maps -> ``(N, L, D)`` row-major cells (zeros after), valid ``(N, L)``, ``(N, 2)`` hw, where
    ``L`` is the largest ``R C`` rounded up to ``multiple`` (collections of similar sizes share compilations)."""
    hw = np.array([m.shape[:2] for m in maps], np.int32).reshape(-1, 2)
    length = _round_up(max(1, int((hw[:, 0] * hw[:, 1]).max(initial=1))), multiple)
    depth = maps[0].shape[-1] if maps else 1
    out = np.zeros((len(maps), length, depth), dtype)
    for i, m in enumerate(maps):  # images, not pairs
        out[i, : m.shape[0] * m.shape[1]] = np.asarray(m, dtype).reshape(-1, depth)
    valid = np.arange(length)[None, :] < (hw[:, 0] * hw[:, 1])[:, None]
    return out, valid, hw


@dataclasses.dataclass
class FeatureBank:
    """Per-image discovery features, padded to static shapes (host memory; gathered per batch of pairs).

    reference: ``(N, L1, D)`` prepared I1 cells, row-major over ``reference_hw``; reference_valid ``(N, L1)``.
    targets: per scale ``(N, L2_s, D)`` normalised I2 cells; target_valid per scale ``(N, L2_s)``.
    reference_hw: ``(N, 2)`` cropped I1 grid; target_hw: ``(N, S, 2)``; image_hw: ``(N, 2)`` original pixels.
    descriptors: ``(N, W, D)`` regional global descriptors (``global_descriptors``) for candidate pairs.
    """

    paths: list[str]
    image_hw: np.ndarray
    reference: np.ndarray
    reference_valid: np.ndarray
    reference_hw: np.ndarray
    targets: list[np.ndarray]
    target_valid: list[np.ndarray]
    target_hw: np.ndarray
    descriptors: np.ndarray
    margin: int
    reference_image_hw: np.ndarray | None = None  # pixels the reference rows' boxes map to (None: image_hw)

    def __len__(self) -> int:
        return len(self.paths)


REGION_FRACTION = 0.6  # side of the regional windows, as a fraction of the map's side
REGION_STEPS = 3  # windows per axis


def region_windows(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """``(r0, c0, r1, c1)`` cell windows of the regional descriptor: the whole map and a 3 x 3 grid of windows
    of 60% of each side (R-MAC-like; always ``1 + 9`` windows, repeated when the map is tiny)."""
    h, w = max(1, round(rows * REGION_FRACTION)), max(1, round(cols * REGION_FRACTION))
    starts_r = np.linspace(0, rows - h, REGION_STEPS).round().astype(int)
    starts_c = np.linspace(0, cols - w, REGION_STEPS).round().astype(int)
    return [(0, 0, rows, cols)] + [(int(r), int(c), int(r) + h, int(c) + w) for r in starts_r for c in starts_c]


def global_descriptors(maps: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 10, D)`` regional descriptors of raw maps: the mean feature of each window of ``region_windows``,
    L2-normalised, the collection's mean descriptor removed, L2-normalised again.

    A copied detail fills only part of an image; a window around it is closer to the copy's window than the
    whole-image means are (with random weights, top-10 recall of planted pairs rises from ~60% to ~85%).
    Removing the mean stops the (non-negative, hence all-alike) descriptors from being dominated by their
    common part.
    """
    pooled = np.stack([np.stack([np.asarray(m[r0:r1, c0:c1], np.float32).reshape(-1, m.shape[-1]).mean(0)
                                 for r0, c0, r1, c1 in region_windows(*m.shape[:2])]) for m in maps])
    pooled = pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + EPS)
    if len(pooled) > 1:
        pooled = pooled - pooled.reshape(-1, pooled.shape[-1]).mean(0)
    return (pooled / (np.linalg.norm(pooled, axis=-1, keepdims=True) + EPS)).astype(np.float32)


def extract_features(variables: dict, paths: Sequence[str], config: DiscoveryConfig = DiscoveryConfig(), *,
                     cache: FeatureCache | None = None, store_dtype=np.float32,
                     chunk: int = 64) -> tuple[FeatureBank, list[tuple[str, str]]]:
    """Features of every readable image, computed once per image and scale (``FeatureCache``).

    Returns the bank (readable images only, in input order) and ``[(path, error)]`` for unreadable files.
    """
    if cache is None:
        cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
    elif cache.resample != config.resample:
        raise ValueError(f"the cache resamples with {cache.resample!r}, the config with {config.resample!r}")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    unreadable: list[tuple[str, str]] = []
    readable: list[str] = []

    target_scales = list(dict.fromkeys(tuple(config.scales) + (config.descriptor_cells,)))

    def reference_key(path):
        """The I1 map's cache key; when the reference scale is also a target scale and the two shorter-side
        minima give the same size, the input pixels are identical, so the target map serves (not recomputed)."""
        if config.reference_cells in target_scales and (
                cache.map_size(path, config.reference_cells, config.reference_min_cells)
                == cache.map_size(path, config.reference_cells, config.target_min_cells)):
            return config.reference_cells, config.target_min_cells
        return config.reference_cells, config.reference_min_cells

    def ensure(batch):  # an image is read once per call: once for I1 (if needed), once for every I2 scale
        cache.ensure(batch, target_scales, config.target_min_cells)
        own = [p for p in batch if reference_key(p)[1] != config.target_min_cells]
        cache.ensure(own, [config.reference_cells], config.reference_min_cells)

    for start in range(0, len(paths), chunk):
        batch = paths[start:start + chunk]
        try:
            ensure(batch)
            readable += batch
        except ImageReadError:  # find the culprits one by one; the rest of the chunk still counts
            for path in batch:
                try:
                    ensure([path])
                    readable.append(path)
                except ImageReadError as error:
                    unreadable.append((path, str(error)))

    raw_reference = [np.asarray(cache.get(p, *reference_key(p)), np.float32) for p in readable]
    reference, reference_valid, reference_hw = _pad_flat(
        [prepare_reference(m, config.margin, config.saliency) for m in raw_reference], store_dtype, PAD_CELLS)
    targets, target_valid, target_hw = [], [], []
    for scale in config.scales:
        flat, valid, hw = _pad_flat([prepare_target(cache.get(p, scale, config.target_min_cells))
                                     for p in readable], store_dtype, PAD_CELLS)
        targets.append(flat)
        target_valid.append(valid)
        target_hw.append(hw)
    bank = FeatureBank(
        paths=readable,
        image_hw=np.array([cache.image_size(p) for p in readable], np.int64).reshape(-1, 2),
        reference=reference, reference_valid=reference_valid, reference_hw=reference_hw,
        targets=targets, target_valid=target_valid,
        target_hw=np.stack(target_hw, 1) if readable else np.zeros((0, len(config.scales), 2), np.int32),
        descriptors=(global_descriptors([cache.get(p, config.descriptor_cells, config.target_min_cells)
                                         for p in readable]) if readable else np.zeros((0, 1, 1), np.float32)),
        margin=config.margin)
    return bank, unreadable


# ----------------------------------------------------------------------------------- candidate pairs


def all_pairs(num_images: int) -> np.ndarray:
    """``(N (N - 1) / 2, 2)`` unordered pairs ``i < j``."""
    i, j = np.triu_indices(num_images, k=1)
    return np.stack([i, j], 1).astype(np.int64)


def candidate_pairs(descriptors: np.ndarray, top_k: int, *, block: int = 256) -> np.ndarray:
    """Unordered pairs ``i < j`` such that j is among i's ``top_k`` most similar images or i among j's.

    Similarity of two images = the largest cosine between their regional descriptors ``(N, W, D)``: one matrix
    product per block of rows, then max over window pairs and top-k on the device. ``O(N^2 W^2 D)`` FLOPs,
    ``O(N k)`` pairs.
    """
    descriptors = np.asarray(descriptors, np.float32)
    if descriptors.ndim == 2:
        descriptors = descriptors[:, None]
    n, windows, depth = descriptors.shape
    k = min(top_k, n - 1)
    if k <= 0:
        return np.zeros((0, 2), np.int64)
    flat = jnp.asarray(descriptors.reshape(n * windows, depth))
    found = []
    for start in range(0, n, block):
        rows = flat[start * windows:(start + block) * windows]
        sims = jnp.einsum("id,jd->ij", rows, flat, precision=lax.Precision.HIGHEST)
        sims = sims.reshape(-1, windows, n, windows).max(axis=(1, 3))
        own = jnp.arange(n)[None, :] == jnp.arange(start, start + sims.shape[0])[:, None]
        _, index = lax.top_k(jnp.where(own, -jnp.inf, sims), k)
        found.append(np.asarray(index))
    neighbours = np.concatenate(found)
    i = np.repeat(np.arange(n), k)
    j = neighbours.reshape(-1)
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], 1)
    return np.unique(pairs, axis=0).astype(np.int64)


def directed(pairs: np.ndarray, symmetric: bool = True) -> np.ndarray:
    """Unordered ``(M, 2)`` -> directional ``(reference, target)`` rows: ``(2M, 2)`` (both ways) or ``(M, 2)``."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return np.concatenate([pairs, pairs[:, ::-1]]) if symmetric else pairs


# ---------------------------------------------------------------------------------- the pair score


@functools.lru_cache(maxsize=8)
def subset_table(seed: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """For every sampling-set size ``n < 50``: the hypotheses the release would evaluate, a random
    ``min(C(n, 3), iterations)`` of the distinct 3-subsets of ``range(n)``, drawn without replacement.

    Returns ``(subsets (50, iterations, 3) int32, count (50,) int32)``. Drawn once per (seed, iterations) and shared
    by every pair with the same ``n`` (the subsets index each pair's own sampling list, so pairs stay independent in
    what they sample; one gather per pair instead of a top-k over 18 424 keys).
    """
    rng = np.random.default_rng([seed, iterations])
    subsets = np.zeros((ENUMERATE_BELOW, iterations, 3), np.int32)
    count = np.zeros((ENUMERATE_BELOW,), np.int32)
    for n in range(3, ENUMERATE_BELOW):
        table = np.array(list(itertools.combinations(range(n), 3)), np.int32)
        chosen = rng.choice(len(table), min(len(table), iterations), replace=False)
        subsets[n, : len(chosen)] = table[chosen]
        count[n] = len(chosen)
    return subsets, count


def _hypotheses(bits, n, iterations: int, subsets, subset_count):
    """``(iterations, 3)`` int32 positions in the sampling list and a validity mask (§4.4): below 50 matches the
    precomputed distinct subsets of ``subset_table``, otherwise random triples of distinct matches (ranks shifted
    past the earlier picks, drawn from the pair's own key)."""
    row = jnp.clip(n, 0, ENUMERATE_BELOW - 1)
    enumerated = subsets[row]
    enumerated_valid = jnp.arange(iterations) < subset_count[row]
    counter = jnp.arange(iterations * 3, dtype=jnp.uint32).reshape(iterations, 3)
    u = hash_uniform(bits, counter, stream=1)
    m = jnp.maximum(n, 3).astype(jnp.float32)
    i0 = jnp.minimum((u[:, 0] * m).astype(jnp.int32), n - 1)
    i1 = jnp.minimum((u[:, 1] * (m - 1)).astype(jnp.int32), n - 2)
    i1 = i1 + (i1 >= i0)
    i2 = jnp.minimum((u[:, 2] * (m - 2)).astype(jnp.int32), n - 3)
    low, high = jnp.minimum(i0, i1), jnp.maximum(i0, i1)
    i2 = i2 + (i2 >= low)
    i2 = i2 + (i2 >= high)
    triples = jnp.stack([i0, i1, i2], -1)
    small = n < ENUMERATE_BELOW
    index = jnp.where(small, enumerated, triples)
    valid = jnp.where(small, enumerated_valid, True) & (n >= 4)
    return jnp.clip(index, 0, None), valid


COLLINEAR_AREA = 1e-6  # |det| of [x2, 1] below this: the 3 points are collinear (grid cells give >= 1e-4)


def _inverse_2x2(m):
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    adj = jnp.stack([jnp.stack([m[..., 1, 1], -m[..., 0, 1]], -1), jnp.stack([-m[..., 1, 0], m[..., 0, 0]], -1)], -2)
    return adj / det[..., None, None]


def _affine_fits(x2, x1):
    """Least-squares affine maps through 3 correspondences, minimum norm when the I2 points are collinear (what
    ``numpy.linalg.lstsq`` returns): ``(H, 3, 2)`` ``T`` with ``x1 ~ [x2, 1] @ T``. x2, x1: ``(H, 3, 2)``.

    In closed form, without an SVD: an invertible design matrix is inverted by its adjugate; a collinear one
    factors as ``Y = S M`` with ``S = [s_i, 1]`` (positions along the line) and ``M = [[d, 0], [c, 1]]`` (direction,
    point), both of rank 2, so ``pinv(Y) = M^T (M M^T)^-1 (S^T S)^-1 S^T``.
    """
    design = jnp.concatenate([x2, jnp.ones_like(x2[..., :1])], -1)  # (H, 3, 3)
    a, b, c = x2[..., 0, :], x2[..., 1, :], x2[..., 2, :]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    collinear = jnp.abs(area) <= COLLINEAR_AREA
    # Regular: adjugate / det (the determinant of the design matrix is the twice-area).
    m = design
    adjugate = jnp.stack([
        jnp.stack([m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1],
                   m[..., 0, 2] * m[..., 2, 1] - m[..., 0, 1] * m[..., 2, 2],
                   m[..., 0, 1] * m[..., 1, 2] - m[..., 0, 2] * m[..., 1, 1]], -1),
        jnp.stack([m[..., 1, 2] * m[..., 2, 0] - m[..., 1, 0] * m[..., 2, 2],
                   m[..., 0, 0] * m[..., 2, 2] - m[..., 0, 2] * m[..., 2, 0],
                   m[..., 0, 2] * m[..., 1, 0] - m[..., 0, 0] * m[..., 1, 2]], -1),
        jnp.stack([m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0],
                   m[..., 0, 1] * m[..., 2, 0] - m[..., 0, 0] * m[..., 2, 1],
                   m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]], -1)], -2)
    det = jnp.sum(m[..., 0, :] * adjugate[..., :, 0], -1)
    inverse = adjugate / jnp.where(collinear, 1.0, det)[..., None, None]
    # Collinear: direction from the farthest-apart pair, positions along it.
    pairs = [(a, b), (a, c), (b, c)]
    lengths = jnp.stack([jnp.sum((q - p) ** 2, -1) for p, q in pairs], -1)
    l0, l1, l2 = lengths[..., 0], lengths[..., 1], lengths[..., 2]
    far = jnp.where((l0 >= l1) & (l0 >= l2), 0, jnp.where(l1 >= l2, 1, 2))  # argmax of 3, first on ties
    far = far[..., None]
    d = jnp.where(far == 0, b - a, jnp.where(far == 1, c - a, c - b))
    d = d / jnp.sqrt(jnp.maximum(jnp.sum(d * d, -1, keepdims=True), 1e-30))
    s = jnp.sum((x2 - a[..., None, :]) * d[..., None, :], -1)  # (H, 3)
    S = jnp.stack([s, jnp.ones_like(s)], -1)  # (H, 3, 2)
    M = jnp.stack([jnp.concatenate([d, jnp.zeros_like(d[..., :1])], -1),
                   jnp.concatenate([a, jnp.ones_like(a[..., :1])], -1)], -2)  # (H, 2, 3)
    St = jnp.swapaxes(S, -1, -2)
    Mt = jnp.swapaxes(M, -1, -2)
    left = jnp.einsum("hij,hjk->hik", Mt, _inverse_2x2(jnp.einsum("hij,hjk->hik", M, Mt)))
    right = jnp.einsum("hij,hjk->hik", _inverse_2x2(jnp.einsum("hij,hjk->hik", St, S)), St)
    pseudo = jnp.einsum("hij,hjk->hik", left, right)
    solve = jnp.where(collinear[..., None, None], pseudo, inverse)
    return jnp.einsum("hij,hjk->hik", solve, x1)


def _apply(T, x2):
    """``T (..., 3, 2)`` applied to ``x2 (..., 2)`` broadcasting: returns (row, col)."""
    row = x2[..., 0] * T[..., 0, 0] + x2[..., 1] * T[..., 1, 0] + T[..., 2, 0]
    col = x2[..., 0] * T[..., 0, 1] + x2[..., 1] * T[..., 1, 1] + T[..., 2, 1]
    return row, col


def _squared_errors(T, x1, x2):
    """``(H, N, S)`` squared distance in I1 between ``x1 (N, 2)`` and ``T(x2 (N, S, 2))`` per hypothesis."""
    t = T[:, None, None]  # (H, 1, 1, 3, 2)
    row, col = _apply(t, x2[None])
    return (x1[None, :, None, 0] - row) ** 2 + (x1[None, :, None, 1] - col) ** 2


_OFFSETS = np.array([(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc], np.int32)  # 8-neighbours


def _neighbours(cells, valid):
    """``(K, 8)`` index of each valid cell's 8-neighbours among the valid cells (-1: none). The valid cells must be
    distinct (one-to-one matches are, on both sides). Sort-and-search: ``O(K log K)``, no ``K x K`` matrix."""
    k = cells.shape[0]
    width = jnp.max(jnp.where(valid, cells[:, 1], 0)) + 3  # columns shifted by 1, so -1 and max + 1 fit
    big = jnp.iinfo(jnp.int32).max
    keys = jnp.where(valid, (cells[:, 0] + 1) * width + cells[:, 1] + 1, big)
    order = jnp.argsort(keys)
    sorted_keys = keys[order]
    wanted = keys[:, None] + _OFFSETS[None, :, 0] * width + _OFFSETS[None, :, 1]  # (K, 8)
    position = jnp.clip(jnp.searchsorted(sorted_keys, wanted), 0, k - 1)
    found = (sorted_keys[position] == wanted) & valid[:, None]
    return jnp.where(found, order[position], -1)


def _propagate(labels, neighbours, keep):
    """One round of min-label propagation plus two pointer jumps; a label is always a kept cell of the same
    component with an index no larger, so the labels settle on each component's smallest index."""
    k = labels.shape[0]
    present = (neighbours >= 0) & keep[jnp.maximum(neighbours, 0)]
    new = jnp.minimum(labels, jnp.min(jnp.where(present, labels[jnp.maximum(neighbours, 0)], k), axis=1))
    new = jnp.where(keep, new, jnp.arange(k))
    new = new[new]
    return new[new]


def _sizes(labels, keep):
    counts = jnp.zeros(labels.shape, jnp.int32).at[labels].add(keep.astype(jnp.int32))
    return jnp.where(keep, counts[labels], 0)


def _remove_small_components(cells1, cells2, valid, min_component: int):
    """§4.5 step 3 on one-to-one matches (so a mask's components are components of the matches' cells): drop
    matches lying in an 8-connected component of fewer than ``min_component`` cells on either side, until
    nothing changes; none are left once at most ``min_component`` remain.

    One flat loop: labels of both sides are propagated until they settle, then the small components are
    dropped and the labels restart (nested loops compile much slower under vmap).
    """
    neighbours1, neighbours2 = _neighbours(cells1, valid), _neighbours(cells2, valid)
    index = jnp.arange(cells1.shape[0])

    def step(state):
        keep, labels1, labels2, _ = state
        new1, new2 = _propagate(labels1, neighbours1, keep), _propagate(labels2, neighbours2, keep)
        settled = jnp.all(new1 == labels1) & jnp.all(new2 == labels2)
        enough = jnp.sum(keep) > min_component
        pruned = (keep & enough & (_sizes(new1, keep) >= min_component) & (_sizes(new2, keep) >= min_component))
        changed = jnp.any(pruned != keep)
        keep = jnp.where(settled, pruned, keep)
        restart = settled & changed
        return (keep, jnp.where(restart, index, new1), jnp.where(restart, index, new2), ~settled | changed)

    keep, _, _, _ = lax.while_loop(lambda s: s[3], step, (valid, index, index, jnp.bool_(True)))
    return keep


def first_argmax(x, axis: int):
    """``(argmax(x, axis), max(x, axis))``: the first index of the maximum, as ``jnp.argmax``, for arrays without
    NaN. Two plain reductions (max, then min over the indices that reach it): XLA:CPU runs these vectorised,
    while ``argmax``'s (value, index) reduction is several times slower than the matrix product before it."""
    best = jnp.max(x, axis=axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    index = jnp.arange(x.shape[axis], dtype=jnp.int32).reshape(shape)
    first = jnp.min(jnp.where(x == best, index, x.shape[axis]), axis=axis)
    return jnp.minimum(first, x.shape[axis] - 1), jnp.squeeze(best, axis)


def dense_mutual_matches(reference, target, reference_valid, target_valid):
    """Mutual nearest neighbours as ``geometry.matching.mutual_nearest_neighbours`` keeps them (top-1 both ways,
    first index on ties, product of the two maxima > 0, padding absent), but laid out per reference cell:
    ``matched (N1,)`` bool, ``index (N1,)`` int32 target cell, ``similarity (N1,)`` cosine (0 where unmatched).
    No compaction or scatter: cheaper to compile and to run inside the vmapped pair score.
    """
    scores = cosine_similarity(reference, target)  # (N1, N2)
    scores = jnp.where(reference_valid[:, None] & target_valid[None, :], scores, -jnp.inf)
    best_b, similarity = first_argmax(scores, axis=1)
    best_a, _ = first_argmax(scores, axis=0)
    matched = ((best_a[best_b] == jnp.arange(scores.shape[0])) & reference_valid & target_valid[best_b]
               & (similarity * similarity > 0) & jnp.isfinite(similarity))
    return matched, jnp.where(matched, best_b, 0).astype(jnp.int32), jnp.where(matched, similarity, 0.0)


def _one_to_one(cells, similarity, keep):
    """Per distinct cell of ``cells (K, 2)`` only its kept match with the highest similarity (the lowest index on
    ties) stays kept: one sort by (cell, -similarity, index), the first of each run wins."""
    k = cells.shape[0]
    width = jnp.max(jnp.where(keep, cells[:, 1], 0)) + 1
    key = jnp.where(keep, cells[:, 0] * width + cells[:, 1], jnp.iinfo(jnp.int32).max)
    order = jnp.lexsort((jnp.arange(k), -similarity, key))
    sorted_key = key[order]
    first = jnp.concatenate([jnp.ones((1,), bool), sorted_key[1:] != sorted_key[:-1]])
    return keep & jnp.zeros((k,), bool).at[order].set(first)


def _hough_sampling_set(r1, c1, r2, c2, matched, rows1, cols1, rows2, cols2, grid, tolerance_cells):
    """§4.3 at one scale: the smoothed vote peak and the matches within ``tau_c`` of it.

    Votes go to a static ``grid`` holding the true ``(R1 + R2, C1 + C2)`` one; the shift ``-1`` wraps to the true
    grid's last bin, as numpy's negative index does in the release. Returns ``(peak value, (N1,) bool)``.
    """
    shift_r, shift_c = r1 - r2 + rows2 - 2, c1 - c2 + cols2 - 2
    bin_r = jnp.where(shift_r < 0, shift_r + rows1 + rows2, shift_r)
    bin_c = jnp.where(shift_c < 0, shift_c + cols1 + cols2, shift_c)
    grid_rows, grid_cols = grid
    votes = jnp.zeros(grid, jnp.float32).at[bin_r, bin_c].add(matched.astype(jnp.float32), mode="drop")
    smoothed = _convolve_same(votes, _hough_kernel(tolerance_cells))
    inside = (jnp.arange(grid_rows)[:, None] < rows1 + rows2) & (jnp.arange(grid_cols)[None, :] < cols1 + cols2)
    flat = jnp.where(inside, smoothed, -jnp.inf).reshape(-1)
    peak, _ = first_argmax(flat, 0)  # first maximum in row-major order
    peak_r, peak_c = peak // grid_cols, peak % grid_cols
    near = (jnp.abs(shift_r - peak_r) <= tolerance_cells) & (jnp.abs(shift_c - peak_c) <= tolerance_cells)
    return flat[peak], matched & near


def _hough_kernel(tolerance_cells: float) -> np.ndarray:
    axis = np.arange(-tolerance_cells, tolerance_cells + 1)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return np.exp(-(xx**2 + yy**2) / tolerance_cells**2).astype(np.float32)


def _convolve_same(grid, kernel: np.ndarray):
    """``scipy.signal.convolve2d(grid, kernel, mode='same')`` with zero padding, ``grid (Gr, Gc)``."""
    k = kernel.shape[0]
    start = (k - 1) // 2
    pad = ((k - 1 - start, start), (k - 1 - start, start))
    return lax.conv_general_dilated(grid[None, :, :, None], jnp.asarray(kernel[::-1, ::-1])[:, :, None, None],
                                    (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)[0, :, :, 0]


def _reference_grid(reference_hw, n1: int):
    """Row, column and normalised coordinates ``(N1, 2)`` of every (padded) reference cell."""
    rows1, cols1 = reference_hw[0], reference_hw[1]
    cell = jnp.arange(n1)
    r1, c1 = cell // jnp.maximum(cols1, 1), cell % jnp.maximum(cols1, 1)
    x1 = jnp.stack([(r1 + COORD_OFFSET) / rows1, (c1 + COORD_OFFSET) / cols1], -1).astype(jnp.float32)
    return r1, c1, x1


def _pair_matches(reference, reference_valid, reference_hw, targets, target_valid, target_hw, *, tolerance_cells,
                  hough, grids):
    """Phase 1 of one directional pair (§4.2-§4.3): mutual matches per scale in the ``(N1, S)`` layout and the
    RANSAC sampling list. Returns ``{"has", "sims" (N1, S), "x2" (N1, S, 2), "listed" (S N1,), "n"}``."""
    n1 = reference.shape[0]
    rows1, cols1 = reference_hw[0], reference_hw[1]
    r1, c1, _ = _reference_grid(reference_hw, n1)
    has, sims, x2s, peaks, hough_sets = [], [], [], [], []
    for s, (target, valid_b) in enumerate(zip(targets, target_valid)):
        rows2, cols2 = target_hw[s, 0], target_hw[s, 1]
        matched, b, sim = dense_mutual_matches(reference, target, reference_valid, valid_b)
        r2, c2 = b // jnp.maximum(cols2, 1), b % jnp.maximum(cols2, 1)
        x2s.append(jnp.stack([(r2 + COORD_OFFSET) / rows2, (c2 + COORD_OFFSET) / cols2], -1).astype(jnp.float32))
        has.append(matched)
        sims.append(sim)
        peak, hough_set = _hough_sampling_set(r1, c1, r2, c2, matched, rows1, cols1, rows2, cols2, grids[s],
                                              tolerance_cells)
        peaks.append(peak)
        hough_sets.append(hough_set)
    has = jnp.stack(has, 1)  # (N1, S)
    num_scales = has.shape[1]
    if hough:
        peaks = jnp.stack(peaks)
        best_scale = jnp.argmax(peaks)  # first maximum: a later scale must be strictly higher
        sampling = jnp.stack(hough_sets, 1) & (jnp.arange(num_scales)[None, :] == best_scale) & (peaks[best_scale] > 0)
    else:
        sampling = has
    # Sampling list in the release's pooled order: scale by scale, then cell order.
    flat_sampling = sampling.T.reshape(-1)
    (listed,) = jnp.nonzero(flat_sampling, size=flat_sampling.shape[0], fill_value=0)
    return {"has": has, "sims": jnp.stack(sims, 1), "x2": jnp.stack(x2s, 1), "listed": listed.astype(jnp.int32),
            "n": jnp.sum(flat_sampling, dtype=jnp.int32)}


def _pair_ransac(pair_ids, matches, reference_hw, seed, subsets, subset_count, *, tolerance, iterations,
                 min_component, chunk):
    """Phase 2 of one directional pair (§4.4-§4.5): RANSAC, post-processing, score and matched extents."""
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
    scores: ``(P,)`` float32 discovery score (§4.5), in [0, 1].
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


def score_pairs(bank: FeatureBank, pairs: np.ndarray, config: DiscoveryConfig = DiscoveryConfig(), *,
                group: int = 64) -> PairScores:
    """Scores directional ``(reference, target)`` pairs of ``bank``, ``config.pairs_per_batch`` at a time.

    Two jitted, vmapped phases per block of ``group`` batches: matching and the sampling set for every pair, then
    RANSAC and post-processing only for the pairs with at least 4 sampling matches (the others score 0, as in
    the release), so unrelated pairs cost one matching. Only batches are looped over; the last batch of a phase
    is padded with copies of its first pair, so every call has the same shape.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs[:, 0].max() >= len(bank.reference) or pairs[:, 1].max() >= len(bank)):
        raise ValueError(f"pair indices out of range: {len(bank.reference)} references, {len(bank)} targets")
    grids = tuple((_round_up(bank.reference_hw[:, 0].max() + bank.target_hw[:, s, 0].max(), PAD_GRID),
                   _round_up(bank.reference_hw[:, 1].max() + bank.target_hw[:, s, 1].max(), PAD_GRID))
                  for s in range(len(bank.targets))) if len(bank) else ()
    match_static, ransac_static = _static_args(config, grids)
    subsets, subset_count = (jnp.asarray(a) for a in subset_table(config.seed, config.iterations))
    size = config.pairs_per_batch
    out = _empty_outputs(len(pairs), bank.reference.shape[1])
    out["sampling_size"] = np.zeros(len(pairs), np.int32)
    for block_start in range(0, len(pairs), size * group):
        block = pairs[block_start:block_start + size * group]
        matches = collections.defaultdict(list)
        for index, real in _batches(len(block), size):
            a, b = block[index, 0], block[index, 1]
            found = _match_batch(jnp.asarray(bank.reference[a], jnp.float32), jnp.asarray(bank.reference_valid[a]),
                                 jnp.asarray(bank.reference_hw[a]),
                                 tuple(jnp.asarray(t[b], jnp.float32) for t in bank.targets),
                                 tuple(jnp.asarray(v[b]) for v in bank.target_valid), jnp.asarray(bank.target_hw[b]),
                                 **match_static)
            for key, value in found.items():
                matches[key].append(np.asarray(value)[:real])
        matches = {k: np.concatenate(v) for k, v in matches.items()}
        out["sampling_size"][block_start:block_start + len(block)] = matches["n"]
        todo = np.nonzero(matches["n"] >= 4)[0]
        for index, real in _batches(len(todo), size):
            rows = todo[index]
            found = _ransac_batch(jnp.asarray(block[rows], jnp.int32),
                                  {k: jnp.asarray(v[rows]) for k, v in matches.items()},
                                  jnp.asarray(bank.reference_hw[block[rows, 0]]), jnp.uint32(config.seed), subsets,
                                  subset_count, **ransac_static)
            for key, value in found.items():
                if key in out:
                    out[key][block_start + rows[:real]] = np.asarray(value)[:real]
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


# ------------------------------------------------------------------------------------------- groups


def connected_components(num_nodes: int, edges) -> list[list[int]]:
    """Node lists of the undirected graph's connected components (union-find), each in ascending order, ordered
    by their smallest node; ``edges``: ``(E, 2)`` node pairs (any integer sequence of pairs)."""
    parent = list(range(num_nodes))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in np.asarray(edges, np.int64).reshape(-1, 2):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members = collections.defaultdict(list)
    for x in range(num_nodes):
        members[root(x)].append(x)
    return list(members.values())


def cluster(num_images: int, pairs: np.ndarray, scores: np.ndarray, threshold: float,
            min_images: int = 3) -> list[list[int]]:
    """Connected components (union-find) of the graph of pairs scoring above ``threshold`` (strict, as the
    release), with at least ``min_images`` images; largest first, then by first image."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    edges = pairs[np.asarray(scores) > threshold]
    groups = [c for c in connected_components(num_images, edges) if len(c) >= min_images]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``(..., 4)`` ``[x1, y1, x2, y2]`` broadcasting; 0 where the union is empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
             - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclasses.dataclass
class Edge:
    """An unordered pair above the threshold, from the direction that scored higher."""

    a: int
    b: int
    score: float
    box_a: tuple[float, float, float, float]  # matched region on image a, pixels
    box_b: tuple[float, float, float, float]


@dataclasses.dataclass
class Group:
    images: list[int]
    edges: list[Edge]

    def regions(self) -> dict[int, list[tuple[float, ...]]]:
        """Image -> matched-region boxes from every edge of the group touching it."""
        out: dict[int, list] = {i: [] for i in self.images}
        for e in self.edges:
            out[e.a].append(e.box_a)
            out[e.b].append(e.box_b)
        return out


@dataclasses.dataclass
class RegionGroup:
    """Edges whose matched regions overlap on their shared images; ``boxes``: image -> union box."""

    images: list[int]
    edges: list[Edge]
    boxes: dict[int, tuple[float, float, float, float]]


def region_groups(group: Group, iou: float = 0.3, min_images: int = 3) -> list[RegionGroup]:
    """§4.7 region clusters with boxes instead of masks: edges linked when they share an image and their
    boxes on it have IoU > ``iou``; components covering at least ``min_images`` images."""
    edges = group.edges
    if not edges:
        return []
    ends = np.array([[e.a, e.b] for e in edges])  # (E, 2)
    boxes = np.array([[e.box_a, e.box_b] for e in edges], np.float64)  # (E, 2, 4)
    # For every pair of edges and every pair of their ends: same image and overlapping boxes.
    same = ends[:, None, :, None] == ends[None, :, None, :]  # (E, E, 2, 2)
    overlap = box_iou(boxes[:, None, :, None], boxes[None, :, None, :]) > iou
    linked = np.any(same & overlap, axis=(2, 3))
    i, j = np.nonzero(np.triu(linked, 1))
    found = []
    for component in connected_components(len(edges), np.stack([i, j], 1)):
        members = [edges[k] for k in component]
        union: dict[int, list[float]] = {}
        for e in members:
            for image, box in ((e.a, e.box_a), (e.b, e.box_b)):
                old = union.get(image)
                union[image] = list(box) if old is None else [min(old[0], box[0]), min(old[1], box[1]),
                                                              max(old[2], box[2]), max(old[3], box[3])]
        if len(union) >= min_images:
            found.append(RegionGroup(sorted(union), members, {k: tuple(v) for k, v in sorted(union.items())}))
    return sorted(found, key=lambda g: (-len(g.images), g.images[0]))


@dataclasses.dataclass
class DiscoveryResult:
    """Everything ``discover`` found; image indices refer to ``paths`` (readable images, input order)."""

    paths: list[str]
    image_hw: np.ndarray  # (N, 2) pixels
    unreadable: list[tuple[str, str]]
    pairs: np.ndarray  # (M, 2) unordered candidate pairs i < j that were scored
    pair_scores: np.ndarray  # (M,) symmetric score (max over the two directions)
    directional: PairScores
    groups: list[Group]
    region_groups: list[list[RegionGroup]]  # per group
    config: DiscoveryConfig


def symmetric_scores(pairs: np.ndarray, directional: PairScores, symmetric: bool = True):
    """Per unordered pair: the larger direction's score, and the index (into ``directional``) of that row."""
    m = len(pairs)
    if not symmetric:
        return directional.scores[:m], np.arange(m)
    forward, backward = directional.scores[:m], directional.scores[m:2 * m]
    take_backward = backward > forward
    return np.where(take_backward, backward, forward), np.where(take_backward, np.arange(m) + m, np.arange(m))


def group_pairs(pairs: np.ndarray, directional: PairScores, num_images: int, config: DiscoveryConfig):
    """Symmetric scores, image groups and their region groups from scored directional pairs."""
    scores, row = symmetric_scores(pairs, directional, config.symmetric)
    found = cluster(num_images, pairs, scores, config.threshold, config.min_group_images)
    label = np.full(num_images, -1)
    for g, images in enumerate(found):
        label[images] = g
    edges: list[list[Edge]] = [[] for _ in found]
    for k in np.nonzero((scores > config.threshold) & (label[pairs[:, 0]] >= 0))[0] if len(pairs) else ():
        r = row[k]
        ref, tgt = directional.pairs[r]
        edges[label[pairs[k, 0]]].append(Edge(int(ref), int(tgt), float(scores[k]),
                                              tuple(map(float, directional.reference_boxes[r])),
                                              tuple(map(float, directional.target_boxes[r]))))
    groups = [Group(images, e) for images, e in zip(found, edges)]
    regions = [region_groups(g, config.region_iou, config.min_group_images) for g in groups]
    return scores, groups, regions


def discover(variables: dict, paths: Sequence[str], config: DiscoveryConfig = DiscoveryConfig(), *,
             cache: FeatureCache | None = None, bank: FeatureBank | None = None) -> DiscoveryResult:
    """Discovery over a collection: features once per image, candidate pairs (top-k or all), batched pair
    scores in both directions, groups and region groups."""
    unreadable: list[tuple[str, str]] = []
    if bank is None:
        bank, unreadable = extract_features(variables, paths, config, cache=cache)
    n = len(bank)
    pairs = all_pairs(n) if config.exhaustive else candidate_pairs(bank.descriptors, config.top_k)
    directional = score_pairs(bank, directed(pairs, config.symmetric), config)
    scores, groups, regions = group_pairs(pairs, directional, n, config)
    return DiscoveryResult(bank.paths, bank.image_hw, unreadable, pairs, scores, directional, groups, regions,
                           config)
