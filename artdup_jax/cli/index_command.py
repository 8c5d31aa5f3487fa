"""``artdup index`` and the ``--index`` forms of ``discover`` and ``detect``: parsers and handlers.

  artdup index build FOLDER --index DIR (--checkpoint X.pth | --weights NAME | --random-weights) [...]
  artdup index add DIR FOLDER|FILE... (--checkpoint X.pth | --weights NAME | --random-weights)
  artdup index info DIR
  artdup discover --index DIR [--out OUT] [--top-k K] [--threshold T] [...]
  artdup detect IMAGE --index DIR --box X1 Y1 X2 Y2 (--checkpoint X.pth | --weights NAME | --random-weights)

``run(command, argv)`` parses and runs one of them; ``uses_index(command, argv)`` says whether a ``discover`` or
``detect`` command line is the index form. Progress bars go to stderr; ``--quiet`` silences them. ``build``,
``add`` and ``discover --index`` also run as one process of a ``jax.distributed`` job (``--coordinator HOST:PORT
--num-processes N --process-id I``, or the JAX_* variables; ``artdup_jax.index.processes``).
"""

from __future__ import annotations

import argparse
import sys

from artdup_jax.app.index import IMAGES_PER_SHARD, PAIRS_PER_CHUNK
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.artminer.resize_rule import RESAMPLE
from artdup_jax.cli.parsers import add_artminer_weights, add_iiif_options, fetch_settings

_DISCOVERY = DiscoveryConfig()
def uses_index(command: str, argv: list[str]) -> bool:
    """True for ``discover`` / ``detect`` command lines with ``--index``."""
    return command in ("discover", "detect") and any(a == "--index" or a.startswith("--index=") for a in argv)


def _process_options(parser: argparse.ArgumentParser) -> None:
    """One process of a ``jax.distributed`` job (default: the JAX_* variables; none: a job of one process)."""
    group = parser.add_argument_group("many processes (every process runs the same command; see the README)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (JAX_COORDINATOR_ADDRESS)")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the job (JAX_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N - 1 (JAX_PROCESS_ID)")


def _start_processes(args) -> None:
    from artdup_jax.index.processes import start

    start(args.coordinator, args.num_processes, args.process_id)


def index_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup index", add_help=False)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="create an index of FOLDER, or bring it up to date (resumes)")
    build.add_argument("folder", help="image folder (not recursive), or IIIF input: a manifest or collection (file "
                                      "or URL), an Image API service, or a text file listing them")
    build.add_argument("--index", required=True, metavar="DIR", help="index folder (created if needed)")
    add_artminer_weights(build)
    add_iiif_options(build)
    build.add_argument("--reference-cells", type=int, default=_DISCOVERY.reference_cells)
    build.add_argument("--margin", type=int, default=_DISCOVERY.margin)
    build.add_argument("--scales", type=int, nargs="+", default=list(_DISCOVERY.scales),
                       help="target longer sides (cells)")
    build.add_argument("--descriptor-cells", type=int, default=None,
                       help="longer side (cells) of the map the global descriptor pools (default: the smallest scale)")
    build.add_argument("--no-saliency", action="store_true", help="no reference saliency weighting")
    build.add_argument("--resample", default=_DISCOVERY.resample, choices=sorted(RESAMPLE))
    build.add_argument("--seed", type=int, default=_DISCOVERY.seed, help="seed of --random-weights")
    build.add_argument("--images-per-shard", type=int, default=IMAGES_PER_SHARD,
                       help="images per committed shard (a killed build loses at most one shard)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    _process_options(build)
    add = actions.add_parser("add", help="store new images (folders or files) in an index")
    add.add_argument("index", metavar="DIR")
    add.add_argument("inputs", nargs="+", metavar="FOLDER_OR_FILE",
                     help="folders, image files, or IIIF inputs (manifests, collections, Image API services)")
    add_artminer_weights(add)
    add_iiif_options(add)
    add.add_argument("--seed", type=int, default=_DISCOVERY.seed, help="seed of --random-weights")
    add.add_argument("--images-per-shard", type=int, default=IMAGES_PER_SHARD)
    add.add_argument("--quiet", action="store_true", help="no progress bars")
    _process_options(add)
    info = actions.add_parser("info", help="what an index holds; changed or removed files")
    info.add_argument("index", metavar="DIR")
    return parser


def discover_index_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup discover --index", add_help=False)
    parser.add_argument("--index", required=True, metavar="DIR", help="an index made by 'artdup index build'")
    parser.add_argument("--out", default="runs/discover", help="output folder")
    parser.add_argument("--top-k", type=int, default=_DISCOVERY.top_k, help="candidate neighbours per image")
    parser.add_argument("--exhaustive", action="store_true", help="every pair (N (N - 1) / 2): small indexes only")
    parser.add_argument("--threshold", type=float, default=_DISCOVERY.threshold)
    parser.add_argument("--min-group-images", type=int, default=_DISCOVERY.min_group_images)
    parser.add_argument("--iterations", type=int, default=_DISCOVERY.iterations, help="RANSAC hypotheses per pair")
    parser.add_argument("--tolerance-cells", type=float, default=_DISCOVERY.tolerance_cells)
    parser.add_argument("--pairs-per-batch", type=int, default=_DISCOVERY.pairs_per_batch)
    parser.add_argument("--pairs-per-chunk", type=int, default=PAIRS_PER_CHUNK,
                        help="pairs verified per committed chunk (a killed run loses at most one chunk)")
    parser.add_argument("--seed", type=int, default=_DISCOVERY.seed)
    parser.add_argument("--thumbnail-px", type=int, default=160, help="thumbnail side in the report")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="skip OUT/report/index.html")
    _process_options(parser)
    return parser


def detect_index_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup detect --index", add_help=False)
    parser.add_argument("image", help="the image holding the query box")
    parser.add_argument("--index", required=True, metavar="DIR", help="the index searched")
    parser.add_argument("--box", nargs=4, type=int, required=True, metavar=("X1", "Y1", "X2", "Y2"),
                        help="query box in IMAGE's pixels (x = column; x2, y2 exclusive)")
    add_artminer_weights(parser)
    parser.add_argument("--seed", type=int, default=_DISCOVERY.seed, help="seed of --random-weights")
    parser.add_argument("--scales", type=int, nargs="+", default=None, help="default: the index's scales")
    parser.add_argument("--top", type=int, default=10, help="detections printed")
    parser.add_argument("--json", help="write every ranked detection to this file")
    parser.add_argument("--out", help="also write OUT/detections.json and OUT/report/index.html")
    parser.add_argument("--quiet", action="store_true")
    return parser


def _checkpoint(args) -> str | None:
    """The checkpoint path of ``--checkpoint`` / ``--weights NAME`` (fetched on first use); None: random."""
    if args.random_weights:
        return None
    if args.weights:
        from artdup_jax.checkpoints.cache import resolve_weights

        return resolve_weights(args.weights, "artminer")
    return args.checkpoint


def run(command: str, argv: list[str]) -> int:
    """Parses ``argv`` for ``command`` ("index", or "discover" / "detect" with ``--index``) and runs it."""
    from artdup_jax.index.atomic import IndexBusyError
    from artdup_jax.index.manifest import IndexMismatchError, NotAnIndexError
    from artdup_jax.index.processes import CommandMismatchError, ProcessFailedError

    parser = {"index": index_parser, "discover": discover_index_parser, "detect": detect_index_parser}[command]()
    args = parser.parse_args(argv)
    try:
        if command == "index":
            return {"build": _build, "add": _add, "info": _info}[args.action](args)
        return _discover(args) if command == "discover" else _detect(args)
    except (IndexMismatchError, NotAnIndexError, IndexBusyError, CommandMismatchError, ProcessFailedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _print_update(update, verb: str) -> None:
    from artdup_jax.index.processes import ProcessGroup

    group = ProcessGroup.current()
    if not group.is_main:
        print(f"process {group.index} of {group.count}: extracted {len(update.added)} image(s) in "
              f"{update.seconds:.1f} s; process 0 committed them: {update.index}")
        return
    for path, reason in update.unreadable:
        print(f"warning: skipped {reason}", file=sys.stderr)
    for path in update.changed:
        print(f"changed since stored (stored again): {path}")
    for path in update.removed:
        print(f"removed (file gone): {path}")
    per_image = update.bytes_on_disk / max(update.num_images, 1)
    print(f"{verb} {len(update.added)} image(s) in {update.seconds:.1f} s; the index holds {update.num_images} "
          f"image(s), {update.bytes_on_disk / 2**20:.1f} MB of features ({per_image / 2**20:.2f} MB per image): "
          f"{update.index}")


def _build(args) -> int:
    from artdup_jax.app.index import build_index

    _start_processes(args)
    scales = tuple(args.scales)
    config = DiscoveryConfig(reference_cells=args.reference_cells, margin=args.margin, scales=scales,
                             descriptor_cells=args.descriptor_cells or min(scales), saliency=not args.no_saliency,
                             resample=args.resample, seed=args.seed)
    folder = _fetched(args.folder, args.index, scales, args)
    update = build_index(folder, args.index, config, checkpoint=_checkpoint(args),
                         images_per_shard=args.images_per_shard, progress=not args.quiet)
    _print_update(update, "stored")
    return 0


def _add(args) -> int:
    from artdup_jax.app.index import add_to_index

    from artdup_jax.index.manifest import read_header

    _start_processes(args)
    scales = tuple(read_header(args.index).settings["scales"])
    inputs = [_fetched(arg, args.index, scales, args) for arg in args.inputs]
    update = add_to_index(args.index, inputs, checkpoint=_checkpoint(args),
                          seed=args.seed, images_per_shard=args.images_per_shard, progress=not args.quiet)
    _print_update(update, "added")
    return 0


def _fetched(argument: str, index: str, scales: tuple[int, ...], args) -> str:
    """A folder or file as it is; a IIIF input fetched (at ArtMiner's largest scale) into a folder of the index
    named after it; a canvas that fails is a one-line warning with its reason, the others are stored. In a job of
    many processes process 0 fetches; the others take the folder it fetched into."""
    import hashlib
    import os

    from artdup_jax.app.iiif_input import artminer_side, collection_folder
    from artdup_jax.data.iiif.source import is_iiif_input
    from artdup_jax.index.atomic import read_json, write_json
    from artdup_jax.index.processes import ProcessGroup

    if not is_iiif_input(argument):
        return argument
    out = os.path.join(index, "inputs", hashlib.sha1(argument.encode()).hexdigest()[:12])
    fetched = os.path.join(out, "fetched.json")
    return ProcessGroup.current().decided_by_main(
        "fetching the IIIF input",
        lambda: collection_folder(argument, out, max_side=artminer_side(scales), settings=fetch_settings(args))[0],
        lambda folder: write_json(fetched, {"folder": folder}), lambda: read_json(fetched)["folder"])


def _info(args) -> int:
    from artdup_jax.app.index import index_info

    info = index_info(args.index)
    print(f"index {info.index}: {info.num_images} image(s) in {info.num_shards} shard(s), "
          f"{info.bytes_on_disk / 2**20:.1f} MB on disk ({info.bytes_per_image / 2**20:.2f} MB of features per "
          f"image); {info.num_removed} stored image(s) removed or replaced")
    print(f"weights: {info.weights_label} (fingerprint {info.weights[:12]})")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in info.settings.items()))
    for key, verified in info.verified.items():
        print(f"verified pairs [{key}]: {verified['pairs']} with " +
              ", ".join(f"{k}={v}" for k, v in verified["settings"].items()))
    for path in info.changed:
        print(f"changed since stored: {path}  ('artdup index add' stores it again)")
    for path in info.removed:
        print(f"removed: {path}")
    for path, reason in info.unreadable.items():
        print(f"unreadable: {reason}")
    return 0


def _discover(args) -> int:
    from artdup_jax.app import reports
    from artdup_jax.app.index import config_from_settings, discover_in_index
    from artdup_jax.index.manifest import read_header

    _start_processes(args)
    settings = read_header(args.index).settings
    config = config_from_settings(settings, top_k=args.top_k, exhaustive=args.exhaustive, threshold=args.threshold,
                                  min_group_images=args.min_group_images, iterations=args.iterations,
                                  tolerance_cells=args.tolerance_cells, pairs_per_batch=args.pairs_per_batch,
                                  seed=args.seed)
    found = discover_in_index(args.index, config, out=args.out, pairs_per_chunk=args.pairs_per_chunk,
                              progress=not args.quiet)
    if found is None:  # another process of the job writes the result
        print(f"verified this process's share of the pairs; process 0 wrote {args.out}/discovery.json")
        return 0
    document = found.run.document
    if not args.quiet:
        for path in found.changed:
            print(f"warning: {path} changed since it was stored ('artdup index add {args.index} {path}')",
                  file=sys.stderr)
        for path in found.removed:
            print(f"warning: {path} is gone; left out", file=sys.stderr)
        print(f"{document['num_images']} images, {found.num_candidates} candidate pairs, {found.num_verified_now} "
              f"verified now, {found.num_stored} verified in all, {len(document['groups'])} groups "
              f"({document['seconds']:.1f} s)")
        for group in document["groups"]:
            print(f"  group {group['id']}: " + ", ".join(image["file"] for image in group["images"]))
        print(f"wrote {found.run.out_dir}/discovery.json")
    if not args.no_report:
        print(f"report: {reports.discovery_report(found.run, thumbnail_px=args.thumbnail_px)}")
    return 0


def _detect(args) -> int:
    from artdup_jax.app import reports
    from artdup_jax.app.index import detect_in_index
    from artdup_jax.data import outputs

    run = detect_in_index(args.image, args.box, args.index, checkpoint=_checkpoint(args), seed=args.seed,
                          scales=args.scales, out=args.out, progress=not args.quiet)
    if not run.detections:
        print(f"no detection: none of the {run.num_searched} image(s) of {args.index} has a match")
    for detection in run.detections[: args.top]:
        print(f"{detection['score']:.4f}  {detection['file']}  {detection['box']}")
    if args.json:
        outputs.save_json(args.json, run.document())
    if args.out:
        print(f"report: {reports.detection_report(run, args.out, args.top)}")
    return 0
