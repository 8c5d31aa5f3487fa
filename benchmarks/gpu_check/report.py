"""The check's Markdown report: the card, the summary table (each part's status, time and budget), then each part."""

from __future__ import annotations


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def summary_table(parts: list[dict]) -> str:
    lines = ["| part | status | time (s) | limit (s) | budget (s) | result |", "|---|---|---|---|---|---|"]
    for part in parts:
        lines.append(f"| {part['name']} | {part['status']} | {part.get('seconds', 0):.0f} | "
                     f"{part.get('limit_s', 0):.0f} | {part.get('budget_s', 0):.0f} | "
                     f"{part.get('summary', '').replace('|', '/')} |")
    total = sum(p.get("seconds", 0) for p in parts)
    lines.append(f"| total | | {total:.0f} | | {sum(p.get('budget_s', 0) for p in parts):.0f} | |")
    return "\n".join(lines)


def _machine(preflight: dict) -> str:
    if not preflight:
        return "Machine: preflight did not report."
    cards = preflight.get("nvidia_smi")
    card = (", ".join(f"{c['name']} ({c['memory_mib'] / 1024:.0f} GiB, driver {c['driver']})" for c in cards)
            if isinstance(cards, list) else (cards or "no GPU (dry run)"))
    modules = preflight.get("modules", {})
    versions = ", ".join(f"{k} {modules[k]}" for k in ("jax", "jaxlib", "flax", "optax", "torch", "torchvision", "cv2",
                                                        "numpy") if modules.get(k))
    return (f"Machine: {card}; {preflight.get('cpus')} CPUs; Python {preflight.get('python')}; {versions}; "
            f"JAX devices {preflight.get('jax_devices')}; PyTorch device {preflight.get('torch_device', 'cpu')}.")


def _parity(result: dict) -> list[str]:
    lines = ["| family | case | max abs diff | max rel diff | tolerance | ok |", "|---|---|---|---|---|---|"]
    for row in result.get("cases", {}).get("rows", []):
        ok = ("ok" if row["ok"] else "FAILED") if row.get("checked", True) else "(info)"
        lines.append(f"| {row['family']} | {row['case']} | {_fmt(row.get('max_abs_diff'))} | "
                     f"{_fmt(row.get('max_rel_diff'))} | {_fmt(row.get('tolerance_rel'))} | {ok}"
                     + (f": {row['error']}" if row.get("error") else "") + " |")
    tests = result.get("pytest", {})
    lines += ["", f"pytest (`{result.get('pytest_command', '')}`, JAX on the device, PyTorch on the CPU, "
                  f"JAX_DEFAULT_MATMUL_PRECISION=highest): {tests.get('passed', 0)} passed, {tests.get('failed', 0)} "
                  f"failed, {tests.get('skipped', 0)} skipped in {tests.get('seconds', 0):.0f} s"
              + (f"; failing: {', '.join(tests['failing'])}" if tests.get("failing") else "")
              + (f"; {tests['error']}" if tests.get("error") else ".")]
    return lines


def _throughput(result: dict) -> list[str]:
    from benchmarks.throughput.harness import summary_markdown

    report = result.get("report", {})
    lines = ["| stage | status | time (s) | limit (s) |", "|---|---|---|---|"]
    for name, stage in result.get("stages", {}).items():
        lines.append(f"| {name} | {stage['status']}{': ' + stage['error'] if stage.get('error') else ''} | "
                     f"{_fmt(stage.get('seconds'))} | {_fmt(stage.get('limit_s'))} |")
    if report.get("results"):
        lines += ["", f"Command: `{report.get('command')}`; per-case tables in `throughput.md`. bf16 rows: float32 "
                      "weights, bfloat16 compute; agreement = each bf16 output against PyTorch float32 (max rel diff "
                      "<= 5e-2, per-cell cosine >= 0.99).", "", summary_markdown(report["results"])]
    return lines


def _training(result: dict) -> list[str]:
    lines = ["| method | sizes | status | steps | steps/s | first log (s) | peak device MiB | loss (step: value) |",
             "|---|---|---|---|---|---|---|---|"]
    for method, run in result.get("runs", {}).items():
        losses = run.get("losses") or []
        shown = losses if len(losses) <= 7 else losses[:3] + losses[-4:]
        curve = ", ".join(f"{s}: {_fmt(v, 4)}" for s, v in shown)
        lines.append(f"| {method} | {run.get('sizes', '')} | {run['status']}"
                     + (f" ({run['error']})" if run.get("error") else "")
                     + f" | {run.get('steps', 0)}/{_fmt(run.get('target_steps'))} | {_fmt(run.get('steps_per_s'))} | "
                     f"{_fmt(run.get('first_step_s'))} | {_fmt(run.get('peak_mib'), 4)} | {curve} |")
    devices = {str(r.get("devices")) for r in result.get("runs", {}).values() if r.get("devices")}
    lines += ["", "steps/s: median over the logged intervals after the first (which includes compilation); peak "
                  "device memory: `memory_stats()['peak_bytes_in_use']` of each device after the run; data-parallel "
                  f"over {', '.join(devices) or 'the devices JAX sees'}."]
    return lines


def _scale(result: dict) -> list[str]:
    lines = [f"Ran: `{result.get('ran', 'nothing')}`."]
    if result.get("markdown"):
        lines += ["", result["markdown"].strip()]
    elif result.get("report", {}) and result["report"].get("results"):
        from benchmarks.throughput.harness import summary_markdown

        lines += ["", summary_markdown(result["report"]["results"])]
    return lines


def to_markdown(check: dict) -> str:
    parts = check["parts"]
    by_name = {p["name"]: p for p in parts}
    lines = [f"# GPU check{' (dry run on the CPU)' if check['dry_run'] else ''}", "",
             f"Command: `{check['command']}`; started {check['started']}; {check['seconds']:.0f} s of "
             f"{check['max_seconds']:.0f}.", "", _machine(by_name.get("preflight", {}).get("report", {})), "",
             "## Summary", "", summary_table(parts), ""]
    sections = {"preflight": None, "parity": _parity, "throughput": _throughput, "training": _training,
                "scale": _scale}
    for part in parts:
        render = sections.get(part["name"])
        lines += [f"## {part['title']}", "", f"Status: **{part['status']}**. {part.get('summary', '')}", ""]
        if part["name"] == "preflight":
            report = part.get("report", {})
            wheels = part.get("wheels", {})
            lines += [f"Wheels installed from the wheelhouse: {', '.join(wheels.get('installed', [])) or 'none'}; "
                      f"already present: {', '.join(wheels.get('present', [])) or 'none'}; missing with no wheel: "
                      f"{', '.join(wheels.get('absent', [])) or 'none'}. Carried: wheelhouse "
                      f"{part.get('wheelhouse_mib', 0):.1f} MiB, working tree about {part.get('tree_mib', 0):.1f} MiB.",
                      ""]
            for item in report.get("problems", []) + report.get("warnings", []):
                lines.append(f"* {item}")
            lines.append("")
        elif render and part.get("status") not in ("not run",):
            lines += render(part) + [""]
    return "\n".join(lines)
