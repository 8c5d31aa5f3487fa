"""Pair scores against the official per-cell loop and batched collection scoring."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artdup_jax import segswap
from baselines.torch import segswap as reference
from tests.segswap.conftest import nchw, random_features, random_images


def random_outputs(seed: int, shape) -> np.ndarray:
    """(B, h, w, 3) fake model outputs: (x, y, mask) uniform in (0, 1)."""
    return np.random.default_rng(seed).uniform(0.001, 0.999, size=shape).astype(np.float32)


def signed_features(seed: int, shape) -> np.ndarray:
    """L2-normalised features with both signs, so that some cosines (and contributions) are negative."""
    features = np.random.default_rng(seed).normal(size=shape)
    return (features / np.linalg.norm(features, axis=-1, keepdims=True)).astype(np.float32)


def official(out_s, out_t, f_s, f_t, prior=None, region=None):
    return np.asarray(reference.official_pair_scores(
        nchw(out_s), nchw(out_t), nchw(f_s), nchw(f_t),
        None if prior is None else torch.from_numpy(prior), None if region is None else torch.from_numpy(region)))


def test_sample_at_matches_torch_grid_sample_with_zero_padding():
    rng = np.random.default_rng(0)
    maps = rng.uniform(size=(2, 4, 5)).astype(np.float32)
    points = rng.uniform(-0.3, 1.3, size=(2, 3, 6, 2)).astype(np.float32)
    expected = F.grid_sample(torch.from_numpy(maps)[:, None], torch.from_numpy(2 * points - 1), mode="bilinear",
                             padding_mode="zeros", align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(segswap.sample_at(maps, points)), expected, atol=1e-6)


def test_pair_scores_match_the_official_loop():
    out_s, out_t = random_outputs(1, (4, 5, 6, 3)), random_outputs(2, (4, 4, 3, 3))  # 30 cells onto 12: collisions
    f_s, f_t = signed_features(3, (4, 5, 6, 32)), signed_features(4, (4, 4, 3, 32))
    rng = np.random.default_rng(5)
    prior = rng.uniform(size=(5, 6)).astype(np.float32)
    region = rng.uniform(size=(5, 6)) < 0.6
    got = np.asarray(segswap.pair_scores(out_s, out_t, f_s, f_t, prior, region))
    expected = official(out_s, out_t, f_s, f_t, prior, region)
    print(f"\npair scores {got}, max abs err vs official loop {np.abs(got - expected).max():.3g}")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert (expected > 0).all()


def test_region_scoring_gathers_only_the_region_and_agrees_everywhere():
    """A host region is gathered cell by cell; a traced one masks every cell; score_outputs maps over pairs."""
    import jax

    out_s, out_t = random_outputs(11, (5, 6, 6, 3)), random_outputs(12, (5, 6, 6, 3))
    f_s, f_t = signed_features(13, (6, 6, 16)), signed_features(14, (5, 6, 6, 16))
    prior = np.random.default_rng(15).uniform(size=(6, 6)).astype(np.float32)
    region = np.zeros((6, 6), bool)
    region[1:4, 2:5] = True
    cells, valid = segswap.score.region_cells(region, (1, 6, 6))
    assert cells.shape == (1, 9) and bool(valid.all())
    queries = np.broadcast_to(f_s, (5, 6, 6, 16))
    expected = official(out_s, out_t, queries, f_t, prior, region)
    gathered = segswap.pair_scores(out_s, out_t, queries, f_t, prior, region)
    masked = jax.jit(segswap.pair_scores)(out_s, out_t, queries, f_t, prior, region)
    mapped = segswap.score_outputs(out_s, out_t, f_s, f_t, prior=prior, region=region, batch_size=2)
    for got in (gathered, masked, mapped):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_whole_image_region_reads_the_maps_whole_and_agrees_with_the_gathered_and_masked_paths():
    """None or an all-True host region skips the source gather; a traced all-True region masks every cell."""
    import jax

    out_s, out_t = random_outputs(21, (3, 5, 4, 3)), random_outputs(22, (3, 4, 4, 3))
    f_s, f_t = signed_features(23, (5, 4, 16)), signed_features(24, (3, 4, 4, 16))
    prior = np.random.default_rng(25).uniform(size=(5, 4)).astype(np.float32)
    everything = np.ones((5, 4), bool)
    assert segswap.score.every_cell(None) and segswap.score.every_cell(everything)
    assert not segswap.score.every_cell(~everything)
    queries = np.broadcast_to(f_s, (3, 5, 4, 16))
    expected = official(out_s, out_t, queries, f_t, prior, everything)
    cells, valid = segswap.score.region_cells(everything, (3, 5, 4))
    gathered = jax.vmap(segswap.score.score_at_cells)(out_s, out_t, queries, f_t, np.broadcast_to(prior, (3, 5, 4)),
                                                      cells, valid)
    for got in (segswap.pair_scores(out_s, out_t, queries, f_t, prior, everything),
                segswap.pair_scores(out_s, out_t, queries, f_t, prior),
                jax.jit(segswap.pair_scores)(out_s, out_t, queries, f_t, prior, everything),
                segswap.score_outputs(out_s, out_t, f_s, f_t, prior=prior, batch_size=2), gathered):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_score_is_directional():
    out_s, out_t = random_outputs(6, (3, 4, 4, 3)), random_outputs(7, (3, 4, 4, 3))
    f_s, f_t = signed_features(8, (3, 4, 4, 16)), signed_features(9, (3, 4, 4, 16))
    forward = np.asarray(segswap.pair_scores(out_s, out_t, f_s, f_t))
    backward = np.asarray(segswap.pair_scores(out_t, out_s, f_t, f_s))
    np.testing.assert_allclose(forward, official(out_s, out_t, f_s, f_t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backward, official(out_t, out_s, f_t, f_s), rtol=1e-5, atol=1e-6)
    assert np.abs(forward - backward).min() > 1e-3


def test_only_the_best_cell_per_target_cell_counts_and_negatives_are_clipped():
    # Source cells 0 and 1 land on target cell 0, cell 2 on target cell 1 (round(x · (wt - 1))).
    out_s = np.array([[[[0.2, 0.5, 0.9], [0.3, 0.5, 0.6], [0.8, 0.5, 0.95]]]], np.float32)  # (1, 1, 3, 3)
    out_t = np.full((1, 1, 2, 3), 0.9, np.float32)
    e1, e2 = np.eye(2, dtype=np.float32)
    f_s = np.stack([e1, e1, -e2])[None, None]  # (1, 1, 3, 2): cosines +1, +1, -1
    f_t = np.stack([e1, e2])[None, None]
    joint = np.asarray(segswap.joint_mask(out_s, out_t))[0, 0]
    got = float(segswap.pair_scores(out_s, out_t, f_s, f_t)[0])
    np.testing.assert_allclose(got, max(joint[0], joint[1]), rtol=1e-6)
    np.testing.assert_allclose(got, official(out_s, out_t, f_s, f_t)[0], rtol=1e-6)


def test_cycle_consistent_masks_follow_the_three_steps():
    rng = np.random.default_rng(10)
    a, b = rng.uniform(size=(1, 3, 4)).astype(np.float32), rng.uniform(size=(1, 5, 2)).astype(np.float32)
    flow_12 = rng.uniform(size=(1, 3, 4, 2)).astype(np.float32)
    flow_21 = rng.uniform(size=(1, 5, 2, 2)).astype(np.float32)

    def sample(m, c):
        grid = torch.from_numpy(2 * c - 1)
        return F.grid_sample(torch.from_numpy(m)[:, None], grid, align_corners=False)[:, 0].numpy()

    t = sample(a, flow_21) * b
    a_refined = a * sample(t, flow_12)
    got_a, got_b = segswap.cycle_consistent_masks(a, b, flow_12, flow_21)
    np.testing.assert_allclose(np.asarray(got_a), a_refined, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got_b), sample(a_refined, flow_21), atol=1e-6)


def per_pair(variables, query, collection, prior, region):
    scores, locations = [], []
    for features in collection:
        out_q, out_c = segswap.predict_from_features(variables, query[None], features[None])
        scores.append(float(segswap.pair_score(out_q[0], out_c[0], query, features, prior, region)))
        weights = region[..., None].astype(np.float32)
        locations.append((np.asarray(out_q[0])[..., :2] * weights).sum((0, 1)) / weights.sum())
    return np.array(scores), np.array(locations)


def test_batched_collection_scoring_equals_per_pair_scoring(segswap_variables):
    query = random_features(11, (4, 4, 1024))
    collection = random_features(12, (7, 5, 5, 1024))  # 7 images in batches of 3: the last one is padded
    rng = np.random.default_rng(13)
    prior = rng.uniform(size=(4, 4)).astype(np.float32)
    region = rng.uniform(size=(4, 4)) < 0.7
    got = segswap.score_against_collection(segswap_variables, query, collection, prior=prior, region=region,
                                           batch_size=3)
    expected_scores, expected_locations = per_pair(segswap_variables, query, collection, prior, region)
    error = np.abs(got["score"] - expected_scores).max()
    print(f"\ncollection scores {got['score']}, max abs err vs per pair {error:.3g}")
    assert got["score"].shape == (7,) and got["location"].shape == (7, 2)
    np.testing.assert_allclose(got["score"], expected_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["location"], expected_locations, atol=1e-5)


def test_collection_of_images_scores_like_its_features(segswap_variables):
    query = random_images(14, (1, 48, 48, 3))[0]
    images = random_images(15, (3, 32, 48, 3))
    from_images = segswap.score_against_collection(segswap_variables, query, images, batch_size=2)
    features = segswap.collection_features(segswap_variables, images, batch_size=2)
    assert features.shape == (3, 2, 3, 1024)
    query_features = np.asarray(segswap.extract_features(segswap_variables, query[None]))[0]
    from_features = segswap.score_against_collection(segswap_variables, query_features, features, batch_size=2)
    np.testing.assert_allclose(from_images["score"], from_features["score"], rtol=1e-6)
    assert (from_images["score"] > 0).all()


@pytest.mark.parametrize("size", [(3, 3), (2, 7)])
def test_target_cells_round_half_to_even_on_the_w_minus_1_lattice(size):
    height, width = size
    flow = np.array([[0.5 / (width - 1), 0.0], [1.5 / (width - 1), 1.0], [1.0, 0.5 / (height - 1)]], np.float32)
    cells = np.asarray(segswap.target_cells(flow, size))
    expected = [0 * width + 0, (height - 1) * width + 2, 0 * width + width - 1]  # 0.5 -> 0, 1.5 -> 2
    np.testing.assert_array_equal(cells, expected)
