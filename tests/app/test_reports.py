"""The report ``artdup discover`` writes from a ``DiscoveryRun``, without running a network."""

import json

from artdup_jax.app.discover import DiscoveryRun
from artdup_jax.app.reports import discovery_report
from tests.report.browser import assert_loads_cleanly
from tests.app import bad_inputs


def test_discovery_with_no_group_says_why_and_lists_the_skipped_files(tmp_path):
    folder = tmp_path / "collection"
    folder.mkdir()
    bad_inputs.photo(folder)
    bad_inputs.noise(folder)
    bad_inputs.empty_file(folder)
    out = tmp_path / "out"
    out.mkdir()
    document = {
        "folder": str(folder), "settings": {"checkpoint": "ltllModel.pth", "threshold": 0.015},
        "num_images": 2, "images": ["noise.png", "photo.png"], "num_pairs_scored": 1, "groups": [],
        "unreadable": [{"file": "empty.png", "error": f"{folder / 'empty.png'}: empty file"}],
        "top_pairs": [{"a": "noise.png", "b": "photo.png", "score": 0.002}]}
    run = DiscoveryRun(str(folder), str(out), document, [("notes.txt", "not an image file name")],
                       cache_dir=str(out / "cache"), maps_loaded=0, maps_computed=0)
    index = discovery_report(run)
    report = json.loads((index.parent / "report.json").read_text())
    section = report["sections"][0]
    assert section["groups"] == [] and "ltllModel.pth" in section["method"]
    assert section["note"].startswith("No group: no pair of the 2 readable images scored above the threshold "
                                      "(0.015)")
    assert [(f["input"], f["stage"], f["reason"]) for f in report["failures"]] == [
        ("empty.png", "discover", "empty.png: empty file"), ("notes.txt", "list", "not an image file name")]
    assert "No group" in index.read_text()
    assert_loads_cleanly(index)
