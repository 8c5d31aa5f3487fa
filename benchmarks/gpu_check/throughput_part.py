"""Part 3, the throughput table: ``benchmarks.throughput``'s stages (and the ``bf16`` rows of ``mixed_precision``)
in one process, each stage under its own time limit, the JSON and Markdown rewritten after every stage.

``python -m benchmarks.gpu_check.throughput_part --device gpu|cpu [--quick] --stages a,b --limits a=30,b=40
--json PATH --markdown PATH``. Configured as ``python -m benchmarks.throughput --device ... --precision highest``
(JAX on CUDA and PyTorch on cuda, float32 without TF32, JAX's allocator growing on demand); ``peak`` runs first
as there. A stage past its limit is interrupted (SIGALRM, when control returns to Python: a long compile or
kernel finishes first) and recorded as ``timed out``; the next one starts. If ``--json`` already holds stages
(a run stopped from outside), they are kept and only the others run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback

from benchmarks.gpu_check.runner import read_json, write_json


class StageTimeLimit(BaseException):
    """Raised by SIGALRM inside a stage; a BaseException so that no ``except Exception`` in a stage swallows it."""


def _alarm(signum, frame):
    raise StageTimeLimit()


def parse_limits(text: str) -> dict[str, float]:
    """``"peak=20,features=30"`` -> ``{"peak": 20.0, "features": 30.0}``."""
    limits = {}
    for item in filter(None, text.split(",")):
        name, _, seconds = item.partition("=")
        limits[name.strip()] = float(seconds)
    return limits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.throughput_part")
    parser.add_argument("--device", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--quick", action="store_true", help="the stages' tiny sizes")
    parser.add_argument("--stages", required=True, help="comma-separated; throughput stages and 'bf16'")
    parser.add_argument("--limits", default="", help="seconds per stage, name=seconds,...")
    parser.add_argument("--json", required=True)
    parser.add_argument("--markdown", required=True)
    args = parser.parse_args(argv)

    # As python -m benchmarks.throughput does, before JAX's first computation.
    from benchmarks.throughput import __main__ as throughput
    from benchmarks.throughput import harness

    stages = throughput._stages()
    from benchmarks.gpu_check import mixed_precision

    stages["bf16"] = mixed_precision.run
    names = [s for s in args.stages.split(",") if s]
    unknown = [s for s in names if s not in stages]
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {sorted(stages)}")
    harness.configure_device(args.device)
    harness.configure_threads(None)
    harness.configure_precision("highest")
    limits = parse_limits(args.limits)

    previous = read_json(args.json) or {}
    results = previous.get("results", [])
    status = previous.get("stages", {})
    machine = previous.get("machine") or harness.machine_info()
    command = ("python -m benchmarks.throughput --device " + args.device + " --precision highest"
               + (" --quick" if args.quick else "") + " --stages " + ",".join(names))

    def save(current: str | None):
        write_json(args.json, {"machine": machine, "command": command, "stages": status, "current": current,
                               "results": results})
        with open(args.markdown, "w") as f:
            f.write(harness.to_markdown(results, machine, command=command) + "\n")

    signal.signal(signal.SIGALRM, _alarm)
    for name in names:
        if name in status:
            continue
        limit = limits.get(name)
        status[name] = {"status": "running", "limit_s": limit}
        save(name)
        print(f"[throughput] stage {name} (limit {limit} s) ...", flush=True)
        started = time.perf_counter()
        try:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, limit)
            rows = throughput._run_stage(name, stages[name], quick=args.quick, device=args.device)
            signal.setitimer(signal.ITIMER_REAL, 0)
            results.extend(rows)
            agree = all(r["agreement"]["ok"] for r in rows)
            status[name] = {"status": "ok" if agree else "disagree", "rows": len(rows)}
        except StageTimeLimit:
            status[name] = {"status": "timed out"}
        except Exception as error:  # the next stage still runs
            signal.setitimer(signal.ITIMER_REAL, 0)
            traceback.print_exc()
            status[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        status[name].update(seconds=round(time.perf_counter() - started, 1), limit_s=limit)
        print(f"[throughput] stage {name}: {status[name]['status']} in {status[name]['seconds']} s", flush=True)
        machine["load_average_1min_end"] = harness.machine_info()["load_average_1min"]
        save(None)
    return 0 if all(s["status"] == "ok" for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
