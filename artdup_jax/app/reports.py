"""The HTML report (``DIR/report/index.html`` with ``report.json``) of each ``artdup`` subcommand's results.

Built from what the entry points wrote to ``DIR`` (``artdup_jax.app.align``'s pair or group folder, ``artdup_jax.app.discover``'s
``discovery.json``), so a report can be made again from a finished run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from artdup_jax.report import (
    Failure,
    Report,
    ReportDirectory,
    alignment_section,
    discovery_section,
    group_alignment_section,
)


def pair_report(out: str, source: str, target: str) -> Path:
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section = alignment_section(report_dir, out, source=os.path.basename(source), target=os.path.basename(target),
                                    prefix="alignment")
        return report_dir.commit(Report(f"artdup align: {os.path.basename(source)} onto {os.path.basename(target)}",
                                        sections=[section]))


def group_report(out: str, reference: str, folder: str, skipped: list[tuple[str, str]] = ()) -> Path:
    """``skipped``: ``(name, reason)`` of the folder's entries that were not images at all."""
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        group, pairs, failures = group_alignment_section(report_dir, out, reference=os.path.basename(reference),
                                                         folder=folder, prefix="group",
                                                         title=f"Every image of {folder} onto {reference}")
        named = {f.input for f in failures}  # artdup_jax.app.align also tries folders named like images
        failures = failures + [Failure(name, "list", reason) for name, reason in skipped if name not in named]
        return report_dir.commit(Report(f"artdup align-group: {folder}", sections=[group, *pairs],
                                        failures=failures))


def discovery_report(out: str, folder: str, skipped: list[tuple[str, str]] = ()) -> Path:
    """The report of ``OUT/discovery.json``: groups with their regions, the unreadable files and ``skipped``
    (``(name, reason)`` of the folder's entries that were not images at all)."""
    with open(os.path.join(out, "discovery.json"), encoding="utf-8") as f:
        document = json.load(f)
    settings = document.get("settings", {})
    method = settings.get("checkpoint") or "random weights (smoke test)"
    note = "" if document.get("groups") else (
        f"No group: no pair of the {document.get('num_images', 0)} readable images scored above the threshold "
        f"({settings.get('threshold')}), so none was found to share a region with another.")
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section, failures = discovery_section(
            report_dir, document, os.path.abspath(folder), method=f"ArtMiner discovery (weights: {method})",
            title=f"Groups of {folder}", note=note, scores=[p["score"] for p in document.get("top_pairs", [])],
            threshold=settings.get("threshold"), score_label="pair score (top pairs)")
        failures = failures + [Failure(name, "list", reason) for name, reason in skipped]
        return report_dir.commit(Report(f"artdup discover: {folder}", sections=[section], failures=failures))


def detection_report(out: str, image: str, box: list[int], folder: str, detections: list[dict],
                     skipped: list[dict], top: int) -> Path:
    """The query box and the ``top`` best detections outlined on their images (``detections``: ``file``
    relative to ``folder``, ``score``, ``box``, best first), a histogram of every score, the skipped files."""
    from artdup_jax.data.images import read_image_size

    folder = os.path.abspath(folder)
    query = os.path.relpath(os.path.abspath(image), folder)
    shown = detections[:top]
    boxes: dict[str, list] = {query: [list(box)]}
    for detection in shown:
        boxes.setdefault(detection["file"], []).append(detection["box"])
    images = []
    for name, regions in boxes.items():
        height, width = read_image_size(os.path.join(folder, name))
        images.append({"file": name, "height": height, "width": width, "regions": regions})
    document = {"num_images": len({d["file"] for d in detections}), "num_pairs_scored": len(detections),
                "groups": [{"id": 0, "images": images,
                            "pairs": [{"a": query, "b": d["file"], "score": round(d["score"], 4), "box_b": d["box"]}
                                      for d in shown]}]}
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section, failures = discovery_section(
            report_dir, document, folder, method="ArtMiner one-shot detection",
            title=f"The {len(shown)} best detections of {list(box)} of {os.path.basename(image)}",
            note="The first image holds the query box; the others, the detections (best first).",
            scores=[d["score"] for d in detections], score_label="detection score")
        failures = failures + [Failure(s["file"], "detect", s["reason"]) for s in skipped]
        return report_dir.commit(Report(f"artdup detect: {os.path.basename(image)} in {folder}",
                                        sections=[section], failures=failures))
