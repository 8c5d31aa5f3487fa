"""One-shot detection: NMS and box rules, the query crop, finding planted details, cache reuse, and parity
with the PyTorch port of the release's per-image loop."""

import os

import numpy as np
import pytest

from artdup_jax.artminer import DetectionConfig, FeatureCache, Query, cells_for_size, detect, query_crop
from artdup_jax.artminer.detection import box_grids, cells_to_boxes, suppress_overlaps
from artdup_jax.artminer.ranking import suppress_overlaps_device
from artdup_jax.data.images import read_image
from artdup_jax.data.synthetic_collection import make_collection
from baselines.torch import artminer as torch_artminer
from tests.artminer.conftest import IMAGE_SIZE, SCALES

CONFIG = DetectionConfig(scales=SCALES, num_predictions=50)


def _iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _queries(collection):
    return [(Query(str(collection.folder / e["query"][0]), tuple(e["query"][1])), e["gt"])
            for entries in collection.annotations.values() for e in entries]


def test_nms_removes_any_overlap_but_keeps_touching_boxes():
    boxes = np.array([[0, 0, 10, 10],     # kept (best)
                      [9, 9, 20, 20],     # overlaps the first by one pixel: removed
                      [10, 0, 20, 10],    # only touches the first: kept
                      [15, 15, 30, 30],   # overlaps only the removed box: kept
                      [0, 0, 10, 10]], np.float64)
    valid = np.array([True, True, True, True, False])
    keep = suppress_overlaps(boxes, valid)
    assert keep.tolist() == [True, False, True, True, False]


def test_nms_overlap_is_relative_to_the_other_box():
    # A small box inside a big one: intersection / small area = 1 > 0 either way; a 0.5 threshold tells.
    boxes = np.array([[0, 0, 100, 100], [0, 0, 10, 10]], np.float64)
    assert suppress_overlaps(boxes, np.ones(2, bool), threshold=0.5).tolist() == [True, False]
    boxes = boxes[::-1].copy()
    assert suppress_overlaps(boxes, np.ones(2, bool), threshold=0.5).tolist() == [True, True]


def test_device_nms_equals_the_host_nms():
    rng = np.random.default_rng(0)
    corner = rng.integers(0, 20, size=(6, 3, 12, 2))
    boxes = np.concatenate([corner, corner + rng.integers(1, 8, size=corner.shape)], -1).astype(np.float64)
    valid = rng.uniform(size=(6, 3, 12)) > 0.2
    for threshold in (0.0, 0.5):
        expected = suppress_overlaps(boxes, valid, threshold)
        assert 0 < expected.sum() < valid.sum()
        np.testing.assert_array_equal(np.asarray(suppress_overlaps_device(boxes.astype(np.float32), valid, threshold)),
                                      expected)


def test_box_grids_equal_the_resize_rule():
    image_hw = np.array([[480, 640], [640, 480], [101, 99], [300, 300], [37, 500]])
    minimum = np.array([1, 6, 8])
    grid = box_grids(image_hw, (80, 20, 7), minimum)
    for i, (h, w) in enumerate(image_hw):
        for s, scale in enumerate((80, 20, 7)):
            for q, m in enumerate(minimum):
                assert tuple(grid[i, s, q]) == cells_for_size(w, h, scale, int(m))


def test_cells_map_to_equal_fractions_of_the_image():
    # Window (2, 3) of a 3x2 kernel on a 10x20 map of a 100x300 (H x W) image; clipped at the map's end.
    boxes = cells_to_boxes(np.array([2, 8]), np.array([3, 19]), (3, 2), (10, 20), (100, 300))
    np.testing.assert_allclose(boxes, [[45, 20, 75, 50], [285, 80, 300, 100]])


def test_query_crop_adds_whole_context_cells_and_block_has_box_cells():
    image = np.random.default_rng(0).uniform(size=(300, 400, 3)).astype(np.float32)
    crop = query_crop(image, (100, 20, 180, 70))  # 80 x 50 box -> 8 x 5 cells, scale x 127/80, y 79/50
    assert crop.cells_hw == cells_for_size(80, 50, 8, 1) == (5, 8)
    # Above the box: int(20 * 79 / 50) = 31 px = 1 whole cell; left/right/below: capped at 5.
    assert crop.context == (1, 5, 5, 5)
    assert crop.pixels.shape == (16 * (5 + 1 + 5) - 1, 16 * (8 + 5 + 5) - 1, 3)


def test_query_box_at_the_border_has_no_context_there():
    image = np.zeros((64, 64, 3), np.float32)
    crop = query_crop(image, (0, 0, 64, 32))
    assert crop.context[0] == 0 and crop.context[2] == 0 and crop.context[3] == 0


def test_box_outside_the_image_is_refused():
    with pytest.raises(ValueError, match=r"outside its 64x64 image"):
        query_crop(np.zeros((64, 64, 3), np.float32), (10, 10, 70, 30))


def test_detection_finds_the_planted_copies(variables, exact_copies):
    paths = [str(exact_copies.folder / n) for n in exact_copies.images]
    queries = _queries(exact_copies)
    ranked = detect(variables, [q for q, _ in queries], paths, CONFIG)
    for (query, gt), result in zip(queries, ranked):
        gt = {name: box for name, box in gt}
        assert os.path.basename(query.image) not in result.names  # the query's own image is skipped
        assert result.names[0] in gt, (query, result.names[:3])
        assert _iou(result.boxes[0], gt[result.names[0]]) > 0.5
        assert np.all(np.diff(result.scores) <= 0)


def test_collection_maps_are_computed_once_for_several_queries(variables, exact_copies):
    paths = [str(exact_copies.folder / n) for n in exact_copies.images]
    queries = [q for q, _ in _queries(exact_copies)]
    cache = FeatureCache(variables)
    first = detect(variables, queries[:1], paths, CONFIG, cache=cache)[0]
    assert cache.maps_computed == len(paths) * len(SCALES)
    again = detect(variables, queries[:2], paths, CONFIG, cache=cache)
    assert cache.maps_computed == len(paths) * len(SCALES)
    np.testing.assert_array_equal(again[0].boxes, first.boxes)
    np.testing.assert_allclose(again[0].scores, first.scores)


def test_packed_maps_hold_every_map_once_zero_padded(variables, exact_copies):
    from artdup_jax.artminer.packed_maps import packed_maps

    paths = [os.path.abspath(exact_copies.folder / n) for n in exact_copies.images][:3]
    cache = FeatureCache(variables)
    packed = packed_maps(cache, paths, SCALES, 8)
    assert packed_maps(cache, paths, SCALES, 8) is packed  # memoised on an unbounded cache
    bounded = FeatureCache(variables, max_bytes=1 << 30)
    assert packed_maps(bounded, paths, SCALES, 8) is not packed_maps(bounded, paths, SCALES, 8)
    seen = set()
    for bucket in packed.buckets:
        for row, (i, s) in enumerate(zip(np.asarray(bucket.image), np.asarray(bucket.scale))):
            rows, cols = np.asarray(bucket.valid_hw[row])
            original = np.asarray(cache.get(paths[i], SCALES[s], 8))
            assert original.shape[:2] == (rows, cols)
            np.testing.assert_array_equal(np.asarray(bucket.maps[row, :rows, :cols]), original)
            assert not np.asarray(bucket.maps[row, rows:]).any() and not np.asarray(bucket.maps[row, :, cols:]).any()
            seen.add((int(i), int(s)))
    assert seen == {(i, s) for i in range(len(paths)) for s in range(len(SCALES))}


def test_detection_in_steps_of_images_and_queries_equals_one_call(variables, exact_copies):
    import dataclasses

    paths = [str(exact_copies.folder / n) for n in exact_copies.images]
    queries = [q for q, _ in _queries(exact_copies)][:3]
    cache = FeatureCache(variables)
    whole = detect(variables, queries, paths, CONFIG, cache=cache)
    steps = detect(variables, queries, paths, dataclasses.replace(CONFIG, images_per_step=3, queries_per_call=2),
                   cache=cache)
    for a, b in zip(whole, steps):
        assert a.names == b.names and len(a) >= 5
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)  # other batch sizes: other summation orders


def test_detection_equals_the_torch_port_of_the_release(torch_net, variables, tmp_path):
    collection = make_collection(tmp_path, seed=1, num_categories=1, instances_per_category=2, num_distractors=4,
                                 image_size=IMAGE_SIZE, detail_fraction=(0.4, 0.55), style_strength=0.5)
    paths = [str(collection.folder / n) for n in collection.images]
    query, _ = _queries(collection)[0]
    ours = detect(variables, [query], paths, CONFIG)[0]
    reference = torch_artminer.detect(torch_net, query.image, list(query.box), paths, scales=SCALES,
                                      num_predictions=CONFIG.num_predictions)
    assert len(ours) == len(reference) >= 5
    assert ours.names == [os.path.basename(r[0]) for r in reference]
    np.testing.assert_array_equal(ours.boxes, np.array([r[2] for r in reference]))
    np.testing.assert_array_equal(ours.scales, [r[3] for r in reference])
    np.testing.assert_array_equal(ours.cells, [r[4] for r in reference])
    error = np.abs(ours.scores - np.array([r[1] for r in reference])).max()
    print(f"\ndetection vs torch port: {len(ours)} boxes identical, max score difference {error:.2g}")
    assert error < 1e-5


def test_query_crop_equals_the_torch_port(variables, torch_net, exact_copies):
    from artdup_jax.artminer import query_blocks

    query, _ = _queries(exact_copies)[0]
    ours = query_blocks(variables, [query_crop(read_image(query.image), query.box)])[0]
    reference = torch_artminer.query_feature(torch_net, torch_artminer.open_rgb(query.image), query.box)
    reference = reference[0].permute(1, 2, 0).numpy()
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5 * np.abs(reference).max())
