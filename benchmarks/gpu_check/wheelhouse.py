"""The wheels a lent GPU machine lacks (it has no network): fetched here once, carried with the run, installed there.

``python -m benchmarks.gpu_check.wheelhouse fetch [DIR]`` downloads them (x86-64, CPython 3.12, no dependencies:
each one's needs are on the CUDA image) into ``DIR`` (default ``.wheelhouse``, git-ignored), and ``install_missing``
installs, before the parts run, only those whose module the machine cannot import, into a ``--target`` folder
that the parts find on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_DIR = ".wheelhouse"

# requirement -> the module it provides. What the CUDA image (KINDS.md of the device tool) lacks: ml-collections
# (configs, train.main), tensorboardX (the training loop's metric writer), unraphael (the painting copies the SegSwap
# and ArtMiner synthetic data use), faiss-cpu (the collection-scale benchmark, where it uses it); absl-py is on the
# image, carried in case another image lacks it (train.main's flags).
WHEELS = {
    "ml-collections==1.1.0": "ml_collections",
    "absl-py==2.5.1": "absl",
    "tensorboardX==2.6.5": "tensorboardX",
    "unraphael==0.2.1": "unraphael",
    "faiss-cpu==1.15.1": "faiss",
}

# pip download's platform tags for the lent machines (x86-64 Linux, glibc >= 2.28) and pure-Python wheels.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any")


def _distribution(requirement: str) -> str:
    """``"ml-collections==1.1.0"`` -> ``"ml_collections"``, the name's form in a wheel's file name."""
    return requirement.split("==")[0].replace("-", "_").lower()


def wheel_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``{requirement: wheel path}`` for the ``WHEELS`` present in ``folder``."""
    folder = Path(folder)
    found = {}
    if not folder.is_dir():
        return found
    for requirement in WHEELS:
        name, version = _distribution(requirement), requirement.split("==")[1]
        matches = [p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}-")]
        if matches:
            found[requirement] = matches[0]
    return found


def size_mib(folder: str | os.PathLike) -> float:
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20 if folder.is_dir() else 0.0


def fetch(folder: str | os.PathLike = DEFAULT_DIR) -> list[Path]:
    """Downloads every ``WHEELS`` entry into ``folder`` (needs the package index); returns the wheel paths."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + list(WHEELS), check=True)
    return sorted(wheel_files(folder).values())


def missing_modules() -> list[str]:
    """The ``WHEELS`` requirements whose module this Python cannot import."""
    return [req for req, module in WHEELS.items() if importlib.util.find_spec(module) is None]


def install_missing(folder: str | os.PathLike, target: str | os.PathLike) -> dict:
    """Installs the carried wheels of the modules this Python lacks into ``target`` (add it to ``PYTHONPATH``).

    Returns ``{"installed": [...], "present": [...], "absent": [...], "error": str | None}``: ``absent`` are
    missing modules with no wheel in ``folder``.
    """
    missing = missing_modules()
    wheels = wheel_files(folder)
    install = [req for req in missing if req in wheels]
    report = {"installed": install, "present": [r for r in WHEELS if r not in missing],
              "absent": [r for r in missing if r not in wheels], "error": None}
    if install:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--upgrade", "--target", str(target)] + [str(wheels[r]) for r in install]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            report["error"] = f"pip install failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
    return report


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "fetch":
        sys.exit("usage: python -m benchmarks.gpu_check.wheelhouse fetch [DIR]")
    paths = fetch(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_DIR)
    for path in paths:
        print(f"{path.stat().st_size / 2**20:8.2f} MiB  {path.name}")
    print(f"{sum(p.stat().st_size for p in paths) / 2**20:8.2f} MiB in all")
