"""The ``artdup`` command: align, discover, detect, convert, train and evaluate from one place.

  artdup demo [--out runs/demo] [--quick]   alignment + discovery on embedded images, as an HTML report
  artdup align SOURCE TARGET --out DIR [--checkpoint FINE] [--coarse-checkpoint RESNET50] [--no-report]
  artdup align-group REFERENCE FOLDER --out DIR [...] [--no-report]
  artdup discover FOLDER (--checkpoint X.pth | --random-weights) [--out DIR] [...] [--no-report]
  artdup detect IMAGE FOLDER --box X1 Y1 X2 Y2 (--checkpoint X.pth | --random-weights) [--out DIR] [--json F]
  artdup convert FAMILY SRC.pth OUT_DIR
  artdup train --config configs/X.py:variant --workdir DIR [--config.field=value ...]
  artdup eval NAME [...]            NAME: hpatches, align, kitti, megadepth, yfcc, throughput, brueghel

``artdup COMMAND --help`` explains a command, with an example. ``align``, ``align-group``, ``discover`` and
``detect --out DIR`` also write DIR/report/index.html (with report.json): the images, the results and every
input that failed or was skipped, with its reason.

Bad input: a file that cannot be used (missing, empty, not an image, truncated, smaller than one 16-pixel
feature cell) is an error naming it for a single image, and a one-line warning for an image of a folder,
whose other images are still processed. Images above 40 megapixels (the environment variable
ARTDUP_MAX_PIXELS sets the limit) are downscaled with a warning. A checkpoint of the wrong family is an
error naming the file and the family it does match.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
import textwrap

_EVALS = ("hpatches", "align", "kitti", "megadepth", "yfcc", "throughput", "brueghel")
# command -> (one-line help, description, example); the description and example head ``artdup COMMAND --help``.
COMMANDS = {
    "demo": ("alignment and discovery on embedded images, as an HTML report",
             "Aligns unraphael's copies of Raphael's Bridgewater Madonna onto the original and discovers the "
             "groups of a mixed collection; writes OUT/index.html. No download, no weights.",
             "artdup demo --out runs/demo"),
    "align": ("align SOURCE onto TARGET (RANSAC-Flow)",
              "Aligns SOURCE onto TARGET: coarse homography (SIFT, or ResNet-50 features with "
              "--coarse-checkpoint), then the fine flow with --checkpoint. Writes DIR/coarse.png, blend.png, "
              "blink.gif, flow.npy, ... and DIR/report/index.html.",
              "artdup align copy.jpg original.jpg --out runs/align --size 400"),
    "align-group": ("align every image of FOLDER onto REFERENCE",
                    "Aligns every image of FOLDER onto REFERENCE; unusable files are listed with their reasons "
                    "and the others aligned. Writes the averages before / after alignment, one folder per "
                    "image and DIR/report/index.html.",
                    "artdup align-group original.jpg copies/ --out runs/copies"),
    "discover": ("groups of images sharing a region (ArtMiner)",
                 "Finds groups of FOLDER's images that share a region, with the regions outlined; unreadable "
                 "files are listed with their reasons. Writes DIR/discovery.json, DIR/index.html and "
                 "DIR/report/index.html.",
                 "artdup discover collection/ --checkpoint ltllModel.pth --out runs/discover"),
    "detect": ("one-shot detection of a box over a folder (ArtMiner)", "", ""),  # its own parser (tool.detect)
    "convert": ("PyTorch checkpoint -> Orbax",
                "Converts a released PyTorch checkpoint to a folder of Flax variables, checking every key "
                "and shape against the family's model.",
                "artdup convert ransac_flow MegaDepth_Theta1_Eta001_Grad1_0.774.pth weights/ransac_flow"),
    "train": ("train a model (python -m train.main)",
              "Trains a model from a config file (configs/*.py, with a variant after the colon); any config "
              "field can be overridden on the command line.",
              "artdup train --config configs/ransac_flow.py:smoke --workdir runs/smoke --config.total_steps=10"),
    "eval": (f"run an evaluation: {', '.join(_EVALS)}",
             f"Runs one evaluation protocol (NAME: {', '.join(_EVALS)}); 'artdup eval NAME --help' lists its "
             "options.",
             "artdup eval hpatches --help"),
}
# (command, option) -> the family of the checkpoint it takes (converted folders are checked against it).
_CHECKPOINT_FAMILIES = {("align", "--checkpoint"): "ransac_flow", ("align-group", "--checkpoint"): "ransac_flow",
                        ("discover", "--checkpoint"): "artminer", ("demo", "--artminer-checkpoint"): "artminer"}
_ENTRY_POINTS = {"align": "artdup_jax.app.align", "align-group": "artdup_jax.app.align", "discover": "artdup_jax.app.discover",
                 "convert": "artdup_jax.convert", "train": "train.main"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = {name: commands.add_parser(name, help=text, add_help=False) for name, (text, _, _) in COMMANDS.items()}
    sub["align"].add_argument("source")
    sub["align"].add_argument("target")
    sub["align-group"].add_argument("reference")
    sub["align-group"].add_argument("folder")
    for name in ("align", "align-group", "discover"):
        sub[name].add_argument("--no-report", action="store_true", help="skip DIR/report/index.html")
    sub["eval"].add_argument("name", choices=_EVALS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from artdup_jax.data.folders import tool_reading_limits
    from artdup_jax.app.messages import error_line, one_line_warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) >= 2 and argv[0] in COMMANDS and argv[0] != "detect" and argv[1] in ("-h", "--help"):
        return _help(argv[0], argv[1:])
    args, rest = build_parser().parse_known_args(argv)
    with one_line_warnings(), tool_reading_limits():
        try:
            return _run(args, rest)
        except SystemExit as stop:  # an entry point's "error: ..." exit; argparse's own exits pass through
            if isinstance(stop.code, str):
                print(stop.code if stop.code.startswith("error") else f"error: {stop.code}", file=sys.stderr)
                return 1
            raise
        except Exception as error:
            line = error_line(error, rest)
            if line is None:
                raise
            print(line, file=sys.stderr)
            return 1


def _help(command: str, rest: list[str]) -> int:
    _, description, example = COMMANDS[command]
    print(textwrap.fill(f"artdup {command}: {description}", 100) + f"\n\nexample: {example}\n")
    if command == "demo":
        from artdup_jax.app.demo import build_parser as demo_parser

        demo_parser().print_help()
        return 0
    if command == "eval":
        print(f"options of each evaluation: artdup eval NAME --help (NAME: {', '.join(_EVALS)})")
        return 0
    if command in ("align", "align-group", "discover"):
        print("--no-report: skip DIR/report/index.html\n")
    print(f"options (those of python -m {_ENTRY_POINTS[command]}):")
    sys.stdout.flush()
    if command == "train":
        subprocess.call([sys.executable, "-m", "train.main", "--helpshort"])  # absl exits 1 after its help
        return 0
    try:
        _run(build_parser().parse_known_args([command, *(["x", "y"] if command.startswith("align") else [])])[0],
             ["--help"])
    except SystemExit as stop:
        return stop.code or 0
    return 0


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from artdup_jax.app import reports
    from artdup_jax.checkpoints.files import check_checkpoint
    from artdup_jax.data.folders import image_files
    from artdup_jax.app.messages import checkpoint_arguments

    for option, path in checkpoint_arguments(rest).items():
        if path != "random":
            check_checkpoint(path, _CHECKPOINT_FAMILIES.get((args.command, option)))
    if args.command == "demo":
        from artdup_jax.app.demo import main as demo_main

        return demo_main(rest)
    if args.command == "align":
        if "--help" in rest:
            return _eval_main("align", ["--help"])
        code = _eval_main("align", ["--source", args.source, "--target", args.target, *rest])
        if code == 0 and not args.no_report:
            print(f"report: {reports.pair_report(_out_argument(rest), args.source, args.target)}")
        return code
    if args.command == "align-group":
        if "--help" in rest:
            return _eval_main("align", ["--help"])
        _, skipped = image_files(args.folder)  # a missing or empty folder: one line, before any work
        code = _eval_main("align", ["--reference", args.reference, "--group", args.folder, *rest])
        if code == 0 and not args.no_report:
            print(f"report: {reports.group_report(_out_argument(rest), args.reference, args.folder, skipped)}")
        return code
    if args.command == "discover":
        if importlib.util.find_spec("artdup_jax.app.discover") is None:
            print("error: discovery (artdup_jax.app.discover) is not part of this installation", file=sys.stderr)
            return 2
        discover = importlib.import_module("artdup_jax.app.discover")
        if "--help" in rest or "-h" in rest:
            return discover.main(["--help"])
        options = discover.build_parser().parse_args(rest)  # its own usage errors, before any work
        _, skipped = image_files(options.folder)
        code = discover.main(rest) or 0
        if code == 0 and not args.no_report:
            print(f"report: {reports.discovery_report(options.out, options.folder, skipped)}")
        return code
    if args.command == "detect":
        from artdup_jax.app.detect import main as detect_main

        return detect_main(rest)
    if args.command == "convert":
        return _convert(rest)
    if args.command == "train":  # a child process: absl parses its own flags
        return subprocess.call([sys.executable, "-m", "train.main", *rest])
    if args.command == "eval":
        return _eval_main(args.name, rest)
    return 2


def _convert(argv: list[str]) -> int:
    """``artdup_jax.convert`` with the source checked first and a key mismatch reported in one line."""
    import contextlib
    import io

    from artdup_jax.convert.__main__ import main as convert_main
    from artdup_jax.checkpoints.files import check_checkpoint, families_matching

    positional = [a for a in argv if not a.startswith("-")]
    if "--help" in argv or "-h" in argv or len(positional) < 3:
        return convert_main(argv)
    check_checkpoint(positional[1])
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = convert_main(argv)
    lines = errors.getvalue().strip().splitlines()
    if code and lines and lines[0].startswith("checkpoint does not match"):  # then one line per key
        matching = families_matching(positional[1])
        hint = f"; it matches family {' / '.join(repr(m) for m in matching)}" if matching else ""
        first = f", first: {lines[1].strip()}" if len(lines) > 1 else ""
        print(f"error: {positional[1]}: {lines[0].rstrip(':')}{first}{hint}", file=sys.stderr)
    elif lines:
        print("\n".join(lines), file=sys.stderr)
    return code


def _eval_main(name: str, argv: list[str]) -> int:
    return importlib.import_module(f"eval.{name}").main(argv) or 0


def _out_argument(rest: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", required=True)
    return parser.parse_known_args(rest)[0].out


if __name__ == "__main__":
    sys.exit(main())
