"""Discovery: the pair score against the PyTorch port of the release's per-pair code, batched vs per-pair scoring,
components vs scikit-image, candidate pairs and planted groups in a synthetic collection."""

import jax
import numpy as np
import pytest
from PIL import Image
from skimage import measure

from artdup_jax.artminer import FeatureCache
from artdup_jax.artminer.discovery import (
    DiscoveryConfig,
    Edge,
    Group,
    _remove_small_components,
    all_pairs,
    candidate_pairs,
    cluster,
    connected_components,
    dense_mutual_matches,
    directed,
    discover,
    extract_features,
    pair_score,
    region_groups,
    score_pairs,
)
from artdup_jax.artminer.discovery import verification
from artdup_jax.artminer.discovery.screening import (BOUND_MARGIN, bound_vectors, screen_reference, screen_target,
                                                     screened_mutual_matches, screening_basis)
from artdup_jax.geometry.matching import mutual_nearest_neighbours
from baselines.torch import artminer_discovery as torch_discovery
from artdup_jax.app.discover import planted_metrics

# Random-weight features on 128 x 160 px images: small grids, no saliency (random features make neighbouring
# cells alike, so the saliency weights are ~0 everywhere) and a threshold above the ~0.13 that unrelated pairs
# reach with such features; planted exact copies score 0.17-0.55.
CONFIG = DiscoveryConfig(reference_cells=16, margin=2, scales=(20, 16, 12), saliency=False, threshold=0.15,
                         descriptor_cells=12, pairs_per_batch=8)
# Parity: at most 8 x 6 = 48 reference cells, so fewer than 50 sampling matches and, with enough iterations,
# every 3-subset is a hypothesis on both sides: no dependence on the random draws.
PARITY = DiscoveryConfig(reference_cells=12, margin=2, scales=(20, 16, 12), saliency=False, iterations=18000)


def _torch_score(reference, targets, config):
    return torch_discovery.pair_score_from_features(
        reference, targets, margin=config.margin, saliency=config.saliency, reference_cells=config.reference_cells,
        tolerance_cells=config.tolerance_cells, iterations=config.iterations, min_component=config.min_component)


@pytest.fixture(scope="module")
def cache(variables):
    return FeatureCache(variables)


def test_pair_score_equals_the_pytorch_port_on_network_features(exact_copies, cache):
    names = [e["query"][0] for e in exact_copies.annotations["c0"]] + [exact_copies.images[0]]
    checked = 0
    for a, b in [(names[0], names[1]), (names[1], names[0]), (names[1], names[2]), (names[0], names[3])]:
        reference = np.asarray(cache.get(str(exact_copies.folder / a), PARITY.reference_cells,
                                         PARITY.reference_min_cells))
        targets = [np.asarray(cache.get(str(exact_copies.folder / b), s, 1)) for s in PARITY.scales]
        ours = pair_score(reference, targets, PARITY)
        theirs = _torch_score(reference, targets, PARITY)
        assert int(ours["sampling_size"]) == theirs["sampling_size"] < 50
        assert int(ours["num_matches"]) == theirs["num_matches"]
        assert float(ours["score"]) == pytest.approx(theirs["score"], rel=1e-5, abs=1e-7)
        checked += theirs["score"] > 0
    assert checked >= 2  # the planted pairs do match


def _synthetic_maps(seed):
    """Raw non-negative maps shaped as the network's for a 128 x 160 image under PARITY (one compilation for both
    parity tests): a 10 x 12 reference; its rows 2-7, cols 3-9 reappear upsampled 2x (nearest) at the first
    target scale and shifted at the second; the third is unrelated."""
    rng = np.random.default_rng(seed)
    reference = rng.gamma(1.0, size=(10, 12, 256)).astype(np.float32)
    block = reference[2:8, 3:10]
    double = rng.gamma(1.0, size=(16, 20, 256)).astype(np.float32)
    double[2:14, 3:17] = np.repeat(np.repeat(block, 2, 0), 2, 1)
    same = rng.gamma(1.0, size=(13, 16, 256)).astype(np.float32)
    same[4:10, 5:12] = block + 0.05 * rng.random(block.shape)
    other = rng.gamma(1.0, size=(10, 12, 256)).astype(np.float32)
    return reference, [double, same, other]


@pytest.mark.parametrize("saliency", [False, True])
def test_pair_score_equals_the_pytorch_port_on_synthetic_features(saliency):
    config = DiscoveryConfig(**{**PARITY.__dict__, "saliency": saliency})
    reference, targets = _synthetic_maps(0)
    ours = pair_score(reference, targets, config)
    theirs = _torch_score(reference, targets, config)
    assert theirs["score"] > 0.1
    assert int(ours["num_matches"]) == theirs["num_matches"]
    assert float(ours["score"]) == pytest.approx(theirs["score"], rel=1e-5)


def test_first_argmax_equals_argmax_with_ties_and_empty_rows():
    from artdup_jax.artminer.discovery import first_argmax

    x = np.random.default_rng(0).integers(0, 3, size=(7, 9)).astype(np.float32)
    x[2] = -np.inf  # a padded row: argmax gives 0
    for axis in (0, 1):
        index, best = first_argmax(x, axis)
        np.testing.assert_array_equal(np.asarray(index), np.argmax(x, axis))
        np.testing.assert_array_equal(np.asarray(best), np.max(x, axis))


def test_dense_mutual_matches_equal_geometry_matching():
    rng = np.random.default_rng(1)
    a = rng.gamma(1.0, size=(40, 16)).astype(np.float32)
    b = np.concatenate([a[::2] + 0.1 * rng.random((20, 16)), rng.gamma(1.0, size=(30, 16))]).astype(np.float32)
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    valid_a, valid_b = np.arange(40) < 37, np.arange(50) != 3  # padding on both sides
    matched, index, similarity = (np.asarray(x) for x in dense_mutual_matches(a, b, valid_a, valid_b))
    reference = mutual_nearest_neighbours(a, b, valid_a, valid_b)
    count = int(reference.count)
    assert count >= 10
    np.testing.assert_array_equal(np.nonzero(matched)[0], np.asarray(reference.index_a)[:count])
    np.testing.assert_array_equal(index[matched], np.asarray(reference.index_b)[:count])
    np.testing.assert_allclose(similarity[matched], np.asarray(reference.similarity)[:count], rtol=1e-6)


def test_component_removal_matches_scikit_image_labelling():
    rng = np.random.default_rng(0)
    for _ in range(5):
        cells1 = np.argwhere(rng.random((9, 9)) < 0.35)
        cells2 = cells1[rng.permutation(len(cells1))]  # an unrelated layout on the other side
        valid = np.arange(81) < len(cells1)  # padded to 81 rows: one compilation
        pad = ((0, 81 - len(cells1)), (0, 0))
        ours = np.asarray(jax.jit(_remove_small_components, static_argnums=3)(
            np.pad(cells1, pad), np.pad(cells2, pad), valid, 3))[:len(cells1)]
        keep = np.ones(len(cells1), bool)
        while True:  # the release's loop, with scikit-image components
            new = keep.copy()
            if keep.sum() <= 3:
                new[:] = False
            else:
                for cells in (cells1, cells2):
                    mask = np.zeros((20, 20), int)
                    mask[tuple(cells[keep].T)] = 1
                    labels = measure.label(mask, connectivity=2)
                    sizes = np.bincount(labels.ravel())
                    new &= sizes[labels[tuple(cells.T)]] >= 3
            if (new == keep).all():
                break
            keep = new
        np.testing.assert_array_equal(ours, keep)


@pytest.fixture(scope="module")
def mixed_bank(exact_copies, cache, tmp_path_factory):
    """Two collection images plus wide crops of two copies of a detail: smaller maps at every scale, so the bank
    pads them on both sides of a pair."""
    folder = tmp_path_factory.mktemp("mixed")
    names = [e["query"][0] for e in exact_copies.annotations["c1"]]
    paths = [str(exact_copies.folder / n) for n in names[:2]]
    for name, box in [(e["query"][0], e["query"][1]) for e in exact_copies.annotations["c1"][:2]]:
        x1, y1, x2, y2 = box
        cy = (y1 + y2) // 2
        top = max(cy - 50, 0)
        crop = Image.open(exact_copies.folder / name).convert("RGB").crop((0, top, 160, top + 100))
        crop.save(folder / f"wide_{name}")
        paths.append(str(folder / f"wide_{name}"))
    bank, unreadable = extract_features(None, paths, CONFIG, cache=cache)
    sizes = bank.reference_hw[:, 0] * bank.reference_hw[:, 1]
    assert not unreadable and sizes[2] == sizes[3] < sizes[0] == sizes[1]
    return bank, cache


def test_batched_scores_equal_per_pair_scores(mixed_bank):
    bank, cache = mixed_bank
    pairs = directed(all_pairs(len(bank)))[:9]  # 9 pairs in batches of 8: the last batch is padded
    pairs = np.concatenate([pairs, [[2, 3], [3, 2]]])
    batched = score_pairs(bank, pairs, CONFIG)
    assert (batched.scores > 0).sum() >= 3 and batched.scores[-1] > CONFIG.threshold
    for k in (len(pairs) - 2, len(pairs) - 1):  # the wide crops: padded as reference and as target
        a, b = pairs[k]
        reference = cache.get(bank.paths[a], CONFIG.reference_cells, CONFIG.reference_min_cells)
        targets = [cache.get(bank.paths[b], s, CONFIG.target_min_cells) for s in CONFIG.scales]
        single = pair_score(reference, targets, CONFIG, pair_ids=(int(a), int(b)))
        assert int(single["num_matches"]) == batched.num_matches[k] > 0
        assert float(single["score"]) == pytest.approx(float(batched.scores[k]), rel=1e-5, abs=1e-7)


def test_the_bank_filled_in_place_equals_padded_lists_of_every_map(mixed_bank):
    """``extract_features`` fills the padded arrays one image at a time: the same arrays, bit for bit, as
    ``_pad_flat`` of the lists of every prepared map (maps of two sizes, so padding after the smaller ones)."""
    from artdup_jax.artminer.discovery.bank import PAD_CELLS, _pad_flat, prepare_reference, prepare_target
    from artdup_jax.artminer.discovery.candidates import global_descriptors

    bank, cache = mixed_bank
    reference = [prepare_reference(cache.get(p, CONFIG.reference_cells, CONFIG.reference_min_cells), CONFIG.margin,
                                   CONFIG.saliency) for p in bank.paths]
    expected = [_pad_flat(reference, np.float32, PAD_CELLS)]
    expected += [_pad_flat([prepare_target(cache.get(p, s, CONFIG.target_min_cells)) for p in bank.paths],
                           np.float32, PAD_CELLS) for s in CONFIG.scales]
    filled = [(bank.reference, bank.reference_valid, bank.reference_hw)]
    filled += [(t, v, bank.target_hw[:, s]) for s, (t, v) in enumerate(zip(bank.targets, bank.target_valid))]
    for (cells, valid, hw), (cells_ref, valid_ref, hw_ref) in zip(filled, expected, strict=True):
        assert cells.dtype == cells_ref.dtype and cells.tobytes() == cells_ref.tobytes()
        np.testing.assert_array_equal(valid, valid_ref)
        np.testing.assert_array_equal(hw, hw_ref)
    descriptors = global_descriptors([cache.get(p, CONFIG.descriptor_cells, CONFIG.target_min_cells)
                                      for p in bank.paths])
    assert bank.descriptors.tobytes() == descriptors.tobytes()


@pytest.fixture(scope="module")
def planted(exact_copies, variables):
    paths = [str(exact_copies.folder / n) for n in exact_copies.images]
    index = {n: i for i, n in enumerate(exact_copies.images)}
    truth = [sorted(index[e["query"][0]] for e in entries) for entries in exact_copies.annotations.values()]
    config = DiscoveryConfig(**{**CONFIG.__dict__, "exhaustive": True})
    bank, _ = extract_features(variables, paths, config)
    return discover(variables, paths, config, bank=bank), truth, bank


def test_planted_groups_are_recovered(planted, exact_copies):
    result, truth, _ = planted
    metrics = planted_metrics(result.pairs, result.pair_scores, CONFIG.threshold, [g.images for g in result.groups],
                              truth)
    print("planted-group recovery:", metrics)
    assert metrics["pair_precision"] == metrics["pair_recall"] == 1.0
    assert metrics["group_precision"] == metrics["group_recall"] == 1.0
    assert sorted(g.images for g in result.groups) == sorted(truth)
    # The matched regions hold the pasted details: on every image some box contains the annotated centre.
    boxes = {e["query"][0]: e["query"][1] for entries in exact_copies.annotations.values() for e in entries}
    for group in result.groups:
        for image, found in group.regions().items():
            x1, y1, x2, y2 = boxes[exact_copies.images[image]]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            assert any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in found)


def test_top_k_candidates_contain_the_planted_pairs(planted):
    _, truth, bank = planted
    candidates = {tuple(p) for p in candidate_pairs(bank.descriptors, 4).tolist()}
    true_pairs = {(a, b) for g in truth for i, a in enumerate(g) for b in g[i + 1:]}
    assert true_pairs <= candidates
    assert len(candidates) < len(all_pairs(len(bank)))  # fewer than all 28


def test_clusters_are_components_above_the_threshold():
    pairs = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [5, 6], [7, 8]])
    scores = np.array([0.2, 0.2, 0.2, 0.01, 0.3, 0.5])
    assert cluster(9, pairs, scores, 0.015, 3) == [[0, 1, 2]]
    assert cluster(9, pairs, scores, 0.005, 3) == [[3, 4, 5, 6], [0, 1, 2]]
    assert cluster(9, pairs, scores, 0.2, 2) == [[5, 6], [7, 8]]  # strictly above


def test_connected_components_match_scipy():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    rng = np.random.default_rng(0)
    for num_nodes, num_edges in [(1, 0), (12, 0), (12, 5), (40, 30), (40, 120)]:
        edges = rng.integers(0, num_nodes, (num_edges, 2))
        ours = connected_components(num_nodes, edges)
        assert [min(c) for c in ours] == sorted(min(c) for c in ours) and all(c == sorted(c) for c in ours)
        graph = coo_matrix((np.ones(num_edges), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes))
        _, labels = scipy_components(graph, directed=False)
        assert sorted(map(tuple, ours)) == sorted(tuple(np.flatnonzero(labels == k)) for k in set(labels))
    assert connected_components(3, [(2, 1)]) == [[0], [1, 2]]  # a list of tuples works too


def test_region_groups_split_a_group_by_region_overlap():
    left, right = (0, 0, 50, 50), (60, 60, 100, 100)
    edges = [Edge(0, 1, 0.3, left, left), Edge(1, 2, 0.3, left, left),  # one motif on 0, 1, 2
             Edge(2, 3, 0.2, right, right), Edge(3, 4, 0.2, right, right)]  # another on 2, 3, 4
    found = region_groups(Group([0, 1, 2, 3, 4], edges), iou=0.3, min_images=3)
    assert [g.images for g in found] == [[0, 1, 2], [2, 3, 4]]
    assert found[0].boxes[2] == left and found[1].boxes[2] == right


def _screened_matches(reference, reference_valid, target, target_valid, basis):
    return screened_mutual_matches(screen_reference(reference, reference_valid, basis),
                                   screen_target(target, target_valid, basis))


def _maps(case, rng):
    """A reference ``(96, 64)`` and a target ``(200, 64)`` with padding on both sides. saliency: row norms spread
    as saliency weights spread them; uniform: unit rows (the bound rules little out); degenerate: signed
    features, zero rows and columns, repeated rows and columns (tied similarities)."""
    reference = rng.gamma(1.0, size=(96, 64)).astype(np.float32)
    target = np.concatenate([reference[5:45] + 0.2 * rng.random((40, 64)), rng.gamma(1.0, size=(160, 64))])
    if case == "degenerate":
        reference, target = reference - 0.8, target - 0.8
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    target = (target / np.linalg.norm(target, axis=1, keepdims=True)).astype(np.float32)
    if case != "uniform":
        reference *= rng.gamma(0.5, size=(96, 1))
    if case == "degenerate":
        reference[[3, 7]] = 0
        target[[10, 50]] = 0
        reference[20] = reference[30]
        target[60:64] = target[12]
    reference_valid, target_valid = np.arange(96) < 90, np.arange(200) != 150
    return reference.astype(np.float32), reference_valid, target, target_valid


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="bit equality of the two products is a CPU property")
@pytest.mark.parametrize("case", ["saliency", "uniform", "degenerate"])
def test_screened_mutual_matches_equal_dense_ones(case):
    reference, reference_valid, target, target_valid = _maps(case, np.random.default_rng(3))
    basis = screening_basis([(reference[None], reference_valid[None], [0]), (target[None], target_valid[None], [0])],
                            dims=8)
    dense = jax.jit(dense_mutual_matches)(reference, target, reference_valid, target_valid)
    screened = jax.jit(_screened_matches)(reference, reference_valid, target, target_valid, basis)
    assert int(np.sum(dense[0])) >= 3
    for ours, theirs in zip(screened, dense):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_screening_bound_holds_above_every_similarity():
    reference, _, target, _ = _maps("degenerate", np.random.default_rng(4))
    basis = screening_basis([(reference[None], np.ones((1, 96), bool), [0])], dims=4)
    target_bounds = np.asarray(bound_vectors(target, basis))
    identity = np.asarray(bound_vectors(reference, basis, 0.0)) @ target_bounds.T
    exact = reference.astype(np.float64) @ target.astype(np.float64).T
    assert (identity >= exact - 1e-6).all()  # (Q a).(Q b) + |r_a| |r_b|: up to float32 rounding
    with_margin = np.asarray(bound_vectors(reference, basis, BOUND_MARGIN)) @ target_bounds.T
    product = np.asarray(jax.jit(lambda a, b: a @ b.T)(reference, target))  # the float32 similarity itself
    nonzero = np.outer(np.abs(reference).sum(1) > 0, np.abs(target).sum(1) > 0)
    assert (with_margin >= product).all() and (with_margin > product)[nonzero].all()


@pytest.fixture(scope="module")
def salient_bank(exact_copies, cache):
    """The collection's bank with saliency weights (the release's discovery), where the screen does the work."""
    config = DiscoveryConfig(**{**CONFIG.__dict__, "saliency": True})
    bank, _ = extract_features(None, [str(exact_copies.folder / n) for n in exact_copies.images], config,
                               cache=cache)
    return bank, config


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="bit equality of the two products is a CPU property")
def test_screened_scores_equal_dense_scores(salient_bank):
    bank, config = salient_bank
    pairs = directed(all_pairs(len(bank)))
    shape = (len(pairs), bank.reference.shape[1], len(bank.targets))
    screened, dense = ({"has": np.zeros(shape, bool), "index": np.zeros(shape, np.int32),
                        "sims": np.zeros(shape, np.float32)} for _ in range(2))
    verification._screened_matches(bank, pairs, screened)
    verification._dense_matches(bank, pairs, dense, np.arange(len(pairs)), 8)
    assert dense["has"].sum() >= 100
    for key in dense:
        np.testing.assert_array_equal(screened[key], dense[key])
    ours, theirs = score_pairs(bank, pairs, config, screen=True), score_pairs(bank, pairs, config, screen=False)
    np.testing.assert_array_equal(ours.scores, theirs.scores)
    np.testing.assert_array_equal(ours.reference_boxes, theirs.reference_boxes)


def test_a_bank_of_one_batch_scores_as_the_whole_collection(salient_bank, exact_copies, cache):
    bank, config = salient_bank
    batch = [1, 4, 6]  # a bank built from these images alone: its own padding and screening basis
    small, _ = extract_features(None, [bank.paths[i] for i in batch], config, cache=cache)
    pairs = directed(all_pairs(len(batch)))
    alone = score_pairs(small, pairs, config, screen=True)
    whole = score_pairs(bank, np.array(batch)[pairs], config, screen=True)
    np.testing.assert_allclose(alone.scores, whole.scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(alone.num_matches, whole.num_matches)
