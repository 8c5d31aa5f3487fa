"""The ``artdup`` command.

  artdup convert FAMILY SRC.pth OUT_DIR        PyTorch checkpoint -> Orbax checkpoint
  artdup train --config configs/X.py:variant --workdir DIR [--config.field=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="artdup", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("convert", help="convert a PyTorch checkpoint (see python -m artdup_jax.convert -h)",
                        add_help=False)
    commands.add_parser("train", help="train a model (see python -m train.main --help)", add_help=False)
    args, rest = parser.parse_known_args(argv)

    if args.command == "convert":
        from artdup_jax.convert.__main__ import main as convert_main

        return convert_main(rest)
    if args.command == "train":
        os.execv(sys.executable, [sys.executable, "-m", "train.main", *rest])
    return 2


if __name__ == "__main__":
    sys.exit(main())
