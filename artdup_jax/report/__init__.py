"""Self-contained HTML reports: ``index.html``, ``report.json`` and the images they show, in one folder.

  with ReportDirectory(out_dir) as out:                                   # directory.py: atomic folder
      group, pairs, failed = group_alignment_section(out, "runs/align", reference="ref.jpg")   # sections.py
      out.commit(Report("Alignment", sections=[group, *pairs], failures=failed))               # document.py

The page (render.py, with markup.py's HTML pieces) has no scripts and loads nothing from the network: inline
CSS, images by relative path, matched regions as SVG outlines over the thumbnails, plots as PNGs (plots.py,
matplotlib). A discovery with more groups than a page holds gets pages of its own (pages.py: groups-001.html,
..., pairs.html, largest groups first). tables.py writes a discovery's pairs.csv and groups.csv;
annotations.py its W3C Web Annotations.
"""

from artdup_jax.report.directory import ReportDirectory, is_report_directory
from artdup_jax.report.document import (
    AlignmentSection,
    DiscoveredGroup,
    DiscoveredImage,
    DiscoverySection,
    Failure,
    Figure,
    GroupAlignmentSection,
    GroupMember,
    Report,
)
from artdup_jax.report.sections import alignment_section, discovery_section, group_alignment_section

__all__ = [
    "AlignmentSection",
    "DiscoveredGroup",
    "DiscoveredImage",
    "DiscoverySection",
    "Failure",
    "Figure",
    "GroupAlignmentSection",
    "GroupMember",
    "Report",
    "ReportDirectory",
    "alignment_section",
    "discovery_section",
    "group_alignment_section",
    "is_report_directory",
]
