#!/usr/bin/env bash
# The whole throughput benchmark on one CUDA GPU: JAX on the GPU against PyTorch on cuda, same inputs,
# float32 with full-precision matmuls (no TF32) in both, every stage at the methods' sizes. A few minutes
# on an H100.
#
#   benchmarks/gpu_benchmark.sh [extra python -m benchmarks.throughput arguments, e.g. --stages fine,train or --quick]
#
# Needs a Python (PYTHON, default python3) with jax + a CUDA plugin (jax >= 0.11.2), flax, optax, chex,
# orbax-checkpoint, torch + torchvision with CUDA, opencv-python-headless, pillow and scikit-image.
# TensorFlow is not needed: the run blocks it (sys.modules["tensorflow"] = None), so an import anywhere fails.
# Writes throughput_gpu.json, throughput_gpu.md and log.txt to THROUGHPUT_OUT (default: $OUT if set, else
# runs/throughput_gpu). Exits non-zero if a preflight check fails or the frameworks disagree in a stage.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${THROUGHPUT_OUT:-${OUT:-runs/throughput_gpu}}
mkdir -p "$out"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# JAX grows its GPU memory on demand instead of reserving 75 % of the card, so PyTorch can share it.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
"$python" - <<'EOF'
import sys
sys.modules["tensorflow"] = None
import jax, torch
jax.config.update("jax_platforms", "cuda")
problems = []
try:
    devices = jax.devices()
except Exception as error:  # RuntimeError, or an AssertionError when no CUDA plugin is installed
    devices, problems = [], [f"JAX sees no CUDA device ({type(error).__name__}: {error})"]
if not torch.cuda.is_available():
    problems.append("torch.cuda.is_available() is False")
print(f"jax {jax.__version__} {devices}; torch {torch.__version__}"
      + (f" {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
if problems:
    sys.exit("preflight failed: " + "; ".join(problems))
EOF

set -o pipefail
"$python" -c 'import sys; sys.modules["tensorflow"] = None
from benchmarks.throughput.__main__ import main
sys.exit(main(sys.argv[1:]))' --device gpu --precision highest \
  --json "$out/throughput_gpu.json" --markdown "$out/throughput_gpu.md" "$@" 2>&1 | tee "$out/log.txt"
