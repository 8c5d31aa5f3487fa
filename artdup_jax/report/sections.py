"""Report sections from what the entry points write to disk.

* ``alignment_section``: a pair folder of ``artdup_jax.app.align`` (target.png, coarse.png, fine.png or
  fine_weightless.png, blend.png, blink.gif, matchability.png, summary.json with the method and its verification
  score against the identity's).
* ``group_alignment_section``: an ``artdup_jax.app.align`` group folder (group.json, average_before.png,
  average_after.png, one pair folder per image aligned; the images not verified are failures).
* ``discovery_section``: a discovery document in ``artdup_jax.app.discover``'s JSON layout (``groups[].images[]`` with
  ``file``, ``width``, ``height``, ``regions``; ``groups[].pairs[]`` with ``a``, ``b``, ``score``;
  ``unreadable[]`` with ``file``, ``error``).

Files already inside the report are shown in place; others are copied in (images as thumbnails).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.report import pages, plots
from artdup_jax.report.directory import ReportDirectory
from artdup_jax.report.document import (
    AlignmentSection,
    DiscoveredGroup,
    DiscoveredImage,
    DiscoverySection,
    Failure,
    Figure,
    GroupAlignmentSection,
    GroupMember,
)

ALIGNMENT_FILES = (
    ("target.png", "target"),
    ("coarse.png", "source, coarse-aligned (homography)"),
    ("fine.png", "source, fine-aligned (flow of the learned RANSAC-Flow fine network)"),
    ("fine_weightless.png", "source, fine-aligned by weightless DIS flow (not the learned RANSAC-Flow fine network)"),
    ("blend.png", "50/50 blend of aligned source and target"),
    ("blink.gif", "blink: target / aligned source"),
    ("matchability.png", "matchability (white: matched)"),
    ("texture_transfer.png", "texture transfer"),
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".tif", ".tiff", ".bmp", ".webp")


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "image"


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def alignment_section(out: ReportDirectory, pair_dir: str | os.PathLike, *, source: str, target: str,
                      title: str | None = None, prefix: str | None = None) -> AlignmentSection:
    """The figures and metrics of one aligned pair (files copied under ``prefix`` unless already inside)."""
    pair_dir = Path(pair_dir)
    prefix = prefix or f"alignments/{safe_name(pair_dir.name)}"
    figures = [Figure(out.include(pair_dir / name, f"{prefix}/{name}"), caption)
               for name, caption in ALIGNMENT_FILES if (pair_dir / name).is_file()]
    metrics = {}
    if (pair_dir / "summary.json").is_file():
        summary = _read_json(pair_dir / "summary.json")
        metrics = {**verification_metrics(summary),
                   "candidate scores": _candidate_scores(summary.get("candidate_scores")),
                   "homographies": len(summary.get("homographies", [])),
                   "fine stage": summary.get("fine_stage_label", bool(summary.get("fine"))),
                   "full-resolution outputs": _full_resolution(summary.get("full_resolution")),
                   "mean |aligned - target| (coarse)": summary.get("blend_error_coarse"),
                   "mean |aligned - target| (final)": summary.get("blend_error_final"),
                   "mean matchability": summary.get("mean_matchability")}
    return AlignmentSection(title=title or f"{source} onto {target}", source=source, target=target,
                            figures=figures, metrics={k: v for k, v in metrics.items() if v is not None})


def verification_metrics(summary: dict) -> dict:
    """How an alignment was chosen and its confidence, from its summary.json (``app.alignment_stages``):
    the coarse stage and method, its verification score against the identity's (no alignment)."""
    if "verification_score" not in summary:
        return {}
    stage, method = summary.get("coarse_stage"), summary.get("method")
    fallback = f" (fallback of {summary['fallback_from']}: {summary.get('fallback_reason')})" \
        if summary.get("fallback_from") else ""
    return {"method": f"{stage}: {method}{fallback}" if stage and stage != method else f"{method}{fallback}",
            "verification score": summary["verification_score"], "identity score": summary.get("identity_score"),
            "verified": summary.get("verified")}


def _candidate_scores(scores: dict | None) -> str | None:
    if not scores:
        return None
    return ", ".join(f"{name} {value:.3f}" for name, value in sorted(scores.items(), key=lambda item: -item[1]))


def _full_resolution(entry: dict | None) -> str | None:
    if not entry:
        return None
    height, width = entry["size_hw"]
    return f"{entry['warped']}, {entry['flow']} ({width}x{height} px, the target's original size)"


def _unaligned_error(source_path: Path, target: np.ndarray) -> float | None:
    """Mean absolute difference of the source stretched onto the target frame (what 'before' averages)."""
    try:
        source = read_image(source_path)
    except ImageReadError:
        return None
    height, width = target.shape[:2]
    stretched = Image.fromarray(np.clip(np.round(source * 255), 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR)
    return float(np.abs(np.asarray(stretched, np.float32) / 255.0 - target).mean())


def _source_by_stem(folder: Path | None, stem: str) -> Path | None:
    if folder is None:
        return None
    for extension in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{extension}", folder / f"{stem}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def group_alignment_section(out: ReportDirectory, group_dir: str | os.PathLike, *, reference: str,
                            folder: str | os.PathLike | None = None, prefix: str = "group",
                            thumbnail_px: int = 280, title: str = "Group alignment",
                            note: str = "") -> tuple[GroupAlignmentSection, list[AlignmentSection], list[Failure]]:
    """The group section, one alignment section per member and the failed inputs of an ``artdup_jax.app.align`` group.

    ``folder``: the group's input folder; when given, each member's error before alignment (the source
    stretched onto the reference frame) is computed for the error plot.
    """
    group_dir = Path(group_dir)
    folder = Path(folder) if folder is not None else None
    document = _read_json(group_dir / "group.json") if (group_dir / "group.json").is_file() else {}
    failures = [Failure(os.path.basename(path), "align", reason.replace(path, os.path.basename(path)))
                for path, reason in sorted(document.get("failed", {}).items())]
    members, pair_sections, before, after = [], [], [], []
    for pair_dir in sorted(p for p in group_dir.iterdir() if (p / "summary.json").is_file()):
        summary = _read_json(pair_dir / "summary.json")
        shown = pair_dir / ("fine.png" if (pair_dir / "fine.png").is_file() else "coarse.png")
        thumbnail = out.include(shown, f"{prefix}/members/{safe_name(pair_dir.name)}.jpg", max_side=thumbnail_px)
        target = read_image(pair_dir / "target.png")
        source_path = _source_by_stem(folder, pair_dir.name)
        error_before = _unaligned_error(source_path, target) if source_path is not None else None
        error_after = summary.get("blend_error_final")
        confidence = verification_metrics(summary)
        metrics = {"error after": error_after}
        if confidence:
            metrics = {"method": confidence["method"], "score (identity)":
                       f"{confidence['verification score']:.3f} ({confidence['identity score']:.3f})", **metrics}
        if error_before is not None:
            metrics = {"error before": error_before, **metrics}
        members.append(GroupMember(pair_dir.name, Figure(thumbnail, pair_dir.name), metrics))
        before.append(error_before)
        after.append(error_after)
        pair_sections.append(alignment_section(out, pair_dir, source=pair_dir.name, target=reference,
                                               prefix=f"{prefix}/{safe_name(pair_dir.name)}"))
    averages = [Figure(out.include(group_dir / name, f"{prefix}/{name}"), caption) if (group_dir / name).is_file()
                else None for name, caption in (("average_before.png", "average of the images, unaligned"),
                                                ("average_after.png", "average of the images, aligned"))]
    figures = []
    if members:
        series = {"before alignment": before, "after alignment": after} if any(b is not None for b in before) \
            else {"after alignment": after}
        path = plots.bar_chart(out.path(f"{prefix}/plots/alignment_error.png"), [m.name for m in members], series,
                               title="Per-image alignment error on the reference", ylabel="mean |image - reference|")
        figures.append(Figure(out.relative(path), "mean absolute difference to the reference, per image"))
    verification = document.get("verification", {})
    if verification:
        verified = sum(bool(v.get("verified")) for v in verification.values())
        note = (f"{note} " if note else "") + (
            f"{verified} of {len(verification)} image(s) verified: an alignment is kept only if its colour-independent "
            "score (agreement of contour orientations) beats the identity's (no alignment); each image shows its "
            "method and 'score (identity)'. The others are listed as failures with their scores.")
    section = GroupAlignmentSection(title=title, reference=reference, average_before=averages[0],
                                    average_after=averages[1], members=members, plots=figures, note=note)
    return section, pair_sections, failures


def discovery_section(out: ReportDirectory, document: dict, folder: str | os.PathLike, *, method: str,
                      prefix: str = "discovery", thumbnail_px: int | None = 280, title: str = "Discovery",
                      note: str = "", scores: Sequence[float] | None = None, score_label: str = "pair score",
                      threshold: float | None = None, metrics: dict | None = None, groups_per_page: int = 40
                      ) -> tuple[DiscoverySection, list[Failure]]:
    """The discovered groups (largest first, then best pair score) with their regions outlined, and the
    unreadable inputs.

    ``thumbnail_px``: longer side of the thumbnails (JPEG files under ``prefix/thumbs``, written once per
    image); None shows images already inside the report as they are.
    ``groups_per_page``: more groups than that are shown on pages of their own (``report.pages``).
    ``scores``: every scored pair's score, for the histogram (``threshold`` drawn on it).
    """
    folder = Path(folder)
    thumbnails: dict[str, str] = {}
    groups, failures = [], []
    for group in document.get("groups", []):
        images = []
        for image in group["images"]:
            name = image["file"]
            if name not in thumbnails:
                relative = f"{prefix}/thumbs/{len(thumbnails):03d}_{safe_name(Path(name).stem)}.jpg"
                try:
                    thumbnails[name] = out.include(folder / name, relative, max_side=thumbnail_px)
                except ImageReadError as error:  # read before, unreadable now: say so, show the rest
                    failures.append(Failure(name, "report", str(error)))
                    continue
            images.append(DiscoveredImage(name, Figure(thumbnails[name], name), int(image["width"]),
                                          int(image["height"]), [list(map(float, b)) for b in image["regions"]]))
        groups.append(DiscoveredGroup(int(group.get("id", len(groups))), images, list(group.get("pairs", []))))
    failures = [Failure(u["file"], "discover", u["error"].replace(os.fspath(folder / u["file"]), u["file"]))
                for u in document.get("unreadable", [])] + failures
    figures = []
    if scores is not None and len(scores):
        path = plots.histogram(out.path(f"{prefix}/plots/pair_scores.png"), scores, threshold=threshold,
                               title="Scores of the candidate pairs", xlabel=score_label, log=True)
        figures.append(Figure(out.relative(path), f"{score_label} of every candidate pair"))
    section = DiscoverySection(title=title, method=method, groups=pages.ordered(groups),
                               num_images=int(document.get("num_images", 0)),
                               num_pairs_scored=int(document.get("num_pairs_scored", 0)), metrics=metrics or {},
                               plots=figures, note=note, groups_per_page=groups_per_page)
    return section, failures
