"""``benchmarks/gpu_benchmark.sh`` on a machine without CUDA: the script parses and runs, and its preflight stops it
with a clear reason before any stage (the whole GPU run needs a CUDA machine; see BENCHMARKS.md)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "gpu_benchmark.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run for real")
def test_preflight_refuses_a_machine_without_cuda(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "THROUGHPUT_OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(SCRIPT), "--quick"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "preflight failed: JAX sees no CUDA device" in done.stderr
    assert "torch.cuda.is_available() is False" in done.stderr
    assert not (tmp_path / "out" / "throughput_gpu.json").exists()  # no stage ran
