"""Align images with RANSAC-Flow and write what a user looks at.

  python -m artdup_jax.app.align --source A.png --target B.png --out DIR [--checkpoint FINE] [--coarse-checkpoint RESNET]
  python -m artdup_jax.app.align --reference REF.png --group FOLDER --out DIR ...        (align every image to REF)
  python -m artdup_jax.app.align --source A --target B --texture-transfer --out DIR        (A's appearance on B's geometry)

Coarse stage: ``--coarse deep`` (default when --coarse-checkpoint is given: ResNet-50 / MoCo weights, a .pth
or a converted directory), ``sift`` (default otherwise: OpenCV SIFT + our RANSAC, no weights needed) or
``identity``. Fine stage: only with ``--checkpoint`` (a released RANSAC-Flow .pth, a converted directory or
a training workdir). Per pair: coarse.png, fine.png (when refined), blend.png (50/50 with the target),
blink.gif, flow.npy ((H, W, 2) source-pixel displacement), matchability.png, summary.json.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from artdup_jax.data import outputs
from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.ransac_flow import coarse as coarse_lib
from artdup_jax.ransac_flow.align import Alignment, align_pair

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".tif", ".tiff", ".bmp", ".webp")


def load_weights(path: str, family: str) -> dict:
    """A PyTorch ``.pth`` (converted on the fly), a converted directory, or a training workdir."""
    import artdup_jax.convert  # noqa: F401  (registers every family)
    from artdup_jax.checkpoints import load_weights as resolve

    return resolve(path, family)


def write_alignment(alignment: Alignment, out_dir: str, *, texture_transfer: bool = False) -> dict:
    coarse = alignment.warp(alignment.coarse_grid)
    final = alignment.warp()
    target = alignment.target
    outputs.save_image(os.path.join(out_dir, "target.png"), target)
    outputs.save_image(os.path.join(out_dir, "coarse.png"), coarse)
    if alignment.fine:
        outputs.save_image(os.path.join(out_dir, "fine.png"), final)
    outputs.save_image(os.path.join(out_dir, "blend.png"), 0.5 * final + 0.5 * target)
    outputs.save_gif(os.path.join(out_dir, "blink.gif"), [target, final])
    outputs.save_npy(os.path.join(out_dir, "flow.npy"), alignment.flow_pixels().astype(np.float32))
    outputs.save_image(os.path.join(out_dir, "matchability.png"), alignment.matchability)
    if texture_transfer:
        keep = alignment.matchability[..., None] > 0.5
        outputs.save_image(os.path.join(out_dir, "texture_transfer.png"), np.where(keep, final, target))
    summary = {
        "homographies": [np.asarray(h).tolist() for h in alignment.homographies],
        "fine": alignment.fine,
        "size_hw": list(target.shape[:2]),
        "mean_matchability": float(alignment.matchability.mean()),
        "blend_error_coarse": float(np.abs(coarse - target).mean()),
        "blend_error_final": float(np.abs(final - target).mean()),
    }
    outputs.save_json(os.path.join(out_dir, "summary.json"), summary)
    return summary


def _images_in(folder: str) -> list[str]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return [os.path.join(folder, n) for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m artdup_jax.app.align", description=__doc__.split("\n")[0])
    parser.add_argument("--source")
    parser.add_argument("--target")
    parser.add_argument("--reference", help="group mode: the image every other one is aligned to")
    parser.add_argument("--group", help="group mode: a folder of images")
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", help="fine network: .pth, converted directory or training workdir")
    parser.add_argument("--coarse-checkpoint", help="ResNet-50 (torchvision) or MoCo .pth, or converted dir")
    parser.add_argument("--coarse-family", default="resnet50", choices=["resnet50", "moco_resnet50"])
    parser.add_argument("--coarse", choices=coarse_lib_methods(), default=None)
    parser.add_argument("--size", type=int, default=400, help="resize target side (quick-start default 400)")
    parser.add_argument("--rule", choices=["longer", "shorter"], default="longer")
    parser.add_argument("--scales", type=int, default=7)
    parser.add_argument("--scale-ratio", type=float, default=1.2)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--max-homographies", type=int, default=1)
    parser.add_argument("--texture-transfer", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    group_mode = args.group is not None
    if group_mode == (args.source is not None) or (group_mode and not args.reference) or (
            not group_mode and not args.target):
        parser.error("give --source and --target, or --reference and --group")
    coarse = args.coarse or ("deep" if args.coarse_checkpoint else "sift")
    coarse_variables = load_weights(args.coarse_checkpoint, args.coarse_family) if coarse == "deep" else None
    fine_variables = load_weights(args.checkpoint, "ransac_flow") if args.checkpoint else None
    config = coarse_lib.CoarseConfig(size=args.size, rule=args.rule, num_scales=args.scales,
                                     scale_ratio=args.scale_ratio, iterations=args.iterations, seed=args.seed,
                                     mask_mode="before" if args.rule == "longer" else "after")

    def run(source_path, target_path, out_dir):
        source, target = read_image(source_path), read_image(target_path)
        try:
            alignment = align_pair(source, target, coarse=coarse, coarse_variables=coarse_variables,
                                   fine_variables=fine_variables, config=config,
                                   max_homographies=args.max_homographies)
        except ValueError as error:  # e.g. no homography: say which pair
            raise ValueError(f"{source_path} onto {target_path}: {error}") from None
        return alignment, write_alignment(alignment, out_dir, texture_transfer=args.texture_transfer)

    try:
        if not group_mode:
            _, summary = run(args.source, args.target, args.out)
            print(f"aligned {args.source} onto {args.target}: {len(summary['homographies'])} homography(ies), "
                  f"fine={summary['fine']}; results in {os.path.abspath(args.out)}")
            return 0
        before, after, failures = [], [], {}
        read_image(args.reference)  # an unusable reference: one error, not one per image
        for path in _images_in(args.group):
            if os.path.abspath(path) == os.path.abspath(args.reference):
                continue
            name = os.path.splitext(os.path.basename(path))[0]
            try:
                alignment, _ = run(path, args.reference, os.path.join(args.out, name))
            except (ImageReadError, ValueError) as error:
                reason = str(error).replace(args.reference, os.path.basename(args.reference))
                failures[path] = reason if reason.startswith(path) else f"{path}: {reason}"
                print(f"warning: {failures[path]}", file=sys.stderr)
                continue
            identity = np.stack(np.meshgrid(np.linspace(-1, 1, alignment.target.shape[1]),
                                            np.linspace(-1, 1, alignment.target.shape[0])), axis=-1)
            before.append(alignment.warp(identity.astype(np.float32)))
            after.append(alignment.warp())
        if not after:
            raise SystemExit("error: no image of the group could be aligned")
        outputs.save_image(os.path.join(args.out, "average_before.png"), np.mean(before, axis=0))
        outputs.save_image(os.path.join(args.out, "average_after.png"), np.mean(after, axis=0))
        outputs.save_json(os.path.join(args.out, "group.json"), {"aligned": len(after), "failed": failures})
        print(f"aligned {len(after)} image(s) to {args.reference} ({len(failures)} failed); "
              f"averages in {os.path.abspath(args.out)}")
        return 0
    except (ImageReadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def coarse_lib_methods():
    from artdup_jax.ransac_flow.align import COARSE_METHODS

    return list(COARSE_METHODS)


if __name__ == "__main__":
    sys.exit(main())
