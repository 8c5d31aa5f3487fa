"""One collection size end to end, through the ``artdup`` command: write the collection, ``index build``,
``discover --index``, ``index add`` of the held-out copy and the ``discover --index`` after it, ``index info``.

Each command is its own child process (``stages.run_stage``), so every figure is that stage's own: wall time
(start-up and compilation included), peak RSS, and the stage times of its progress bars (feature extraction
within the build; nearest neighbours and verification within discovery). Directional pairs: each candidate pair
is verified both ways (``DiscoveryConfig.symmetric``), as ``benchmarks.discovery_verification`` counts them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from artdup_jax.app.discover import planted_metrics
from benchmarks.scale.collection import write_collection
from benchmarks.scale.stages import Stage, run_stage


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def found_groups(discovery_json: Path) -> list[list[str]]:
    """The groups of a ``discovery.json``, as lists of file basenames."""
    document = json.loads(discovery_json.read_text())
    return [[os.path.basename(image["file"]) for image in group["images"]] for group in document["groups"]]


def group_metrics(groups: list[list[str]], categories: dict[str, list[str]]) -> dict:
    """``planted_metrics``' group co-membership precision / recall: pairs put in one found group vs pairs in one
    planted category (a pair of distractors put together counts against precision)."""
    names = sorted({n for g in groups for n in g} | {n for c in categories.values() for n in c})
    ids = {n: i for i, n in enumerate(names)}
    metrics = planted_metrics(np.zeros((0, 2), np.int64), np.zeros(0), 0.0, [[ids[n] for n in g] for g in groups],
                              [[ids[n] for n in c] for c in categories.values()])
    return {k: v for k, v in metrics.items() if not k.startswith("pair_")}


def _stage_json(stage: Stage) -> dict:
    return {"seconds": stage.seconds, "peak_rss_bytes": stage.peak_rss_bytes, "returncode": stage.returncode,
            "timed_out": stage.timed_out, "bars": stage.bars(), "log": str(stage.log)}


def _verification(stage: Stage) -> dict:
    pairs, seconds = stage.bars().get("verification", (0, 0.0))
    return {"candidate_pairs_verified": pairs, "directional_pairs": 2 * pairs, "seconds": seconds,
            "directional_pairs_per_s": 2 * pairs / seconds if seconds > 0 else None}


def measure_size(num_images: int, work: Path, *, image_size: tuple[int, int], settings: list[str],
                 threshold: str | None, deadline: float | None, env: dict, num_categories: int | None = None,
                 seed: int = 0) -> dict:
    """Every figure of one size, as a JSON-able dict; ``status`` says where a failure or the deadline stopped it."""
    row = {"images": num_images, "image_size": list(image_size), "load_before": os.getloadavg()}
    work.mkdir(parents=True, exist_ok=True)

    def left():
        return None if deadline is None else max(deadline - time.time(), 1.0)

    start = time.perf_counter()
    collection = write_collection(work / "collection", num_images, image_size, seed=seed,
                                  **({"num_categories": num_categories} if num_categories else {}))
    row["generate_s"] = time.perf_counter() - start
    index, logs = work / "index", work / "logs"
    shutil.rmtree(index, ignore_errors=True)
    for name in ("discover", "discover_added"):
        shutil.rmtree(work / name, ignore_errors=True)
    weights = ["--random-weights", "--seed", str(seed)]
    scoring = ["--no-report"] + (["--threshold", threshold] if threshold else [])
    steps = [
        ("build", ["index", "build", str(collection.images), "--index", str(index), *weights, *settings]),
        ("discover", ["discover", "--index", str(index), "--out", str(work / "discover"), *scoring]),
        ("add", ["index", "add", str(index), str(collection.held_out), *weights]),
        ("discover_added", ["discover", "--index", str(index), "--out", str(work / "discover_added"), *scoring]),
        ("info", ["index", "info", str(index)]),
    ]
    stages = {}
    for name, args in steps:
        stage = run_stage(args, logs / f"{name}.log", timeout=left(), env=env)
        stages[name] = stage
        row[name] = _stage_json(stage)
        if not stage.ok:
            row["status"] = f"{name}: " + ("stopped at the time budget" if stage.timed_out else
                                           f"exit {stage.returncode}, see {stage.log}")
            return row
    row["load_after"] = os.getloadavg()
    build, discover, add, discover_added = (stages[k] for k in ("build", "discover", "add", "discover_added"))
    features = build.bars().get("features", (0, 0.0))
    row["features_s"] = features[1]
    row["build_images_per_hour"] = num_images / build.seconds * 3600
    row["verification"] = _verification(discover)
    row["verification_added"] = _verification(discover_added)
    row["add_latency_s"] = add.seconds + discover_added.seconds
    row["index_bytes"] = folder_bytes(index)
    row["index_bytes_per_image"] = row["index_bytes"] / (num_images + 1)
    per_image = re.search(r"\(([\d.]+) MB of features per image\)", stages["info"].text())
    row["feature_mb_per_image_info"] = float(per_image.group(1)) if per_image else None
    row["peak_rss_bytes"] = max(s.peak_rss_bytes for s in stages.values())

    before = {c: [n for n in names if n != collection.held_out.name] for c, names in collection.categories.items()}
    row["planted"] = group_metrics(found_groups(work / "discover" / "discovery.json"), before)
    after_groups = found_groups(work / "discover_added" / "discovery.json")
    row["planted_after_add"] = group_metrics(after_groups, collection.categories)
    category = next(c for c, names in collection.categories.items() if collection.held_out.name in names)
    home = next((g for g in after_groups if collection.held_out.name in g), [])
    row["added_image"] = {"file": collection.held_out.name, "category": category,
                          "group_size": len(home), "category_size": len(collection.categories[category]),
                          "category_members_in_its_group": len(set(home) & set(collection.categories[category]))}
    row["status"] = "ok"
    return row
