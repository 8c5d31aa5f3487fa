"""``python -m benchmarks.throughput [--stages a,b,...] [--quick] [--device cpu|gpu] [--json out.json] [--markdown out.md]``.

Each stage is a module of this package with ``run(quick, device) -> list[dict]`` (``harness.run_case``
results); register it in ``_stages``. A stage whose ``run`` takes no ``device`` still runs (on the default
device). The ``peak`` stage (a large float32 matmul in both frameworks) always runs first: the network
stages quote their FLOP/s against it. The train stage runs with the training entry point's XLA:CPU settings
(``artdup_jax.xla_cpu``), in a child process when other stages run too (CPU only, not with ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shlex
import sys

# PyTorch's CPU ops run on OpenMP (libgomp), whose threads spin for a while at every barrier before sleeping.
# On a quiet machine that is PyTorch at its best, and the benchmark leaves it so: OMP_WAIT_POLICY=PASSIVE (never
# spin) made the ArtMiner training step, thousands of small batch-1 ops, 36 % slower (449 vs 331 ms) and so
# flattered JAX. On a busy machine spinning threads stall for whole scheduler slices (a ResNet-50 layer3 forward
# at 480x640 took 2.4-3.9 s instead of 0.2 s); there ``--omp-wait-policy passive`` helps, but the numbers then
# describe a busy machine. libgomp reads the policy when torch loads: ``main`` sets it before any stage imports
# torch.
_TORCH_LOADED_EARLY = "torch" in sys.modules
OMP_POLICIES = {"default": None, "passive": "PASSIVE", "active": "ACTIVE"}

from artdup_jax import xla_cpu  # noqa: E402
from benchmarks.throughput import harness  # noqa: E402

# The train stage measures steps as ``python -m train.main`` runs them, with ``xla_cpu.apply_training_defaults``
# (a process-wide XLA flag that slows some inference stages): alone, in this process; beside other stages, in a
# child process (this module with ``--stages train``) whose rows are merged in, each with the child's XLA_FLAGS.
# ``--quick`` (CI: does every stage run, do the frameworks agree) keeps it in this process at XLA's defaults: at
# the quick sizes (32 px RANSAC-Flow images, flow ~ 0 on a pixel grid) the first gradient is ill-conditioned
# (bilinear sampling exactly on pixels), and another conv library moves its norm by 1 % (0.001 % at 224 px).


STAGE_NAMES = ("peak", "features", "ransac", "fine", "segswap", "artminer", "train", "discovery")


def _stages():
    """``{name: run}``; imports the stage modules, and with them torch."""
    from benchmarks.throughput import artminer, features, fine, peak, ransac, segswap, train

    return {"peak": peak.run, "features": features.run, "ransac": ransac.run, "fine": fine.run,
            "segswap": segswap.run, "artminer": artminer.run, "train": train.run,
            "discovery": importlib.import_module("benchmarks.throughput.discovery").run}


def _run_stage(name: str, run, *, quick: bool, device: str) -> list[dict]:
    if "device" in inspect.signature(run).parameters:
        return run(quick=quick, device=device)
    if device != "cpu":
        print(f"warning: stage {name!r} takes no device argument; it runs on the default device", file=sys.stderr)
    return run(quick=quick)


def _train_in_child(args) -> list[dict]:
    """The train stage's rows from ``python -m benchmarks.throughput --stages train`` run with the training flags."""
    import subprocess
    import tempfile

    env = dict(os.environ)
    xla_cpu.apply_training_defaults(env)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "train.json")
        command = [sys.executable, "-m", "benchmarks.throughput", "--stages", "train", "--device", args.device,
                   "--precision", args.precision, "--json", out]
        command += ["--quick"] if args.quick else []
        command += ["--threads", str(args.threads)] if args.threads else []
        command += ["--omp-wait-policy", args.omp_wait_policy]
        child = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
        if not os.path.exists(out):
            raise RuntimeError(f"the train stage's child process failed (exit {child.returncode}): {command}")
        with open(out) as f:
            report = json.load(f)
    rows = [r for r in report["results"] if r["stage"] == "train"]
    for row in rows:
        row["params"]["xla_flags"] = report["machine"].get("xla_flags", "")
        row["params"]["omp_wait_policy"] = report["machine"]["omp_wait_policy"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGE_NAMES),
                        help=f"comma-separated subset of: {', '.join(STAGE_NAMES)} (peak always runs first)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats (CI; not for timings)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="where JAX and PyTorch run (gpu: JAX on CUDA, torch on cuda)")
    parser.add_argument("--precision", choices=("highest", "default"), default="highest",
                        help="float32 matmul/conv precision on GPU: highest (no TF32, the default) or each "
                             "framework's default")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for XLA, torch and OpenCV (default: all usable cores)")
    parser.add_argument("--omp-wait-policy", choices=tuple(OMP_POLICIES), default="default",
                        help="OMP_WAIT_POLICY for PyTorch's OpenMP threads: default leaves libgomp's (spin, then "
                             "sleep: fastest on a quiet machine) or the environment's; passive for a busy machine")
    parser.add_argument("--json", help="write the results (and machine) as JSON here")
    parser.add_argument("--markdown", help="write the Markdown tables here")
    args = parser.parse_args(argv)
    if OMP_POLICIES[args.omp_wait_policy]:
        os.environ["OMP_WAIT_POLICY"] = OMP_POLICIES[args.omp_wait_policy]  # before torch loads (_stages)
    stages = _stages()

    names = [s for s in args.stages.split(",") if s]
    unknown = [s for s in names if s not in stages]
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {list(stages)}")
    if "peak" not in names:
        names.insert(0, "peak")
    training_flags = "train" in names and args.device == "cpu" and not args.quick  # the flag is XLA:CPU's
    train_in_child = training_flags and not set(names) <= {"peak", "train"}
    if training_flags and not train_in_child:
        xla_cpu.apply_training_defaults()
    # Before JAX's first computation: platform, thread pool size, precision.
    harness.configure_device(args.device)
    harness.configure_threads(args.threads)
    harness.configure_precision(args.precision)
    machine = harness.machine_info()
    if _TORCH_LOADED_EARLY and args.omp_wait_policy != "default":
        machine["omp_wait_policy"] += " (not applied: torch was loaded before benchmarks.throughput)"
    results = []
    for name in names:
        print(f"[throughput] stage {name} ...", file=sys.stderr, flush=True)
        if name == "train" and train_in_child:
            results += _train_in_child(args)
        else:
            results += _run_stage(name, stages[name], quick=args.quick, device=args.device)
    machine["load_average_1min_end"] = harness.machine_info()["load_average_1min"]

    argv = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.throughput"] + [shlex.quote(a) for a in argv])
    markdown = harness.to_markdown(results, machine, command=command)
    print(markdown)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "results": results}, f, indent=2,
                      default=lambda o: o.item() if hasattr(o, "item") else str(o))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown + "\n")
    return 0 if all(r["agreement"]["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
