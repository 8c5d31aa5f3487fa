"""A small timer for comparing implementations of one stage on the same inputs.

Every candidate is a zero-argument callable closed over the shared inputs. The first call of each is timed
on its own (for JAX it includes tracing and compilation), then all candidates run ``warmup`` rounds and
``repeats`` timed rounds, interleaved and in a rotating order so that drift in machine load hits them
alike. JAX outputs are blocked on before the clock stops. A case reports, per candidate, the first-call
time, the median and the spread (quartiles, min, max), the speed-up of the subject over each other
candidate, stage-specific quality metrics and the stage's agreement check.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

import jax
import numpy as np


def configure_threads(num_threads: int | None = None) -> int:
    """Give PyTorch and OpenCV the same thread count as XLA:CPU (one intra-op thread per core).

    XLA sizes its CPU pool from the core count when JAX starts; torch and OpenCV are set to match.
    """
    num_threads = num_threads or os.cpu_count() or 1
    try:
        import torch

        torch.set_num_threads(num_threads)
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(num_threads)
    except ImportError:
        pass
    return num_threads


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, library versions, JAX device, thread counts."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    try:
        import cv2

        info["opencv"] = cv2.__version__
        info["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        info["opencv"] = None
    return info


def _call(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def _summary(times: list[float], first_call: float) -> dict[str, float]:
    q1, median, q3 = (np.percentile(times, [25, 50, 75]) if len(times) > 1 else (times[0],) * 3)
    return {
        "first_call_s": first_call,
        "median_s": float(median),
        "q1_s": float(q1),
        "q3_s": float(q3),
        "min_s": float(min(times)),
        "max_s": float(max(times)),
        "repeats": len(times),
    }


def time_candidates(candidates: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1):
    """Time each candidate; returns ``({name: timing dict}, {name: last output})``."""
    names = list(candidates)
    first, outputs = {}, {}
    for name in names:
        first[name], outputs[name] = _call(candidates[name])
    for _ in range(warmup):
        for name in names:
            _call(candidates[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            elapsed, outputs[name] = _call(candidates[name])
            times[name].append(elapsed)
    return {name: _summary(times[name], first[name]) for name in names}, outputs


def run_case(stage: str, case: str, candidates: dict[str, Callable[[], Any]], *, subject: str,
             repeats: int, warmup: int = 1, params: dict | None = None,
             metrics: Callable[[str, Any], dict] | None = None,
             agreement: Callable[[dict[str, Any]], dict] | None = None) -> dict[str, Any]:
    """Time ``candidates`` on one input set and check them.

    Args:
      stage, case: labels.
      candidates: ``{name: zero-argument callable}``, all computing the same thing on the same inputs.
      subject: the candidate the speed-ups are quoted for (ours).
      repeats, warmup: timed rounds and untimed rounds after the first call.
      params: input description recorded with the result.
      metrics: ``(name, output) -> {metric: value}`` quality numbers per candidate (e.g. corner error).
      agreement: ``{name: output} -> {"ok": bool, ...}`` the stage's cross-check of the outputs.
    Returns:
      A JSON-serialisable dict (see :func:`to_markdown` for how it is shown).
    """
    timings, outputs = time_candidates(candidates, repeats=repeats, warmup=warmup)
    subject_median = timings[subject]["median_s"]
    return {
        "stage": stage,
        "case": case,
        "params": params or {},
        "subject": subject,
        "timings": timings,
        "speedup": {name: t["median_s"] / subject_median for name, t in timings.items()},
        "metrics": {name: (metrics(name, out) if metrics else {}) for name, out in outputs.items()},
        "agreement": agreement(outputs) if agreement else {"ok": True},
    }


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.3g}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


def to_markdown(results: list[dict], machine: dict, command: str | None = None) -> str:
    """One table per case: timings (ms), spread, speed-up of the subject, metrics; then the agreement."""
    lines = ["# Throughput", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores; jax {machine.get('jax')} "
              f"({machine.get('jax_backend')}: {', '.join(machine.get('jax_devices', []))}), "
              f"torch {machine.get('torch')} ({machine.get('torch_threads')} threads), "
              f"OpenCV {machine.get('opencv')} ({machine.get('opencv_threads')} threads), "
              f"numpy {machine.get('numpy')}, Python {machine.get('python')}.", ""]
    for r in results:
        lines.append(f"## {r['stage']}: {r['case']}")
        lines.append("")
        if r["params"]:
            lines.append("Inputs: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()))
            lines.append("")
        metric_names = sorted({m for ms in r["metrics"].values() for m in ms})
        header = (["implementation", "first call (ms)", "median (ms)", "IQR (ms)", "min–max (ms)",
                   f"time / {r['subject']}"] + metric_names)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for name, t in r["timings"].items():
            row = [name, _fmt_seconds(t["first_call_s"]), _fmt_seconds(t["median_s"]),
                   f"{_fmt_seconds(t['q1_s'])}–{_fmt_seconds(t['q3_s'])}",
                   f"{_fmt_seconds(t['min_s'])}–{_fmt_seconds(t['max_s'])}",
                   f"{r['speedup'][name]:.2f}×"]
            row += [_fmt(r["metrics"][name].get(m, "")) for m in metric_names]
            lines.append("| " + " | ".join(row) + " |")
        agreement = r["agreement"]
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in agreement.items() if k != "ok")
        lines += ["", f"Agreement: **{'ok' if agreement['ok'] else 'FAILED'}**" + (f" ({details})" if details else ""),
                  ""]
    return "\n".join(lines)
