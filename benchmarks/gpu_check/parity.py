"""Part 2, parity on the device: the three families' networks in JAX against their PyTorch ports, both on the same
device (CUDA on the GPU check), float32 at full precision (``jax_default_matmul_precision="highest"``; PyTorch with
TF32 off for matmuls and cuDNN).

``python -m benchmarks.gpu_check.parity --device gpu|cpu [--dry-run] --json PATH``. The cases are those of the
parity tests (``tests/convert/test_resnet_parity.py``, ``tests/ransac_flow/test_parity.py``,
``tests/segswap/test_parity.py``), whose PyTorch side runs on the CPU, here with PyTorch on the device, plus the
methods' GPU input sizes. Same random-weight networks as the throughput benchmark (``benchmarks.throughput.models``,
BatchNorm statistics, LayerNorm affines and biases randomised), converted by ``artdup_jax.convert``.

Tolerance: every output's max |JAX - PyTorch| <= 1e-4 x max |PyTorch| (the tests' 1e-4; their outputs are of order
1). On the GPU one more row, ``tf32``, shows what the default precisions (TF32 in both) would do to the ResNet-50
case; it is reported, not checked.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.gpu_check.runner import write_json
from benchmarks.throughput import harness

TOLERANCE = 1e-4


def _images(seed: int, shape, cell: int = 8) -> np.ndarray:
    from benchmarks.throughput.models import smooth_images

    return np.array(smooth_images(seed, tuple(shape), cell))


def _nchw(x: np.ndarray, dev):
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))).to(dev)


def _nhwc(x) -> np.ndarray:
    return np.transpose(harness.to_numpy(x), (0, 2, 3, 1))


def _torch_resnet(arch: str, seed: int):
    import torch
    import torchvision

    from baselines.torch.randomise import randomise_batchnorm

    torch.manual_seed(seed)
    return randomise_batchnorm(getattr(torchvision.models, arch)(), seed=seed).eval()


def resnet_cases(dev, dry_run: bool, gpu: bool):
    """torchvision trunks (random weights, random BN statistics) against ``convert.build_model`` on the converted
    state_dict: ResNet-18/34/50 to layer3, ResNet-18 to layer4, an odd size; on GPU the methods' sizes."""
    import functools

    import torch
    from torch import nn

    from artdup_jax.convert import build_model, convert_state_dict
    from benchmarks.throughput.models import state_dict_numpy

    if dry_run:
        cases = [("resnet18", "layer3", (1, 63, 45))]
    else:
        cases = [("resnet18", "layer3", (2, 64, 64)), ("resnet34", "layer3", (2, 64, 64)),
                 ("resnet50", "layer3", (2, 64, 64)), ("resnet18", "layer4", (2, 64, 64)),
                 ("resnet18", "layer3", (1, 63, 45))]
        if gpu:
            cases += [("resnet18", "layer3", (1, 959, 1279)), ("resnet50", "layer3", (1, 480, 640))]
    for arch, last_stage, (batch, height, width) in cases:
        def run(arch=arch, last_stage=last_stage, shape=(batch, height, width, 3)):
            model = _torch_resnet(arch, seed={"resnet18": 10, "resnet34": 11, "resnet50": 12}[arch])
            variables = convert_state_dict(arch, state_dict_numpy(model.state_dict()), last_stage=last_stage)
            trunk = nn.Sequential(*list(model.children())[:{"layer3": 7, "layer4": 8}[last_stage]]).to(dev).eval()
            x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
            with torch.no_grad():
                expected = _nhwc(trunk(_nchw(x, dev)))
            apply = jax.jit(functools.partial(build_model(arch, last_stage=last_stage).apply, train=False))
            got = np.asarray(apply(variables, jnp.asarray(x)))
            return {"features": (got, expected)}

        yield "resnet", f"{arch} to {last_stage}, {batch}x{height}x{width}", run


def ransac_flow_cases(dev, dry_run: bool, gpu: bool):
    """The fine network (``fine_flow``) and the evaluation recipe (``refine``) against the PyTorch port."""
    import torch

    from artdup_jax.ransac_flow import fine_flow, refine
    from baselines.torch import ransac_flow_fine as reference
    from benchmarks.throughput import models

    state = {}

    def network():
        if not state:
            state["net"], state["variables"] = models.fine_network(dev, seed=20)
        return state["net"], state["variables"]

    def fine_flow_case(shape):
        def run():
            net, variables = network()
            source, target = _images(1, shape), _images(2, shape)
            with models.default_device(dev):
                expected = reference.fine_flow(net, _nchw(source, dev), _nchw(target, dev))
            got = jax.jit(fine_flow)(variables, source, target)
            return {"residual": (got["residual"], _nhwc(expected["residual"])),
                    "matchability": (got["matchability"], _nhwc(expected["matchability"])),
                    "grid": (got["grid"], harness.to_numpy(expected["grid"]))}
        return run

    def refine_case(source_shape, target_shape, per_pair: bool):
        def run():
            net, variables = network()
            rng = np.random.default_rng(3)
            count = target_shape[0] if per_pair else 1
            scale = np.array([[0.05, 0.05, 0.1], [0.05, 0.05, 0.1], [0.02, 0.02, 0]])
            homography = (np.eye(3) + rng.normal(size=(count, 3, 3)) * scale).astype(np.float32)
            homography = homography if per_pair else homography[0]
            source, target = _images(4, source_shape), _images(5, target_shape)
            with models.default_device(dev):
                expected = reference.refine(net, _nchw(source, dev), _nchw(target, dev),
                                            torch.from_numpy(homography).to(dev))
            got = jax.jit(refine)(variables, source, target, homography)
            return {"grid": (got["grid"], harness.to_numpy(expected["grid"])),
                    "matchability": (got["matchability"], harness.to_numpy(expected["matchability"]))}
        return run

    if dry_run:
        yield "ransac_flow", "fine_flow, 1x32x48", fine_flow_case((1, 32, 48, 3))
        return
    yield "ransac_flow", "fine_flow, 2x48x64", fine_flow_case((2, 48, 64, 3))
    yield "ransac_flow", "refine, near-identity homography, 2x48x64", refine_case((2, 48, 64, 3), (2, 48, 64, 3), False)
    yield ("ransac_flow", "refine, per-pair homographies, source 2x96x128, target 2x48x64",
           refine_case((2, 96, 128, 3), (2, 48, 64, 3), True))
    if gpu:
        yield ("ransac_flow", "refine, 1x480x640 (evaluation size)",
               refine_case((1, 480, 640, 3), (1, 480, 640, 3), False))


def segswap_cases(dev, dry_run: bool, gpu: bool):
    """SegSwap's backbone + transformer (``predict``) and the transformer with key padding, against the port."""
    import torch

    from artdup_jax import segswap
    from benchmarks.throughput import models

    state = {}

    def network():
        if not state:
            state["backbone"], state["encoder"], state["variables"] = models.segswap(dev, seed=30)
        return state["backbone"], state["encoder"], state["variables"]

    def predict_case(source_shape, target_shape):
        def run():
            from baselines.torch import segswap as reference

            backbone, encoder, variables = network()
            source, target = _images(1, source_shape, 16), _images(2, target_shape, 16)
            expected = reference.predict(backbone, encoder, _nchw(source, dev), _nchw(target, dev))
            got = jax.jit(segswap.predict)(variables, source, target)
            return {key: (got[key], _nhwc(expected[key]))
                    for key in ("features_source", "features_target", "source", "target")}
        return run

    def padding_case(shape):
        def run():
            _, encoder, variables = network()
            features_x, features_y = models.unit_features(3, shape), models.unit_features(4, shape)
            rng = np.random.default_rng(5)
            keys_x, keys_y = rng.uniform(size=shape[:3]) < 0.7, rng.uniform(size=shape[:3]) < 0.4
            keys_x[:, 0, 0] = keys_y[:, 0, 0] = True  # PyTorch returns NaN when every key is padded
            pad_x, pad_y = (torch.from_numpy(~k.reshape(shape[0], -1)).to(dev) for k in (keys_x, keys_y))
            with torch.no_grad():
                expected_x, expected_y = encoder(_nchw(features_x, dev), _nchw(features_y, dev), pad_x, pad_y)
            got_x, got_y = jax.jit(segswap.predict_from_features)(variables, features_x, features_y, keys_x, keys_y)
            return {"x": (got_x, _nhwc(expected_x)), "y": (got_y, _nhwc(expected_y))}
        return run

    if dry_run:
        yield "segswap", "transformer with key padding, 1x3x4 maps", padding_case((1, 3, 4, 1024))
        return
    yield "segswap", "predict, source 2x64x96, target 2x80x64", predict_case((2, 64, 96, 3), (2, 80, 64, 3))
    yield "segswap", "transformer with key padding, 2x5x6 maps", padding_case((2, 5, 6, 1024))
    if gpu:
        yield "segswap", "predict, 1x480x480 (Brueghel query) vs 1x640x640", predict_case((1, 480, 480, 3),
                                                                                         (1, 640, 640, 3))


def tf32_row(dev) -> dict:
    """ResNet-50 to layer3 at 480x640 with both frameworks at their default precision (TF32), against PyTorch at
    full precision: what ``highest`` protects. Not checked."""
    import torch
    from torch import nn

    from artdup_jax.convert import build_model, convert_state_dict
    from benchmarks.throughput.models import state_dict_numpy

    model = _torch_resnet("resnet50", 12)
    variables = convert_state_dict("resnet50", state_dict_numpy(model.state_dict()), last_stage="layer3")
    trunk = nn.Sequential(*list(model.children())[:7]).to(dev).eval()
    x = np.random.default_rng(0).normal(size=(1, 480, 640, 3)).astype(np.float32)
    with torch.no_grad():
        reference = _nhwc(trunk(_nchw(x, dev)))
        harness.configure_precision("default")
        try:
            torch_tf32 = _nhwc(trunk(_nchw(x, dev)))
            with jax.default_matmul_precision("default"):
                apply = jax.jit(lambda v, y: build_model("resnet50", last_stage="layer3").apply(v, y, train=False))
                jax_tf32 = np.asarray(apply(variables, jnp.asarray(x)))
        finally:
            harness.configure_precision("highest")
    checks = harness.relative_agreement({"jax_tf32_vs_torch_fp32": (jax_tf32, reference),
                                         "torch_tf32_vs_torch_fp32": (torch_tf32, reference)}, TOLERANCE)
    return {"family": "resnet", "case": "tf32 (default precisions) vs float32, resnet50 to layer3, 1x480x640",
            "checked": False, **checks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.parity")
    parser.add_argument("--device", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--dry-run", action="store_true", help="one tiny case per family")
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    harness.configure_device(args.device)
    harness.configure_precision("highest")
    dev = harness.torch_device(args.device)
    gpu = args.device == "gpu"
    rows = []

    def save():
        write_json(args.json, {"device": str(jax.devices()[0]), "tolerance_rel": TOLERANCE, "rows": rows,
                               "ok": all(r["ok"] for r in rows if r.get("checked", True))})

    # One case of each family in turn: a part stopped at its limit still has all three families.
    families = [list(cases(dev, args.dry_run, gpu)) for cases in (resnet_cases, ransac_flow_cases, segswap_cases)]
    for group in itertools.zip_longest(*families):
        for family, case, run in filter(None, group):
            started = time.perf_counter()
            try:
                row = {"family": family, "case": case, **harness.relative_agreement(run(), TOLERANCE)}
            except Exception as error:  # one broken case must not hide the others
                traceback.print_exc()
                row = {"family": family, "case": case, "ok": False, "error": f"{type(error).__name__}: {error}"}
            row["seconds"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            print(f"{'ok    ' if row['ok'] else 'FAILED'} {family}: {case}: max abs diff "
                  f"{row.get('max_abs_diff', float('nan')):.3g}, relative {row.get('max_rel_diff', float('nan')):.3g} "
                  f"(tolerance {TOLERANCE:g}) [{row['seconds']:.1f} s]", flush=True)
            save()
    if gpu:
        try:
            rows.append(tf32_row(dev))
            print(f"info   tf32: relative {rows[-1]['max_rel_diff']:.3g} (not checked)", flush=True)
        except Exception as error:
            rows.append({"family": "resnet", "case": "tf32", "checked": False, "ok": False,
                         "error": f"{type(error).__name__}: {error}"})
        save()
    save()
    return 0 if all(r["ok"] for r in rows if r.get("checked", True)) else 1


if __name__ == "__main__":
    sys.exit(main())
