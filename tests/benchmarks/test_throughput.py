"""The throughput benchmark in quick mode: every stage runs in-process without TensorFlow, the frameworks agree,
the report carries throughput, FLOP/s and memory, and the whole quick run stays cheap (no timing claims); the
train stage's child process (full runs) brings its rows back with the training XLA flags."""

import json
import os
import sys
import time

import jax
import pytest

from artdup_jax import xla_cpu
from benchmarks.throughput import harness

# Quick mode's budget: about a minute and a half on 2 cores (141 s of CPU measured once the discovery stage's
# release-settings verification case was added). Checked as CPU time (both cores busy = 2 s a second), which
# other jobs on a shared machine do not inflate; the wall-clock bound only catches a hang.
CPU_SECONDS_BUDGET = 170
WALL_SECONDS_LIMIT = 600
# The stages this file covers (others, e.g. discovery, have their own tests); peak always runs first.
STAGES = ("features", "ransac", "fine", "segswap", "artminer", "train")
NETWORK_STAGES = ("features", "fine", "segswap", "train")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python -m benchmarks.throughput --quick`` in this process, with every ``import tensorflow`` failing."""
    from benchmarks.throughput.__main__ import main

    out = tmp_path_factory.mktemp("throughput")
    precision = jax.config.jax_default_matmul_precision
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "tensorflow", None)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            code = main(["--quick", "--stages", ",".join(STAGES), "--json", str(out / "quick.json"),
                         "--markdown", str(out / "quick.md")])
        finally:
            jax.config.update("jax_default_matmul_precision", precision)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = json.loads((out / "quick.json").read_text())
    return {"code": code, "report": report, "markdown": (out / "quick.md").read_text(), "wall_s": wall, "cpu_s": cpu}


def _cases(quick_run, stage):
    return [r for r in quick_run["report"]["results"] if r["stage"] == stage]


def test_quick_run_is_cheap_and_never_imports_tensorflow(quick_run):
    print(f"\nquick run: {quick_run['wall_s']:.0f} s wall, {quick_run['cpu_s']:.0f} s CPU")
    assert quick_run["cpu_s"] < CPU_SECONDS_BUDGET
    assert quick_run["wall_s"] < WALL_SECONDS_LIMIT
    assert quick_run["code"] == 0  # with sys.modules["tensorflow"] = None: any TensorFlow import would have failed


def test_every_stage_ran_in_quick_mode(quick_run):
    stages = [r["stage"] for r in quick_run["report"]["results"]]
    assert stages[0] == "peak"  # the FLOP/s reference comes first
    assert set(stages) == {"peak", *STAGES}
    assert [r["case"].split(",")[0] for r in _cases(quick_run, "segswap")] == [
        "transformer", "pair scoring", "collection scoring", "scoring 8 candidates after the transformer", "transformer"]
    assert len(_cases(quick_run, "features")) == 3  # ResNet-18 (ArtMiner), ResNet-50 x 2 (RANSAC-Flow, SegSwap)


@pytest.mark.parametrize("stage", ["peak", *STAGES])
def test_frameworks_agree_in_every_stage(quick_run, stage):
    for r in _cases(quick_run, stage):
        assert r["agreement"]["ok"], (r["case"], r["agreement"])


def test_timings_are_ordered_statistics(quick_run):
    for r in quick_run["report"]["results"]:
        if "skipped" in r:
            continue
        assert r["subject"] in r["timings"] and r["baseline"] in r["timings"]
        assert set(r["timings"]) == set(r["speedup"]) == set(r["metrics"])
        assert r["speedup"][r["subject"]] == pytest.approx(1.0)
        for t in r["timings"].values():
            assert t["repeats"] >= 2 and t["first_call_s"] > 0
            assert 0 < t["min_s"] <= t["q1_s"] <= t["median_s"] <= t["q3_s"] <= t["max_s"]


@pytest.mark.parametrize("stage", NETWORK_STAGES)
def test_network_stages_report_throughput_flops_memory_and_compile_time(quick_run, stage):
    for r in _cases(quick_run, stage):
        if "skipped" in r:
            continue
        unit = r["items"]["unit"]
        assert unit in ("images", "pairs")
        assert r["throughput"]["jax"] == pytest.approx(r["items"]["count"] / r["timings"]["jax"]["median_s"])
        assert r["flops_per_call"]["jax"] > 0 and r["achieved_gflops"]["torch"] > 0
        assert r["compile_s"]["jax"] > 0
        for memory in r["memory"].values():
            assert memory["method"] == "process RSS high-water mark"
            assert memory["peak_mib"] > 0 and memory["delta_mib"] >= 0


def test_train_stage_steps_every_method(quick_run):
    cases = [r["case"].split(",")[0] for r in _cases(quick_run, "train")]
    assert cases == ["RANSAC-Flow fine network", "SegSwap transformer step", "ArtMiner feature-learning step"]
    assert not any("skipped" in r for r in _cases(quick_run, "train"))


def test_train_stage_child_process_brings_back_its_rows_with_the_training_flags(tmp_path, monkeypatch):
    """What a full run does when other stages run too (here at quick sizes; TensorFlow blocked in the child)."""
    import argparse

    from benchmarks.throughput.__main__ import _train_in_child

    blocker = "raise ImportError('the throughput benchmark must not import TensorFlow')\n"
    (tmp_path / "tensorflow.py").write_text(blocker)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    rows = _train_in_child(argparse.Namespace(device="cpu", precision="highest", quick=True, threads=None,
                                              omp_wait_policy="passive"))
    assert [r["case"].split(",")[0] for r in rows] == [
        "RANSAC-Flow fine network", "SegSwap transformer step", "ArtMiner feature-learning step"]
    for row in rows:
        assert xla_cpu.CONVOLUTION_FLAG in row["params"]["xla_flags"]
        assert row["params"]["omp_wait_policy"] == "PASSIVE"  # --omp-wait-policy reaches the child's torch
        assert row["throughput"]["jax"] > 0 and row["throughput"]["torch"] > 0


@pytest.mark.parametrize("method", ["RANSAC-Flow", "SegSwap", "ArtMiner"])
def test_training_steps_agree_on_the_first_step(quick_run, method):
    (step,) = [r for r in _cases(quick_run, "train") if r["case"].startswith(method)]
    agreement = step["agreement"]
    assert agreement["ok"] and agreement["grad_norm_rel_diff"] < 1e-3 and agreement["first_step_grad_norm"] > 0
    assert all(v < 1e-4 for k, v in agreement.items() if k.endswith("loss_rel_diff"))
    assert agreement["loss_rel_diff"] < 1e-4


def test_quick_ransac_stage_structure(quick_run):
    results = _cases(quick_run, "ransac")
    assert [r["case"] for r in results] == ["single pair", "8 pairs batched, adaptive stopping, 50% inliers"]
    single = results[0]
    assert {"torch (official approach)", "jax (official mode)", "cv2 RANSAC", "cv2 USAC_MAGSAC"} <= set(
        single["timings"])
    assert all("corner_err_px" in m for m in single["metrics"].values())
    assert single["agreement"]["official_same_selection"]
    assert single["metrics"]["jax (ours, fixed budget)"]["corner_err_px"] < 2.0
    assert results[1]["baseline"].startswith("cv2")
    # Hypotheses per second where the count is fixed: budget / median time; none for the adaptive rules.
    rates = {name: m.get("hypotheses_per_s") for name, m in single["metrics"].items()}
    budget = single["params"]["hypotheses"]
    for name in ("jax (ours, fixed budget)", "torch (official approach)", "jax (official mode)"):
        assert rates[name] == pytest.approx(budget / single["timings"][name]["median_s"])
    assert rates["jax (ours, adaptive)"] is None and rates["cv2 RANSAC"] is None  # 50 %: cv2 stops early
    fixed_batch = "jax (ours, fixed budget, one call)"
    assert results[1]["metrics"][fixed_batch]["hypotheses_per_s"] == pytest.approx(
        8 * budget / results[1]["timings"][fixed_batch]["median_s"])


def test_markdown_has_the_summary_and_one_table_per_case(quick_run):
    markdown = quick_run["markdown"]
    assert "## Summary" in markdown and "JAX speed-up" in markdown and "% peak" in markdown
    for r in quick_run["report"]["results"]:
        assert f"## {r['stage']}: {r['case']}" in markdown
    assert "| jax (ours, fixed budget) |" in markdown
    assert "FAILED" not in markdown


def test_report_records_the_machine(quick_run):
    machine = quick_run["report"]["machine"]
    assert machine["cores"] >= 1 and machine["jax"] and machine["torch"]
    assert machine["matmul_precision"] == "highest"
    assert quick_run["report"]["command"].startswith("python -m benchmarks.throughput --quick")
    # Left at libgomp's default (or the environment's): a forced PASSIVE handicaps PyTorch on a quiet machine.
    assert machine["omp_wait_policy"].startswith(os.environ.get("OMP_WAIT_POLICY", "libgomp default"))


def test_relative_agreement_flags_a_difference():
    close = harness.relative_agreement({"x": ([1.0, 2.0], [1.0, 2.0 + 1e-7])}, tolerance=1e-6)
    far = harness.relative_agreement({"x": ([1.0, 2.0], [1.0, 2.1])}, tolerance=1e-6)
    assert close["ok"] and not far["ok"]
    assert far["max_abs_diff"] == pytest.approx(0.1)
    assert not harness.relative_agreement({"x": ([1.0], [1.0, 2.0])}, tolerance=1.0)["ok"]  # shapes differ


def test_run_case_derives_throughput_and_flops():
    result = harness.run_case("demo", "sleep", {"jax": lambda: time.sleep(0.002), "torch": lambda: time.sleep(0.004)},
                              subject="jax", repeats=3, items=(10, "images"), flops=1e6,
                              agreement=lambda outputs: {"ok": True, "max_abs_diff": 0.0})
    assert result["baseline"] == "torch"
    assert result["throughput"]["jax"] == pytest.approx(10 / result["timings"]["jax"]["median_s"])
    assert result["achieved_gflops"]["torch"] == pytest.approx(1e-3 / result["timings"]["torch"]["median_s"])
    assert result["speedup"]["torch"] > 1


def test_stage_without_a_device_argument_still_runs():
    from benchmarks.throughput.__main__ import _run_stage

    assert _run_stage("old", lambda quick: [quick], quick=True, device="cpu") == [True]
    assert _run_stage("new", lambda quick, device: [device], quick=False, device="cpu") == ["cpu"]


def test_every_stage_is_registered_with_the_cli():
    from benchmarks.throughput.__main__ import _stages

    assert {"peak", *STAGES} <= set(_stages())


def test_cli_rejects_unknown_stage():
    from benchmarks.throughput.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stages", "nope"])
