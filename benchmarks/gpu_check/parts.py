"""The check's parts: what each runs, at GPU sizes and at the dry run's tiny sizes, and how its result is read.

Every part is ``fn(ctx, seconds) -> dict`` with at least ``status`` (``ok``, ``partial``, ``failed``, ``timed out``,
``skipped``) and ``summary`` (one line for the table); it runs its work in child processes (``ctx.run``) that stop
by ``seconds`` at the latest. ``PARTS`` gives the order and the budget split.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import statistics
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

from benchmarks.gpu_check.runner import Context, read_json, write_json


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    title: str
    run: Callable[[Context, float], dict]
    budget_s: float  # on a GPU machine (an H100's worth of work)
    dry_budget_s: float  # the CPU dry run (2 cores)


# ---------------------------------------------------------------------------------------------- 2. parity

PARITY_TESTS = ["tests/convert/test_resnet_parity.py", "tests/ransac_flow/test_parity.py",
                "tests/segswap/test_parity.py", "tests/nn"]
# The tests that compare with PyTorch (or torchvision).
PARITY_SELECTION = ("matches_torch or match_torchvision or matches_torchvision or matches_reflect "
                    "or ties_go_to_the_first or train_mode_matches")
DRY_PARITY_SELECTION = "position_encoding_matches_torch_module"


def parity(ctx: Context, seconds: float) -> dict:
    """JAX vs the PyTorch ports on the device (``benchmarks.gpu_check.parity``), then the parity tests under pytest
    (JAX on the device, their PyTorch side on the CPU as written), both at full float32 precision."""
    deadline = time.monotonic() + seconds
    out_json, junit = ctx.work / "parity.json", ctx.work / "parity_pytest.xml"
    for stale in (out_json, junit):
        stale.unlink(missing_ok=True)
    command = ctx.python("-m", "benchmarks.gpu_check.parity", "--device", ctx.device, "--json", out_json)
    driver = ctx.run("parity", command + (["--dry-run"] if ctx.dry_run else []), seconds * 0.6)
    cases = read_json(out_json) or {"rows": []}
    checked = [r for r in cases["rows"] if r.get("checked", True)]

    tests = [PARITY_TESTS[-2]] if ctx.dry_run else PARITY_TESTS
    selection = DRY_PARITY_SELECTION if ctx.dry_run else PARITY_SELECTION
    pytest = ctx.run("parity", ctx.python("-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, "-k", selection,
                                          f"--junitxml={junit}"),
                     max(deadline - time.monotonic(), 5), env={"JAX_DEFAULT_MATMUL_PRECISION": "highest"})
    tests_result = _junit(junit)

    failed = [r["case"] for r in checked if not r["ok"]]
    if driver.ok and pytest.ok and checked and not failed and tests_result.get("passed"):
        status = "ok"
    else:
        status = "timed out" if driver.timed_out or pytest.timed_out else "failed"
    torch_device = "cuda" if ctx.device == "gpu" else "cpu"
    summary = (f"{len(checked) - len(failed)}/{len(checked)} cases within {cases.get('tolerance_rel', 1e-4):g} "
               f"(PyTorch on {torch_device}); pytest {tests_result.get('passed', 0)} passed, "
               f"{tests_result.get('failed', 0)} failed")
    return {"status": status, "summary": summary, "cases": cases, "pytest": tests_result,
            "pytest_command": "python " + " ".join(pytest.command[1:]), "failed_cases": failed}


def _junit(path) -> dict:
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {"error": "no JUnit report (pytest stopped or did not start)"}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    total, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    failing = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
               if case.find("failure") is not None or case.find("error") is not None]
    return {"tests": total, "passed": total - failures - errors - skipped, "failed": failures + errors,
            "skipped": skipped, "seconds": float(suite.get("time", 0)), "failing": failing}


# ------------------------------------------------------------------------------------------ 3. throughput

# Every stage of benchmarks.throughput but discovery (part 5's fallback), and the bf16 rows; seconds per stage, in
# the order they run (RANSAC last: its PyTorch and OpenCV sides are CPU-bound, the GPU tells least there).
THROUGHPUT_LIMITS = {"peak": 15, "features": 30, "bf16": 20, "fine": 20, "segswap": 35, "train": 45,
                     "artminer": 35, "ransac": 25}
DRY_THROUGHPUT_LIMITS = {"peak": 90, "bf16": 90}


def throughput(ctx: Context, seconds: float) -> dict:
    """``benchmarks.gpu_check.throughput_part`` (JAX vs PyTorch on the same device, every stage at the GPU sizes;
    the dry run: ``--quick``, peak and bf16 only). Restarted on the remaining stages if stopped from outside."""
    limits = DRY_THROUGHPUT_LIMITS if ctx.dry_run else THROUGHPUT_LIMITS
    return _throughput_stages(ctx, "throughput", list(limits), limits, seconds, quick=ctx.dry_run,
                              json_path=ctx.work / "throughput.json", markdown_path=ctx.work / "throughput.md")


def _throughput_stages(ctx, label, names, limits, seconds, *, quick, json_path, markdown_path) -> dict:
    deadline = time.monotonic() + seconds
    Path(json_path).unlink(missing_ok=True)
    attempts, crashed = 0, None
    while attempts < 3:
        attempts += 1
        command = ctx.python("-m", "benchmarks.gpu_check.throughput_part", "--device", ctx.device, "--stages",
                             ",".join(names), "--limits", ",".join(f"{k}={v}" for k, v in limits.items()),
                             "--json", json_path, "--markdown", markdown_path)
        finished = ctx.run(label, command + (["--quick"] if quick else []), deadline - time.monotonic())
        report = read_json(json_path) or {}
        stages = report.get("stages", {})
        if not finished.timed_out and finished.returncode not in (0, 1):  # crashed outside a stage
            crashed = finished.returncode
            current = report.get("current")
            if current:
                stages[current] = {"status": f"crashed (exit {finished.returncode})"}
        elif finished.timed_out and report.get("current"):
            stages[report["current"]] = {"status": "killed at the part's limit"}
        if report:
            report["stages"], report["current"] = stages, None
            write_json(json_path, report)
        left = [n for n in names if n not in stages]
        if not left or deadline - time.monotonic() < 20:
            break
    report = read_json(json_path) or {"stages": {}, "results": []}
    stages = report["stages"]
    for name in names:
        stages.setdefault(name, {"status": f"not run (the runner crashed: exit {crashed})" if crashed is not None
                                 else "not run (no time left)"})
    good = [n for n in names if stages[n]["status"] == "ok"]
    status = "ok" if len(good) == len(names) else ("partial" if good else "failed")
    rows = report.get("results", [])
    summary = (f"{len(good)}/{len(names)} stages ok, {len(rows)} rows; "
               + ", ".join(f"{n} {s['status']}" for n, s in stages.items() if s["status"] != "ok")).rstrip("; ")
    return {"status": status, "summary": summary, "stages": stages, "report": report}


# -------------------------------------------------------------------------------------------- 4. training

@dataclasses.dataclass(frozen=True)
class TrainingRun:
    method: str
    config: str  # configs/<x>.py:<variant>
    batch_size: int  # rounded up to a multiple of the device count (the data mesh splits the batch)
    overrides: tuple[str, ...]  # --config.<field>=<value>
    sizes: str  # for the report


_COMMON = ("--config.total_steps=300", "--config.log_every=10", "--config.eval_every=0",
           "--config.checkpoint_every=1000000", "--config.input.threads=12")

# The methods at GPU sizes (the official batch and image sizes where a step fits the time; ArtMiner at the
# throughput table's 3 smallest release scales, not all 7), 300 steps each or as many as fit.
TRAINING = (
    TrainingRun("ransac_flow", "configs/ransac_flow.py:stage3", 16, _COMMON,
                "stage 3 loss, 16 pairs of 224² per step, margin 88 (the official batch)"),
    TrainingRun("segswap", "configs/segswap.py:unsupervised", 5,
                _COMMON + ("--config.optimizer.warmup_steps=20",),
                "stage 1, 5 positives + 15 negatives of 480² per step (the official batch), warm-up 20 steps"),
    TrainingRun("artminer", "configs/artminer.py:smoke", 16,
                _COMMON[:-1] + ("--config.input.threads=8",
                                "--config.input.synthetic.image_size=(480,640)",
                                # 4 detail families (the scikit-image photos; unraphael adds a 5th), 24 images.
                                "--config.input.synthetic.num_categories=4",
                                "--config.input.synthetic.instances_per_category=4",
                                "--config.input.synthetic.num_distractors=8",
                                "--config.mining.search_scales=(49,36,20)", "--config.mining.query_scales=(36,)",
                                "--config.mining.min_cells=13", "--config.mining.margin=5",
                                "--config.mining.verification_cells=10", "--config.mining.training_cells=12",
                                "--config.mining.queries=40", "--config.mining.top_k=10",
                                "--config.mining.candidate_pairs=40"),
                "16 of 24 synthetic images of 480x640 per step, search scales 49/36/20, the release's regions "
                "and queries"),
)
_DRY_COMMON = ("--config.total_steps=2", "--config.log_every=1", "--config.eval_every=0",
               "--config.checkpoint_every=1000000")
DRY_TRAINING = (
    TrainingRun("ransac_flow", "configs/ransac_flow.py:smoke", 2, _DRY_COMMON, "smoke: stage 2 loss, 2 pairs of 64²"),
    TrainingRun("segswap", "configs/segswap.py:tiny", 4, _DRY_COMMON, "tiny: 4 positives of 64²"),
    TrainingRun("artminer", "configs/artminer.py:tiny", 8, _DRY_COMMON, "tiny: 8 candidates, scales 12/10"),
)


def training(ctx: Context, seconds: float) -> dict:
    """Each method through ``python -m train.main`` (``train_run``: a time limit and the peak device memory),
    data-parallel over every device JAX sees (the loop's data mesh); the time left is shared by the runs left."""
    deadline = time.monotonic() + seconds
    runs = DRY_TRAINING if ctx.dry_run else TRAINING
    results = {}
    gpu_configs = _check_gpu_configs(ctx) if ctx.dry_run else None
    for index, run in enumerate(runs):
        share = (deadline - time.monotonic()) / (len(runs) - index)
        if share < 10:
            results[run.method] = {"status": "not run (no time left)", "sizes": run.sizes}
            continue
        workdir = ctx.work / f"train_{run.method}"
        shutil.rmtree(workdir, ignore_errors=True)
        summary_path = ctx.work / f"train_{run.method}.json"
        summary_path.unlink(missing_ok=True)
        batch_size = -(-run.batch_size // ctx.device_count) * ctx.device_count
        # The run stops itself a little before the hard limit, so that it can still write its summary.
        command = ctx.python("-m", "benchmarks.gpu_check.train_run", "--seconds", f"{max(share - 12, 5):.0f}",
                             "--summary", summary_path, "--without-tensorflow", "--", "--config", run.config,
                             "--workdir", workdir, f"--config.batch_size={batch_size}", *run.overrides)
        finished = ctx.run(f"train {run.method}", command, share)
        results[run.method] = _training_result(run, finished, read_json(summary_path), workdir)
        results[run.method]["batch_size"] = batch_size
    statuses = [r["status"] for r in results.values()]
    status = "ok" if all(s == "ok" for s in statuses) else ("partial" if "ok" in statuses else "failed")
    if gpu_configs and not all(c["ok"] for c in gpu_configs.values()):
        status = "failed"
    summary = "; ".join(f"{m}: {r['status']}, {r.get('steps', 0)} steps"
                        + (f", {r['steps_per_s']:.2f} steps/s" if r.get("steps_per_s") else "")
                        + (f", peak {r['peak_mib']:.0f} MiB" if r.get("peak_mib") else "")
                        for m, r in results.items())
    if gpu_configs:
        summary += "; GPU configs " + ("parse" if all(c["ok"] for c in gpu_configs.values()) else "FAIL to parse")
    return {"status": status, "summary": summary, "runs": results, "gpu_configs": gpu_configs}


def _check_gpu_configs(ctx: Context) -> dict:
    """The dry run cannot train at GPU sizes, but it parses the GPU runs' configs and overrides as train.main would,
    so that a renamed config field shows in CI rather than on the next lent GPU."""
    checked = {}
    for run in TRAINING:
        path = ctx.work / f"config_{run.method}.json"
        command = ctx.python("-m", "benchmarks.gpu_check.train_run", "--parse-only", "--seconds", "0", "--summary",
                             path, "--", "--config", run.config, "--workdir", ctx.work / "unused",
                             f"--config.batch_size={run.batch_size}", *run.overrides)
        finished = ctx.run(f"train {run.method}", command, 60)
        checked[run.method] = read_json(path) or {"ok": False, "error": " / ".join(finished.tail[-3:])}
    return checked


def _training_result(run: TrainingRun, finished, summary: dict | None, workdir) -> dict:
    from benchmarks.gpu_check.train_run import read_records

    records = summary["records"] if summary else read_records(str(workdir))  # killed: read the metrics file
    train = [r for r in records if r.get("split") == "train"]
    losses = [(r["step"], r.get("loss")) for r in train]
    not_finite = [step for step, loss in losses if loss is None or loss != loss or abs(loss) == float("inf")]
    # steps/s between logged steps, without the first record (it includes the compilation).
    rates = [r["steps_per_second"] for r in train[1:] if r.get("steps_per_second")]
    ending = summary["ending"] if summary else ("killed at the limit" if finished.timed_out else "no summary")
    memory = (summary or {}).get("memory") or []
    result = {"sizes": run.sizes, "config": run.config, "overrides": list(run.overrides), "ending": ending,
              "error": (summary or {}).get("error"), "steps": train[-1]["step"] if train else 0,
              "target_steps": next((int(o.split("=")[1]) for o in run.overrides if "total_steps" in o), None),
              "losses": losses, "steps_per_s": statistics.median(rates) if rates else None,
              "first_step_s": None, "wall_s": round(finished.seconds, 1),
              "devices": (summary or {}).get("devices"), "memory": memory,
              "peak_mib": max((m["peak_mib"] for m in memory), default=None)}
    if train and train[0].get("steps_per_second"):
        result["first_step_s"] = train[0]["step"] / train[0]["steps_per_second"]  # start of loop to first log
    if not train:
        result["status"] = "failed" if ending in ("failed", "no summary") else "no step done"
    elif not_finite:
        result["status"] = f"loss not finite from step {not_finite[0]}"
    else:
        result["status"] = "ok" if ending in ("finished", "time limit") else ending
    return result


# --------------------------------------------------------------------------------------------- 5. scale

SCALE_MODULE = "benchmarks.scale"


def scale(ctx: Context, seconds: float) -> dict:
    """``python -m benchmarks.scale --max-seconds S`` where that module exists (its ``--help`` decides which other
    flags it gets); otherwise the discovery stage of the throughput table (``--quick``: 7 images; the full
    200-image case's PyTorch port needs minutes). The dry run skips the fallback (minutes on 2 cores)."""
    if importlib.util.find_spec(SCALE_MODULE) is not None:
        return _scale_module(ctx, seconds)
    if ctx.dry_run:
        return {"status": "skipped", "ran": "nothing",
                "summary": f"{SCALE_MODULE} is absent; the fallback (the discovery stage) is not part of the dry run"}
    result = _throughput_stages(ctx, "scale", ["discovery"], {"discovery": seconds - 15}, seconds, quick=True,
                                json_path=ctx.work / "scale_discovery.json",
                                markdown_path=ctx.work / "scale_discovery.md")
    result["ran"] = "benchmarks.throughput stage discovery --quick (benchmarks.scale absent)"
    result["summary"] = f"{SCALE_MODULE} absent: discovery stage (--quick): {result['summary']}"
    return result


def _scale_module(ctx: Context, seconds: float) -> dict:
    help_text = ""
    try:
        done = subprocess.run(ctx.python("-m", SCALE_MODULE, "--help"), capture_output=True, text=True, timeout=60,
                              env=ctx.env)
        help_text = done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        pass
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    json_path, markdown_path = ctx.work / "scale.json", ctx.work / "scale.md"
    # Leave time for start-up and for writing the results.
    command = ctx.python("-m", SCALE_MODULE, "--max-seconds", f"{max(seconds - 30, 10):.0f}")
    options = {"--json": str(json_path), "--markdown": str(markdown_path), "--device": ctx.device}
    for flag, value in options.items():
        if flag in flags:
            command += [flag, value]
    if ctx.dry_run:
        command += [f for f in ("--dry-run", "--quick") if f in flags][:1]
    elif "--sizes" in flags:  # a size that fits the part's minute first; the next only if its rates say it fits
        command += ["--sizes", "200,1000"]
    finished = ctx.run("scale", command, seconds)
    status = "ok" if finished.ok else ("timed out" if finished.timed_out else "failed")
    markdown = markdown_path.read_text() if markdown_path.exists() else ""
    return {"status": status, "ran": " ".join(command[1:]), "report": read_json(json_path), "markdown": markdown,
            "tail": finished.tail[-15:],
            "summary": f"{' '.join(command[1:3])} --max-seconds {command[4]}: "
                       + (f"exit {finished.returncode}" if not finished.timed_out else "timed out")}
