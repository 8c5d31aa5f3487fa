"""The synthetic detection collection: determinism, the official annotation format, true boxes."""

import json

import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.synthetic_collection import make_collection, source_family, source_images

SMALL = dict(num_categories=2, instances_per_category=3, num_distractors=1, image_size=(64, 80))


def _pixels(folder, name):
    return np.asarray(Image.open(folder / name).convert("RGB"))


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = make_collection(tmp_path / "a", seed=3, **SMALL)
    b = make_collection(tmp_path / "b", seed=3, **SMALL)
    c = make_collection(tmp_path / "c", seed=4, **SMALL)
    assert a.annotations == b.annotations and a.images == b.images
    for name in a.images:
        np.testing.assert_array_equal(_pixels(a.folder, name), _pixels(b.folder, name))
    assert a.annotations != c.annotations


def test_annotations_follow_the_official_format(tmp_path):
    collection = make_collection(tmp_path, seed=0, **SMALL)
    data = json.loads(collection.annotation_path.read_text())
    assert data == collection.annotations and sorted(data) == ["c0", "c1"]
    assert len(collection.images) == 2 * 3 + 1
    for category, entries in data.items():
        assert len(entries) == 3
        instances = {tuple(e["query"][0:1]) + tuple(e["query"][1]) for e in entries}
        for entry in entries:
            name, box = entry["query"]
            assert isinstance(name, str) and len(box) == 4 and all(isinstance(v, int) for v in box)
            others = {(g[0], *g[1]) for g in entry["gt"]}
            assert others == instances - {(name, *box)}  # every other instance, never the query itself
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 64


def test_exact_copies_hold_the_same_detail_at_the_true_boxes(tmp_path):
    collection = make_collection(tmp_path, seed=1, style_strength=0.0, aspect_jitter=0.0, **SMALL)
    for entries in collection.annotations.values():
        (name_a, box_a), (name_b, box_b) = entries[0]["query"], entries[1]["query"]
        crop_a = Image.fromarray(_pixels(collection.folder, name_a)).crop(box_a).resize((32, 32), Image.BILINEAR)
        crop_b = Image.fromarray(_pixels(collection.folder, name_b)).crop(box_b).resize((32, 32), Image.BILINEAR)
        shifted = Image.fromarray(_pixels(collection.folder, name_b)).crop(
            (0, 0, box_b[2] - box_b[0], box_b[3] - box_b[1])).resize((32, 32), Image.BILINEAR)
        a, b, s = (np.asarray(x, np.float32).ravel() for x in (crop_a, crop_b, shifted))
        assert np.corrcoef(a, b)[0, 1] > 0.9  # same content up to resampling
        assert np.corrcoef(a, b)[0, 1] > np.corrcoef(a, s)[0, 1]


def test_backgrounds_never_come_from_a_detail_family(tmp_path):
    # All unraphael copies show one painting, so they are one family: a background cut from one copy would
    # hold an unannotated copy of a detail cut from another.
    unraphael = [n for n, _ in source_images() if source_family(n) == "unraphael"]
    if not unraphael:
        pytest.skip("unraphael is not installed")
    assert len(unraphael) == 11
    collection = make_collection(tmp_path, seed=5, detail_sources=[*unraphael, "astronaut"], **SMALL)
    detail_families = {source_family(i.detail_source) for i in collection.instances}
    assert detail_families == {"unraphael", "astronaut"}
    backgrounds = [i.background_source for i in collection.instances] + list(collection.distractor_sources)
    assert not detail_families & {source_family(b) for b in backgrounds}


def test_too_many_categories_for_the_detail_sources_is_refused(tmp_path):
    with pytest.raises(ValueError, match="distinct detail families"):
        make_collection(tmp_path, num_categories=2, detail_sources=["astronaut"])
