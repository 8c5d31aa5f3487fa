"""File records: changed and removed files detected; the header refuses other weights and settings."""

import os

import pytest

from artdup_jax.index import manifest


def test_changed_removed_and_merely_touched_files(tmp_path):
    files = {name: tmp_path / name for name in ("same", "touched", "edited", "resized", "gone")}
    for path in files.values():
        path.write_bytes(b"0123456789")
    records = {i: manifest.file_record(p) for i, p in enumerate(files.values())}
    os.utime(files["touched"], ns=(1, 1))  # same bytes, other time: not a change
    files["edited"].write_bytes(b"0123456780")
    os.utime(files["edited"], ns=(2, 2))
    files["resized"].write_bytes(b"01234")
    files["gone"].unlink()
    live = manifest.live_ids(records, ())
    changed, removed = manifest.file_changes(records, live)
    assert [records[i]["path"] for i in changed] == [str(files["edited"]), str(files["resized"])]
    assert [records[i]["path"] for i in removed] == [str(files["gone"])]


def test_the_newest_id_of_a_path_is_live_unless_removed():
    records = {0: {"path": "a"}, 1: {"path": "b"}, 2: {"path": "a"}}
    assert manifest.live_ids(records, ()) == {"a": 2, "b": 1}
    assert manifest.live_ids(records, {2}) == {"b": 1}


def test_other_weights_or_settings_are_a_clear_error(tmp_path):
    manifest.create_or_check(tmp_path, "f" * 40, "ltllModel.pth", {"scales": [16, 12], "margin": 2})
    manifest.create_or_check(tmp_path, "f" * 40, "ltllModel.pth", {"scales": [16, 12], "margin": 2})
    with pytest.raises(manifest.IndexMismatchError, match="other weights.*ltllModel.pth"):
        manifest.create_or_check(tmp_path, "e" * 40, "brueghelModel.pth", {"scales": [16, 12], "margin": 2})
    with pytest.raises(manifest.IndexMismatchError, match=r"scales=\[16, 12\] \(asked: \[20\]\)"):
        manifest.create_or_check(tmp_path, "f" * 40, "ltllModel.pth", {"scales": [20], "margin": 2})
    with pytest.raises(manifest.NotAnIndexError):
        manifest.read_header(tmp_path / "nothing")
