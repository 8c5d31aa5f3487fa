"""Part 1, preflight: versions, the card, what the parts will import; a clear stop if anything is off.

``python -m benchmarks.gpu_check.preflight --device gpu|cpu --json PATH``. Exit 0 when the parts can run, 3 with
one ``preflight failed: ...`` line per problem otherwise. With ``--device gpu``: JAX must see a CUDA device (the
platform is forced to ``cuda``, so a silent fall-back to the CPU is caught), PyTorch must see CUDA, and one
small matmul must run on each.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time

from benchmarks.gpu_check.runner import write_json

# module -> why the parts need it. Each is imported (not only found), so a broken install shows here.
REQUIRED = {
    "numpy": "everything", "jax": "everything", "jaxlib": "everything", "flax": "models", "optax": "training",
    "orbax.checkpoint": "training checkpoints", "chex": "shape checks", "torch": "parity, throughput",
    "torchvision": "PyTorch ports", "cv2": "geometry, data", "skimage": "synthetic data", "PIL": "images",
    "scipy": "geometry", "ml_collections": "configs, train.main", "absl": "train.main",
    "tensorboardX": "training metrics", "tqdm": "training progress", "pytest": "parity tests",
}
OPTIONAL = {
    "unraphael": "painting copies in the synthetic data (without it: scikit-image photos only)",
    "faiss": "the collection-scale benchmark's index, where it uses faiss",
    "tensorstore": "orbax's array store",
}
MIN_JAX = (0, 11, 2)


def _version(module) -> str:
    return str(getattr(module, "__version__", getattr(module, "VERSION", "?")))


def _numbers(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def nvidia_smi() -> list[dict] | str:
    """``[{name, driver, memory_mib}]`` per GPU, or why there is none."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "nvidia-smi timed out"
    if done.returncode:
        return f"nvidia-smi failed: {done.stderr.strip() or done.stdout.strip()}"
    cards = []
    for line in done.stdout.strip().splitlines():
        name, driver, memory = (field.strip() for field in line.split(","))
        cards.append({"name": name, "driver": driver, "memory_mib": float(memory)})
    return cards


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.preflight")
    parser.add_argument("--device", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    problems: list[str] = []
    warnings: list[str] = []
    report: dict = {"python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
                    "cpus": os.cpu_count(), "device": args.device, "modules": {}}
    if args.device == "gpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        report["nvidia_smi"] = nvidia_smi()
        if isinstance(report["nvidia_smi"], str):
            problems.append(report["nvidia_smi"])

    for table, required in ((REQUIRED, True), (OPTIONAL, False)):
        for name, why in table.items():
            try:
                module = importlib.import_module(name)
                report["modules"][name] = _version(module)
            except Exception as error:  # ImportError, or a broken install raising anything
                report["modules"][name] = None
                message = f"cannot import {name} ({why}): {type(error).__name__}: {error}"
                (problems if required else warnings).append(message)
    # Not imported (slow, and not needed: training batches then come from a thread pool).
    report["modules"]["tensorflow"] = "present" if importlib.util.find_spec("tensorflow") else None

    if report["modules"].get("skimage"):
        # The synthetic training and benchmark data crop these; a scikit-image that fetches them would need network.
        try:
            from artdup_jax.data.embedded import EMBEDDED_NAMES, embedded_images

            embedded_images()
            report["embedded_images"] = list(EMBEDDED_NAMES)
        except Exception as error:
            problems.append(f"scikit-image's bundled photographs do not load offline ({type(error).__name__}: {error})")

    if report["modules"].get("jax"):
        import jax

        if _numbers(jax.__version__) < MIN_JAX:
            problems.append(f"jax {jax.__version__} is older than {'.'.join(map(str, MIN_JAX))}")
        jax.config.update("jax_platforms", "cuda" if args.device == "gpu" else "cpu")
        try:
            devices = jax.devices()
            report["jax_devices"] = [f"{d.platform}:{d.id} {d.device_kind}" for d in devices]
            import jax.numpy as jnp

            x = jnp.ones((256, 256), jnp.float32)
            assert float((x @ x)[0, 0]) == 256.0, "a 256x256 matmul of ones is not 256"
            stats = devices[0].memory_stats() or {}
            report["jax_memory_limit_gib"] = stats.get("bytes_limit", 0) / 2**30 or None
        except Exception as error:  # RuntimeError when no CUDA backend, AssertionError, ...
            detail = str(error).splitlines()[0] if str(error) else "no CUDA backend: is the jax CUDA plugin installed?"
            problems.append(f"JAX sees no usable {'CUDA' if args.device == 'gpu' else 'CPU'} device "
                            f"({type(error).__name__}: {detail})")
    if report["modules"].get("torch"):
        import torch

        report["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            report["torch_device"] = torch.cuda.get_device_name()
            report["torch_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
            report["torch_cuda_version"] = torch.version.cuda
        if args.device == "gpu":
            if not torch.cuda.is_available():
                problems.append("torch.cuda.is_available() is False")
            else:
                y = torch.ones(256, 256, device="cuda")
                if float((y @ y)[0, 0]) != 256.0:
                    problems.append("a 256x256 torch matmul of ones on cuda is not 256")

    report.update(problems=problems, warnings=warnings, ok=not problems,
                  seconds=round(time.perf_counter() - started, 2))
    write_json(args.json, report)
    versions = ", ".join(f"{k} {v}" for k, v in report["modules"].items() if v)
    print(f"python {report['python']} ({sys.executable}); {versions}")
    torch_device = report.get("torch_device", report.get("torch_cuda"))
    print(f"jax devices: {report.get('jax_devices')}; torch cuda: {torch_device}")
    if args.device == "gpu":
        print(f"nvidia-smi: {report['nvidia_smi']}")
    for warning in warnings:
        print(f"preflight warning: {warning}")
    for problem in problems:
        print(f"preflight failed: {problem}", file=sys.stderr)
    return 0 if not problems else 3


if __name__ == "__main__":
    sys.exit(main())
