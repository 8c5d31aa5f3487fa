"""``python -m benchmarks.scale``: the collection index end to end at growing collection sizes.

See the package docstring. Prints a Markdown table (also ``--markdown``) and writes every figure to ``--json``
(both rewritten after each size). Exit 1 when a stage failed; a size skipped or stopped at the ``--max-seconds``
budget is not a failure (its row says so)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.scale.measure import measure_size

TINY_SIZES = (40,)
TINY_CATEGORIES = 3  # 17 stored planted copies + 23 distractors
# The throughput benchmark's discovery settings (sized for CPUs and random weights; see the package docstring).
SCALE_SETTINGS = ["--scales", "20", "16", "12", "--reference-cells", "16", "--margin", "2", "--no-saliency"]
THRESHOLD = "0.2"
EXTRAPOLATE_TO = 100_000


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,10000", help="collection sizes, comma-separated")
    p.add_argument("--image-size", type=_size, default=(128, 160), metavar="HxW", help="pixels of every image")
    p.add_argument("--out", default="runs/scale", help="collections, indexes and logs (per size)")
    p.add_argument("--json", default=None, help="every figure (default OUT/scale.json)")
    p.add_argument("--markdown", default=None, help="the table (default OUT/scale.md)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time budget: a size is skipped when the rates measured at the previous size say it would "
                        "not fit what is left; a running stage is stopped at the budget")
    p.add_argument("--tiny", "--quick", action="store_true", help=f"one collection of {TINY_SIZES[0]} images (CI)")
    p.add_argument("--release-settings", action="store_true",
                   help="the release's feature settings (7 scales, 40-cell references) instead of 3 scales")
    p.add_argument("--random-weights", action="store_true", default=True,
                   help="random network weights (the default and only choice: features cost the same)")
    p.add_argument("--device", default=None, help="cpu: children run with JAX_PLATFORMS=cpu; else JAX's default")
    p.add_argument("--seed", type=int, default=0)
    return p


def predicted_seconds(previous: dict, num_images: int) -> float:
    """Time of ``num_images`` from ``previous``'s per-image rates (generation, build, discovery) plus its add."""
    per_image = (previous["generate_s"] + previous["build"]["seconds"] + previous["discover"]["seconds"]) \
        / previous["images"]
    fixed = previous["add"]["seconds"] + previous["discover_added"]["seconds"] + previous["info"]["seconds"]
    return per_image * num_images + fixed


def extrapolation(rows: list[dict], to: int = EXTRAPOLATE_TO) -> dict | None:
    """Build and discovery seconds at ``to`` images from the measured sizes (two or more): a least-squares line
    ``a + b N`` (``*_s``) and the per-image rate of the largest size times ``to`` (``*_s_proportional``); on a
    shared machine the load differs between sizes, so the two bracket the estimate."""
    done = [r for r in rows if r.get("status") == "ok"]
    if len({r["images"] for r in done}) < 2 or max(r["images"] for r in done) >= to:
        return None
    n = np.array([r["images"] for r in done], float)
    largest = max(done, key=lambda r: r["images"])
    out = {"images": to, "from_sizes": [int(v) for v in n]}
    for key in ("build", "discover"):
        slope, intercept = np.polyfit(n, [r[key]["seconds"] for r in done], 1)
        out[f"{key}_s"] = float(intercept + slope * to)
        out[f"{key}_s_per_image"] = float(slope)
        out[f"{key}_s_proportional"] = largest[key]["seconds"] / largest["images"] * to
    out["index_bytes"] = float(np.mean([r["index_bytes_per_image"] for r in done])) * to
    return out


def _gb(value: float) -> str:
    return f"{value / 2**30:.2f}"


def markdown(rows: list[dict], extra: dict | None, header: str) -> str:
    lines = [header, "",
             "| images | build s | images/h | features s | discover s | verified dir. pairs | pairs/s | "
             "add + discover s | peak RSS GB build / discover / add / discover | MB/image on disk | "
             "group P / R (before add) | added image in its group | load |",
             "|" + "---|" * 13]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['images']} | {r.get('status')} |" + " |" * 11)
            continue
        v = r["verification"]
        rss = " / ".join(_gb(r[k]["peak_rss_bytes"]) for k in ("build", "discover", "add", "discover_added"))
        p = r["planted"]
        added = r["added_image"]
        load = f"{r['load_before'][0]:.1f}–{r['load_after'][0]:.1f}"
        rate = f"{v['directional_pairs_per_s']:.0f}" if v["directional_pairs_per_s"] else "n/a"
        lines.append(f"| {r['images']} | {r['build']['seconds']:.0f} | {r['build_images_per_hour']:.0f} | "
                     f"{r['features_s']:.0f} | {r['discover']['seconds']:.0f} | {v['directional_pairs']} | {rate} | "
                     f"{r['add_latency_s']:.1f} | {rss} | {r['index_bytes_per_image'] / 2**20:.3f} | "
                     f"{p['group_precision']:.2f} / {p['group_recall']:.2f} | "
                     f"{added['category_members_in_its_group']} of {added['category_size']} "
                     f"| {load} |")
    if extra:
        hours = {k: f"{extra[k + '_s'] / 3600:.1f} h ({extra[k + '_s_per_image']:.3f} s per image; "
                    f"{extra[k + '_s_proportional'] / 3600:.1f} h at the largest size's rate)"
                 for k in ("build", "discover")}
        lines += ["", f"Extrapolated (not measured) to {extra['images']:,} images by a least-squares line through "
                      f"{extra['from_sizes']}: build {hours['build']}, discovery {hours['discover']}, "
                      f"index {extra['index_bytes'] / 2**30:.1f} GB."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    args = parser().parse_args(argv)
    sizes = list(TINY_SIZES) if args.tiny else [int(s) for s in args.sizes.split(",") if s]
    settings, threshold = ([], None) if args.release_settings else (SCALE_SETTINGS, THRESHOLD)
    out = Path(args.out)
    env = dict(os.environ)
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    deadline = None if args.max_seconds is None else time.time() + args.max_seconds
    rows = []
    for num_images in sizes:
        done = [r for r in rows if r.get("status") == "ok"]
        if deadline is not None and done:
            need, left = predicted_seconds(done[-1], num_images), deadline - time.time()
            if need > left:
                rows.append({"images": num_images, "status": f"skipped: ~{need:.0f} s predicted from the "
                                                             f"{done[-1]['images']}-image rates, {left:.0f} s left"})
                print(f"{num_images} images: {rows[-1]['status']}", flush=True)
                continue
        print(f"{num_images} images of {args.image_size[0]}x{args.image_size[1]} ...", flush=True)
        rows.append(measure_size(num_images, out / f"n{num_images}", image_size=args.image_size,
                                 settings=settings, threshold=threshold, deadline=deadline, env=env,
                                 num_categories=TINY_CATEGORIES if args.tiny else None, seed=args.seed))
        print(f"{num_images} images: {rows[-1]['status']}", flush=True)
        write_report(args, rows, settings, threshold, out)  # after each size: a stopped run keeps the others
    return write_report(args, rows, settings, threshold, out, echo=True)


def write_report(args, rows: list[dict], settings: list[str], threshold: str | None, out: Path,
                 echo: bool = False) -> list[dict]:
    extra = extrapolation(rows)
    header = (f"Collection scale: {platform.node()}, {os.cpu_count()} CPUs, device {args.device or 'default'}, "
              f"settings {' '.join(settings) or 'release'}, threshold {threshold or 'release'}, "
              f"images {args.image_size[0]}x{args.image_size[1]}, random weights")
    table = markdown(rows, extra, header)
    if echo:
        print(table)
    report = {"header": header, "settings": settings or "release", "sizes": rows, "extrapolation": extra}
    Path(args.json or out / "scale.json").parent.mkdir(parents=True, exist_ok=True)
    Path(args.json or out / "scale.json").write_text(json.dumps(report, indent=1))
    Path(args.markdown or out / "scale.md").write_text(table)
    return rows


def failed(rows: list[dict]) -> bool:
    """A stage that failed (a size skipped or stopped at the time budget is not a failure)."""
    return any(not (r["status"] == "ok" or r["status"].startswith("skipped") or "time budget" in r["status"])
               for r in rows)


if __name__ == "__main__":
    sys.exit(1 if failed(main()) else 0)
