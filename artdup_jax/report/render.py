"""A report as one static HTML page: inline CSS, no scripts, images by relative path, every text escaped."""

from __future__ import annotations

import html
import urllib.parse

from artdup_jax.report.document import (
    AlignmentSection,
    DiscoverySection,
    Figure,
    GroupAlignmentSection,
    Report,
)

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222;
       background: #fafafa; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
section, details { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 0.6em 1em; margin: 1em 0; }
summary { cursor: pointer; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; }
figure img { display: block; max-width: 280px; max-height: 280px; border: 1px solid #ccc; }
figure.plot img { max-width: 560px; max-height: 360px; }
figure.wide img { max-width: 440px; max-height: 440px; }
figcaption { font-size: 0.8em; color: #444; max-width: 280px; overflow-wrap: anywhere; }
.frame { position: relative; display: inline-block; line-height: 0; }
.frame svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.method { display: inline-block; background: #fff3cd; border: 1px solid #e0c060; padding: 0.2em 0.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failures td:last-child { color: #a00; }
.muted { color: #666; font-size: 0.9em; }
nav ul { margin: 0.3em 0; padding-left: 1.2em; }
"""


def _text(value) -> str:
    return html.escape(str(value), quote=True)


def _src(path: str) -> str:
    return _text(urllib.parse.quote(path, safe="/"))


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _text(value)
    return _text(f"{value:.4g}" if isinstance(value, float) else value)


def _figure(figure: Figure, css: str = "", overlay: str = "") -> str:
    image = f'<img src="{_src(figure.path)}" alt="{_text(figure.caption or figure.path)}">'
    if overlay:
        image = f'<div class="frame">{image}{overlay}</div>'
    caption = f"<figcaption>{_text(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure class="{css}">{image}{caption}</figure>' if css else f"<figure>{image}{caption}</figure>"


def _metrics_table(metrics: dict) -> str:
    if not metrics:
        return ""
    rows = "".join(f"<tr><th>{_text(k)}</th><td class='num'>{_number(v)}</td></tr>" for k, v in metrics.items())
    return f"<table>{rows}</table>"


def _boxes_svg(boxes, width: int, height: int) -> str:
    """Outlines in the image's original pixel frame; the SVG stretches over the thumbnail."""
    if not boxes or width <= 0 or height <= 0:
        return ""
    rects = []
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        rects.append(f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 0):.1f}" height="{max(y2 - y1, 0):.1f}" '
                     f'fill="none" stroke="{COLOURS[k % len(COLOURS)]}" stroke-width="3" '
                     f'vector-effect="non-scaling-stroke"/>')
    return f'<svg viewBox="0 0 {int(width)} {int(height)}" preserveAspectRatio="none">{"".join(rects)}</svg>'


def _alignment(section: AlignmentSection, anchor: str, open_: bool) -> str:
    figures = "".join(_figure(f) for f in section.figures)
    return (f"<details id='{anchor}'{' open' if open_ else ''}><summary>{_text(section.title)}</summary>"
            f"<p class='muted'>source: {_text(section.source)} &rarr; target: {_text(section.target)}</p>"
            f"<div class='grid'>{figures}</div>{_metrics_table(section.metrics)}</details>")


def _group_alignment(section: GroupAlignmentSection, anchor: str) -> str:
    averages = "".join(_figure(f, "wide") for f in (section.average_before, section.average_after) if f is not None)
    members = "".join(
        f"<figure><img src='{_src(m.figure.path)}' alt='{_text(m.name)}'><figcaption>{_text(m.name)}"
        + "".join(f"<br>{_text(k)}: {_number(v)}" for k, v in m.metrics.items()) + "</figcaption></figure>"
        for m in section.members)
    plots = "".join(_figure(p, "plot") for p in section.plots)
    note = f"<p>{_text(section.note)}</p>" if section.note else ""
    return (f"<section id='{anchor}'><h2>{_text(section.title)}</h2>{note}"
            f"<p>Reference: <b>{_text(section.reference)}</b>; {len(section.members)} image(s) aligned.</p>"
            f"<div class='grid'>{averages}</div>"
            f"<h3>Each image on the reference</h3><div class='grid'>{members}</div>"
            f"{'<h3>Plots</h3><div class=grid>' + plots + '</div>' if plots else ''}</section>")


def _discovery(section: DiscoverySection, anchor: str) -> str:
    parts = [f"<section id='{anchor}'><h2>{_text(section.title)}</h2>"
             f"<p class='method'>Method: {_text(section.method)}</p>"]
    if section.note:
        parts.append(f"<p>{_text(section.note)}</p>")
    parts.append(f"<p>{section.num_images} image(s), {section.num_pairs_scored} pair(s) scored, "
                 f"{len(section.groups)} group(s) found.</p>{_metrics_table(section.metrics)}")
    for group in section.groups:
        images = "".join(_figure(i.figure, overlay=_boxes_svg(i.boxes, i.width, i.height)) for i in group.images)
        rows = "".join(f"<tr><td>{_text(p.get('a'))}</td><td>{_text(p.get('b'))}</td>"
                       f"<td class='num'>{_number(p.get('score'))}</td></tr>" for p in group.pairs)
        parts.append(f"<h3>Group {group.id} ({len(group.images)} images)</h3><div class='grid'>{images}</div>"
                     f"<table><tr><th>image a</th><th>image b</th><th>score</th></tr>{rows}</table>")
    if section.plots:
        parts.append("<h3>Plots</h3><div class='grid'>" + "".join(_figure(p, "plot") for p in section.plots)
                     + "</div>")
    parts.append("</section>")
    return "".join(parts)


def _anchor(index: int) -> str:
    return f"section-{index}"


def _contents(report: Report) -> str:
    """Links to the sections (pair alignments counted, not listed) and to the failed inputs."""
    links = [f"<li><a href='#{_anchor(k)}'>{_text(s.title)}</a></li>" for k, s in enumerate(report.sections)
             if not isinstance(s, AlignmentSection)]
    pairs = [k for k, s in enumerate(report.sections) if isinstance(s, AlignmentSection)]
    if pairs:
        links.append(f"<li><a href='#{_anchor(pairs[0])}'>{len(pairs)} pair alignment(s)</a></li>")
    links.append(f"<li><a href='#failures'>Inputs that failed ({len(report.failures)})</a></li>")
    return f"<nav><ul>{''.join(links)}</ul></nav>"


def render(report: Report, created: str) -> str:
    """The complete ``index.html`` text."""
    body = [f"<h1>{_text(report.title)}</h1><p class='muted'>written {_text(created)}</p>"]
    if report.intro:
        body += [f"<p>{_text(paragraph)}</p>" for paragraph in report.intro.split("\n\n")]
    body.append(_contents(report))
    alignments_seen = 0
    for index, section in enumerate(report.sections):
        if isinstance(section, AlignmentSection):
            body.append(_alignment(section, _anchor(index), open_=alignments_seen == 0))
            alignments_seen += 1
        elif isinstance(section, GroupAlignmentSection):
            body.append(_group_alignment(section, _anchor(index)))
        elif isinstance(section, DiscoverySection):
            body.append(_discovery(section, _anchor(index)))
        else:
            raise TypeError(f"unknown report section {type(section).__name__}")
    body.append(f"<section id='failures'><h2>Inputs that failed ({len(report.failures)})</h2>")
    if report.failures:
        rows = "".join(f"<tr><td>{_text(f.input)}</td><td>{_text(f.stage)}</td><td>{_text(f.reason)}</td></tr>"
                       for f in report.failures)
        body.append(f"<table class='failures'><tr><th>input</th><th>stage</th><th>reason</th></tr>{rows}</table>")
    else:
        body.append("<p>None: every input was used.</p>")
    body.append("</section>")
    if report.settings:
        body.append(f"<details><summary>Settings</summary>{_metrics_table(report.settings)}</details>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_text(report.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
