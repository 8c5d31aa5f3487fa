"""HTML pieces shared by the report's pages: the style sheet, escaping, figures with outlined regions, tables."""

from __future__ import annotations

import html
import urllib.parse

from artdup_jax.report.document import Figure

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
.thumbs figure img { max-width: 160px; max-height: 160px; }
.thumbs figcaption { max-width: 160px; }
.frame { position: relative; display: inline-block; line-height: 0; }
.frame svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.method { display: inline-block; background: #fff3cd; border: 1px solid #e0c060; padding: 0.2em 0.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failures td:last-child { color: #a00; }
.muted { color: #666; font-size: 0.9em; }
nav ul { margin: 0.3em 0; padding-left: 1.2em; }
nav.pager { display: flex; gap: 1.5em; margin: 0.8em 0; font-weight: 600; }
"""


def text(value) -> str:
    return html.escape(str(value), quote=True)


def src(path: str) -> str:
    """A relative path as an attribute value (percent-encoded, then escaped)."""
    return text(urllib.parse.quote(path, safe="/"))


def number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text(value)
    return text(f"{value:.4g}" if isinstance(value, float) else value)


def figure(shown: Figure, css: str = "", overlay: str = "") -> str:
    image = f'<img src="{src(shown.path)}" alt="{text(shown.caption or shown.path)}">'
    if overlay:
        image = f'<div class="frame">{image}{overlay}</div>'
    caption = f"<figcaption>{text(shown.caption)}</figcaption>" if shown.caption else ""
    return f'<figure class="{css}">{image}{caption}</figure>' if css else f"<figure>{image}{caption}</figure>"


def metrics_table(metrics: dict) -> str:
    if not metrics:
        return ""
    rows = "".join(f"<tr><th>{text(k)}</th><td class='num'>{number(v)}</td></tr>" for k, v in metrics.items())
    return f"<table>{rows}</table>"


def boxes_svg(boxes, width: int, height: int) -> str:
    """Outlines in the image's original pixel frame; the SVG stretches over the thumbnail."""
    if not boxes or width <= 0 or height <= 0:
        return ""
    rects = []
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        rects.append(f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 0):.1f}" height="{max(y2 - y1, 0):.1f}" '
                     f'fill="none" stroke="{COLOURS[k % len(COLOURS)]}" stroke-width="3" '
                     f'vector-effect="non-scaling-stroke"/>')
    return f'<svg viewBox="0 0 {int(width)} {int(height)}" preserveAspectRatio="none">{"".join(rects)}</svg>'


def page(title: str, body: list[str]) -> str:
    """A complete static HTML page: inline CSS, no scripts."""
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{text(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
