"""A report as static HTML: ``index.html`` and, for a discovery section too large for one page, its pages
(``pages.py``). Inline CSS, no scripts, images by relative path, every text escaped."""

from __future__ import annotations

from artdup_jax.report import pages
from artdup_jax.report.document import (
    AlignmentSection,
    DiscoverySection,
    GroupAlignmentSection,
    Report,
)
from artdup_jax.report.markup import figure, metrics_table, number, page, src, text

FAILURES_SHOWN = 1000  # rows of the failures table on index.html; report.json lists them all


def _alignment(section: AlignmentSection, anchor: str, open_: bool) -> str:
    figures = "".join(figure(f) for f in section.figures)
    return (f"<details id='{anchor}'{' open' if open_ else ''}><summary>{text(section.title)}</summary>"
            f"<p class='muted'>source: {text(section.source)} &rarr; target: {text(section.target)}</p>"
            f"<div class='grid'>{figures}</div>{metrics_table(section.metrics)}</details>")


def _group_alignment(section: GroupAlignmentSection, anchor: str) -> str:
    averages = "".join(figure(f, "wide") for f in (section.average_before, section.average_after) if f is not None)
    members = "".join(
        f"<figure><img src='{src(m.figure.path)}' alt='{text(m.name)}'><figcaption>{text(m.name)}"
        + "".join(f"<br>{text(k)}: {number(v)}" for k, v in m.metrics.items()) + "</figcaption></figure>"
        for m in section.members)
    plots = "".join(figure(p, "plot") for p in section.plots)
    note = f"<p>{text(section.note)}</p>" if section.note else ""
    return (f"<section id='{anchor}'><h2>{text(section.title)}</h2>{note}"
            f"<p>Reference: <b>{text(section.reference)}</b>; {len(section.members)} image(s) aligned.</p>"
            f"<div class='grid'>{averages}</div>"
            f"<h3>Each image on the reference</h3><div class='grid'>{members}</div>"
            f"{'<h3>Plots</h3><div class=grid>' + plots + '</div>' if plots else ''}</section>")


def _anchor(index: int) -> str:
    return f"section-{index}"


def page_prefixes(report: Report) -> dict[int, str]:
    """Section index -> file-name prefix of its pages, for each paged discovery section: none for the first
    (``groups-001.html``, ``pairs.html``), ``section-K-`` for any later one."""
    paged = [k for k, s in enumerate(report.sections) if isinstance(s, DiscoverySection) and pages.is_paged(s)]
    return {k: "" if n == 0 else f"{_anchor(k)}-" for n, k in enumerate(paged)}


def _contents(report: Report) -> str:
    """Links to the sections (pair alignments counted, not listed) and to the failed inputs."""
    links = [f"<li><a href='#{_anchor(k)}'>{text(s.title)}</a></li>" for k, s in enumerate(report.sections)
             if not isinstance(s, AlignmentSection)]
    pairs = [k for k, s in enumerate(report.sections) if isinstance(s, AlignmentSection)]
    if pairs:
        links.append(f"<li><a href='#{_anchor(pairs[0])}'>{len(pairs)} pair alignment(s)</a></li>")
    links.append(f"<li><a href='#failures'>Inputs that failed ({len(report.failures)})</a></li>")
    return f"<nav><ul>{''.join(links)}</ul></nav>"


def render(report: Report, created: str) -> str:
    """The complete ``index.html`` text."""
    prefixes = page_prefixes(report)
    body = [f"<h1>{text(report.title)}</h1><p class='muted'>written {text(created)}</p>"]
    if report.intro:
        body += [f"<p>{text(paragraph)}</p>" for paragraph in report.intro.split("\n\n")]
    body.append(_contents(report))
    alignments_seen = 0
    for index, section in enumerate(report.sections):
        if isinstance(section, AlignmentSection):
            body.append(_alignment(section, _anchor(index), open_=alignments_seen == 0))
            alignments_seen += 1
        elif isinstance(section, GroupAlignmentSection):
            body.append(_group_alignment(section, _anchor(index)))
        elif isinstance(section, DiscoverySection):
            body.append(pages.index_html(section, _anchor(index), prefixes[index]) if index in prefixes
                        else pages.inline_html(section, _anchor(index)))
        else:
            raise TypeError(f"unknown report section {type(section).__name__}")
    body.append(f"<section id='failures'><h2>Inputs that failed ({len(report.failures)})</h2>")
    if report.failures:
        rows = "".join(f"<tr><td>{text(f.input)}</td><td>{text(f.stage)}</td><td>{text(f.reason)}</td></tr>"
                       for f in report.failures[:FAILURES_SHOWN])
        body.append(f"<table class='failures'><tr><th>input</th><th>stage</th><th>reason</th></tr>{rows}</table>")
        if len(report.failures) > FAILURES_SHOWN:
            body.append(f"<p class='muted'>{len(report.failures) - FAILURES_SHOWN} more in report.json.</p>")
    else:
        body.append("<p>None: every input was used.</p>")
    body.append("</section>")
    if report.settings:
        body.append(f"<details><summary>Settings</summary>{metrics_table(report.settings)}</details>")
    return page(report.title, body)


def render_pages(report: Report, created: str) -> dict[str, str]:
    """``{file name: HTML}`` of every page: ``index.html`` and the pages of its paged discovery sections."""
    written = {"index.html": render(report, created)}
    for index, prefix in page_prefixes(report).items():
        written.update(pages.section_pages(report.sections[index], prefix, report.title))
    return written
