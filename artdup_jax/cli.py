"""The ``artdup`` command: align, convert, train and evaluate from one place.

  artdup align SOURCE TARGET --out DIR [--checkpoint FINE] [--coarse-checkpoint RESNET50]
  artdup align-group REFERENCE FOLDER --out DIR [...]
  artdup convert FAMILY SRC.pth OUT_DIR
  artdup train --config configs/X.py:variant --workdir DIR [--config.field=value ...]
  artdup eval NAME [...]            NAME: hpatches, align, kitti, megadepth, yfcc, throughput, brueghel
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

_EVALS = ("hpatches", "align", "kitti", "megadepth", "yfcc", "throughput", "brueghel")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="artdup", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    align = commands.add_parser("align", help="align SOURCE onto TARGET (RANSAC-Flow)", add_help=False)
    align.add_argument("source")
    align.add_argument("target")
    group = commands.add_parser("align-group", help="align every image of FOLDER onto REFERENCE", add_help=False)
    group.add_argument("reference")
    group.add_argument("folder")
    commands.add_parser("convert", help="PyTorch checkpoint -> Orbax (python -m artdup_jax.convert -h)",
                        add_help=False)
    commands.add_parser("train", help="train a model (python -m train.main --help)", add_help=False)
    evaluate = commands.add_parser("eval", help=f"run an evaluation: {', '.join(_EVALS)}", add_help=False)
    evaluate.add_argument("name", choices=_EVALS)
    args, rest = parser.parse_known_args(argv)

    if args.command == "align":
        return _eval_main("align", ["--source", args.source, "--target", args.target, *rest])
    if args.command == "align-group":
        return _eval_main("align", ["--reference", args.reference, "--group", args.folder, *rest])
    if args.command == "convert":
        from artdup_jax.convert.__main__ import main as convert_main

        return convert_main(rest)
    if args.command == "train":
        os.execv(sys.executable, [sys.executable, "-m", "train.main", *rest])
    if args.command == "eval":
        return _eval_main(args.name, rest)
    return 2


def _eval_main(name: str, argv: list[str]) -> int:
    return importlib.import_module(f"eval.{name}").main(argv) or 0


if __name__ == "__main__":
    sys.exit(main())
