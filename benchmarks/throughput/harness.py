"""A small timer for comparing implementations of one stage on the same inputs.

Every candidate is a zero-argument callable closed over the shared inputs. The first call of each is timed
on its own (for JAX it includes tracing and compilation), then all candidates run ``warmup`` rounds and
``repeats`` timed rounds, interleaved and in a rotating order so that drift in machine load hits them
alike. JAX outputs are blocked on, and CUDA work of PyTorch synchronised, before the clock stops. A case
reports, per candidate, the first-call time, the median and the spread (quartiles, min, max), the speed-up
of the subject over each other candidate, stage-specific quality metrics and the stage's agreement check;
optionally items per second, achieved FLOP/s, peak memory and the JAX compile time.

Candidates are named ``"jax ..."``, ``"torch ..."`` or after another library (``"cv2 ..."``); the first
word tells the harness which framework to synchronise and how to measure memory.

Memory: on CPU, the process's resident-set high-water mark during one extra call of each candidate
(``/proc/self/clear_refs`` resets the mark), reported as the peak and as the rise over the resident set
just before the call. On GPU, ``torch.cuda.max_memory_allocated`` for PyTorch, and for JAX the size XLA
plans for the compiled call (arguments + outputs + temporaries, ``compiled.memory_analysis()``), since
JAX's allocator keeps only a lifetime peak.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from typing import Any, Callable

import jax
import numpy as np

from artdup_jax.data.host_memory import release_free_heap
from benchmarks.proc_status import status_kib

MIB = 2.0**20


# ------------------------------------------------------------------------------------------ configuration


def _usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def configure_threads(num_threads: int | None = None) -> int:
    """Give PyTorch and OpenCV the same thread count as XLA:CPU (one intra-op thread per core).

    XLA sizes its CPU pool from the cores the process may use when JAX starts; torch and OpenCV are set to
    match. ``num_threads`` below that count also restricts the process to its first ``num_threads`` cores
    (CPU affinity), which is the only way to shrink XLA's pool: call it before JAX's first computation.
    """
    cores = _usable_cores()
    if num_threads and num_threads < len(cores) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores[:num_threads])
    num_threads = num_threads or len(cores)
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


def configure_device(device: str) -> None:
    """Select JAX's platform (``"cpu"`` or ``"gpu"``) before any JAX computation runs.

    On GPU, JAX's allocator grows on demand instead of reserving 75 % of the card, so PyTorch can share it.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax.config.update("jax_platforms", "cuda" if device == "gpu" else "cpu")


def configure_precision(precision: str = "highest") -> None:
    """float32 matmuls and convolutions in full precision in both frameworks (``"highest"``), or each
    framework's default (``"default"``: TF32 on recent NVIDIA GPUs). No effect on CPU."""
    if precision not in ("highest", "default"):
        raise ValueError(f"precision must be 'highest' or 'default', got {precision!r}")
    jax.config.update("jax_default_matmul_precision", "highest" if precision == "highest" else None)
    try:
        import torch
    except ImportError:
        return
    allow_tf32 = precision == "default"
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32


def torch_device(device: str):
    """The PyTorch device matching ``device`` (``"cpu"`` or ``"gpu"``)."""
    import torch

    return torch.device("cuda" if device == "gpu" else "cpu")


def framework(name: str) -> str:
    """``"jax"``, ``"torch"`` or ``"other"`` from a candidate's name (its first word)."""
    first = name.split()[0].lower() if name else ""
    return first if first in ("jax", "torch") else "other"


def _torch_cuda():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch
    return None


def synchronise() -> None:
    """Wait for queued CUDA work of PyTorch (JAX outputs are blocked on separately)."""
    torch = _torch_cuda()
    if torch is not None:
        torch.cuda.synchronize()


# -------------------------------------------------------------------------------------------- machine


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
        "matmul_precision": jax.config.jax_default_matmul_precision or "default",
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "libgomp default (spin, then sleep)"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["torch_cuda_device"] = torch.cuda.get_device_name()
            info["torch_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    except ImportError:
        info["torch"] = None
    try:
        import cv2

        info["opencv"] = cv2.__version__
        info["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        info["opencv"] = None
    return info


# ------------------------------------------------------------------------------------- XLA statistics


def compiled_stats(jitted: Callable, *args, **kwargs) -> dict[str, float]:
    """Compile ``jitted`` for these arguments ahead of time; FLOPs, bytes and compile time.

    Returns ``{"flops", "bytes_accessed", "compile_s", "argument_bytes", "output_bytes", "temp_bytes",
    "xla_bytes"}``: XLA's own count for one call (``cost_analysis``; every op, not only matmuls and convs) and
    memory plan (``memory_analysis``; ``xla_bytes`` = arguments + outputs + temporaries - aliased).
    """
    start = time.perf_counter()
    lowered = jitted.lower(*args, **kwargs)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    cost = cost or {}
    stats = {"flops": float(cost.get("flops", 0.0)), "bytes_accessed": float(cost.get("bytes accessed", 0.0)),
             "compile_s": compile_s}
    memory = compiled.memory_analysis()
    if memory is not None:
        stats.update(argument_bytes=float(memory.argument_size_in_bytes),
                     output_bytes=float(memory.output_size_in_bytes),
                     temp_bytes=float(memory.temp_size_in_bytes))
        stats["xla_bytes"] = (stats["argument_bytes"] + stats["output_bytes"] + stats["temp_bytes"]
                              - float(memory.alias_size_in_bytes))
    return stats


# ------------------------------------------------------------------------------------------------ memory


def _reset_rss_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux >= 4.0: reset VmHWM to the current resident set
        return True
    except OSError:
        return False


def measured_call(name: str, fn: Callable[[], Any], compiled: dict | None = None) -> tuple[float, Any, dict]:
    """``_call(fn)`` that also measures candidate ``name``'s peak memory (module docstring); returns
    ``(seconds, output, memory dict)``. The memory bookkeeping happens outside the timed span."""
    kind = framework(name)
    torch = _torch_cuda()
    if jax.default_backend() != "cpu" or torch is not None:
        if kind == "torch" and torch is not None:
            synchronise()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            elapsed, out = _call(fn)
            peak = torch.cuda.max_memory_allocated()
            return elapsed, out, {"method": "torch.cuda.max_memory_allocated", "peak_mib": peak / MIB,
                                  "delta_mib": (peak - before) / MIB}
        elapsed, out = _call(fn)
        if kind == "jax" and compiled and "xla_bytes" in compiled:
            return elapsed, out, {"method": "XLA memory_analysis", "peak_mib": compiled["xla_bytes"] / MIB,
                                  "delta_mib": (compiled["xla_bytes"] - compiled.get("argument_bytes", 0.0)) / MIB}
        return elapsed, out, {"method": "n/a"}
    gc.collect()
    release_free_heap()  # freed heap pages back to the OS, so a call's working set shows as a rise of the RSS
    if not _reset_rss_high_water_mark():
        return (*_call(fn), {"method": "n/a"})
    before = status_kib("VmRSS")
    elapsed, out = _call(fn)
    peak = status_kib("VmHWM")
    if before is None or peak is None:
        return elapsed, out, {"method": "n/a"}
    return elapsed, out, {"method": "process RSS high-water mark", "peak_mib": peak / 1024,
                          "delta_mib": (peak - before) / 1024}


# ---------------------------------------------------------------------------------------------- timing


def _call(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    synchronise()
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


def time_candidates(candidates: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1,
                    memory: dict[str, dict | None] | None = None):
    """Time each candidate; returns ``({name: timing dict}, {name: last output})``.

    ``memory``: ``{name: compiled stats or None}`` of the candidates whose peak memory is measured during
    their first call (``measured_call``); the results go to the timing dicts' ``"memory"`` entry.
    """
    names = list(candidates)
    first, outputs, used = {}, {}, {}
    for name in names:
        if memory is not None and name in memory:
            first[name], outputs[name], used[name] = measured_call(name, candidates[name], memory[name])
        else:
            first[name], outputs[name] = _call(candidates[name])
    for _ in range(warmup):
        for name in names:
            _call(candidates[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            elapsed, outputs[name] = _call(candidates[name])
            times[name].append(elapsed)
    timings = {name: _summary(times[name], first[name]) for name in names}
    for name, m in used.items():
        timings[name]["memory"] = m
    return timings, outputs


def run_case(stage: str, case: str, candidates: dict[str, Callable[[], Any]], *, subject: str,
             repeats: int, agreement: Callable[[dict[str, Any]], dict], warmup: int = 1,
             params: dict | None = None, metrics: Callable[[str, Any], dict] | None = None,
             items: tuple[int, str] | None = None, baseline: str | None = None,
             compiled: dict[str, dict] | None = None, flops: float | dict[str, float] | None = None,
             memory: bool = False) -> dict[str, Any]:
    """Time ``candidates`` on one input set and check them.

    Args:
      stage, case: labels.
      candidates: ``{name: zero-argument callable}``, all computing the same thing on the same inputs.
      subject: the candidate the speed-ups are quoted for (ours).
      repeats, warmup: timed rounds and untimed rounds after the first call.
      params: input description recorded with the result.
      metrics: ``(name, output) -> {metric: value}`` quality numbers per candidate (e.g. corner error).
      agreement: ``{name: output} -> {"ok": bool, ...}`` the stage's cross-check of the outputs (required:
        a case is never reported as agreeing unchecked); a ``max_abs_diff`` entry is shown in the table.
      items: ``(count, unit)`` processed by one call (e.g. ``(32, "pairs")``): adds items per second.
      baseline: the candidate the summary table sets against the subject (default: the first PyTorch one,
        else the first of another library).
      compiled: ``{name: compiled_stats(...)}`` for JAX candidates: compile time, XLA memory plan, FLOPs.
      flops: FLOPs of one call, shared by all candidates or ``{name: flops}`` (default: the subject's
        ``compiled`` count). Gives the achieved FLOP/s.
      memory: also measure each candidate's peak memory, during its first call (``measured_call``). JAX
        candidates should then be compiled beforehand (``compiled``), or compilation counts too.
    Returns:
      A JSON-serialisable dict (see :func:`to_markdown` for how it is shown).
    """
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    compiled = compiled or {}
    timings, outputs = time_candidates(candidates, repeats=repeats, warmup=warmup,
                                       memory={n: compiled.get(n) for n in candidates} if memory else None)
    subject_median = timings[subject]["median_s"]
    result = {
        "stage": stage,
        "case": case,
        "params": params or {},
        "subject": subject,
        "timings": timings,
        "speedup": {name: t["median_s"] / subject_median for name, t in timings.items()},
        "metrics": {name: (metrics(name, out) if metrics else {}) for name, out in outputs.items()},
        "agreement": agreement(outputs),
    }
    if load_before is not None:
        result["load_average_1min"] = [load_before, os.getloadavg()[0]]  # other processes on the machine
    # The summary's comparison: PyTorch if it ran, else the first other library (OpenCV), else another JAX one.
    result["baseline"] = baseline or next((n for n in timings if framework(n) == "torch"),
                                          next((n for n in timings if framework(n) == "other"),
                                               next((n for n in timings if n != subject), subject)))
    if items is not None:
        count, unit = items
        result["items"] = {"count": int(count), "unit": unit}
        result["throughput"] = {name: count / t["median_s"] for name, t in timings.items()}
    if flops is None and subject in compiled and compiled[subject].get("flops"):
        flops = compiled[subject]["flops"]
    if flops is not None:
        per_call = flops if isinstance(flops, dict) else {name: float(flops) for name in timings}
        result["flops_per_call"] = per_call
        result["achieved_gflops"] = {name: per_call[name] / t["median_s"] / 1e9
                                     for name, t in timings.items() if name in per_call}
    if compiled:
        result["compile_s"] = {name: s["compile_s"] for name, s in compiled.items() if "compile_s" in s}
        result["xla"] = compiled
    if memory:
        result["memory"] = {name: timings[name].pop("memory") for name in candidates}
    return result


# -------------------------------------------------------------------------------------------- checks


def max_abs_diff(a, b) -> float:
    """Largest absolute difference of two arrays of the same shape (inf if the shapes differ)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")


def to_numpy(x) -> np.ndarray:
    """A JAX array, PyTorch tensor (any device) or NumPy array as NumPy."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def nchw_to_nhwc(x) -> np.ndarray:
    return np.transpose(to_numpy(x), (0, 2, 3, 1))


def relative_agreement(pairs: dict[str, tuple[Any, Any]], tolerance: float) -> dict[str, Any]:
    """``{name: (ours, theirs)}`` -> max abs diff per output and over all, relative to the largest |value|.

    ok when every output's ``max |ours - theirs| <= tolerance * max |theirs|``.
    """
    checks: dict[str, Any] = {}
    ok, worst, worst_relative = True, 0.0, 0.0
    for name, (ours, theirs) in pairs.items():
        ours, theirs = to_numpy(ours), to_numpy(theirs)
        diff = max_abs_diff(ours, theirs)
        scale = max(float(np.abs(theirs).max()), 1e-30) if theirs.size else 1.0
        checks[f"{name}_max_abs_diff"] = diff
        worst, worst_relative = max(worst, diff), max(worst_relative, diff / scale)
        ok = ok and diff <= tolerance * scale
    checks.update(max_abs_diff=worst, max_rel_diff=worst_relative, tolerance_rel=tolerance, ok=ok)
    return checks


def keeping_first_outputs(candidates: dict[str, Callable[[], Any]]) -> tuple[dict[str, Callable[[], Any]], dict]:
    """Wrap candidates so that each one's *first* output is kept: ``(wrapped candidates, {name: output})``.

    For training steps, which change their own state: only the first call of each starts from the shared
    weights, so only its outputs can be compared.
    """
    first: dict[str, Any] = {}

    def keeping(name, fn):
        def call():
            out = fn()
            first.setdefault(name, out)
            return out
        return call

    return {name: keeping(name, fn) for name, fn in candidates.items()}, first


def first_step_agreement(first: dict[str, dict], losses: tuple[str, ...], *, loss_tolerance: float,
                         grad_norm_tolerance: float, subject: str = "jax", reference: str = "torch") -> dict:
    """Relative differences of a training step's first losses and gradient norm (``first``: the outputs of
    ``keeping_first_outputs``, dicts of scalars with ``"grad_norm"`` and every name in ``losses``).

    ok when every loss is within ``loss_tolerance`` and the gradient norm within ``grad_norm_tolerance``.
    """
    ours = {k: float(v) for k, v in first[subject].items()}
    theirs = {k: float(v) for k, v in first[reference].items()}
    checks: dict[str, Any] = {}
    for name in losses:
        checks[f"{name}_rel_diff"] = abs(ours[name] - theirs[name]) / max(abs(theirs[name]), 1e-12)
    checks["grad_norm_rel_diff"] = abs(ours["grad_norm"] - theirs["grad_norm"]) / max(theirs["grad_norm"], 1e-12)
    checks["max_abs_diff"] = abs(ours["loss"] - theirs["loss"])
    checks["first_step_loss"] = theirs["loss"]
    checks["first_step_grad_norm"] = theirs["grad_norm"]
    checks["ok"] = (max(checks[f"{name}_rel_diff"] for name in losses) <= loss_tolerance
                    and checks["grad_norm_rel_diff"] <= grad_norm_tolerance and theirs["grad_norm"] > 0)
    return checks


# --------------------------------------------------------------------------------------------- report


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


def _matmul_peak(results: list[dict]) -> float | None:
    """The device's float32 peak (GFLOP/s): the faster framework in the ``peak`` stage, if it ran."""
    peaks = [max(r["achieved_gflops"].values()) for r in results
             if r["stage"] == "peak" and r.get("achieved_gflops")]
    return max(peaks) if peaks else None


def _memory_text(r: dict, name: str) -> str:
    m = r.get("memory", {}).get(name, {})
    return f"{m['peak_mib']:.0f} (+{m['delta_mib']:.0f})" if "peak_mib" in m else ""


def summary_markdown(results: list[dict]) -> str:
    """One row per case: subject vs baseline throughput, their ratio, agreement, FLOP/s, memory."""
    peak = _matmul_peak(results)
    header = ["stage", "case", "JAX", "PyTorch / other", "JAX speed-up", "agreement (max abs diff)",
              "JAX GFLOP/s" + (" (% peak)" if peak else ""), "other GFLOP/s" + (" (% peak)" if peak else ""),
              "peak MiB JAX / other (rise)", "JAX compile (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['stage']} | {r['case']} | not measured: {r['skipped']} |" + " |" * (len(header) - 3))
            continue
        subject, baseline = r["subject"], r["baseline"]

        def rate(name):
            if "throughput" in r:
                return f"{r['throughput'][name]:.3g} {r['items']['unit']}/s"
            return f"{_fmt_seconds(r['timings'][name]['median_s'])} ms"

        def gflops(name):
            g = r.get("achieved_gflops", {}).get(name)
            if g is None:
                return ""
            return f"{g:.3g}" + (f" ({100 * g / peak:.0f} %)" if peak else "")

        agreement = r["agreement"]
        diff = agreement.get("max_abs_diff")
        agree = ("ok" if agreement["ok"] else "FAILED") + (f" ({diff:.2g})" if diff is not None else "")
        memory = " / ".join(t for t in (_memory_text(r, subject), _memory_text(r, baseline)) if t)
        compile_s = r.get("compile_s", {}).get(subject)
        row = [r["stage"], r["case"], f"{rate(subject)}", f"{rate(baseline)} ({baseline})",
               f"{r['speedup'][baseline]:.2f}×", agree, gflops(subject), gflops(baseline), memory,
               "" if compile_s is None else f"{compile_s:.2g}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def to_markdown(results: list[dict], machine: dict, command: str | None = None) -> str:
    """A summary table, then one table per case: timings (ms), spread, speed-up of the subject, items/s,
    GFLOP/s, memory, metrics; then the agreement."""
    lines = ["# Throughput", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores; jax {machine.get('jax')} "
              f"({machine.get('jax_backend')}: {', '.join(machine.get('jax_devices', []))}), "
              f"torch {machine.get('torch')} ({machine.get('torch_threads')} threads"
              + (f", {machine['torch_cuda_device']}" if machine.get("torch_cuda_device") else "") + "), "
              f"OpenCV {machine.get('opencv')} ({machine.get('opencv_threads')} threads), "
              f"numpy {machine.get('numpy')}, Python {machine.get('python')}; "
              f"matmul precision {machine.get('matmul_precision', 'default')}; "
              f"OMP_WAIT_POLICY {machine.get('omp_wait_policy')}; 1-min load average "
              f"{_fmt(machine.get('load_average_1min'))} at the start"
              + (f", {_fmt(machine['load_average_1min_end'])} at the end" if "load_average_1min_end" in machine
                 else "") + ".", ""]
    if any("speedup" in r for r in results):
        lines += ["## Summary", "",
                  "JAX speed-up = PyTorch (or other) median time / JAX median time; > 1 means JAX is faster. "
                  "FLOPs are XLA's count for the JAX program, used for both columns; % peak is relative to "
                  "the faster framework's float32 matmul (stage `peak`). Memory: peak in MiB and its rise "
                  "during one call.", "", summary_markdown(results), ""]
    for r in results:
        lines.append(f"## {r['stage']}: {r['case']}")
        lines.append("")
        if "skipped" in r:
            lines += [f"Not measured: {r['skipped']}", ""]
            continue
        if r["params"]:
            lines.append("Inputs: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()))
            lines.append("")
        metric_names = sorted({m for ms in r["metrics"].values() for m in ms})
        extra = []
        if "throughput" in r:
            extra.append(f"{r['items']['unit']}/s")
        if "achieved_gflops" in r:
            extra.append("GFLOP/s")
        if "memory" in r:
            extra.append("peak MiB (rise)")
        header = (["implementation", "first call (ms)", "median (ms)", "IQR (ms)", "min–max (ms)",
                   f"time / {r['subject']}"] + extra + metric_names)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for name, t in r["timings"].items():
            row = [name, _fmt_seconds(t["first_call_s"]), _fmt_seconds(t["median_s"]),
                   f"{_fmt_seconds(t['q1_s'])}–{_fmt_seconds(t['q3_s'])}",
                   f"{_fmt_seconds(t['min_s'])}–{_fmt_seconds(t['max_s'])}",
                   f"{r['speedup'][name]:.2f}×"]
            if "throughput" in r:
                row.append(f"{r['throughput'][name]:.3g}")
            if "achieved_gflops" in r:
                row.append(_fmt(r["achieved_gflops"].get(name)) if name in r["achieved_gflops"] else "")
            if "memory" in r:
                row.append(_memory_text(r, name))
            row += [_fmt(r["metrics"][name].get(m, "")) for m in metric_names]
            lines.append("| " + " | ".join(row) + " |")
        notes = []
        if r.get("compile_s"):
            notes.append("JAX compile (ahead of time): "
                         + ", ".join(f"{n} {s:.3g} s" for n, s in r["compile_s"].items()))
        if "flops_per_call" in r:
            per_call = set(r["flops_per_call"].values())
            notes.append("FLOPs per call: " + ", ".join(f"{f / 1e9:.4g} G" for f in sorted(per_call)))
        if "memory" in r:
            methods = {m.get("method") for m in r["memory"].values()} - {"n/a"}
            if methods:
                notes.append("memory: " + ", ".join(sorted(methods)))
        if notes:
            lines += ["", "; ".join(notes) + "."]
        agreement = r["agreement"]
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in agreement.items() if k != "ok")
        lines += ["", f"Agreement: **{'ok' if agreement['ok'] else 'FAILED'}**" + (f" ({details})" if details else ""),
                  ""]
    return "\n".join(lines)
