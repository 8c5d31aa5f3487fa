"""The argument parsers of the ``artdup`` commands that run in this process, and their typed settings."""

from __future__ import annotations

import argparse

from artdup_jax.app.align import COARSE_METHODS, AlignSettings
from artdup_jax.app.demo import DemoSettings
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.artminer.resize_rule import RESAMPLE
from artdup_jax.data.iiif.fetch import FetchSettings
from artdup_jax.ransac_flow.coarse import ESTIMATORS

_ALIGN = AlignSettings()
_DISCOVERY = DiscoveryConfig()
_FETCH = FetchSettings()
IIIF_FOLDER_HELP = ("a folder of images (not recursive), or IIIF: a manifest or collection (URL or file, "
                    "Presentation 2.1 / 3.0), an Image API service URL, or a text file listing them")


def add_iiif_options(parser: argparse.ArgumentParser) -> None:
    """How a IIIF FOLDER's canvases are fetched (into OUT/iiif; downloads cached in $ARTDUP_IIIF_CACHE, else
    $XDG_CACHE_HOME/artdup/iiif)."""
    group = parser.add_argument_group("IIIF input")
    group.add_argument("--iiif-workers", type=int, default=_FETCH.workers, metavar="N",
                       help="canvases downloaded at once")
    group.add_argument("--iiif-timeout", type=float, default=_FETCH.read_timeout, metavar="SECONDS",
                       help="seconds without an answer before a request is retried")
    group.add_argument("--iiif-retries", type=int, default=_FETCH.retries, metavar="N",
                       help="further tries of a failing request (exponential back-off); then the canvas is "
                            "listed as failed and the others go on")


def fetch_settings(args: argparse.Namespace) -> FetchSettings:
    return FetchSettings(workers=max(1, args.iiif_workers), read_timeout=args.iiif_timeout,
                         connect_timeout=min(_FETCH.connect_timeout, args.iiif_timeout),
                         retries=max(0, args.iiif_retries))


def add_annotation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations-base-url", metavar="URL",
                        help="where OUT/annotations will be served (the W3C Web Annotation pages' and annotated "
                             "manifests' ids are under it; default: its file:// address)")


def align_parser(group: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"artdup {'align-group' if group else 'align'}", add_help=False)
    if group:
        parser.add_argument("reference", help="the image every other one is aligned to (a file, or a canvas "
                                              "id / label of a IIIF FOLDER)")
        parser.add_argument("folder", help=IIIF_FOLDER_HELP)
        add_iiif_options(parser)
    else:
        parser.add_argument("source")
        parser.add_argument("target")
    parser.add_argument("--out", required=True, help="output folder")
    fine = parser.add_mutually_exclusive_group()
    fine.add_argument("--checkpoint", help="fine network: .pth, converted directory or training workdir")
    fine.add_argument("--weights", metavar="NAME", help="released fine network by name ('artdup weights list'), "
                                                        "fetched on first use")
    fine.add_argument("--weightless-fine", action="store_true",
                      help="weightless fine stage after the coarse one: DIS optical flow on gradient images, "
                           "confidence-weighted (not the learned RANSAC-Flow fine network)")
    coarse = parser.add_mutually_exclusive_group()
    coarse.add_argument("--coarse-checkpoint", help="ResNet-50 (torchvision) or MoCo .pth, or converted dir")
    coarse.add_argument("--coarse-weights", metavar="NAME", help="released coarse ResNet-50 by name (sets "
                                                                 "--coarse-family), fetched on first use")
    parser.add_argument("--coarse-family", default=_ALIGN.coarse_family, choices=["resnet50", "moco_resnet50"])
    parser.add_argument("--coarse", choices=list(COARSE_METHODS), default=None,
                        help="coarse stage (default: deep with --coarse-checkpoint, its fallback the classical "
                             "portfolio; else classical: RootSIFT, Fourier-Mellin, ECC, no weights). Every "
                             "alignment must beat the identity on a colour-independent score, else it fails")
    parser.add_argument("--no-full-resolution", action="store_true",
                        help="skip warped_full.png and flow_full.npy (the source warped at the target's "
                             "original resolution, and its map in original pixels)")
    parser.add_argument("--tile", type=int, default=_ALIGN.tile, help="tile side (px) of the full-resolution "
                                                                      "warp: memory stays bounded")
    parser.add_argument("--size", type=int, default=_ALIGN.size, help="resize target side (quick-start default 400)")
    parser.add_argument("--rule", choices=["longer", "shorter"], default=_ALIGN.rule)
    parser.add_argument("--scales", type=int, default=_ALIGN.scales)
    parser.add_argument("--scale-ratio", type=float, default=_ALIGN.scale_ratio)
    parser.add_argument("--iterations", type=int, default=_ALIGN.iterations,
                        help="robust-estimator hypotheses (at most, for magsac)")
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default=_ALIGN.estimator,
                        help="robust estimator of the deep and sift coarse stages: magsac (default; MAGSAC++ with "
                             "PROSAC sampling by match quality) or release (RANSAC-Flow's released RANSAC, as the "
                             "evaluation protocols use it); the classical portfolio uses OpenCV's USAC_MAGSAC")
    parser.add_argument("--max-homographies", type=int, default=_ALIGN.max_homographies)
    parser.add_argument("--texture-transfer", action="store_true", help="also the source's appearance on the "
                                                                        "target's geometry")
    parser.add_argument("--seed", type=int, default=_ALIGN.seed)
    parser.add_argument("--no-report", action="store_true", help="skip DIR/report/index.html")
    return parser


def align_settings(args: argparse.Namespace) -> AlignSettings:
    return AlignSettings(checkpoint=args.checkpoint, coarse_checkpoint=args.coarse_checkpoint,
                         coarse_family=args.coarse_family, coarse=args.coarse, size=args.size, rule=args.rule,
                         scales=args.scales, scale_ratio=args.scale_ratio, iterations=args.iterations,
                         max_homographies=args.max_homographies, texture_transfer=args.texture_transfer,
                         weightless_fine=args.weightless_fine, full_resolution=not args.no_full_resolution,
                         tile=args.tile, seed=args.seed, estimator=args.estimator)


def add_artminer_weights(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--checkpoint PATH | --weights NAME | --random-weights``: the ArtMiner network of a command."""
    weights = parser.add_mutually_exclusive_group(required=required)
    weights.add_argument("--checkpoint", help="ArtMiner weights: a .pth (resnet18.pth, brueghelModel.pth, "
                                              "ltllModel.pth) or a converted folder")
    weights.add_argument("--weights", metavar="NAME", help="released ArtMiner weights by name ('artdup weights "
                                                           "list'), fetched on first use")
    weights.add_argument("--random-weights", action="store_true", help="random network (smoke tests only)")


def discover_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup discover", add_help=False)
    parser.add_argument("folder", help=IIIF_FOLDER_HELP)
    add_artminer_weights(parser)
    parser.add_argument("--top-k", type=int, default=_DISCOVERY.top_k, help="candidate neighbours per image")
    parser.add_argument("--exhaustive", action="store_true", help="score every pair (N (N - 1) / 2)")
    parser.add_argument("--out", default="runs/discover", help="output folder (relative to the current folder)")
    parser.add_argument("--threshold", type=float, default=_DISCOVERY.threshold,
                        help="pair score above which two images are linked (default: the release's; "
                             "its LTLL clustering script used 0.03)")
    parser.add_argument("--min-group-images", type=int, default=_DISCOVERY.min_group_images)
    parser.add_argument("--reference-cells", type=int, default=_DISCOVERY.reference_cells)
    parser.add_argument("--margin", type=int, default=_DISCOVERY.margin)
    parser.add_argument("--scales", type=int, nargs="+", default=list(_DISCOVERY.scales),
                        help="target longer sides (cells)")
    parser.add_argument("--descriptor-cells", type=int, default=None,
                        help="longer side (cells) of the map the global descriptor pools (default: the smallest "
                             "of --scales)")
    parser.add_argument("--iterations", type=int, default=_DISCOVERY.iterations, help="RANSAC hypotheses per pair")
    parser.add_argument("--tolerance-cells", type=float, default=_DISCOVERY.tolerance_cells)
    parser.add_argument("--no-saliency", action="store_true", help="no reference saliency weighting")
    parser.add_argument("--resample", default=_DISCOVERY.resample, choices=sorted(RESAMPLE))
    parser.add_argument("--pairs-per-batch", type=int, default=_DISCOVERY.pairs_per_batch)
    parser.add_argument("--seed", type=int, default=_DISCOVERY.seed)
    parser.add_argument("--thumbnail-px", type=int, default=160, help="thumbnail side in the report")
    parser.add_argument("--cache", help="folder where feature maps persist between runs (default: OUT/cache; "
                        "a re-run, e.g. after an interruption or with another threshold, reuses them)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="skip DIR/report/index.html")
    add_annotation_options(parser)
    add_iiif_options(parser)
    return parser


def discovery_config(args: argparse.Namespace) -> DiscoveryConfig:
    return DiscoveryConfig(reference_cells=args.reference_cells, margin=args.margin, scales=tuple(args.scales),
                           tolerance_cells=args.tolerance_cells, iterations=args.iterations,
                           saliency=not args.no_saliency, resample=args.resample, threshold=args.threshold,
                           min_group_images=args.min_group_images, top_k=args.top_k, exhaustive=args.exhaustive,
                           descriptor_cells=args.descriptor_cells or min(args.scales),
                           pairs_per_batch=args.pairs_per_batch, seed=args.seed)


def detect_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup detect", add_help=False)
    parser.add_argument("image", help="the image holding the query box: a file, a canvas of a IIIF FOLDER (its "
                                      "id, label or file name), or IIIF of its own (its first canvas)")
    parser.add_argument("folder", help="the images searched: " + IIIF_FOLDER_HELP)
    parser.add_argument("--box", nargs=4, type=int, required=True, metavar=("X1", "Y1", "X2", "Y2"),
                        help="query box in IMAGE's pixels as a viewer shows it (x = column; x2, y2 exclusive); "
                             "for a IIIF canvas, in the canvas's units (as a IIIF viewer shows them)")
    add_artminer_weights(parser)
    parser.add_argument("--scales", type=int, nargs="+", default=None,
                        help="longer sides (feature cells) the collection is searched at (default: the release's)")
    parser.add_argument("--top", type=int, default=10, help="detections printed")
    parser.add_argument("--json", help="write every ranked detection (and the skipped files) to this file")
    parser.add_argument("--cache", help="folder where the collection's feature maps persist between runs "
                        "(default: OUT/cache with --out; a re-run or a new query over the same folder reuses them)")
    parser.add_argument("--out", help="also write OUT/detections.json, the report OUT/report/index.html "
                                      "(the query and the --top best detections outlined) and OUT/annotations "
                                      "(needed for IIIF input: its canvases are fetched into OUT/iiif)")
    add_annotation_options(parser)
    add_iiif_options(parser)
    return parser


def demo_parser() -> argparse.ArgumentParser:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="artdup demo", add_help=False)
    parser.add_argument("--out", default=defaults.out, help="report folder (replaced if it holds an earlier report)")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller images (tests, smoke runs)")
    parser.add_argument("--size", type=int, default=None, help="longer image side (default 400; --quick 256)")
    parser.add_argument("--iterations", type=int, default=None, help="RANSAC draws (default 2000; --quick 500)")
    parser.add_argument("--artminer-checkpoint", default=None,
                        help="ArtMiner weights (.pth or converted folder) for discovery; 'random' for an "
                             "untrained network (smoke test). Default: SIFT + MAGSAC++ pair verification")
    parser.add_argument("--artminer-weights", metavar="NAME", help="released ArtMiner weights by name instead")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser


def demo_settings(args: argparse.Namespace) -> DemoSettings:
    return DemoSettings(out=args.out, quick=args.quick, size=args.size, iterations=args.iterations,
                        artminer_checkpoint=args.artminer_checkpoint, seed=args.seed)


def weights_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artdup weights", add_help=False)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every released checkpoint and its state in the cache")
    listing.add_argument("--method", choices=["artminer", "ransac_flow", "segswap"])
    fetch = actions.add_parser("fetch", help="download (resuming), verify and convert once")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--force", action="store_true",
                       help="download again (still checked against the recorded sha256)")
    return parser
