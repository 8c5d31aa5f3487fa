"""``python -m benchmarks.scale --tiny``: 40 images through ``artdup index build``, ``discover --index``, ``index
add`` and ``index info``, each a child process: the planted groups are found, the added copy joins its own, and
every stage reports its peak RSS and the index its size."""

import json

import pytest

from benchmarks.scale.__main__ import extrapolation, failed, main, predicted_seconds
from benchmarks.scale.stages import bar_times


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    rows = main(["--tiny", "--out", str(out), "--json", str(out / "scale.json"), "--markdown", str(out / "scale.md")])
    return out, rows


def test_tiny_run_finds_the_planted_groups_and_the_added_copy(tiny):
    out, rows = tiny
    (row,) = rows
    assert row["status"] == "ok", row["status"]
    assert row["planted"]["group_precision"] >= 0.9 and row["planted"]["group_recall"] >= 0.9, row["planted"]
    assert row["planted"]["groups_exact"] >= 2, row["planted"]
    added = row["added_image"]
    assert added["category_members_in_its_group"] == added["category_size"] == 6, added
    # The discovery after the add verifies only the added image's pairs.
    assert 0 < row["verification_added"]["candidate_pairs_verified"] <= 2 * 10
    assert row["verification"]["candidate_pairs_verified"] > 40


def test_tiny_run_reports_memory_disk_and_rates(tiny):
    out, rows = tiny
    (row,) = rows
    for stage in ("build", "discover", "add", "discover_added", "info"):
        assert 50 * 2**20 < row[stage]["peak_rss_bytes"] < 4 * 2**30, (stage, row[stage]["peak_rss_bytes"])
        assert row[stage]["seconds"] > 0
    assert 0 < row["features_s"] <= row["build"]["seconds"]
    assert row["verification"]["directional_pairs_per_s"] > 0
    # Three 16-bit maps of 256 channels (20 x 16, 16 x 13, 12 x 10 cells) and a reference: ~0.2-0.6 MB an image.
    assert 0.1 * 2**20 < row["index_bytes_per_image"] < 2 * 2**20
    assert row["feature_mb_per_image_info"] > 0
    report = json.loads((out / "scale.json").read_text())
    assert report["sizes"][0]["images"] == 40
    assert "| 40 |" in (out / "scale.md").read_text()


def test_progress_bars_are_read_at_their_last_update():
    log = ("verification:   0%|     | 0/243 [00:00<?, ?pair/s]\rverification: 100%|#####| 243/243 "
           "[01:02:03<00:00, 18.24pair/s]\nneighbours (exact): 100%|###| 40/40 [00:04<00:00, 9img/s]\n")
    assert bar_times(log) == {"verification": (243, 3723.0), "neighbours (exact)": (40, 4.0)}


def test_budget_prediction_and_extrapolation_are_linear_in_the_size():
    def row(n, seconds_per_image):
        stage = {"seconds": seconds_per_image * n}
        return {"images": n, "status": "ok", "generate_s": 0.0, "build": stage, "discover": stage,
                "add": {"seconds": 5.0}, "discover_added": {"seconds": 5.0}, "info": {"seconds": 1.0},
                "index_bytes_per_image": 1000.0}

    assert predicted_seconds(row(1000, 0.5), 10_000) == pytest.approx(10_000 + 11.0)
    extra = extrapolation([row(1000, 0.5), row(10_000, 0.5)])
    assert extra["build_s"] == pytest.approx(50_000) and extra["index_bytes"] == pytest.approx(1e8)
    assert extra["discover_s_proportional"] == pytest.approx(50_000)
    assert extrapolation([row(1000, 0.5)]) is None


def test_only_a_failed_stage_fails_the_run():
    assert not failed([{"status": "ok"}, {"status": "skipped: ~900 s predicted"},
                       {"status": "build: stopped at the time budget"}])
    assert failed([{"status": "ok"}, {"status": "discover: exit 1, see discover.log"}])


def test_a_stage_reports_its_own_peak_not_its_parents(tmp_path):
    """Linux carries a parent's peak resident set into a child across exec (``wait4``'s ``ru_maxrss``); the stage
    must report the child's own, however large the process that starts it."""
    import numpy as np

    from benchmarks.scale.stages import run_stage

    held = np.ones(2**27)  # 1 GiB held by this (parent) process
    stage = run_stage(["--help"], tmp_path / "help.log")
    assert stage.ok, stage.text()
    assert 20 * 2**20 < stage.peak_rss_bytes < 0.75 * held.nbytes, stage.peak_rss_bytes
