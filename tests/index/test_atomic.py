"""Crash-safe writes: whole or absent, leftovers cleared, one writer at a time."""

import os

import pytest

from artdup_jax.index import atomic


def test_a_folder_appears_only_when_its_block_ends(tmp_path):
    target = tmp_path / "shard"
    with atomic.folder_commit(target) as temporary:
        (open(os.path.join(temporary, "a.npy"), "w")).write("x")
        assert not target.exists()
    assert (target / "a.npy").read_text() == "x"
    with pytest.raises(RuntimeError):
        with atomic.folder_commit(tmp_path / "other") as temporary:
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["shard"]


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
    (tmp_path / ".tmp-abc").mkdir()
    (tmp_path / ".tmp-file").write_text("half")
    (tmp_path / "kept").write_text("whole")
    assert atomic.remove_leftovers(tmp_path) == 2
    assert os.listdir(tmp_path) == ["kept"]


def test_files_are_replaced_whole(tmp_path):
    atomic.write_json(tmp_path / "state.json", {"a": 1})
    atomic.write_json(tmp_path / "state.json", {"a": 2})
    assert atomic.read_json(tmp_path / "state.json") == {"a": 2}
    assert atomic.read_json(tmp_path / "missing.json", "none") == "none"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_second_writer_is_refused(tmp_path):
    with atomic.writer_lock(tmp_path):
        with pytest.raises(atomic.IndexBusyError):
            with atomic.writer_lock(tmp_path):
                pass
    with atomic.writer_lock(tmp_path):  # released
        pass
