"""The ``artdup`` command: parses the arguments, calls the application layer (``artdup_jax.app``), prints.

  artdup demo [--out runs/demo] [--quick]   alignment + discovery on embedded images, as an HTML report
  artdup align SOURCE TARGET --out DIR [--checkpoint FINE] [--coarse-checkpoint RESNET50] [--no-report]
  artdup align-group REFERENCE FOLDER --out DIR [...] [--no-report]
  artdup discover FOLDER (--checkpoint X.pth | --random-weights) [--out DIR] [...] [--no-report]
  artdup detect IMAGE FOLDER --box X1 Y1 X2 Y2 (--checkpoint X.pth | --random-weights) [--out DIR] [--json F]
  artdup convert FAMILY SRC.pth OUT_DIR
  artdup weights list | fetch NAME  the authors' released checkpoints by name (every command: --weights NAME)
  artdup train --config configs/X.py:variant --workdir DIR [--config.field=value ...]   (from a checkout)
  artdup eval NAME [...]            the paper protocols of eval/ (from a checkout; 'artdup eval --help' lists them)

IIIF: FOLDER (of align-group, discover, detect) may be a Presentation manifest or collection (URL or file), an
Image API service URL or a text file listing them; its canvases are fetched at the size the method reads into
DIR/iiif (--iiif-workers, --iiif-timeout, --iiif-retries), a canvas that fails is listed with its reason and
the others go on. discover and detect --out also write DIR/annotations: W3C Web Annotations, one
AnnotationPage per canvas, and copies of the manifests that link them (--annotations-base-url).

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
import logging
import os
import subprocess
import sys
import textwrap

# command -> (one-line help, description, example); the description and example head ``artdup COMMAND --help``.
COMMANDS = {
    "demo": ("alignment and discovery on embedded images, as an HTML report",
             "Aligns unraphael's copies of Raphael's Bridgewater Madonna onto the original and discovers the "
             "groups of a mixed collection; writes OUT/index.html. No download, no weights.",
             "artdup demo --out runs/demo"),
    "align": ("align SOURCE onto TARGET (RANSAC-Flow)",
              "Aligns SOURCE onto TARGET: coarse homography (weightless: RootSIFT, Fourier-Mellin, ECC, verified "
              "against the identity; or ResNet-50 features with --coarse-checkpoint), then the fine flow with "
              "--checkpoint. Writes DIR/coarse.png, blend.png, blink.gif, flow.npy, warped_full.png, ... and "
              "DIR/report/index.html; an alignment that does not beat the identity is an error.",
              "artdup align copy.jpg original.jpg --out runs/align --size 400"),
    "align-group": ("align every image of FOLDER onto REFERENCE",
                    "Aligns every image of FOLDER onto REFERENCE; unusable files are listed with their reasons "
                    "and the others aligned. Writes the averages before / after alignment, one folder per "
                    "image and DIR/report/index.html.",
                    "artdup align-group original.jpg copies/ --out runs/copies"),
    "discover": ("groups of images sharing a region (ArtMiner)",
                 "Finds groups of FOLDER's images that share a region, with the regions outlined; unreadable "
                 "files are listed with their reasons. FOLDER may be IIIF (a manifest URL, ...). Writes "
                 "DIR/discovery.json, DIR/report/index.html and DIR/annotations (W3C Web Annotations).",
                 "artdup discover collection/ --checkpoint ltllModel.pth --out runs/discover"),
    "detect": ("one-shot detection of a box over a folder (ArtMiner)",
               "The regions of FOLDER's images most like a box of IMAGE, best first; unusable files are "
               "skipped with a warning each. FOLDER may be IIIF, IMAGE one of its canvases. With --out: "
               "DIR/detections.json, DIR/report/index.html and DIR/annotations (W3C Web Annotations).",
               "artdup detect scan.jpg collection/ --box 120 40 380 300 --checkpoint brueghelModel.pth "
               "--out runs/detect"),
    "index": ("a persistent collection index: features stored once, discovery and detection read them",
              "Stores the ArtMiner features of a collection once (memory-mapped shards, a faiss index of global "
              "descriptors, a manifest of the files): 'build' makes or updates it from a folder, 'add' stores new "
              "images (their features only), 'info' says what it holds and which files changed. 'artdup discover "
              "--index DIR' then verifies only pairs it never verified; 'artdup detect IMAGE --index DIR --box ...' "
              "searches it.",
              "artdup index build collection/ --index runs/index --weights artminer-ltll"),
    "convert": ("PyTorch checkpoint -> Orbax",
                "Converts a released PyTorch checkpoint to a folder of Flax variables, checking every key "
                "and shape against the family's model.",
                "artdup convert ransac_flow MegaDepth_Theta1_Eta001_Grad1_0.774.pth weights/ransac_flow"),
    "weights": ("list or fetch the authors' released checkpoints by name",
                "Lists the released ArtMiner, RANSAC-Flow and SegSwap checkpoints with their state in the cache "
                "($ARTDUP_CACHE, else $XDG_CACHE_HOME/artdup-jax), or downloads one (resumable, SHA-256 checked) "
                "and converts it once to Orbax. Every command's --weights NAME does the same on first use.",
                "artdup weights fetch artminer-brueghel"),
    "train": ("train a model (python -m train.main, from a checkout)",
              "Trains a model from a config file (configs/*.py, with a variant after the colon); any config "
              "field can be overridden on the command line. Runs from a checkout of the repository.",
              "artdup train --config configs/ransac_flow.py:smoke --workdir runs/smoke --config.total_steps=10"),
    "eval": ("run a paper evaluation protocol (python -m eval NAME, from a checkout)",
             "Runs one evaluation protocol of eval/ (a checkout of the repository); 'artdup eval --help' lists "
             "them and 'artdup eval NAME --help' gives a protocol's options.",
             "artdup eval hpatches --help"),
}
# (command, option) -> the family of the checkpoint it takes (converted folders are checked against it).
_CHECKPOINT_FAMILIES = {("align", "--checkpoint"): "ransac_flow", ("align-group", "--checkpoint"): "ransac_flow",
                        ("discover", "--checkpoint"): "artminer", ("detect", "--checkpoint"): "artminer",
                        ("demo", "--artminer-checkpoint"): "artminer"}
# (command, option dest) -> (the families it takes, the setting it fills) for released weights given by name.
_WEIGHTS_OPTIONS = {("align", "weights"): ("ransac_flow", "checkpoint"),
                    ("align-group", "weights"): ("ransac_flow", "checkpoint"),
                    ("align", "coarse_weights"): (("resnet50", "moco_resnet50"), "coarse_checkpoint"),
                    ("align-group", "coarse_weights"): (("resnet50", "moco_resnet50"), "coarse_checkpoint"),
                    ("discover", "weights"): ("artminer", "checkpoint"),
                    ("detect", "weights"): ("artminer", "checkpoint"),
                    ("demo", "artminer_weights"): ("artminer", "artminer_checkpoint")}
_CHILD_PROCESS = {"train": "train.main", "eval": "eval"}  # entry points of a checkout, run as child processes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, _, _) in COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def command() -> int:
    """The ``artdup`` executable (console script and ``python -m artdup_jax.cli``): :func:`main` on the command
    line, with compiled programs kept on disk for the next run (``app.compilation_cache``)."""
    from artdup_jax.app.compilation_cache import enable_compilation_cache

    enable_compilation_cache()
    return main()


def main(argv: list[str] | None = None) -> int:
    import artdup_jax.convert  # noqa: F401  (every checkpoint family known, for the error messages)
    from artdup_jax.app.messages import error_line, one_line_warnings
    from artdup_jax.data.folders import tool_reading_limits

    # urllib3 logs each IIIF retry; the fetch sums a canvas's tries up in one line (absl may have configured
    # the root logger, which would print them)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) >= 2 and argv[0] in COMMANDS and argv[1] in ("-h", "--help"):
        return _help(argv[0])
    args, rest = build_parser().parse_known_args(argv)
    with one_line_warnings(), tool_reading_limits():
        try:
            return _run(args.command, rest)
        except Exception as error:
            line = error_line(error, rest)
            if line is None:
                raise
            print(line, file=sys.stderr)
            return 1


def _command_parser(command: str) -> argparse.ArgumentParser | None:
    from artdup_jax.cli import index_command, parsers

    return {"align": lambda: parsers.align_parser(group=False), "align-group": lambda: parsers.align_parser(True),
            "discover": parsers.discover_parser, "detect": parsers.detect_parser,
            "demo": parsers.demo_parser, "weights": parsers.weights_parser,
            "index": index_command.index_parser}.get(command, lambda: None)()


def _help(command: str) -> int:
    _, description, example = COMMANDS[command]
    print(textwrap.fill(f"artdup {command}: {description}", 100) + f"\n\nexample: {example}\n")
    sys.stdout.flush()
    if command in _CHILD_PROCESS:
        return _child(command, ["--helpshort"] if command == "train" else ["--help"], help_only=True)
    if command == "convert":
        from artdup_jax.convert.__main__ import main as convert_main

        try:
            return convert_main(["--help"])
        except SystemExit as stop:
            return stop.code or 0
    parser = _command_parser(command)
    print("options:")
    print(parser.format_help().split("\n", 1)[1])
    for action in parser._actions:  # a command with sub-commands (weights list / fetch): each one's options
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                print(f"{command} {name}:\n" + sub.format_help().split("\n", 1)[1])
    return 0


def _run(command: str, rest: list[str]) -> int:
    from artdup_jax.app.messages import checkpoint_arguments
    from artdup_jax.checkpoints.files import check_checkpoint

    if command in _CHILD_PROCESS:
        return _child(command, rest)
    from artdup_jax.cli import index_command

    if command == "index" or index_command.uses_index(command, rest):
        return index_command.run(command, rest)
    if command == "convert":
        return _convert(rest)
    args = _command_parser(command).parse_args(rest)  # usage errors before any work
    if command == "weights":
        return _weights(args)
    _resolve_weights_options(command, args)
    for option, path in checkpoint_arguments(rest).items():
        if path != "random":
            check_checkpoint(path, _CHECKPOINT_FAMILIES.get((command, option)))
    if command == "demo":
        return _demo(args)
    if command in ("align", "align-group"):
        return _align(command, args)
    if command == "discover":
        return _discover(args)
    return _detect(args)


def _resolve_weights_options(command: str, args) -> None:
    """``--weights NAME`` (and the like) -> the converted folder in the cache, fetched on first use."""
    from artdup_jax.checkpoints.cache import resolve_weights
    from artdup_jax.checkpoints.catalogue import RELEASED

    for (name_of, dest), (families, target) in _WEIGHTS_OPTIONS.items():
        name = getattr(args, dest, None) if name_of == command else None
        if name:
            setattr(args, target, resolve_weights(name, families, progress=_progress(name)))
            if dest == "coarse_weights" and name in RELEASED:
                args.coarse_family = RELEASED[name].family


def _progress(name: str):
    """A download progress line on stderr, at most once a second."""
    import time

    last = [0.0]

    def report(done: int, total: int | None) -> None:
        if time.monotonic() - last[0] >= 1 or done == total:
            last[0] = time.monotonic()
            of = f" of {total / 2**20:.0f} MB" if total else ""
            print(f"\r{name}: {done / 2**20:.0f} MB{of}", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)
    return report


def _weights(args) -> int:
    from artdup_jax.app.weights import fetch_weights, list_weights, table

    if args.action == "list":
        print("\n".join(table(list_weights(method=args.method))))
        return 0
    for name in args.names:
        result = fetch_weights(name, force=args.force, progress=_progress(name))
        note = " (no published hash: recorded now, later fetches must match)" if result.first_record else ""
        print(f"{name}: {result.how}, sha256 {result.sha256}{note}\n  checkpoint: {result.path}\n"
              f"  converted:  {result.converted}  (--weights {name})")
    return 0


def _demo(args) -> int:
    import time

    from artdup_jax.app.demo import run_demo
    from artdup_jax.cli.parsers import demo_settings

    start = time.perf_counter()
    result = run_demo(demo_settings(args))
    if result.moved_aside is not None:
        print(f"note: {args.out} held other files; they were moved to {result.moved_aside}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {result.aligned} copies aligned, "
          f"{result.groups} groups discovered, {result.failures} inputs failed")
    print(f"report: {result.index}")
    return 0


def _align(command: str, args) -> int:
    from artdup_jax.app import reports
    from artdup_jax.app.align import align_group, align_images
    from artdup_jax.app.iiif_input import input_report, record_input
    from artdup_jax.cli.parsers import align_settings

    settings = align_settings(args)
    if command == "align":
        pair = align_images(args.source, args.target, args.out, settings)
        print(f"aligned {args.source} onto {args.target}: {len(pair.summary['homographies'])} homography(ies), "
              f"fine={pair.summary['fine']}; results in {pair.out_dir}")
        if not args.no_report:
            print(f"report: {reports.pair_report(pair)}")
        return 0
    folder, source, reference = _iiif_group_inputs(args, settings)
    group = align_group(reference, folder, args.out, settings)
    record_input(os.path.join(args.out, "group.json"), source)
    print(f"aligned {len(group.aligned)} image(s) to {args.reference} ({len(group.failed)} failed); "
          f"averages in {group.out_dir}")
    if not args.no_report:
        print(f"report: {reports.group_report(group, iiif=input_report(source))}")
    return 0


def _iiif_group_inputs(args, settings):
    """align-group's FOLDER and REFERENCE: local as they are, or IIIF fetched at the alignment size."""
    from artdup_jax.app.iiif_input import alignment_side, collection_folder, single_image
    from artdup_jax.cli.parsers import fetch_settings

    side, fetching = alignment_side(settings.size, settings.rule), fetch_settings(args)
    folder, source = collection_folder(args.folder, args.out, max_side=side, settings=fetching)
    _print_iiif(source)
    reference, _, _ = single_image(args.reference, source, args.out, max_side=side, settings=fetching)
    return folder, source, reference


def _print_iiif(source) -> None:
    if source is not None:
        failed = f"; {len(source.failures)} failed, listed in the JSON and the report" if source.failures else ""
        print(f"IIIF: {len(source.images)} canvas(es) of {', '.join(source.inputs)} fetched into "
              f"{source.folder}{failed}")


def _print_annotations(files) -> None:
    manifests = "".join(f"\n  annotated manifest: {path}" for path in files.manifests)
    print(f"annotations: {len(files.pages)} AnnotationPage(s), index {files.index}{manifests}")


def _discover(args) -> int:
    from artdup_jax.app import reports
    from artdup_jax.app.annotations_output import discovery_annotation_files
    from artdup_jax.app.discover import discover_folder
    from artdup_jax.app.iiif_input import artminer_side, collection_folder, input_report
    from artdup_jax.cli.parsers import discovery_config, fetch_settings
    from artdup_jax.report.annotations import Provenance

    config = discovery_config(args)
    folder, source = collection_folder(args.folder, args.out, max_side=artminer_side(config.scales),
                                       settings=fetch_settings(args))
    _print_iiif(source)
    run = discover_folder(folder, args.out, config, checkpoint=args.checkpoint, cache=args.cache,
                          iiif=input_report(source), progress=not args.quiet)
    files = discovery_annotation_files(run, source, Provenance("artminer-discover", args.weights or args.checkpoint),
                                       base_url=args.annotations_base_url)
    document = run.document
    if not args.quiet:
        print(f"feature maps: {run.maps_loaded} read from {run.cache_dir}, {run.maps_computed} computed")
        for unreadable in document["unreadable"]:
            print(f"warning: skipped {unreadable['error']}", file=sys.stderr)  # the error names the file
        print(f"{document['num_images']} images, {document['num_pairs_scored']} pairs scored in "
              f"{document['seconds']:.1f} s, {len(document['groups'])} groups")
        for group in document["groups"]:
            print(f"  group {group['id']}: " + ", ".join(image["file"] for image in group["images"]))
        print(f"wrote {os.path.join(args.out, 'discovery.json')}")
        _print_annotations(files)
    if not args.no_report:
        print(f"report: {reports.discovery_report(run, thumbnail_px=args.thumbnail_px)}")
    return 0


def _detect(args) -> int:
    from artdup_jax.app import reports
    from artdup_jax.app.annotations_output import detection_annotation_files, query_image
    from artdup_jax.app.detect import detect_in_folder
    from artdup_jax.app.iiif_input import (artminer_side, collection_folder, file_box, input_report,
                                           single_image)
    from artdup_jax.artminer.resize_rule import SCALES
    from artdup_jax.cli.parsers import fetch_settings
    from artdup_jax.data import outputs
    from artdup_jax.data.iiif.source import IIIFInputError, is_iiif_input
    from artdup_jax.report.annotations import Provenance

    if not args.out and (is_iiif_input(args.folder) or is_iiif_input(args.image)):
        raise IIIFInputError("detect: IIIF input needs --out DIR (its canvases are fetched into DIR/iiif)")
    side, fetching = artminer_side(args.scales or SCALES), fetch_settings(args)
    folder, source = collection_folder(args.folder, args.out or ".", max_side=side, settings=fetching)
    _print_iiif(source)
    image, canvas, query_source = single_image(args.image, source, args.out or ".", max_side=side, settings=fetching)
    box = file_box(canvas, args.box) if canvas is not None else args.box
    if box != list(args.box):
        print(f"query box {list(args.box)} of canvas {canvas.label!r} is {box} in its file {image}")
    run = detect_in_folder(image, box, folder, checkpoint=args.checkpoint, scales=args.scales,
                           cache=args.cache, out=args.out, iiif=input_report(source))
    if run.cache_dir:
        print(f"feature maps: {run.maps_loaded} read from {run.cache_dir}, {run.maps_computed} computed")
    if not run.detections:
        print(f"no detection: none of the {run.num_searched} readable image(s) of {folder} has a match")
    for detection in run.detections[: args.top]:
        print(f"{detection['score']:.4f}  {detection['file']}  {detection['box']}")
    if run.skipped:
        print(f"skipped {len(run.skipped)} file(s) of {folder}: " + "; ".join(s["file"] for s in run.skipped))
    if args.json:
        outputs.save_json(args.json, run.document())
    if args.out:
        files = detection_annotation_files(run, args.out, query_image(image, canvas), source,
                                           Provenance("artminer-detect", args.weights or args.checkpoint),
                                           top=args.top, base_url=args.annotations_base_url,
                                           query_source=query_source)
        _print_annotations(files)
        print(f"report: {reports.detection_report(run, args.out, args.top)}")
    return 0


def _child(command: str, argv: list[str], help_only: bool = False) -> int:
    """``python -m train.main`` / ``python -m eval`` of the checkout in the current folder, in a child process."""
    module = _CHILD_PROCESS[command]
    if not os.path.isdir(module.split(".")[0]):
        print(f"error: artdup {command} runs from a checkout of the artdup-jax repository (no {module.split('.')[0]}/ "
              f"folder in {os.getcwd()})", file=sys.stderr)
        return 2
    code = subprocess.call([sys.executable, "-m", module, *argv])
    return 0 if help_only and command == "train" else code  # absl exits 1 after its help


def _convert(argv: list[str]) -> int:
    """``artdup_jax.convert`` with the source checked first and a key mismatch reported in one line."""
    import contextlib
    import io

    from artdup_jax.checkpoints.files import check_checkpoint, families_matching
    from artdup_jax.convert.__main__ import main as convert_main

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
