"""XLA:CPU settings for training, applied by ``python -m train.main`` (and the benchmark's training rows).

One setting: convolutions run on XLA's own (Eigen) kernels instead of the YNNPACK library fusion that jaxlib
0.12 picks by default (``--xla_cpu_experimental_ynn_fusion_type=-INDIVIDUAL_CONVOLUTION``). The kernel
gradient gains most (measurements in BENCHMARKS.md; the training rows of ``python -m benchmarks.throughput``
show the effect on whole steps). Inference does not gain and sometimes loses (ArtMiner's cached detection, a
large-kernel correlation), so only the training entry point sets it; the flag is process-wide.

XLA reads ``XLA_FLAGS`` once, when JAX starts its first backend, so the flag is added only if no backend has
started yet, the user's ``XLA_FLAGS`` does not set the same option, jaxlib is 0.12 or newer (older releases may
not know the flag, and XLA aborts on unknown flags) and ``ARTDUP_XLA_CPU_DEFAULTS`` is not ``0``. It changes
nothing on GPU.
"""

from __future__ import annotations

import os

import jaxlib

CONVOLUTION_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-INDIVIDUAL_CONVOLUTION"
OPT_OUT = "ARTDUP_XLA_CPU_DEFAULTS"
_FIRST_JAXLIB = (0, 12)


def _jaxlib_version() -> tuple[int, ...]:
    parts = []
    for part in jaxlib.__version__.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # private module moved: assume not started (a late flag is ignored, not harmful)
        return False
    return xla_bridge.backends_are_initialized()


def apply_training_defaults(environ=os.environ) -> bool:
    """Add :data:`CONVOLUTION_FLAG` to ``XLA_FLAGS`` where it can still take effect; True if it was added.

    ``environ``: this process's environment (checked: no JAX backend started yet) or a child process's.
    """
    flags = environ.get("XLA_FLAGS", "")
    if (environ.get(OPT_OUT, "1") == "0" or "xla_cpu_experimental_ynn_fusion_type" in flags
            or _jaxlib_version() < _FIRST_JAXLIB or (environ is os.environ and _backends_started())):
        return False
    environ["XLA_FLAGS"] = f"{flags} {CONVOLUTION_FLAG}".strip()
    return True
