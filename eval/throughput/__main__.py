"""``python -m eval.throughput [--stages ransac,...] [--quick] [--json out.json] [--markdown out.md]``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from eval.throughput import harness


def _stages():
    from eval.throughput import ransac

    return {"ransac": ransac.run}


def main(argv: list[str] | None = None) -> int:
    stages = _stages()
    parser = argparse.ArgumentParser(prog="python -m eval.throughput", description=__doc__)
    parser.add_argument("--stages", default=",".join(stages),
                        help=f"comma-separated subset of: {', '.join(stages)}")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (~20 s a stage)")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenCV threads (default: all cores)")
    parser.add_argument("--json", help="write the results (and machine) as JSON here")
    parser.add_argument("--markdown", help="write the Markdown tables here")
    args = parser.parse_args(argv)

    names = [s for s in args.stages.split(",") if s]
    unknown = [s for s in names if s not in stages]
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {list(stages)}")
    harness.configure_threads(args.threads)
    machine = harness.machine_info()
    results = [r for name in names for r in stages[name](quick=args.quick)]

    argv = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m eval.throughput"] + [shlex.quote(a) for a in argv])
    markdown = harness.to_markdown(results, machine, command=command)
    print(markdown)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "results": results}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown + "\n")
    return 0 if all(r["agreement"]["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
