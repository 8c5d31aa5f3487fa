"""``python -m train.main`` under a time limit, then the devices' peak memory: one training run of part 4.

``python -m benchmarks.gpu_check.train_run --seconds S --summary PATH -- <train.main arguments>`` runs the training
entry point in this process (``runpy``, exactly as ``python -m train.main``), stops it after ``S`` seconds (SIGALRM;
the steps done so far stay in ``metrics.jsonl``; ``--without-tensorflow``: as on the CUDA image), and writes
``PATH``: how it ended, the loss and steps/s at every logged step, the final report if there is one, and
``jax.local_devices()[i].memory_stats()``'s peak bytes in use. ``--parse-only``: parse the config and overrides
as train.main would, and stop (the dry run checks the GPU runs' configs so).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import sys
import time
import traceback


class TimeLimit(BaseException):
    """SIGALRM: the run's seconds are up (a BaseException: nothing in the loop catches it)."""


def _alarm(signum, frame):
    raise TimeLimit()


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def read_records(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def device_memory() -> list[dict]:
    """Per local device: peak and current bytes in use, and the allocator's limit (MiB); empty where the platform
    keeps no statistics (the CPU)."""
    import jax

    out = []
    for device in jax.local_devices():
        stats = device.memory_stats() or {}
        if stats:
            out.append({"device": str(device), "peak_mib": stats.get("peak_bytes_in_use", 0) / 2**20,
                        "in_use_mib": stats.get("bytes_in_use", 0) / 2**20,
                        "limit_mib": stats.get("bytes_limit", 0) / 2**20})
    return out


def parse_only(train_argv: list[str], summary_path: str) -> int:
    """train.main's flags on ``train_argv`` (the config file, its variant and every ``--config.x=y``), no training."""
    from absl import flags

    from train import main as train_main

    try:
        flags.FLAGS(["train.main", *train_argv])
        config = train_main._CONFIG.value
        result = {"ok": True, "task": config.task, "batch_size": config.batch_size, "total_steps": config.total_steps}
    except Exception as error:  # flags.Error for an unknown field or a bad value, or the config's own ValueError
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    with open(summary_path, "w") as f:
        json.dump(result, f, indent=2)
    print(("config ok: " if result["ok"] else "config FAILED: ") + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.train_run")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--parse-only", action="store_true",
                        help="only parse the config and its overrides as train.main would, print it, exit")
    parser.add_argument("--without-tensorflow", action="store_true",
                        help="make 'import tensorflow' fail, as on the CUDA image (batches from the thread pool)")
    args = parser.parse_args(argv[:split])
    if args.without_tensorflow:
        sys.modules["tensorflow"] = None
    train_argv = argv[split + 1:]
    workdir = _flag(train_argv, "--workdir")
    if args.parse_only:
        return parse_only(train_argv, args.summary)

    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _alarm)  # stopped from outside: still write the summary if Python gets control
    signal.setitimer(signal.ITIMER_REAL, args.seconds)
    started = time.time()
    ending, error = "finished", None
    sys.argv = ["train.main", *train_argv]
    try:
        runpy.run_module("train.main", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            ending, error = "failed", f"exit {exit_.code}"
    except TimeLimit:
        ending = "time limit"
    except BaseException as exception:  # report it, then still write the summary
        traceback.print_exc()
        ending, error = "failed", f"{type(exception).__name__}: {exception}"
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.time() - started

    summary = {"ending": ending, "error": error, "wall_s": round(wall, 1), "limit_s": args.seconds,
               "argv": train_argv, "records": read_records(workdir) if workdir else []}
    try:
        summary["memory"] = device_memory()
        import jax

        summary["devices"] = [str(d) for d in jax.devices()]
    except Exception as exception:
        summary["memory_error"] = f"{type(exception).__name__}: {exception}"
    report = os.path.join(workdir, "report.json") if workdir else None
    if report and os.path.exists(report):
        with open(report) as f:
            summary["report"] = json.load(f)
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=2, default=str)
    train = [r for r in summary["records"] if r.get("split") == "train"]
    for record in train:
        print(f"step {record['step']:>5}: loss {record.get('loss', float('nan')):.4f}, "
              f"{record.get('steps_per_second', float('nan')):.2f} steps/s", flush=True)
    peak = ", ".join(f"{m['device']} {m['peak_mib']:.0f} MiB" for m in summary.get("memory", []))
    print(f"{ending} after {wall:.1f} s; {train[-1]['step'] if train else 0} steps; peak memory: {peak or 'n/a'}",
          flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Input-pipeline and checkpoint threads may still run: leave without waiting for them.
    os._exit(0 if ending != "failed" else 1)


if __name__ == "__main__":
    sys.exit(main())
