"""Brueghel retrieval protocol: query crop, box prior, AP, and the protocol end to end."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.synthetic_collection import make_collection
from artdup_jax.segswap import metrics, retrieval
from artdup_jax.segswap.model import SegSwap

TINY = retrieval.RetrievalProtocol(query_side=32, crop_size=64, database_size=64, batch_size=4)


@functools.cache
def random_variables(seed: int = 0) -> dict:
    """Random SegSwap variables without compiling ``init`` (35 s on a busy CPU): shapes from ``eval_shape``,
    kernels N(0, 1/fan_in), small random biases, identity BatchNorm / LayerNorm."""
    shapes = jax.eval_shape(SegSwap().init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)
        if name in ("scale", "var"):
            return np.ones(leaf.shape, np.float32)
        if name == "bias" and "transformer" in jax.tree_util.keystr(path):
            return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)
        return np.zeros(leaf.shape, np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_box_prior_dilates_by_one_cell_with_half_to_even_rounding():
    # x1 = 24 / 16 - 1 = 0.5 -> 0, y1 = 32 / 16 - 1 = 1, x2 = 40 / 16 + 1 = 3.5 -> 4, y2 = 64 / 16 + 1 = 5 -> clipped 4.
    prior = retrieval.box_prior((24, 32, 40, 64), (4, 6))
    expected = np.zeros((4, 6), bool)
    expected[1:4, 0:4] = True
    np.testing.assert_array_equal(prior, expected)


def test_query_crop_scales_the_box_to_the_query_side_and_keeps_it_in_the_window():
    image = np.zeros((200, 300, 3), np.float32)
    image[50:90, 100:160] = (1.0, 0.0, 0.0)  # the 60x40 box, red
    query = retrieval.prepare_query(image, (100, 50, 160, 90), TINY)
    # ratio 60 / 32: box -> 32 x 16 px (sides multiples of 16); image -> 160 x 80; box at [53, 20, 85, 36]; window
    # x from 53 - (64 - 32) // 2 = 37, y from max(20 - 24, 0) = 0.
    assert query.image.shape == (64, 64, 3)
    assert query.box == (16, 20, 48, 36)
    resized = np.asarray(Image.fromarray((image * 255).astype(np.uint8)).resize((160, 80), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(query.image, resized[0:64, 37:101] / 255.0, atol=1e-6)
    assert query.image[22:34, 18:46, 0].min() > 0.9 and query.image[22:34, 18:46, 1].max() < 0.1
    expected = np.zeros((4, 4), bool)
    expected[0:3, 0:4] = True  # rows round(20/16 - 1) = 0 .. round(36/16 + 1) = 3, columns 0 .. 4
    np.testing.assert_array_equal(query.box_cells, expected)


def test_average_precision_is_the_release_image_level_ap():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])  # image 0 is the query
    relevant = np.array([False, False, True, False, True])
    assert metrics.average_precision(scores, relevant, exclude=0) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert metrics.average_precision(scores, relevant) == pytest.approx((1 / 3 + 2 / 5) / 2)
    # Ties keep collection order; an excluded relevant image still counts in the denominator.
    assert metrics.average_precision(np.zeros(3), np.array([True, False, True]), exclude=0) == pytest.approx(0.5 / 2)
    assert metrics.average_precision(scores, np.zeros(5, bool)) == 0.0


def test_coarse_box_is_centred_and_clipped():
    assert retrieval.coarse_box((0.5, 0.5), (100, 200), (0.1, 0.2)) == (90, 40, 110, 60)
    assert retrieval.coarse_box((0.0, 1.0), (100, 200), (0.1, 0.2)) == (0, 90, 10, 100)


@pytest.fixture(scope="module")
def tiny_collection(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("brueghel") / "images", seed=0, num_categories=2,
                           instances_per_category=2, num_distractors=1, image_size=(96, 128),
                           detail_fraction=(0.3, 0.4), style_strength=0.0, context=0.3, border=8)


def _queries(collection):
    return [retrieval.RetrievalQuery(category, item["query"][0], tuple(item["query"][1]),
                                     tuple(name for name, _ in item["gt"]))
            for category, items in collection.annotations.items() for item in items]


def test_protocol_runs_end_to_end_and_the_database_is_computed_once(tiny_collection, tmp_path, monkeypatch):
    paths = [str(tiny_collection.folder / name) for name in tiny_collection.images]
    queries = _queries(tiny_collection)[:2]
    variables = random_variables()
    first = retrieval.evaluate_retrieval(variables, queries, paths, protocol=TINY, cache_dir=tmp_path)
    assert first["database"].features.shape == (5, 4, 4, 1024)
    np.testing.assert_allclose(np.linalg.norm(first["database"].features, axis=-1), 1.0, rtol=1e-5)
    for q, record, ranking in zip(queries, first["per_query"], first["rankings"]):
        assert 0.0 <= record["AP"] <= 1.0
        names = [first["database"].names[k] for k in ranking["order"]]
        assert q.image not in names and len(names) == 4
        assert np.all(np.diff(ranking["score"][ranking["order"]]) <= 0)
    assert set(first["per_class"]) == {q.category for q in queries}

    def fail(*args, **kwargs):
        raise AssertionError("database features recomputed")

    monkeypatch.setattr(retrieval, "collection_features", fail)
    second = retrieval.evaluate_retrieval(variables, queries, paths, protocol=TINY, cache_dir=tmp_path)
    assert isinstance(second["database"].features, np.memmap)
    np.testing.assert_array_equal(second["database"].sizes, [[96, 128]] * 5)
    assert [r["AP"] for r in second["per_query"]] == [r["AP"] for r in first["per_query"]]
