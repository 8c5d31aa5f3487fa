"""Discovery from an index: equal to ``discover_folder``, incremental, aware of changed and removed files."""

import csv
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artdup_jax.app.index import add_to_index, build_index, discover_in_index, index_info, stored_bank
from artdup_jax.artminer import init_variables
from artdup_jax.artminer.discovery import directed, extract_features, score_pairs
from artdup_jax.index.manifest import IndexMismatchError
from artdup_jax.index.pairs import PairLog
from artdup_jax.index.store import MapStore
from tests.index.conftest import CONFIG, same_discovery


@pytest.fixture(scope="module")
def index(collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index") / "index"
    build_index(collection, folder, CONFIG, progress=False)
    return folder


def logged_pairs(index_dir) -> set:
    (log,) = [PairLog(os.path.join(index_dir, "pairs", key)) for key in os.listdir(os.path.join(index_dir, "pairs"))]
    return {tuple(p) for chunk in log.chunks() for p in chunk["pairs"].tolist()}


def test_build_then_discover_gives_discover_folders_groups(index, reference_run):
    found = discover_in_index(index, CONFIG, progress=False)
    document, reference = found.run.document, reference_run.document
    assert reference["groups"], "the collection must give at least one group"
    assert same_discovery(document, reference)
    assert document["num_pairs_scored"] == reference["num_pairs_scored"] == found.num_candidates


def _csv_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_csv_files_equal_discover_folders(index, reference_run, tmp_path):
    found = discover_in_index(index, CONFIG, out=tmp_path / "out", progress=False)
    reference = Path(reference_run.out_dir)
    assert _csv_rows(tmp_path / "out" / "groups.csv") == _csv_rows(reference / "groups.csv")
    pairs = {(r["image_a"], r["image_b"]): r for r in _csv_rows(tmp_path / "out" / "pairs.csv")}
    expected = {(r["image_a"], r["image_b"]): r for r in _csv_rows(reference / "pairs.csv")}
    assert pairs.keys() == expected.keys() and len(pairs) == found.run.document["num_pairs_scored"]
    for key, row in pairs.items():  # the index stores maps in 16-bit fixed point: scores within 1e-5
        assert abs(float(row["score"]) - float(expected[key]["score"])) <= 2e-5
        assert {k: v for k, v in row.items() if k != "score"} == {k: v for k, v in expected[key].items()
                                                                  if k != "score"}


def test_a_rerun_verifies_nothing_again(index, reference_run):
    discover_in_index(index, CONFIG, progress=False)
    again = discover_in_index(index, CONFIG, progress=False)
    assert again.num_verified_now == 0
    assert same_discovery(again.run.document, reference_run.document)


@pytest.mark.parametrize("saliency", [False, True])  # True: score_pairs screens (and fits its basis)
def test_verification_reads_the_stored_maps_and_scores_as_in_memory(index, collection, tmp_path, saliency):
    config = dataclasses.replace(CONFIG, saliency=saliency)
    if saliency:
        index = tmp_path / "index"
        build_index(collection, index, config, progress=False)
    store = MapStore(index, open_bytes=1)
    live = store.ids
    bank = stored_bank(store, config, live)
    with pytest.raises(TypeError):
        np.asarray(bank.reference)  # never loaded whole
    memory, _ = extract_features(init_variables(0), [store.records[int(i)]["path"] for i in live], config)
    pairs = directed(np.array([[0, 1], [2, 3], [1, 5], [4, 7]]))
    stored, direct = score_pairs(bank, pairs, config), score_pairs(memory, pairs, config)
    np.testing.assert_allclose(stored.scores, direct.scores, atol=1e-5)
    np.testing.assert_array_equal(stored.num_matches, direct.num_matches)
    assert len(store._open) == 1  # one shard mapped at a time under this budget


def test_adding_an_image_verifies_only_new_pairs_and_equals_a_fresh_build(collection, copy_of, tmp_path,
                                                                         reference_run):
    folder = copy_of(collection)
    last = sorted(n for n in os.listdir(folder) if n.endswith(".png"))[-1]  # keeps every image's id
    os.rename(folder / last, tmp_path / last)
    build_index(folder, tmp_path / "index", CONFIG, progress=False)
    discover_in_index(tmp_path / "index", CONFIG, progress=False)
    before = logged_pairs(tmp_path / "index")
    os.rename(tmp_path / last, folder / last)
    update = add_to_index(tmp_path / "index", [folder / last], progress=False)
    assert update.added == [str(folder / last)]
    after = discover_in_index(tmp_path / "index", CONFIG, progress=False)

    build_index(folder, tmp_path / "fresh", CONFIG, progress=False)
    fresh = discover_in_index(tmp_path / "fresh", CONFIG, progress=False)
    new_pairs = logged_pairs(tmp_path / "fresh") - before
    assert 0 < after.num_verified_now == len(new_pairs) < len(before)
    assert logged_pairs(tmp_path / "index") == before | new_pairs
    assert same_discovery(after.run.document, fresh.run.document)
    assert same_discovery(after.run.document, reference_run.document)


def test_changed_and_removed_files_are_detected_and_updated(collection, copy_of, tmp_path):
    folder = copy_of(collection)
    build_index(folder, tmp_path / "index", CONFIG, progress=False)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    edited, gone = folder / names[0], folder / names[1]
    Image.fromarray(255 - np.asarray(Image.open(edited))).save(edited)
    gone.unlink()
    info = index_info(tmp_path / "index")
    assert info.changed == [str(edited)] and info.removed == [str(gone)] and info.num_images == len(names)

    update = add_to_index(tmp_path / "index", [folder], progress=False)
    assert update.added == [str(edited)] and update.changed == [str(edited)] and update.removed == [str(gone)]
    info = index_info(tmp_path / "index")
    assert info.changed == [] and info.removed == [] and info.num_images == len(names) - 1
    assert info.num_removed == 2  # the removed file and the old features of the edited one
    document = discover_in_index(tmp_path / "index", CONFIG, progress=False).run.document
    assert names[1] not in document["images"] and names[0] in document["images"]


def test_other_weights_or_settings_are_a_clear_error(index, collection):
    with pytest.raises(IndexMismatchError, match="other settings: scales"):
        build_index(collection, index, dataclasses.replace(CONFIG, scales=(20, 12)), progress=False)
    with pytest.raises(IndexMismatchError, match="other weights"):
        add_to_index(index, [collection], seed=1, progress=False)
    with pytest.raises(IndexMismatchError, match="reference_cells=12 \\(asked: 16\\)"):
        discover_in_index(index, dataclasses.replace(CONFIG, reference_cells=16), progress=False)


def test_a_large_index_searches_only_the_new_images_and_verifies_only_their_pairs(collection, copy_of, tmp_path):
    folder = copy_of(collection)
    last = sorted(n for n in os.listdir(folder) if n.endswith(".png"))[-1]
    os.rename(folder / last, tmp_path / last)
    build_index(folder, tmp_path / "index", CONFIG, progress=False)
    first = discover_in_index(tmp_path / "index", CONFIG, exact_limit=0, progress=False)  # the IVF path
    assert first.searched == 7
    before = logged_pairs(tmp_path / "index")
    os.rename(tmp_path / last, folder / last)
    add_to_index(tmp_path / "index", [folder / last], progress=False)
    after = discover_in_index(tmp_path / "index", CONFIG, exact_limit=0, progress=False)
    assert after.searched == 1
    new_pairs = logged_pairs(tmp_path / "index") - before
    assert after.num_verified_now == len(new_pairs) > 0 and all(7 in pair for pair in new_pairs)


def test_unreadable_files_are_listed_and_the_rest_is_stored(collection, copy_of, tmp_path):
    folder = copy_of(collection)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    update = build_index(folder, tmp_path / "index", CONFIG, progress=False)
    assert [p for p, _ in update.unreadable] == [str(folder / "broken.jpg")] and update.num_images == 8
    update = add_to_index(tmp_path / "index", [folder / "missing.png"], progress=False)
    assert [p for p, _ in update.unreadable] == [str(folder / "missing.png")] and update.added == []
    document = discover_in_index(tmp_path / "index", CONFIG, progress=False).run.document
    assert [u["file"] for u in document["unreadable"]] == ["broken.jpg", "missing.png"]


def test_an_index_of_one_image_has_no_pair(collection, tmp_path):
    name = sorted(n for n in os.listdir(collection) if n.endswith(".png"))[0]
    (tmp_path / "one").mkdir()
    shutil.copy(collection / name, tmp_path / "one" / name)
    build_index(tmp_path / "one", tmp_path / "index", CONFIG, progress=False)
    found = discover_in_index(tmp_path / "index", CONFIG, progress=False)
    document = found.run.document
    assert found.num_candidates == 0 and document["groups"] == [] and document["images"] == [name]
