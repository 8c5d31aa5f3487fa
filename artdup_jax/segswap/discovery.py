"""Object discovery with SegSwap: correspondence graph and leading eigenvector over the matchable pairs.

  stage = inference.pairwise_stage(variables, features, flipped_features)   # every unordered pair, batched
  pairs = stage["outputs"].subset(stage["matchable"])
  result = discover(pairs, num_images, sigma=1.2)                           # {"vertices", "graph", "vector", "heat"}

Steps of ``discover`` (each a function here):

1. ``top_k_pairs``: a matchable pair is used if it is among the ``k`` (5) best partners of either image by
   directed score ``S_ij`` (row i of the score matrix).
2. ``graph_vertices``: per used pair, the side with more cells of raw mask > 0.85; each such cell is a vertex
   ``(x in the first image, x in the second image, m)``: its grid cell, its rounded predicted cell in the other
   image (``round(x · (w - 1))``, ``round(y · (h - 1))``) and its mask value. (The release removes duplicate
   vertices; one side always holds distinct grid cells, so there are none.)
3. ``correspondence_graph``: for vertices a of pair (s, o_a) and b of pair (s, o_b) sharing exactly image s,
   with (o_a, o_b) matchable::

     w_ab = exp(-|x_s^a - x_s^b| / σ) · ½ [exp(-|C_ab(x_oa^a) - x_ob^b| / σ) + exp(-|x_oa^a - C_ba(x_ob^b)| / σ)]
            · m_a · m_b

   Euclidean distances in cells (not squared); ``C_ab`` is the rounded correspondence of pair (o_a, o_b) from
   o_a to o_b. Entries > 0.01 are kept, symmetrically. Every configuration of the shared image is handled (in
   the release's lexicographic pair order the one it skips never occurs). ``intra_pair=True`` adds the
   optional within-pair edge ``exp(-(|Δx^first| + |Δx^second|) / (2σ)) · m_a · m_b`` (self-loops included),
   off in the released runs. σ per class: Car 5.0, Airplane 0.8, Horse 1.2.
4. ``leading_eigenvector``: ARPACK (``eigsh``, k = 1, largest magnitude, start vector of ones), sign fixed by
   ``energy_sign``: the larger maximum, over k on a log grid of ratio 1.1, of the energy ``cᵀAc`` of the
   L2-normalised indicator ``c`` of the k largest (or k smallest) entries (ties: entries summing to >= 0).
5. ``heat_maps``: each vertex's eigenvector entry is added into both of its cells (``mode="sum"``), one
   ``(h, w)`` map per image. The release assigns through NumPy fancy indexing, so when two vertices of one
   pair land on the same cell the last one wins; here they add up (``np.add.at``).

Grids are ``(h, w)`` row-major; cells are ``(x, y)`` = (column, row) integers. All graph building is array
code (NumPy broadcasting over blocks of vertex pairs); the eigenvector uses SciPy's sparse solver.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import eigsh

SIGMA = {"Car": 5.0, "Airplane": 0.8, "Horse": 1.2}


@dataclasses.dataclass(frozen=True)
class PairOutputs:
    """Model outputs for image pairs, one row per pair."""

    pairs: np.ndarray  # (P, 2) int image indices (first, second)
    first: np.ndarray  # (P, h, w, 3) output for the first image: (x, y) into the second, mask
    second: np.ndarray  # (P, h, w, 3) output for the second image
    scores: np.ndarray  # (P, 2) S(first, second), S(second, first)

    def subset(self, keep: np.ndarray) -> PairOutputs:
        return PairOutputs(self.pairs[keep], self.first[keep], self.second[keep], self.scores[keep])


@dataclasses.dataclass(frozen=True)
class Vertices:
    pair: np.ndarray  # (V,) row of PairOutputs
    cell_first: np.ndarray  # (V, 2) int (x, y) cell in the pair's first image
    cell_second: np.ndarray  # (V, 2) int (x, y) cell in the pair's second image
    confidence: np.ndarray  # (V,) float32 mask value m

    def __len__(self) -> int:
        return len(self.pair)


# ------------------------------------------------------------------------------------------ graph building


def rounded_cells(output: np.ndarray, grid_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``(..., 3)`` outputs -> ``(..., 2)`` int (x, y) cells of the other image, whose grid is ``grid_hw``
    (default: the outputs' own ``(h, w)`` axes ``-3, -2``), by the scoring convention ``round(x · (w - 1))``
    (half to even)."""
    height, width = output.shape[-3:-1] if grid_hw is None else grid_hw
    col = np.clip(np.round(output[..., 0] * (width - 1)), 0, width - 1)
    row = np.clip(np.round(output[..., 1] * (height - 1)), 0, height - 1)
    return np.stack([col, row], axis=-1).astype(np.int32)


def top_k_pairs(pairs: np.ndarray, scores: np.ndarray, num_images: int, k: int = 5) -> np.ndarray:
    """``(P,)`` bool: pair (i, j) is among the k best partners of i (by ``S_ij``) or of j (by ``S_ji``).

    Only the listed pairs compete (ties keep image order).
    """
    pairs = np.asarray(pairs)
    matrix = np.full((num_images, num_images), -np.inf)
    matrix[pairs[:, 0], pairs[:, 1]] = scores[:, 0]
    matrix[pairs[:, 1], pairs[:, 0]] = scores[:, 1]
    best = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    chosen = np.zeros((num_images, num_images), bool)
    chosen[np.arange(num_images)[:, None], best] = True
    chosen &= np.isfinite(matrix)
    return chosen[pairs[:, 0], pairs[:, 1]] | chosen[pairs[:, 1], pairs[:, 0]]


def graph_vertices(outputs: PairOutputs, selected: np.ndarray | None = None, *, threshold: float = 0.85) -> Vertices:
    """Vertices of the selected pairs (module docstring, step 2), pair-major, then row-major over cells."""
    first, second = np.asarray(outputs.first), np.asarray(outputs.second)
    if first.shape != second.shape:
        raise ValueError(f"discovery needs one grid for every image, got {first.shape[1:3]} and {second.shape[1:3]}")
    selected = np.ones(len(first), bool) if selected is None else np.asarray(selected, bool)
    above_1, above_2 = first[..., 2] > threshold, second[..., 2] > threshold
    count_1, count_2 = above_1.sum(axis=(1, 2)), above_2.sum(axis=(1, 2))
    usable = selected & (count_1 > 0) & (count_2 > 0)
    from_first = count_1 > count_2
    take = np.where(from_first[:, None, None], above_1, above_2) & usable[:, None, None]
    pair, row, col = np.nonzero(take)
    grid = np.stack([col, row], axis=-1).astype(np.int32)
    side = from_first[pair][:, None]
    grid_hw = first.shape[1:3]
    cell_first = np.where(side, grid, rounded_cells(second[pair, row, col], grid_hw))
    cell_second = np.where(side, rounded_cells(first[pair, row, col], grid_hw), grid)
    confidence = np.where(side[:, 0], first[pair, row, col, 2], second[pair, row, col, 2]).astype(np.float32)
    return Vertices(pair.astype(np.int64), cell_first, cell_second, confidence)


def _padded_members(group: np.ndarray, groups: int) -> np.ndarray:
    """``(groups, max size)`` indices of the items of each group (items sorted by group), -1 as padding."""
    counts = np.bincount(group, minlength=groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    members = np.full((groups, max(int(counts.max(initial=0)), 1)), -1, np.int64)
    members[group, np.arange(len(group)) - starts[group]] = np.arange(len(group))
    return members


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between ``(T, Va, 2)`` and ``(T, Vb, 2)`` cells -> ``(T, Va, Vb)`` float32."""
    delta = a[:, :, None, :].astype(np.float32) - b[:, None, :, :].astype(np.float32)
    return np.sqrt(np.sum(delta * delta, axis=-1))


def correspondence_graph(vertices: Vertices, outputs: PairOutputs, sigma: float, *, min_weight: float = 0.01,
                         intra_pair: bool = False, block_elements: int = 1 << 24) -> sparse.csr_matrix:
    """The symmetric ``(V, V)`` affinity of module docstring step 3.

    ``outputs`` are all matchable pairs (the third pair of a 3-cycle need not have vertices); ``vertices`` from
    ``graph_vertices(outputs, ...)``. Blocks of about ``block_elements`` vertex pairs are computed at once.
    """
    num_vertices = len(vertices)
    pairs = np.asarray(outputs.pairs, np.int64)
    if num_vertices == 0:
        return sparse.csr_matrix((0, 0), dtype=np.float32)
    graph_pairs, slot = np.unique(vertices.pair, return_inverse=True)  # pairs that have vertices
    order = np.argsort(slot, kind="stable")
    if np.any(order != np.arange(num_vertices)):
        raise ValueError("vertices must be grouped by pair (as graph_vertices returns them)")
    members = _padded_members(slot, len(graph_pairs))  # (G, Vmax)
    ends = pairs[graph_pairs]  # (G, 2)
    num_images = int(pairs.max()) + 1
    lookup = np.full((num_images, num_images), -1, np.int64)
    lookup[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    lookup[pairs[:, 1], pairs[:, 0]] = np.arange(len(pairs))
    if np.sum(lookup >= 0) != 2 * len(pairs):
        raise ValueError("each unordered image pair may appear once")
    cells = np.stack([rounded_cells(outputs.first), rounded_cells(outputs.second)], axis=1)  # (P, 2, h, w, 2)
    # Vertex cells by pair side; padding (-1) reads the last vertex's cells and the appended confidence 0.
    vertex_cells = np.stack([vertices.cell_first, vertices.cell_second], axis=1)  # (V, 2, 2)
    confidence = np.concatenate([vertices.confidence, [0.0]]).astype(np.float32)

    rows, cols, weights = [], [], []

    def keep(block, left, right):
        t, i, j = np.nonzero(block > min_weight)
        rows.append(left[t, i])
        cols.append(right[t, j])
        weights.append(block[t, i, j])

    # 3-cycle edges: pairs of graph pairs sharing exactly one image whose other images form a matchable pair.
    incidence = np.zeros((len(graph_pairs), num_images), np.int32)
    incidence[np.arange(len(graph_pairs)), ends[:, 0]] = 1
    incidence[np.arange(len(graph_pairs)), ends[:, 1]] = 1
    a, b = np.nonzero(np.triu(incidence @ incidence.T == 1, k=1))
    shared = np.argmax(incidence[a] & incidence[b], axis=1)
    other_a, other_b = ends[a].sum(axis=1) - shared, ends[b].sum(axis=1) - shared
    third = lookup[other_a, other_b]
    found = third >= 0
    a, b, shared, other_a, third = a[found], b[found], shared[found], other_a[found], third[found]
    side_a = (ends[a, 1] == shared).astype(np.int64)  # 0: the shared image is the pair's first image
    side_b = (ends[b, 1] == shared).astype(np.int64)
    side_third = (pairs[third, 1] == other_a).astype(np.int64)  # the output of o_a in pair ``third`` (into o_b)
    size = members.shape[1]
    step = max(1, block_elements // (size * size))
    for start in range(0, len(a), step):
        part = slice(start, start + step)
        left, right = members[a[part]], members[b[part]]  # (T, Vmax)
        shared_left = vertex_cells[left, side_a[part][:, None]]  # (T, Vmax, 2)
        other_left = vertex_cells[left, 1 - side_a[part][:, None]]
        shared_right = vertex_cells[right, side_b[part][:, None]]
        other_right = vertex_cells[right, 1 - side_b[part][:, None]]
        q, direction = third[part][:, None], side_third[part][:, None]
        to_right = cells[q, direction, other_left[..., 1], other_left[..., 0]]  # C_{oa->ob}(x_oa^a)
        to_left = cells[q, 1 - direction, other_right[..., 1], other_right[..., 0]]  # C_{ob->oa}(x_ob^b)
        block = (np.exp(-_distance(shared_left, shared_right) / sigma)
                 * 0.5 * (np.exp(-_distance(to_right, other_right) / sigma)
                          + np.exp(-_distance(other_left, to_left) / sigma))
                 * confidence[left][:, :, None] * confidence[right][:, None, :])
        keep(block, left, right)
        keep(block.transpose(0, 2, 1), right, left)

    if intra_pair:
        step = max(1, block_elements // (size * size))
        for start in range(0, len(graph_pairs), step):
            group = members[start:start + step]
            first, second = vertex_cells[group, 0], vertex_cells[group, 1]
            block = (np.exp(-(_distance(first, first) + _distance(second, second)) / (2 * sigma))
                     * confidence[group][:, :, None] * confidence[group][:, None, :])
            keep(block, group, group)

    rows, cols, weights = (np.concatenate(x) for x in (rows, cols, weights)) if rows else ([], [], [])
    entries = (np.asarray(rows, np.int64), np.asarray(cols, np.int64))
    return sparse.csr_matrix((np.asarray(weights, np.float32), entries), shape=(num_vertices, num_vertices))


# ------------------------------------------------------------------------------------------ spectral step


def log_grid(count: int, ratio: float = 1.1) -> np.ndarray:
    """The release's sizes k - 1 at which the sign energy is evaluated: ``round(ratio^c) - 1``, distinct,
    below ``count - 1``, then ``count - 1``."""
    grid, point, power = [], 1, 1
    while point < count:
        if point - 1 not in grid:
            grid.append(point - 1)
        point = int(round(ratio ** power))
        power += 1
    grid.append(count - 1)
    return np.asarray(grid, np.int64)


def indicator_energy(graph: sparse.spmatrix, order: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``cᵀAc`` for ``c`` the L2-normalised indicator of ``order[:k]``, for every ``k`` in ``sizes`` (one pass:
    an entry (r, c) counts once both are in, i.e. from ``k = max(rank r, rank c) + 1`` on)."""
    coo = graph.tocoo()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    last = np.maximum(rank[coo.row], rank[coo.col])
    inside = np.cumsum(np.bincount(last, weights=coo.data.astype(np.float64), minlength=len(order)))
    sizes = np.asarray(sizes, np.int64)
    return inside[sizes - 1] / sizes


def energy_sign(graph: sparse.spmatrix, vector: np.ndarray, *, ratio: float = 1.1) -> float:
    """+1 if the largest entries of ``vector`` (descending) reach a higher indicator energy than the smallest
    ones (ascending), -1 if lower.

    On a tie (the best k is the whole graph for both orders, e.g. a uniformly dense graph) the release keeps
    ARPACK's arbitrary sign; here the sign that makes the entries sum to >= 0 wins (the Perron vector's).
    """
    ascending = np.argsort(vector, kind="stable")
    sizes = log_grid(len(vector), ratio) + 1
    positive = indicator_energy(graph, ascending[::-1], sizes).max()
    negative = indicator_energy(graph, ascending, sizes).max()
    if np.isclose(positive, negative, rtol=1e-9, atol=0.0):
        return 1.0 if np.sum(vector) >= 0 else -1.0
    return 1.0 if positive > negative else -1.0


def leading_eigenvector(graph: sparse.spmatrix, *, ratio: float = 1.1) -> np.ndarray:
    """``(V,)`` float64 unit eigenvector of the largest-magnitude eigenvalue, sign fixed by ``energy_sign``.

    Zero for a graph without edges.
    """
    count = graph.shape[0]
    if count == 0 or graph.nnz == 0:
        return np.zeros(count)
    matrix = graph.astype(np.float64)
    if count < 3:  # ARPACK needs k < n
        values, vectors = np.linalg.eigh(matrix.toarray())
        vector = vectors[:, np.argmax(np.abs(values))]
    else:
        _, vectors = eigsh(matrix, k=1, which="LM", v0=np.ones(count))
        vector = np.real(vectors[:, 0])
    return vector * energy_sign(matrix, vector, ratio=ratio)


def heat_maps(vertices: Vertices, pairs: np.ndarray, values: np.ndarray, num_images: int,
              grid_hw: tuple[int, int], *, mode: str = "sum") -> np.ndarray:
    """``(N, h, w)`` float32: every vertex's value added into its cell of both images (``"sum"``), or their
    maximum with 0 (``"max"``), or their mean (``"mean"``)."""
    pairs = np.asarray(pairs)
    heat = np.zeros((num_images, *grid_hw), np.float64)
    count = np.zeros_like(heat)
    values = np.asarray(values, np.float64)
    for side, cell in ((0, vertices.cell_first), (1, vertices.cell_second)):
        image = pairs[vertices.pair, side]
        index = (image, cell[:, 1], cell[:, 0])
        if mode == "max":
            np.maximum.at(heat, index, values)
        elif mode in ("sum", "mean"):
            np.add.at(heat, index, values)
            np.add.at(count, index, 1.0)
        else:
            raise ValueError(f"mode must be sum, max or mean, got {mode!r}")
    if mode == "mean":
        heat = heat / (count + 1e-10)
    return heat.astype(np.float32)


def discover(outputs: PairOutputs, num_images: int, sigma: float, *, top_k: int = 5, threshold: float = 0.85,
             intra_pair: bool = False, mode: str = "sum") -> dict:
    """Steps 1-5 on the matchable pairs: ``{"selected": (P,) bool, "vertices", "graph", "vector", "heat":
    (N, h, w)}``."""
    selected = top_k_pairs(outputs.pairs, outputs.scores, num_images, top_k)
    vertices = graph_vertices(outputs, selected, threshold=threshold)
    graph = correspondence_graph(vertices, outputs, sigma, intra_pair=intra_pair)
    vector = leading_eigenvector(graph)
    heat = heat_maps(vertices, outputs.pairs, vector, num_images, outputs.first.shape[1:3], mode=mode)
    return {"selected": selected, "vertices": vertices, "graph": graph, "vector": vector, "heat": heat}
