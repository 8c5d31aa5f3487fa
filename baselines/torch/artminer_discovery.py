"""PyTorch / NumPy port of ArtMiner's pair discovery as the release runs it.

Written from the specification, one pair at a time: both images are read and their features recomputed for
every pair (the reference at its scale, the target at every scale, batch 1, PIL NEAREST resizes), mutual
nearest neighbours by a dense similarity matrix per scale and a Python loop over the matches, a Hough vote
per scale, RANSAC with a Python loop over hypotheses that scores every pooled match into a dict keyed by the
reference cell, then the virtual target grid, one-to-one filtering and the iterative removal of small
8-connected components (``skimage.measure.label``). Clustering scores every pair in both directions and takes
connected components of a dense thresholded graph (``scipy.sparse.csgraph``). Used as the parity reference of
``artdup_jax.artminer.discovery`` and as the throughput baseline; never imported by the library.

Row/column: the release calls rows "W"; here ``rows``/``cols`` mean what they say. Coordinates are
``(row, col)`` normalised as ``(index + 0.49) / size``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from PIL import Image
from scipy.signal import convolve2d
from scipy.sparse.csgraph import connected_components
from skimage import measure

from baselines.torch.artminer import SCALES, open_rgb, resize_pixels, to_input

EPS = 1e-7
OFFSET = 0.49
VIRTUAL_NUDGE = 1e-3


# ------------------------------------------------------------------------------------------ features


def normalise_cells(feat: torch.Tensor) -> torch.Tensor:
    """(1, D, R, C) divided per cell by its L2 norm + 1e-7."""
    return feat / (torch.sum(feat**2, dim=1, keepdim=True) ** 0.5 + EPS)


def saliency_coefficient(feat: torch.Tensor) -> torch.Tensor:
    """(R, C): mean dot product of an interior cell with its 4 neighbours; 1 on the border."""
    centre = feat[0, :, 1:-1, 1:-1]
    dots = torch.stack([torch.sum(feat[0, :, 2:, 1:-1] * centre, 0), torch.sum(feat[0, :, :-2, 1:-1] * centre, 0),
                        torch.sum(feat[0, :, 1:-1, :-2] * centre, 0), torch.sum(feat[0, :, 1:-1, 2:] * centre, 0)])
    coef = torch.ones(feat.shape[2], feat.shape[3], device=feat.device)
    coef[1:-1, 1:-1] = dots.mean(0)
    return coef


def reference_from_raw(raw: torch.Tensor, margin: int, saliency: bool):
    """Raw (1, D, R, C) -> (D, N1) normalised (weighted) cells after the margin crop, and (R1, C1)."""
    feat = normalise_cells(raw)
    if saliency:
        feat = feat * (1 - saliency_coefficient(feat))[None, None]
    feat = feat[:, :, margin:feat.shape[2] - margin, margin:feat.shape[3] - margin].contiguous()
    return feat.view(feat.shape[1], -1), feat.shape[2], feat.shape[3]


@torch.no_grad()
def image_features(net, image: Image.Image, longer: int, minimum: int, resample=Image.NEAREST) -> torch.Tensor:
    """Raw (1, 256, R, C) features of the whole image resized by the rule."""
    w, h = image.size
    device = next(net.parameters()).device
    return net(to_input(image.resize(resize_pixels(w, h, longer, minimum), resample)).to(device))


# --------------------------------------------------------------------------------------- matching


def hough_kernel(tolerance: float) -> np.ndarray:
    axis = np.arange(-tolerance, tolerance + 1)
    xx, yy = np.meshgrid(axis, axis)
    return np.exp(-(xx**2 + yy**2) / tolerance**2)


def match_pair(feat1: torch.Tensor, rows1: int, cols1: int, targets: list[torch.Tensor], tolerance: float):
    """Mutual NN per scale, pooled; Hough set of the best scale (§4.2-§4.3).

    feat1: (D, N1) reference cells; targets: raw (1, D, R, C) maps per scale.
    Returns ``match1 (M, 3)``, ``match2 (M, 3)`` homogeneous normalised coordinates, ``similarity (M,)``,
    ``sampling`` (indices into the pooled list).
    """
    match1, match2, similarity = [], [], []
    best_peak, sampling = 0.0, []
    kernel = hough_kernel(tolerance)
    for raw in targets:
        feat2 = normalise_cells(raw)
        rows2, cols2 = feat2.shape[2], feat2.shape[3]
        feat2 = feat2.view(feat2.shape[1], -1).transpose(0, 1)  # (N2, D)
        score = torch.mm(feat2, feat1)  # (N2, N1)
        best_for_1 = torch.zeros_like(score).scatter_(0, score.argmax(0, keepdim=True),
                                                      score.max(0, keepdim=True).values)
        best_for_2 = torch.zeros_like(score).scatter_(1, score.argmax(1, keepdim=True),
                                                      score.max(1, keepdim=True).values)
        both = best_for_1 * best_for_2
        pairs = both.nonzero()
        votes = np.zeros((rows1 + rows2, cols1 + cols2))
        begin = len(match1)
        shifts = []
        for i2, i1 in pairs.tolist():
            r1, c1, r2, c2 = i1 // cols1, i1 % cols1, i2 // cols2, i2 % cols2
            match1.append([(r1 + OFFSET) / rows1, (c1 + OFFSET) / cols1, 1.0])
            match2.append([(r2 + OFFSET) / rows2, (c2 + OFFSET) / cols2, 1.0])
            shift = (r1 - r2 + rows2 - 2, c1 - c2 + cols2 - 2)
            votes[shift] += 1  # the most extreme shift is -1: it wraps to the last bin (the release's quirk)
            shifts.append(shift)
            similarity.append(float(both[i2, i1]) ** 0.5)
        votes = convolve2d(votes, kernel, mode="same")
        peak = np.unravel_index(np.argmax(votes), votes.shape)  # first maximum, row-major
        if votes[peak] > best_peak:
            best_peak = votes[peak]
            sampling = [begin + j for j, (sr, sc) in enumerate(shifts)
                        if abs(sr - peak[0]) <= tolerance and abs(sc - peak[1]) <= tolerance]
    return (np.array(match1).reshape(-1, 3), np.array(match2).reshape(-1, 3), np.array(similarity), sampling)


# ----------------------------------------------------------------------------------------- RANSAC


def affine(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """3x3 affine map T (x1 ~ T x2) by least squares (minimum norm for collinear samples)."""
    solution = np.linalg.lstsq(x2, x1[:, :2], rcond=None)[0].T
    return np.vstack([solution, [0.0, 0.0, 1.0]])


def transfer_error(match1: np.ndarray, match2: np.ndarray, T: np.ndarray) -> np.ndarray:
    predicted = match2 @ T.T
    predicted = predicted / predicted[:, 2:3]
    return np.sum((match1[:, :2] - predicted[:, :2]) ** 2, axis=1) ** 0.5


def best_per_reference_cell(match1, match2, weights, keep) -> dict:
    """{reference coordinates: [match2, weight]}: per reference cell the best weight (first on ties)."""
    found = {}
    for i in range(len(match1)):
        if keep[i]:
            key = (match1[i][0], match1[i][1])
            if key not in found or found[key][1] < weights[i]:
                found[key] = [match2[i], weights[i]]
    return found


def hypotheses(num: int, iterations: int, rng: np.random.Generator) -> list:
    """Fewer than 50 sampling matches: a random ``min(C(n, 3), iterations)`` distinct 3-subsets; otherwise
    ``iterations`` random triples of distinct matches."""
    if num < 50:
        subsets = list(itertools.combinations(range(num), 3))
        chosen = rng.choice(len(subsets), min(len(subsets), iterations), replace=False)
        return [subsets[i] for i in chosen]
    return [tuple(rng.choice(num, 3, replace=False)) for _ in range(iterations)]


def ransac(iterations, match1, match2, sampling, similarity, tolerance, rng):
    """§4.4: best affine map by the Gaussian-weighted, per-reference-cell score; its inliers by similarity."""
    if len(sampling) < 4:
        return None, 0.0, {}
    best_T, best_score = None, 0.0
    for sample in hypotheses(len(sampling), iterations, rng):
        index = np.array(sampling)[list(sample)]
        T = affine(match1[index], match2[index])
        error = transfer_error(match1, match2, T)
        inlier = error < tolerance
        weights = similarity * np.exp(-error**2 / tolerance**2)
        score = sum(v[1] for v in best_per_reference_cell(match1, match2, weights, inlier).values())
        if score > best_score:
            best_T, best_score = T, score
    if best_T is None:
        return None, 0.0, {}
    error = transfer_error(match1, match2, best_T)
    return best_T, best_score, best_per_reference_cell(match1, match2, similarity, error < tolerance)


def virtual_grid(T: np.ndarray, rows1: int, cols1: int) -> tuple[int, int]:
    """Size I2 would have at I1's cell size: T's unit vectors measured in I1 cells, truncated."""
    origin = T[:2, 2]
    along_rows = T[:2, 0] + T[:2, 2] - origin
    along_cols = T[:2, 1] + T[:2, 2] - origin
    rows = math.sqrt((along_rows[0] * rows1) ** 2 + (along_rows[1] * cols1) ** 2)
    cols = math.sqrt((along_cols[0] * rows1) ** 2 + (along_cols[1] * cols1) ** 2)
    # Deliberate deviation, as in the JAX port: a nudge of 1e-3 before truncating, so that a whole number of cells
    # does not become the integer below through rounding noise.
    return int(rows + VIRTUAL_NUDGE), int(cols + VIRTUAL_NUDGE)


def one_to_one(inliers: dict, rows1, cols1, rows2, cols2):
    """Per target cell (virtual grid) the best-scoring reference match."""
    by_target = {}
    for pos1, (pos2, score) in inliers.items():
        cell1 = (int(pos1[0] * rows1), int(pos1[1] * cols1))
        cell2 = (int(pos2[0] * rows2), int(pos2[1] * cols2))
        if cell2 not in by_target or by_target[cell2][1] < score:
            by_target[cell2] = [cell1, score]
    cells2 = list(by_target)
    return [by_target[c][0] for c in cells2], cells2, [by_target[c][1] for c in cells2]


def remove_small_components(cells1, cells2, scores, shape1, shape2, minimum: int):
    """One pass: nothing if at most ``minimum`` matches; else drop those in components < ``minimum``."""
    if len(cells1) <= minimum:
        return [], [], []
    masks, dropped = [np.zeros(shape1), np.zeros(shape2)], [set(), set()]
    for side, cells in enumerate((cells1, cells2)):
        for r, c in cells:
            masks[side][r, c] = 1
        labels = measure.label(masks[side], connectivity=2)
        for label in range(1, labels.max() + 1):
            where = np.argwhere(labels == label)
            if len(where) < minimum:
                dropped[side] |= {tuple(p) for p in where.tolist()}
    keep = [i for i in range(len(cells1)) if tuple(cells1[i]) not in dropped[0] and tuple(cells2[i]) not in dropped[1]]
    return [cells1[i] for i in keep], [cells2[i] for i in keep], [scores[i] for i in keep]


def keep_large_components(cells1, cells2, scores, shape1, shape2, minimum: int):
    while True:
        new1, new2, new_scores = remove_small_components(cells1, cells2, scores, shape1, shape2, minimum)
        if len(new1) == len(cells1):
            return new1, new2, new_scores
        cells1, cells2, scores = new1, new2, new_scores


# ------------------------------------------------------------------------------------------- score


def pair_score_from_features(reference_raw, target_raws, *, margin: int = 3, saliency: bool = True,
                             reference_cells: int = 40, tolerance_cells: float = 2.0, iterations: int = 1000,
                             min_component: int = 3, hough: bool = True, seed: int = 0) -> dict:
    """The discovery score from raw feature maps (§4.1-§4.5).

    reference_raw: raw (1, D, R, C) (torch or NumPy; NumPy ``(R, C, D)`` is transposed) at the reference scale;
    target_raws: one raw map per target scale. Returns ``{"score", "num_matches", "sampling_size", ...}``.
    """
    def to_torch(x):
        if not isinstance(x, np.ndarray):
            return x
        return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x, np.float32), (2, 0, 1))))[None]

    rng = np.random.default_rng(seed)
    feat1, rows1, cols1 = reference_from_raw(to_torch(reference_raw), margin, saliency)
    match1, match2, similarity, sampling = match_pair(feat1, rows1, cols1, [to_torch(t) for t in target_raws],
                                                      tolerance_cells)
    if not hough:
        sampling = list(range(len(match1)))
    result = {"score": 0.0, "num_matches": 0, "sampling_size": len(sampling), "ransac_score": 0.0,
              "cells1": [], "cells2": [], "virtual_hw": (0, 0), "reference_hw": (rows1, cols1)}
    if len(sampling) < 3:
        return result
    T, best, inliers = ransac(iterations, match1, match2, sampling, similarity, tolerance_cells / reference_cells, rng)
    result["ransac_score"] = best
    if T is None:
        return result
    rows2, cols2 = virtual_grid(T, rows1, cols1)
    result["virtual_hw"] = (rows2, cols2)
    if rows2 == 0 or cols2 == 0 or rows2 >= 1000 or cols2 >= 1000:
        return result
    cells1, cells2, scores = one_to_one(inliers, rows1, cols1, rows2, cols2)
    cells1, cells2, scores = keep_large_components(cells1, cells2, scores, (rows1, cols1), (rows2, cols2),
                                                   min_component)
    if not cells1:
        return result
    result.update(score=float(np.sum(scores)) / (rows1 * cols1), num_matches=len(cells1), cells1=cells1,
                  cells2=cells2)
    return result


@torch.no_grad()
def pair_discovery(net, path1: str, path2: str, *, scales=SCALES, reference_cells: int = 40, margin: int = 3,
                   saliency: bool = True, tolerance_cells: float = 2.0, iterations: int = 1000,
                   min_component: int = 3, hough: bool = True, seed: int = 0) -> float:
    """One directional pair as the release: read both images, recompute every feature map, score."""
    try:
        image1, image2 = open_rgb(path1), open_rgb(path2)
    except OSError:
        return 0.0
    reference = image_features(net, image1, reference_cells, 2 * margin + 1)
    targets = [image_features(net, image2, scale, 1) for scale in scales]
    return pair_score_from_features(reference, targets, margin=margin, saliency=saliency,
                                    reference_cells=reference_cells, tolerance_cells=tolerance_cells,
                                    iterations=iterations, min_component=min_component, hough=hough,
                                    seed=seed)["score"]


def discover_collection(net, paths: list[str], *, threshold: float = 0.015, min_images: int = 3, **settings):
    """All unordered pairs, each scored in both directions (the larger kept), then connected components of
    the thresholded dense graph with at least ``min_images`` images (``discovery_cluster.py``).

    Returns ``(pairs [(i, j)], scores [float], groups [[image indices]])``.
    """
    net.eval()
    pairs = list(itertools.combinations(range(len(paths)), 2))
    scores = [max(pair_discovery(net, paths[i], paths[j], **settings),
                  pair_discovery(net, paths[j], paths[i], **settings)) for i, j in pairs]
    graph = np.zeros((len(paths), len(paths)))
    for (i, j), s in zip(pairs, scores):
        if s > threshold:
            graph[i, j] = graph[j, i] = 1
    _, labels = connected_components(graph, directed=False)
    groups = [sorted(np.nonzero(labels == label)[0].tolist()) for label in np.unique(labels)]
    groups = [g for g in groups if len(g) >= min_images]
    return pairs, scores, sorted(groups, key=lambda g: (-len(g), g[0]))
