"""The ``artdup`` command: align, discover, detect, convert, train and evaluate from one place.

  artdup demo [--out runs/demo] [--quick]   alignment + discovery on embedded images, as an HTML report
  artdup align SOURCE TARGET --out DIR [--checkpoint FINE] [--coarse-checkpoint RESNET50] [--no-report]
  artdup align-group REFERENCE FOLDER --out DIR [...] [--no-report]
  artdup discover FOLDER [--checkpoint X.pth | --random-weights] [--out DIR] [...]   (python -m eval.discover)
  artdup detect IMAGE FOLDER --box X1 Y1 X2 Y2 (--checkpoint X.pth | --random-weights) [--top N] [--json F]
  artdup convert FAMILY SRC.pth OUT_DIR
  artdup train --config configs/X.py:variant --workdir DIR [--config.field=value ...]
  artdup eval NAME [...]            NAME: hpatches, align, kitti, megadepth, yfcc, throughput, brueghel

``align`` and ``align-group`` also write DIR/report/index.html (with report.json): the images, the averages,
per-image errors and every input that failed, with its reason.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

_EVALS = ("hpatches", "align", "kitti", "megadepth", "yfcc", "throughput", "brueghel")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="artdup", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="alignment and discovery on embedded images, as an HTML report",
                        add_help=False)
    align = commands.add_parser("align", help="align SOURCE onto TARGET (RANSAC-Flow)", add_help=False)
    align.add_argument("source")
    align.add_argument("target")
    group = commands.add_parser("align-group", help="align every image of FOLDER onto REFERENCE", add_help=False)
    group.add_argument("reference")
    group.add_argument("folder")
    for command in (align, group):
        command.add_argument("--no-report", action="store_true", help="skip DIR/report/index.html")
    commands.add_parser("discover", help="groups of images sharing a region (python -m eval.discover -h)",
                        add_help=False)
    commands.add_parser("detect", help="one-shot detection of a box over a folder (ArtMiner)", add_help=False)
    commands.add_parser("convert", help="PyTorch checkpoint -> Orbax (python -m artdup_jax.convert -h)",
                        add_help=False)
    commands.add_parser("train", help="train a model (python -m train.main --help)", add_help=False)
    evaluate = commands.add_parser("eval", help=f"run an evaluation: {', '.join(_EVALS)}", add_help=False)
    evaluate.add_argument("name", choices=_EVALS)
    args, rest = parser.parse_known_args(argv)

    if args.command == "demo":
        from artdup_jax.demo import main as demo_main

        return demo_main(rest)
    if args.command == "align":
        code = _eval_main("align", ["--source", args.source, "--target", args.target, *rest])
        if code == 0 and not args.no_report:
            _pair_report(_out_argument(rest), args.source, args.target)
        return code
    if args.command == "align-group":
        code = _eval_main("align", ["--reference", args.reference, "--group", args.folder, *rest])
        if code == 0 and not args.no_report:
            _group_report(_out_argument(rest), args.reference, args.folder)
        return code
    if args.command == "discover":
        if importlib.util.find_spec("eval.discover") is None:
            print("error: discovery (eval.discover) is not part of this installation", file=sys.stderr)
            return 2
        return _eval_main("discover", rest)
    if args.command == "detect":
        return _detect(rest)
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


def _out_argument(rest: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", required=True)
    return parser.parse_known_args(rest)[0].out


def _pair_report(out: str, source: str, target: str) -> None:
    from artdup_jax.report import Report, ReportDirectory, alignment_section

    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section = alignment_section(report_dir, out, source=os.path.basename(source), target=os.path.basename(target),
                                    prefix="alignment")
        index = report_dir.commit(Report(f"artdup align: {os.path.basename(source)} onto {os.path.basename(target)}",
                                         sections=[section]))
    print(f"report: {index}")


def _group_report(out: str, reference: str, folder: str) -> None:
    from artdup_jax.report import Report, ReportDirectory, group_alignment_section

    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        group, pairs, failures = group_alignment_section(report_dir, out, reference=os.path.basename(reference),
                                                         folder=folder, prefix="group",
                                                         title=f"Every image of {folder} onto {reference}")
        index = report_dir.commit(Report(f"artdup align-group: {folder}", sections=[group, *pairs],
                                         failures=failures))
    print(f"report: {index}")


def _detect(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="artdup detect", description="One-shot detection (ArtMiner): the regions "
                                     "of FOLDER's images most like a box of IMAGE, best first.")
    parser.add_argument("image")
    parser.add_argument("folder")
    parser.add_argument("--box", nargs=4, type=int, required=True, metavar=("X1", "Y1", "X2", "Y2"),
                        help="query box in IMAGE's pixels (x = column, x2/y2 exclusive)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="ArtMiner weights: a .pth (brueghelModel.pth, resnet18.pth) or a "
                                              "converted folder")
    weights.add_argument("--random-weights", action="store_true", help="untrained network (smoke tests only)")
    parser.add_argument("--top", type=int, default=10, help="detections printed")
    parser.add_argument("--json", help="write every ranked detection to this file")
    args = parser.parse_args(argv)

    from artdup_jax.artminer import DetectionConfig, Query, detect, init_variables, load_weights
    from artdup_jax.data import outputs
    from artdup_jax.data.images import ImageReadError
    from eval.align import IMAGE_EXTENSIONS

    if not os.path.isdir(args.folder):
        print(f"error: {args.folder}: no such folder", file=sys.stderr)
        return 2
    paths = [os.path.join(args.folder, n) for n in sorted(os.listdir(args.folder))
             if n.lower().endswith(IMAGE_EXTENSIONS)]
    try:
        variables = init_variables() if args.random_weights else load_weights(args.checkpoint)
        ranked = detect(variables, [Query(args.image, tuple(args.box))], paths, DetectionConfig())[0]
    except (ImageReadError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    detections = [{"file": os.path.relpath(p, args.folder), "score": float(s), "box": [int(v) for v in b]}
                  for p, s, b in zip(ranked.paths, ranked.scores, ranked.boxes)]
    for d in detections[: args.top]:
        print(f"{d['score']:.4f}  {d['file']}  {d['box']}")
    if args.json:
        outputs.save_json(args.json, {"image": args.image, "box": args.box, "detections": detections})
    return 0


if __name__ == "__main__":
    sys.exit(main())
