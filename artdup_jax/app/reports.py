"""The HTML report (``DIR/report/index.html`` with ``report.json``) of each ``artdup`` command's result object.

The pages show the images the command wrote to ``DIR`` (aligned images, thumbnails of the matched regions).
"""

from __future__ import annotations

import os
from pathlib import Path

from artdup_jax.app.align import GroupAlignment, PairAlignment
from artdup_jax.app.detect import DetectionRun
from artdup_jax.app.discover import DiscoveryRun
from artdup_jax.report import (
    Failure,
    Report,
    ReportDirectory,
    alignment_section,
    discovery_section,
    group_alignment_section,
)


def iiif_failures(iiif: dict | None) -> list[Failure]:
    """The canvases of a IIIF input that could not be fetched (``app.iiif_input.input_report``), one line each."""
    return [Failure(f"{f['label']} ({f['canvas']})" if f.get("label") else f["canvas"], "fetch", f["reason"])
            for f in (iiif or {}).get("failures", [])]


def _input_name(folder: str, iiif: dict | None) -> str:
    return ", ".join(iiif["inputs"]) if iiif else folder


def pair_report(pair: PairAlignment) -> Path:
    out, source, target = pair.out_dir, pair.source, pair.target
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section = alignment_section(report_dir, out, source=os.path.basename(source), target=os.path.basename(target),
                                    prefix="alignment")
        return report_dir.commit(Report(f"artdup align: {os.path.basename(source)} onto {os.path.basename(target)}",
                                        sections=[section]))


def group_report(group: GroupAlignment, iiif: dict | None = None) -> Path:
    """The group's members, averages and errors; its failures and the folder's entries that were not images
    (``iiif``: the folder's IIIF input report, whose failed canvases are listed too)."""
    out, reference, folder, skipped = group.out_dir, group.reference, group.folder, group.skipped
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        group, pairs, failures = group_alignment_section(report_dir, out, reference=os.path.basename(reference),
                                                         folder=folder, prefix="group",
                                                         title=f"Every image of {folder} onto {reference}")
        named = {f.input for f in failures}  # artdup_jax.app.align also tries folders named like images
        failures = failures + [Failure(name, "list", reason) for name, reason in skipped if name not in named]
        failures = iiif_failures(iiif) + failures
        return report_dir.commit(Report(f"artdup align-group: {_input_name(folder, iiif)}", sections=[group, *pairs],
                                        failures=failures))


def _discovery_summary(document: dict) -> dict:
    """The figures the index page of a discovery shows above its groups."""
    groups = document.get("groups", [])
    summary = {"images in groups": sum(len(g["images"]) for g in groups),
               "largest group (images)": max((len(g["images"]) for g in groups), default=0),
               "unreadable files": len(document.get("unreadable", [])),
               "seconds": round(float(document["seconds"]), 1) if "seconds" in document else None}
    index = document.get("index")
    if index:
        summary.update({"index": index["path"], "candidate pairs": index["candidate_pairs"],
                        "pairs verified by this run": index["verified_now"]})
    return {k: v for k, v in summary.items() if v is not None}


def discovery_report(run: DiscoveryRun, *, thumbnail_px: int = 160, groups_per_page: int = 40) -> Path:
    """Groups with their regions, the unreadable files, the folder's entries that were not images at all and
    the canvases of a IIIF input that could not be fetched (``thumbnail_px``: longer side of the thumbnails).
    More than ``groups_per_page`` groups: an index page and pages of groups (``artdup_jax.report.pages``)."""
    out, folder, skipped, document = run.out_dir, run.folder, run.skipped, run.document
    iiif = document.get("iiif")
    settings = document.get("settings", {})
    method = settings.get("checkpoint") or "random weights (smoke test)"
    note = "" if document.get("groups") else (
        f"No group: no pair of the {document.get('num_images', 0)} readable images scored above the threshold "
        f"({settings.get('threshold')}), so none was found to share a region with another.")
    with ReportDirectory(os.path.join(out, "report")) as report_dir:
        section, failures = discovery_section(
            report_dir, document, os.path.abspath(folder), method=f"ArtMiner discovery (weights: {method})",
            title=f"Groups of {_input_name(folder, iiif)}", note=note,
            scores=[p["score"] for p in document.get("top_pairs", [])],
            threshold=settings.get("threshold"), score_label="pair score (top pairs)", thumbnail_px=thumbnail_px,
            metrics=_discovery_summary(document), groups_per_page=groups_per_page)
        failures = iiif_failures(iiif) + failures + [Failure(name, "list", reason) for name, reason in skipped]
        return report_dir.commit(Report(f"artdup discover: {_input_name(folder, iiif)}", sections=[section],
                                        failures=failures, settings=settings))


def detection_report(run: DetectionRun, out: str, top: int) -> Path:
    """The query box and the ``top`` best detections outlined on their images, a histogram of every score,
    the skipped files and the canvases of a IIIF input that could not be fetched."""
    image, box, folder, detections, skipped = run.image, run.box, run.folder, run.detections, run.skipped
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
        failures = iiif_failures(run.iiif) + failures + [Failure(s["file"], "detect", s["reason"]) for s in skipped]
        return report_dir.commit(Report(f"artdup detect: {os.path.basename(image)} in "
                                        f"{_input_name(folder, run.iiif)}",
                                        sections=[section], failures=failures))
