"""Re-ranking detections by the discovery score (our reconstruction)."""

import os

import numpy as np

from artdup_jax.artminer import DetectionConfig, Query, detect
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.artminer.rerank import _meets, box_discovery_scores, rerank_detections
from tests.artminer.conftest import SCALES

# Random-weight features on 128 x 160 px images: the box reference at 8 cells (context 2) against targets at the
# collection's small scales; no saliency (random features make neighbouring cells alike).
CONFIG = DiscoveryConfig(reference_cells=8, margin=2, scales=(20, 16, 12), saliency=False, pairs_per_batch=8)


def test_a_box_meets_a_region_only_when_they_overlap():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    regions = np.array([[5, 5, 15, 15], [10, 0, 20, 10], [0, 0, 10, 10], [0, 0, 0, 0]], float)
    np.testing.assert_array_equal(_meets(boxes, regions), [True, False, False, False])


def _planted(exact_copies):
    entries = [e for category in exact_copies.annotations.values() for e in category]
    return [(Query(str(exact_copies.folder / e["query"][0]), tuple(e["query"][1])), dict(map(tuple, e["gt"])))
            for e in entries[:2]]


def test_reranking_puts_verified_copies_first_and_keeps_every_detection(variables, exact_copies):
    paths = [str(exact_copies.folder / n) for n in exact_copies.images]
    planted = _planted(exact_copies)
    queries = [q for q, _ in planted]
    ranked = detect(variables, queries, paths, DetectionConfig(scales=SCALES, num_predictions=30))
    reranked = rerank_detections(variables, queries, ranked, CONFIG, top_n=10)
    for (query, gt), before, after in zip(planted, ranked, reranked):
        n = min(10, len(before))
        # A permutation of the first top_n, the tail untouched.
        assert sorted(zip(after.detections.names[:n], map(tuple, after.detections.boxes[:n]))) == sorted(
            zip(before.names[:n], map(tuple, before.boxes[:n])))
        assert after.detections.names[n:] == before.names[n:]
        keys = after.discovery[:n]
        assert np.all(np.diff(keys) <= 0) and np.all(np.isnan(after.discovery[n:]))
        # The best re-ranked detection is a planted copy, verified by discovery (key > 0).
        assert after.detections.names[0] in gt and keys[0] > 0
        assert os.path.basename(query.image) not in after.detections.names


def test_box_scores_skip_unreadable_images_with_zero(variables, exact_copies, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    query, gt = _planted(exact_copies)[0]
    copy = str(exact_copies.folder / next(iter(gt)))
    found = box_discovery_scores(variables, [(query.image, query.box)], [str(broken), copy], CONFIG)
    assert found.scores.shape == (1, 2) and found.scores[0, 0] == 0 and found.scores[0, 1] > 0
    assert [os.path.basename(p) for p, _ in found.unreadable] == ["broken.jpg"]
    x1, y1, x2, y2 = found.regions[0, 1]
    assert x2 > x1 and y2 > y1
