"""RANSAC-Flow settings and weights shared by the KITTI, MegaDepth/RobotCar and YFCC evaluations.

* :data:`BENCHMARKS` holds each benchmark's coarse-stage settings and homography-loop rules (the official
  evaluation scripts'); :func:`benchmark_settings` applies command-line overrides (``--size``, ...).
* :func:`add_model_arguments` / :func:`load_model` load the weights: ``--checkpoint`` (fine network),
  ``--coarse-checkpoint`` + ``--coarse-family`` (deep coarse stage, MoCo by default as the evaluation scripts).
  Without ``--coarse-checkpoint`` the coarse stage is OpenCV SIFT + our RANSAC; without ``--checkpoint`` only
  the coarse homography is predicted (matchability = 1 where it lands inside the source). The model's
  ``description`` says which, and every output records it.
* :func:`run_main`: the end of each protocol's ``main`` (one-line errors, the Markdown report).

The prediction itself is the library's (``artdup_jax.ransac_flow.inference_protocols``: ``predict_pair``,
``predict_kitti``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

from artdup_jax.checkpoints import load_weights
from artdup_jax.data.images import ImageReadError
from artdup_jax.ransac_flow.coarse import CoarseConfig
from artdup_jax.ransac_flow.inference import InferenceSettings, Predictor
from artdup_jax.ransac_flow.weights import FAMILY as FINE_FAMILY

_EVAL = CoarseConfig(size=480, rule="shorter", num_scales=7, scale_ratio=2.0, iterations=10_000, tolerance=0.05,
                     mask_mode="after", seed=0)
BENCHMARKS: dict[str, InferenceSettings] = {  # the official evaluation and result scripts' settings
    "kitti": InferenceSettings(
        CoarseConfig(size=800, rule="shorter", num_scales=3, scale_ratio=1.2, iterations=50_000, tolerance=0.05,
                     mask_mode="after", seed=1000),
        max_homographies=None, region_threshold=0.005, merge_threshold=1.0, kitti_rule=True, fine_size=650),
    "megadepth": InferenceSettings(_EVAL, max_homographies=11, region_threshold=0.01, merge_threshold=0.95),
    "robotcar": InferenceSettings(_EVAL, max_homographies=11, region_threshold=0.01, merge_threshold=0.95),
    # The YFCC copy of the coarse code zeroes masked target features before mutual NN.
    "yfcc": InferenceSettings(dataclasses.replace(_EVAL, mask_mode="before"), max_homographies=11,
                              region_threshold=0.01, merge_threshold=0.95),
}


def benchmark_settings(name: str, *, size=None, iterations=None, max_homographies=None, seed=None,
                       fine_size=None) -> InferenceSettings:
    """The benchmark's settings with the given overrides (None keeps the default)."""
    base = BENCHMARKS[name]
    coarse = dataclasses.replace(
        base.coarse, **{k: v for k, v in (("size", size), ("iterations", iterations), ("seed", seed))
                        if v is not None})
    changes = {"coarse": coarse}
    if max_homographies is not None:
        if max_homographies < 1:
            raise ValueError(f"--max-homographies must be >= 1, got {max_homographies}")
        changes["max_homographies"] = max_homographies
    if fine_size is not None:
        changes["fine_size"] = fine_size
    return dataclasses.replace(base, **changes)


# --------------------------------------------------------------------------------------------------
# Command line and weights


def add_model_arguments(parser: argparse.ArgumentParser, benchmark: str) -> None:
    """``--checkpoint``, ``--coarse-checkpoint``, ``--coarse-family`` and the quick-run overrides."""
    defaults = BENCHMARKS[benchmark]
    group = parser.add_argument_group("RANSAC-Flow model")
    group.add_argument("--checkpoint", help="fine network: released .pth, converted directory or training "
                                            "workdir (default: none, coarse homography only)")
    group.add_argument("--coarse-checkpoint", help="ResNet-50 / MoCo weights (.pth or converted directory) for "
                                                   "the deep coarse stage (default: SIFT coarse stage)")
    group.add_argument("--coarse-family", default="moco_resnet50", choices=("moco_resnet50", "resnet50"),
                       help="family of --coarse-checkpoint (evaluation scripts default to MoCo)")
    where = ("the coarse stage (the flow is scored at the original resolution)" if defaults.kitti_rule
             else "prediction and scoring; PCK pixel thresholds then refer to this size")
    group.add_argument("--size", type=int, default=None,
                       help=f"shorter side of the resized images for {where} (default {defaults.coarse.size})")
    group.add_argument("--iterations", type=int, default=None,
                       help=f"coarse RANSAC hypotheses (default {defaults.coarse.iterations})")
    group.add_argument("--max-homographies", type=int, default=None,
                       help="most homographies per pair (default "
                            f"{defaults.max_homographies or 'unbounded'})")
    group.add_argument("--seed", type=int, default=None,
                       help=f"coarse RANSAC seed (default {defaults.coarse.seed})")


@dataclasses.dataclass
class ProtocolModel:
    """The predictor of a benchmark run and where its weights came from (``sources``)."""

    benchmark: str
    predictor: Predictor
    sources: dict

    @property
    def description(self) -> str:
        if self.predictor.coarse_method == "deep":
            coarse = f"deep coarse stage ({self.sources['coarse_family']}: {self.sources['coarse_checkpoint']})"
        else:
            coarse = ("SIFT coarse stage (no --coarse-checkpoint: OpenCV SIFT + our RANSAC, not the paper's "
                      "MoCo-feature coarse stage)")
        if self.predictor.fine:
            fine = f"fine network {self.sources['checkpoint']}"
        else:
            fine = "no fine network (no --checkpoint: coarse homography only, matchability = inside the source)"
        return f"{coarse}; {fine}"

    def as_dict(self) -> dict:
        settings = {"name": self.benchmark, **dataclasses.asdict(self.predictor.settings)}
        return {"coarse": self.predictor.coarse_method, **self.sources, "fine": self.predictor.fine,
                "description": self.description, "settings": settings}


def load_model(args: argparse.Namespace, benchmark: str) -> ProtocolModel:
    """Loads the weights named on the command line (raises ValueError / FileNotFoundError with the path)."""
    settings = benchmark_settings(benchmark, size=args.size, iterations=args.iterations,
                                  max_homographies=args.max_homographies, seed=args.seed,
                                  fine_size=getattr(args, "fine_size", None))
    if settings.coarse.size < 16:
        raise ValueError(f"--size must be at least 16, got {settings.coarse.size}")
    coarse_variables = fine_variables = None
    for path in (args.coarse_checkpoint, args.checkpoint):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such checkpoint file or directory")
    if args.coarse_checkpoint:
        coarse_variables = _load(load_weights, args.coarse_checkpoint, args.coarse_family)
    if args.checkpoint:
        fine_variables = _load(load_weights, args.checkpoint, FINE_FAMILY)
    sources = {"checkpoint": args.checkpoint, "coarse_checkpoint": args.coarse_checkpoint,
               "coarse_family": args.coarse_family if args.coarse_checkpoint else None}
    predictor = Predictor(settings, "deep" if coarse_variables is not None else "sift", coarse_variables,
                          fine_variables)
    return ProtocolModel(benchmark, predictor, sources)


def run_main(args: argparse.Namespace, evaluate: Callable[[argparse.Namespace], dict],
             markdown_report: Callable[[dict], str], layout_error: type[Exception], stem: str) -> int:
    """The rest of ``main`` in the KITTI, MegaDepth/RobotCar and YFCC evaluations, once ``args`` are parsed.

    Checks ``--max-pairs`` (exit 2), runs ``evaluate(args)`` (which writes ``<out>/<stem>.json`` and ``.md``) and
    prints its Markdown report; a dataset-layout error, an unreadable image, a bad value or a missing file
    becomes one ``error:`` line and exit 1.
    """
    if args.max_pairs is not None and args.max_pairs < 1:
        print("error: --max-pairs must be at least 1", file=sys.stderr)
        return 2
    try:
        results = evaluate(args)
    except (layout_error, ImageReadError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(markdown_report(results))
    print(f"wrote {Path(args.out) / stem}.json and .md")
    return 0


def _load(load_weights, path: str, family: str) -> dict:
    try:
        return load_weights(path, family)
    except Exception as exc:  # converters raise many kinds; the command line wants one line
        text = str(exc).strip().splitlines()
        raise ValueError(f"{path}: cannot load {family} weights ({type(exc).__name__}"
                         f"{': ' + text[0] if text else ''})") from None
