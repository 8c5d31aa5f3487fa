"""python -m artdup_jax.convert FAMILY SRC.pth [SRC2.pth ...] OUT_DIR [--option last_stage=layer4] [--overwrite]

Families stored as several files take one SRC per file, in the family's order, e.g.
``python -m artdup_jax.convert adain vgg_normalised.pth decoder.pth OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax


def _parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    from artdup_jax.convert import FAMILIES, CheckpointMismatchError, load_torch_checkpoint, save_variables

    parser = argparse.ArgumentParser(
        prog="python -m artdup_jax.convert",
        description="Convert a PyTorch checkpoint to an Orbax checkpoint of Flax variables.",
        epilog="families:\n" + "\n".join(f"  {n:15s} {f.description}" for n, f in sorted(FAMILIES.items())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("src", nargs="+", help="PyTorch checkpoint (.pth / .pth.tar); several for a family "
                                               "made of several files (adain: vgg_normalised.pth decoder.pth)")
    parser.add_argument("out_dir", help="Orbax checkpoint directory to write")
    parser.add_argument("--option", "-o", type=_parse_option, action="append", default=[],
                        metavar="KEY=VALUE", help="family option, e.g. last_stage=layer4 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    args = parser.parse_args(argv)

    try:
        variables = load_torch_checkpoint(args.family, args.src, **dict(args.option))
    except (CheckpointMismatchError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    out_dir = save_variables(variables, args.out_dir, overwrite=args.overwrite)
    leaves = jax.tree.leaves(variables)
    num_params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
    print(f"{args.family}: {len(leaves)} tensors, {num_params:,} parameters -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
