"""The shard store: 16-bit fixed point within its bound, maps read back by rows, nothing read wholesale."""

import numpy as np
import pytest

from artdup_jax.index.store import CODE_LEVELS, MapStore, PaddedCells, PaddedValid, dequantise, quantise, write_shard


def random_items(rng, count, depth=8):
    """Per item: two maps of random sizes (non-negative like ReLU features, some cells zero) and a descriptor."""
    maps = []
    for _ in range(count):
        item = []
        for _ in range(2):
            rows, cols = rng.integers(1, 6, size=2)
            cells = np.maximum(rng.normal(size=(rows, cols, depth)), 0).astype(np.float32)
            cells[0, 0] = 0
            item.append(cells)
        maps.append(item)
    return maps


def test_quantise_error_is_within_half_a_step_of_each_cell():
    rng = np.random.default_rng(0)
    cells = np.concatenate([rng.normal(size=(50, 256)), np.abs(rng.normal(size=(50, 256))), np.zeros((1, 256))])
    codes, low, step = quantise(cells)
    assert codes.dtype == np.uint16
    error = np.abs(dequantise(codes, low, step).astype(np.float64) - cells)
    span = cells.max(1) - np.minimum(cells.min(1), 0)
    rounding = 1e-6 * np.abs(cells).max(1, keepdims=True)  # float32 arithmetic
    assert np.all(error <= span[:, None] / CODE_LEVELS / 2 + rounding)
    assert np.all(low[50:] == 0) and np.all(dequantise(codes, low, step)[cells == 0] == 0)  # zeros stay zeros


def test_maps_and_arrays_read_back_from_shards(tmp_path):
    rng = np.random.default_rng(1)
    maps = random_items(rng, 5)
    descriptors = rng.normal(size=(5, 3, 8)).astype(np.float32)
    write_shard(tmp_path, 0, [{"name": f"a{i}"} for i in range(3)], maps[:3], arrays={"d": descriptors[:3]},
                cell_fields={"norm": [[m[..., 0] for m in item] for item in maps[:3]]})
    write_shard(tmp_path, 3, [{"name": f"a{i}"} for i in range(3, 5)], maps[3:], arrays={"d": descriptors[3:]},
                cell_fields={"norm": [[m[..., 0] for m in item] for item in maps[3:]]})
    store = MapStore(tmp_path)
    assert list(store.ids) == [0, 1, 2, 3, 4] and store.num_shards == 2 and store.records[4]["name"] == "a4"
    for i in range(5):
        for m in range(2):
            np.testing.assert_allclose(store.read(i, m), maps[i][m], atol=maps[i][m].max() / CODE_LEVELS)
            np.testing.assert_array_equal(store.read_field(i, m, "norm"), maps[i][m][..., 0])
            assert store.layout_of(i, m) == maps[i][m].shape[:2]
    np.testing.assert_array_equal(store.array("d", [4, 0, 3]), descriptors[[4, 0, 3]])
    assert store.layout(1).tolist() == [list(item[1].shape[:2]) for item in maps]


def test_padded_views_index_like_a_dense_array_and_refuse_whole_conversion(tmp_path):
    rng = np.random.default_rng(2)
    maps = random_items(rng, 4)
    write_shard(tmp_path, 0, [{}] * 4, maps)
    store = MapStore(tmp_path)
    dense = np.zeros((4, 32, 8), np.float32)
    for i, item in enumerate(maps):
        dense[i, :item[0].size // 8] = store.read(i, 0).reshape(-1, 8)
    view = PaddedCells(store, 0, 32)
    assert view.shape == (4, 32, 8) and len(view) == 4
    for key in (np.array([3, 0, 3]), [1, 2], 2, slice(1, 3), (np.array([0, 2]), slice(0, 5)),
                (np.array([3, 0, 3, 1]), np.array([0, 2, 31, 1]))):  # the last: single cells (31 is padding)
        np.testing.assert_array_equal(view[key], dense[key])
    counts = np.array([m[0].shape[0] * m[0].shape[1] for m in maps])
    valid = PaddedValid(counts, 32)
    np.testing.assert_array_equal(valid[np.array([2, 1])], np.arange(32)[None] < counts[[2, 1], None])
    with pytest.raises(TypeError):
        np.asarray(view)


def test_reading_keeps_at_most_the_budget_of_shards_mapped(tmp_path):
    rng = np.random.default_rng(3)
    for first in range(0, 12, 2):
        write_shard(tmp_path, first, [{}] * 2, random_items(rng, 2, depth=64))
    store = MapStore(tmp_path, open_bytes=1)  # one shard at a time
    for i in range(12):
        store.read(i, 0)
        assert len(store._open) == 1
    assert store.shards_opened == 6
