"""The throughput benchmark's ransac stage in quick mode: result structure and agreement (no timing claims)."""

import json

import pytest

from eval.throughput import harness
from eval.throughput import ransac as ransac_stage


@pytest.fixture(scope="module")
def quick_results():
    harness.configure_threads()
    return ransac_stage.run(quick=True)


def test_quick_ransac_stage_structure(quick_results):
    assert [r["case"] for r in quick_results] == ["single pair", "8 pairs batched"]
    for r in quick_results:
        assert r["stage"] == "ransac" and r["subject"] in r["timings"]
        assert set(r["timings"]) == set(r["speedup"]) == set(r["metrics"])
        for t in r["timings"].values():
            assert t["repeats"] >= 3
            assert 0 < t["min_s"] <= t["q1_s"] <= t["median_s"] <= t["q3_s"] <= t["max_s"]
            assert t["first_call_s"] > 0
        assert r["speedup"][r["subject"]] == pytest.approx(1.0)
    single = quick_results[0]
    assert {"torch (official approach)", "jax (official mode)", "cv2 RANSAC", "cv2 USAC_MAGSAC"} <= set(
        single["timings"])
    assert all("corner_err_px" in m for m in single["metrics"].values())


def test_quick_ransac_stage_agreement_holds(quick_results):
    single, batched = quick_results
    assert single["agreement"]["ok"], single["agreement"]
    assert single["agreement"]["official_same_selection"]
    assert batched["agreement"]["ok"], batched["agreement"]
    assert single["metrics"]["jax (ours, fixed budget)"]["corner_err_px"] < 2.0


def test_report_serialises_to_json_and_markdown(quick_results):
    machine = harness.machine_info()
    assert machine["cores"] >= 1 and machine["jax"] and machine["torch"]
    json.dumps({"machine": machine, "results": quick_results})
    markdown = harness.to_markdown(quick_results, machine, command="python -m eval.throughput --quick")
    assert "## ransac: single pair" in markdown and "Agreement: **ok**" in markdown
    assert "| jax (ours, fixed budget) |" in markdown


def test_cli_rejects_unknown_stage():
    from eval.throughput.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stages", "nope"])
