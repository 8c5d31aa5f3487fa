"""``scripts/gpu_check [--dry-run] [--out DIR] [--max-seconds S] [--parts a,b]``: the whole GPU check in one call.

Parts, in order, each in its own child processes with its own time limit (``parts.PARTS``: the budget split), so one
slow or broken part costs only itself:

1. preflight: wheels the machine lacks installed from ``.wheelhouse`` (``benchmarks.gpu_check.wheelhouse``), then
   versions, the card, a matmul in each framework; a failure stops the check here (exit 2);
2. parity: JAX vs the PyTorch ports on the same device, full float32 precision, and the parity tests under pytest;
3. throughput: ``benchmarks.throughput``'s stages at the GPU sizes and bf16 mixed-precision rows;
4. training: each method through ``python -m train.main`` at GPU sizes (steps/s, loss, peak device memory);
5. scale: ``python -m benchmarks.scale --max-seconds S`` with the time left, or the discovery stage.

Writes ``gpu_check.json``, ``gpu_check.md``, ``gpu_check.log``, ``throughput.json`` and ``throughput.md`` to
``--out`` (default ``$OUT``, the device tool's returned folder, else ``runs/gpu_check``); scratch files go to
``--work``. ``--dry-run`` runs the same parts on the CPU at tiny sizes (CI). Exit 0 when every part is ok (or
skipped), 1 otherwise, 2 when the preflight stopped the check.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gpu_check import parts as parts_lib
from benchmarks.gpu_check import wheelhouse
from benchmarks.gpu_check.runner import Context, read_json, write_json

ROOT = Path(__file__).resolve().parents[2]
REPORT_RESERVE_S = 5.0  # kept back from the parts for writing the report


def preflight(ctx: Context, seconds: float) -> dict:
    """Installs the carried wheels of the modules this Python lacks, then ``benchmarks.gpu_check.preflight``."""
    wheels = wheelhouse.install_missing(ctx.wheelhouse, ctx.site)
    if wheels["installed"]:
        ctx.log("preflight", f"installed from {ctx.wheelhouse}: {', '.join(wheels['installed'])}")
    if wheels["error"]:
        ctx.log("preflight", wheels["error"])
    wheelhouse_mib = wheelhouse.size_mib(ctx.wheelhouse)
    tree_mib = _tree_mib(ROOT)
    ctx.log("preflight", f"carried: wheelhouse {wheelhouse_mib:.1f} MiB ({ctx.wheelhouse}), working tree about "
                         f"{tree_mib:.1f} MiB (the device tool's limit: 64 MiB together)")
    out_json = ctx.work / "preflight.json"
    finished = ctx.run("preflight", ctx.python("-m", "benchmarks.gpu_check.preflight", "--device", ctx.device,
                                               "--json", out_json), seconds)
    report = read_json(out_json) or {}
    problems = list(report.get("problems", []))
    if wheels["error"]:
        problems.append(wheels["error"])
    if not report:
        problems.append("the preflight process " + ("timed out" if finished.timed_out else
                                                    f"exited {finished.returncode} without a report") + ": "
                        + " / ".join(finished.tail[-3:]))
    ok = finished.ok and not problems
    ctx.device_count = max(len(report.get("jax_devices") or []), 1)
    cards = report.get("nvidia_smi")
    card = ", ".join(c["name"] for c in cards) if isinstance(cards, list) else "no GPU"
    summary = (f"{card}; jax {report.get('modules', {}).get('jax')}, torch {report.get('modules', {}).get('torch')}"
               if ok else "STOP: " + "; ".join(problems))
    return {"status": "ok" if ok else "failed", "summary": summary, "report": report, "wheels": wheels,
            "wheelhouse_mib": wheelhouse_mib, "tree_mib": tree_mib}


def _tree_mib(root: Path) -> float:
    """The working tree's size without what the device tool does not send (git, virtual environments, outputs)."""
    skip = {".git", ".venv", ".venv-min", "runs", "__pycache__", "node_modules", ".hypothesis", ".pytest_cache",
            wheelhouse.DEFAULT_DIR}
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files
                     if os.path.isfile(os.path.join(folder, f)))
    return total / 2**20


PARTS = [
    parts_lib.Part("preflight", "1. Preflight", preflight, 35, 90),
    parts_lib.Part("parity", "2. Parity on the device", parts_lib.parity, 95, 150),
    parts_lib.Part("throughput", "3. Throughput (float32 and bf16)", parts_lib.throughput, 170, 200),
    parts_lib.Part("training", "4. Training through train.main", parts_lib.training, 165, 300),
    parts_lib.Part("scale", "5. Collection scale", parts_lib.scale, 50, 60),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the same parts on the CPU at tiny sizes (CI)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"),
                        help="report folder (default: $OUT, else runs/gpu_check)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="the whole check's time (default: 515 on a GPU, 900 for the dry run); the last part, "
                             "scale, gets what the others leave")
    parser.add_argument("--parts", default=",".join(p.name for p in PARTS),
                        help="comma-separated subset (preflight always runs)")
    parser.add_argument("--wheelhouse", default=str(ROOT / wheelhouse.DEFAULT_DIR),
                        help="carried wheels (python -m benchmarks.gpu_check.wheelhouse fetch)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    max_seconds = args.max_seconds or (900.0 if args.dry_run else 515.0)
    deadline = started + max_seconds
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    log_path = out / "gpu_check.log"
    log_path.write_text("")
    site = work / "site"

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(ROOT), env.get("PYTHONPATH")]))
    env.update(PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="2",
               TQDM_MININTERVAL="10")
    if args.dry_run:
        env["JAX_PLATFORMS"] = "cpu"
    ctx = Context(device="cpu" if args.dry_run else "gpu", dry_run=args.dry_run, out=out, work=work, env=env,
                  log_path=log_path, wheelhouse=Path(args.wheelhouse), site=site)
    os.chdir(ROOT)

    chosen = {"preflight", *filter(None, args.parts.split(","))}
    command = "scripts/gpu_check " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    check = {"command": command.strip(), "dry_run": args.dry_run, "device": ctx.device, "max_seconds": max_seconds,
             "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "out": str(out), "work": str(work), "parts": []}
    stop_reason = None
    for index, part in enumerate(PARTS):
        budget = part.dry_budget_s if args.dry_run else part.budget_s
        entry = {"name": part.name, "title": part.title, "budget_s": budget}
        left = deadline - time.monotonic() - REPORT_RESERVE_S
        last = index == len(PARTS) - 1
        limit = left if last and not args.dry_run else min(budget, left)
        if part.name not in chosen:
            entry.update(status="skipped", summary="not among --parts", seconds=0.0, limit_s=0.0)
        elif stop_reason:
            entry.update(status="not run", summary=stop_reason, seconds=0.0, limit_s=0.0)
        elif limit < 10:
            entry.update(status="not run", summary="no time left", seconds=0.0, limit_s=max(limit, 0.0))
        else:
            ctx.log("gpu_check", f"part {part.name}: limit {limit:.0f} s (budget {budget:.0f} s, {left:.0f} s left)")
            # On record while it runs: a check stopped from outside still says where it was.
            check["parts"].append({**entry, "status": "running", "summary": "", "limit_s": round(limit, 1)})
            _write(check, out, work)
            check["parts"].pop()
            part_started = time.monotonic()
            try:
                entry.update(part.run(ctx, limit))
            except Exception as error:  # a bug in the driver's own part code: report it, go on
                import traceback

                ctx.log("gpu_check", traceback.format_exc())
                entry.update(status="failed", summary=f"driver error: {type(error).__name__}: {error}")
            entry.update(seconds=round(time.monotonic() - part_started, 1), limit_s=round(limit, 1))
            if part.name == "preflight" and entry["status"] != "ok":
                stop_reason = "preflight failed"
        check["parts"].append(entry)
        check["seconds"] = round(time.monotonic() - started, 1)
        _write(check, out, work)

    ok_states = {"ok", "skipped"}
    code = 2 if stop_reason else (0 if all(p["status"] in ok_states for p in check["parts"]) else 1)
    check.update(seconds=round(time.monotonic() - started, 1), exit_code=code)
    markdown = _write(check, out, work)
    summary_start = markdown.index("## Summary")
    print(markdown[summary_start: markdown.index("\n## ", summary_start + 5)], flush=True)
    if stop_reason:
        print(f"{stop_reason}: {check['parts'][0]['summary']}", file=sys.stderr)
    print(f"gpu_check: exit {code} after {check['seconds']:.0f} s; report in {out}", flush=True)
    return code


def _write(check: dict, out: Path, work: Path) -> str:
    """gpu_check.json and .md, and the throughput table in the harness's own format beside them."""
    from benchmarks.gpu_check.report import summary_table, to_markdown

    write_json(out / "gpu_check.json", check)
    try:
        markdown = to_markdown(check)
    except Exception as error:  # e.g. a broken jax install: the summary table needs none of it
        markdown = (f"# GPU check\n\n## Summary\n\n{summary_table(check['parts'])}\n\n"
                    f"## Report\n\nThe full report failed ({type(error).__name__}: {error}); see gpu_check.json.")
    (out / "gpu_check.md").write_text(markdown + "\n")
    for name in ("throughput.json", "throughput.md"):
        if (work / name).exists():
            shutil.copyfile(work / name, out / name)
    return markdown


if __name__ == "__main__":
    sys.exit(main())
