"""``scripts/gpu_check``: its dry run (CPU, tiny sizes) runs every part and writes the JSON and Markdown report, so
the GPU check cannot rot between lent GPUs; without CUDA the real check stops at its preflight with the reasons."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check"
PARTS = ["preflight", "parity", "throughput", "training", "scale"]


def _run(args, tmp_path, timeout):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), *args, "--out", str(tmp_path / "report"), "--work",
                           str(tmp_path / "work")], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gpu_check")
    done = _run(["--dry-run"], tmp_path, timeout=1500)
    report = tmp_path / "report"
    check = json.loads((report / "gpu_check.json").read_text()) if (report / "gpu_check.json").exists() else None
    return {"done": done, "report": report, "check": check}


def _part(dry_run, name):
    return next(p for p in dry_run["check"]["parts"] if p["name"] == name)


def test_dry_run_passes_every_part(dry_run):
    done, check = dry_run["done"], dry_run["check"]
    assert check is not None, done.stdout[-3000:] + done.stderr[-3000:]
    times = ", ".join(f"{p['name']} {p['seconds']:.0f} s" for p in check["parts"])
    print(f"\ndry run: {check['seconds']:.0f} s; {times}")
    assert [p["name"] for p in check["parts"]] == PARTS
    statuses = {p["name"]: p["status"] for p in check["parts"]}
    # scale is skipped only while benchmarks.scale does not exist (its fallback takes minutes on 2 cores).
    expected = {name: "ok" for name in PARTS}
    if statuses["scale"] == "skipped":
        assert "benchmarks.scale is absent" in _part(dry_run, "scale")["summary"]
        expected["scale"] = "skipped"
    assert statuses == expected, done.stdout[-5000:]
    assert done.returncode == 0
    assert check["exit_code"] == 0 and check["dry_run"] and check["device"] == "cpu"


def test_markdown_report_has_the_summary_table_and_a_section_per_part(dry_run):
    markdown = (dry_run["report"] / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check (dry run on the CPU)")
    assert "| part | status | time (s) | limit (s) | budget (s) | result |" in markdown
    for title in ("1. Preflight", "2. Parity on the device", "3. Throughput", "4. Training through train.main",
                  "5. Collection scale"):
        assert f"## {title}" in markdown
    assert "## Summary" in dry_run["done"].stdout  # the table also ends the console output
    assert (dry_run["report"] / "gpu_check.log").stat().st_size > 0


def test_parity_part_compares_each_family_within_tolerance(dry_run):
    parity = _part(dry_run, "parity")
    rows = parity["cases"]["rows"]
    assert {r["family"] for r in rows} == {"resnet", "ransac_flow", "segswap"}
    assert all(r["ok"] and r["max_rel_diff"] <= r["tolerance_rel"] == 1e-4 for r in rows)
    assert parity["pytest"]["passed"] >= 1 and parity["pytest"]["failed"] == 0


def test_throughput_part_writes_the_harness_tables_with_bf16_rows(dry_run):
    report = json.loads((dry_run["report"] / "throughput.json").read_text())
    stages = [r["stage"] for r in report["results"]]
    assert stages[0] == "peak" and "bf16" in stages
    assert all(r["agreement"]["ok"] for r in report["results"])
    bf16 = next(r for r in report["results"] if r["stage"] == "bf16")
    assert set(bf16["timings"]) == {"jax bf16", "torch bf16 (autocast)", "jax fp32", "torch fp32"}
    assert bf16["agreement"]["jax_bf16_min_cosine"] >= 0.99
    assert "## Summary" in (dry_run["report"] / "throughput.md").read_text()


def test_training_part_runs_every_method_through_train_main(dry_run):
    runs = _part(dry_run, "training")["runs"]
    assert set(runs) == {"ransac_flow", "segswap", "artminer"}
    for method, run in runs.items():
        assert run["status"] == "ok", (method, run)
        assert run["steps"] == run["target_steps"] == 2
        assert [step for step, _ in run["losses"]] == [1, 2]
        assert run["devices"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the check would run for real")
def test_without_cuda_the_check_stops_at_preflight_with_the_reasons(tmp_path):
    done = _run([], tmp_path, timeout=300)
    assert done.returncode == 2
    assert "preflight failed" in done.stderr
    assert "JAX sees no usable CUDA device" in done.stderr
    assert "torch.cuda.is_available() is False" in done.stderr
    check = json.loads((tmp_path / "report" / "gpu_check.json").read_text())
    assert [p["status"] for p in check["parts"]] == ["failed"] + ["not run"] * 4
    assert not (tmp_path / "report" / "throughput.json").exists()  # nothing ran after the preflight
