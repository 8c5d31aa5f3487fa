"""Discovery: pair selection, vertices, the 3-cycle graph against a loop reference, the leading
eigenvector and its sign, heat maps, and the batched pairwise stage."""

import itertools
import math

import numpy as np
from scipy import sparse

from artdup_jax import segswap
from artdup_jax.segswap import discovery
from tests.segswap.test_retrieval import random_variables


def identity_output(height, width, mask):
    """``(h, w, 3)``: every cell points to the same cell of the other image (rounding back exactly)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([cols / (width - 1), rows / (height - 1), mask], axis=-1).astype(np.float32)


def test_top_k_pairs_keeps_the_best_partner_of_each_image():
    pairs = np.array(list(itertools.combinations(range(4), 2)))  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    scores = np.array([[5, 1], [3, 4], [1, 0.5], [2, 6], [0.2, 7], [0.1, 0.3]])
    # Best partner by S_ij: 0 -> 1, 1 -> 2, 2 -> 1, 3 -> 1.
    np.testing.assert_array_equal(discovery.top_k_pairs(pairs, scores, 4, k=1), [1, 0, 0, 1, 1, 0])
    assert discovery.top_k_pairs(pairs, scores, 4, k=3).all()


def test_vertices_come_from_the_side_with_more_confident_cells():
    first = np.zeros((3, 2, 3, 3), np.float32)
    second = np.zeros((3, 2, 3, 3), np.float32)
    first[0, 0, 1] = (0.5, 1.0, 0.9)  # -> cell (x 1, y 1) of the second image
    first[0, 1, 2] = (0.26, 0.4, 0.95)  # -> (round(0.52), round(0.4)) = (1, 0)
    second[0, 0, 0, 2] = 0.99  # one cell only: the first side (two cells) wins
    first[1, 1, 0, 2] = 0.9  # pair 1: one cell each side, the tie goes to the second side
    second[1, 0, 2] = (1.0, 0.0, 0.88)  # -> (2, 0) of the first image
    first[2, 0, 0, 2] = 0.9  # pair 2: no confident cell on the second side, no vertex
    outputs = discovery.PairOutputs(np.array([[0, 1], [0, 2], [1, 2]]), first, second, np.ones((3, 2)))
    vertices = discovery.graph_vertices(outputs, threshold=0.85)
    np.testing.assert_array_equal(vertices.pair, [0, 0, 1])
    np.testing.assert_array_equal(vertices.cell_first, [[1, 0], [2, 1], [2, 0]])
    np.testing.assert_array_equal(vertices.cell_second, [[1, 1], [1, 0], [2, 0]])
    np.testing.assert_allclose(vertices.confidence, [0.9, 0.95, 0.88])
    assert len(discovery.graph_vertices(outputs, np.array([False, True, True]), threshold=0.85)) == 1


def _reference_graph(outputs, vertices, sigma, intra_pair):
    """The spec's edge formula with loops over vertex pairs, float64."""
    pairs = [tuple(int(v) for v in p) for p in outputs.pairs]
    row_of = {p: k for k, p in enumerate(pairs)}

    def correspondence(i, j, cell):  # rounded C_{i -> j} at cell (x, y)
        out = outputs.first[row_of[(i, j)]] if (i, j) in row_of else outputs.second[row_of[(j, i)]]
        h, w = out.shape[:2]
        x, y = cell
        return np.array([round(float(out[y, x, 0]) * (w - 1)), round(float(out[y, x, 1]) * (h - 1))])

    count = len(vertices)
    weights = np.zeros((count, count))
    for a, b in itertools.product(range(count), repeat=2):
        pa, pb = pairs[vertices.pair[a]], pairs[vertices.pair[b]]
        cells_a = {pa[0]: vertices.cell_first[a], pa[1]: vertices.cell_second[a]}
        cells_b = {pb[0]: vertices.cell_first[b], pb[1]: vertices.cell_second[b]}
        m = float(vertices.confidence[a]) * float(vertices.confidence[b])
        if pa == pb:
            if intra_pair:
                d = np.linalg.norm(cells_a[pa[0]] - cells_b[pa[0]]) + np.linalg.norm(cells_a[pa[1]] - cells_b[pa[1]])
                weights[a, b] = math.exp(-d / (2 * sigma)) * m
            continue
        shared = set(pa) & set(pb)
        if len(shared) != 1:
            continue
        s = shared.pop()
        oa, ob = (set(pa) - {s}).pop(), (set(pb) - {s}).pop()
        if (oa, ob) not in row_of and (ob, oa) not in row_of:
            continue
        d_shared = np.linalg.norm(cells_a[s] - cells_b[s])
        d_forward = np.linalg.norm(correspondence(oa, ob, cells_a[oa]) - cells_b[ob])
        d_backward = np.linalg.norm(cells_a[oa] - correspondence(ob, oa, cells_b[ob]))
        weights[a, b] = math.exp(-d_shared / sigma) * 0.5 * (math.exp(-d_forward / sigma)
                                                             + math.exp(-d_backward / sigma)) * m
    return np.where(weights > 0.01, weights, 0.0)


def test_graph_matches_the_loop_reference_on_random_outputs():
    rng = np.random.default_rng(0)
    pairs = np.array([p for p in itertools.combinations(range(5), 2) if p != (3, 4)])  # (3, 4) not matchable
    first = rng.uniform(0.01, 0.99, size=(len(pairs), 3, 4, 3)).astype(np.float32)  # h 3, w 4: catches x/y swaps
    second = rng.uniform(0.01, 0.99, size=(len(pairs), 3, 4, 3)).astype(np.float32)
    outputs = discovery.PairOutputs(pairs, first, second, np.ones((len(pairs), 2)))
    vertices = discovery.graph_vertices(outputs, threshold=0.7)
    assert 20 < len(vertices) < 80
    for intra_pair in (False, True):
        graph = discovery.correspondence_graph(vertices, outputs, 1.5, intra_pair=intra_pair, block_elements=200)
        expected = _reference_graph(outputs, vertices, 1.5, intra_pair)
        np.testing.assert_allclose(graph.toarray(), expected, rtol=1e-5, atol=1e-6)
        assert (expected > 0).sum() > 50


def _planted_affinity(seed=1, size=40, members=8):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 0.15, (size, size)) * (rng.uniform(size=(size, size)) < 0.3)
    cluster = rng.choice(size, members, replace=False)
    noise[np.ix_(cluster, cluster)] = rng.uniform(0.6, 1.0, (members, members))
    affinity = (noise + noise.T) / 2
    np.fill_diagonal(affinity, 0.0)
    return sparse.csr_matrix(affinity), cluster


def test_leading_eigenvector_recovers_a_planted_cluster_with_a_positive_sign():
    graph, cluster = _planted_affinity()
    vector = discovery.leading_eigenvector(graph)
    assert set(np.argsort(-vector)[: len(cluster)]) == set(cluster)
    assert vector[cluster].min() > 0
    values, vectors = np.linalg.eigh(graph.toarray())  # dense reference, up to sign
    np.testing.assert_allclose(np.abs(vector), np.abs(vectors[:, np.argmax(np.abs(values))]), atol=1e-6)
    assert discovery.energy_sign(graph, vector) == 1.0 and discovery.energy_sign(graph, -vector) == -1.0


def test_a_uniformly_dense_graph_gets_the_positive_perron_vector():
    # Both orders reach their best energy on the whole graph (a tie): the sign must not be ARPACK's whim.
    graph = sparse.csr_matrix(np.ones((6, 6)) - np.eye(6))
    np.testing.assert_allclose(discovery.leading_eigenvector(graph), np.full(6, 1 / math.sqrt(6)), rtol=1e-6)


def test_indicator_energy_matches_dense_quadratic_forms():
    graph, _ = _planted_affinity(seed=2, size=12, members=4)
    order = np.random.default_rng(3).permutation(12)
    sizes = np.array([1, 2, 5, 12])
    dense = graph.toarray()
    expected = []
    for k in sizes:
        indicator = np.zeros(12)
        indicator[order[:k]] = 1 / math.sqrt(k)
        expected.append(indicator @ dense @ indicator)
    np.testing.assert_allclose(discovery.indicator_energy(graph, order, sizes), expected, rtol=1e-10)


def test_heat_maps_add_each_vertex_into_both_of_its_cells():
    vertices = discovery.Vertices(np.array([0, 0, 1]), np.array([[0, 0], [1, 0], [1, 1]]),
                                  np.array([[2, 1], [2, 1], [0, 0]]), np.ones(3, np.float32))
    heat = discovery.heat_maps(vertices, np.array([[0, 1], [0, 2]]), np.array([0.5, 0.25, 1.0]), 3, (2, 3))
    expected = np.zeros((3, 2, 3))
    expected[0, 0, 0], expected[0, 0, 1], expected[0, 1, 1] = 0.5, 0.25, 1.0
    expected[1, 1, 2] = 0.75  # two vertices of pair (0, 1) land on one cell: they add up
    expected[2, 0, 0] = 1.0
    np.testing.assert_allclose(heat, expected)


def test_discovery_puts_the_heat_on_the_cycle_consistent_object():
    height, width, count = 5, 6, 5
    rng = np.random.default_rng(4)
    block = np.zeros((height, width), bool)
    block[1:3, 2:4] = True  # the object: identity correspondences in every pair
    pairs = np.array(list(itertools.combinations(range(count), 2)))
    first, second = [], []
    for _ in pairs:
        out_1 = identity_output(height, width, np.where(block, 0.95, 0.1))
        noise = (int(rng.integers(3, 5)), int(rng.choice([0, 5])))  # one confident cell off the object,
        out_1[noise] = (rng.uniform(), rng.uniform(), 0.95)  # mapped anywhere
        first.append(out_1)
        second.append(identity_output(height, width, np.where(block, 0.95, 0.1)))
    outputs = discovery.PairOutputs(pairs, np.stack(first), np.stack(second), np.full((len(pairs), 2), 10.0))
    result = discovery.discover(outputs, count, sigma=1.0)
    assert result["selected"].all() and len(result["vertices"]) == 5 * len(pairs)
    for heat in result["heat"]:
        assert heat[block].min() > heat[~block].max()


def test_pairwise_stage_scores_every_pair_and_maps_flipped_results_back():
    rng = np.random.default_rng(5)
    features = np.abs(rng.normal(size=(5, 4, 4, 1024)))
    features = (features / np.linalg.norm(features, axis=-1, keepdims=True)).astype(np.float32)
    flipped = np.ascontiguousarray(features[:, :, ::-1])  # stands in for the features of the mirrored images
    variables = random_variables()
    stage = segswap.pairwise_stage(variables, features, flipped, batch_size=4)
    outputs = stage["outputs"]
    np.testing.assert_array_equal(outputs.pairs, list(itertools.combinations(range(5), 2)))
    i, j = outputs.pairs[:, 0], outputs.pairs[:, 1]
    plain_1, plain_2 = (np.asarray(o) for o in segswap.predict_from_features(variables, features[i], features[j]))
    flip_1, flip_2 = (np.array(o) for o in segswap.predict_from_features(variables, features[i], flipped[j]))
    flip_1[..., 0] = 1 - flip_1[..., 0]  # image 1's x into the unflipped image 2
    flip_2 = flip_2[:, :, ::-1]  # image 2's cells back in place, x into image 1 unchanged
    used = flip_1[..., 2].sum(axis=(1, 2)) > plain_1[..., 2].sum(axis=(1, 2))
    assert 0 < used.sum() < len(used)
    np.testing.assert_array_equal(stage["flipped"], used)
    np.testing.assert_allclose(outputs.first, np.where(used[:, None, None, None], flip_1, plain_1), atol=1e-5)
    np.testing.assert_allclose(outputs.second, np.where(used[:, None, None, None], flip_2, plain_2), atol=1e-5)
    direct = np.stack([segswap.pair_scores(outputs.first, outputs.second, features[i], features[j]),
                       segswap.pair_scores(outputs.second, outputs.first, features[j], features[i])], axis=-1)
    valid = (stage["cycle_first"].sum(axis=(1, 2)) >= 0.16) & (stage["cycle_second"].sum(axis=(1, 2)) >= 0.16)
    np.testing.assert_allclose(outputs.scores, np.where(valid[:, None], direct, 0.0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(stage["matchable"], outputs.scores.max(axis=1) > 0.16)
