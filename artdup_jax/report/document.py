"""What a report holds: plain dataclasses, rendered to HTML by ``render`` and to ``report.json`` by ``as_json``.

Every image is a :class:`Figure` whose ``path`` is relative to the report directory (forward slashes, no
``..``); ``ReportDirectory.commit`` refuses a report naming a file it does not contain.
Boxes are ``[x1, y1, x2, y2]`` pixels of the image's original size (``width`` x ``height``), x = column.
"""

from __future__ import annotations

import dataclasses
from typing import Union

GENERATOR = "artdup_jax.report"  # report.json's marker: a directory holding it may be replaced by a new report
SCHEMA_VERSION = 1


@dataclasses.dataclass
class Figure:
    path: str  # relative to the report directory
    caption: str = ""


@dataclasses.dataclass
class Failure:
    """An input that could not be used; ``reason`` is one line."""

    input: str
    stage: str  # "read", "align", "discover", ...
    reason: str


@dataclasses.dataclass
class AlignmentSection:
    """One source aligned onto one target: target, coarse / fine warp, blend, blink GIF, matchability."""

    title: str
    source: str
    target: str
    figures: list[Figure]
    metrics: dict = dataclasses.field(default_factory=dict)
    kind: str = "alignment"


@dataclasses.dataclass
class GroupMember:
    name: str
    figure: Figure  # the member warped onto the reference
    metrics: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GroupAlignmentSection:
    """Every image of a group aligned onto a reference: averages before / after, one thumbnail per member."""

    title: str
    reference: str
    average_before: Figure | None
    average_after: Figure | None
    members: list[GroupMember]
    plots: list[Figure] = dataclasses.field(default_factory=list)
    note: str = ""
    kind: str = "group_alignment"


@dataclasses.dataclass
class DiscoveredImage:
    name: str
    figure: Figure  # thumbnail; boxes are drawn over it
    width: int  # original pixels, the boxes' frame
    height: int
    boxes: list[list[float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DiscoveredGroup:
    id: int
    images: list[DiscoveredImage]
    pairs: list[dict]  # {"a", "b", "score", ...} best first


@dataclasses.dataclass
class DiscoverySection:
    """Groups of images sharing a region, each image with its matched regions outlined; ``groups`` in display
    order (``discovery_section``: largest first, then best pair score)."""

    title: str
    method: str  # which discovery produced it, shown prominently
    groups: list[DiscoveredGroup]
    num_images: int = 0
    num_pairs_scored: int = 0
    metrics: dict = dataclasses.field(default_factory=dict)
    plots: list[Figure] = dataclasses.field(default_factory=list)
    note: str = ""
    groups_per_page: int = 40  # more groups (or thumbnails) than a page holds: one page each (report.pages)
    kind: str = "discovery"


Section = Union[AlignmentSection, GroupAlignmentSection, DiscoverySection]


@dataclasses.dataclass
class Report:
    title: str
    intro: str = ""
    sections: list = dataclasses.field(default_factory=list)  # Section, in display order
    failures: list[Failure] = dataclasses.field(default_factory=list)
    settings: dict = dataclasses.field(default_factory=dict)

    def figures(self) -> list[Figure]:
        """Every figure the report shows, in display order."""
        found = []
        for section in self.sections:
            if isinstance(section, AlignmentSection):
                found += section.figures
            elif isinstance(section, GroupAlignmentSection):
                found += [f for f in (section.average_before, section.average_after) if f is not None]
                found += [m.figure for m in section.members] + section.plots
            elif isinstance(section, DiscoverySection):
                found += [i.figure for g in section.groups for i in g.images] + section.plots
        return found


def as_json(report: Report, created: str) -> dict:
    """The machine-readable ``report.json`` document."""
    return {"generator": GENERATOR, "schema_version": SCHEMA_VERSION, "created": created,
            **dataclasses.asdict(report)}
