"""A discovery section over several pages, so that a collection of 100,000 images gives pages of a few hundred KB.

Groups are shown largest first, then best pair score first. A section whose groups fit on one page is drawn
inline on ``index.html`` (``inline_html``); a larger one (``is_paged``) puts a summary and a table of pages
on ``index.html`` and writes (``section_pages``), next to it:

  groups-001.html, groups-002.html, ...   at most ``groups_per_page`` groups and about ``IMAGES_PER_PAGE``
                                          thumbnails a page, with previous / next links
  pairs.html                              the ``BEST_PAIRS`` best pairs of every group, both images outlined

A group shows at most ``IMAGES_PER_GROUP`` images and ``PAIRS_PER_GROUP`` pairs (inline:
``INLINE_PAIRS_PER_GROUP``); the rest are counted on the page and listed in full in ``groups.csv`` /
``pairs.csv`` beside ``discovery.json``. Names are fixed by the section's position (``render.page_prefixes``),
so a report written twice has the same files.
"""

from __future__ import annotations

from artdup_jax.report.document import DiscoveredGroup, DiscoveredImage, DiscoverySection
from artdup_jax.report.markup import boxes_svg, figure, metrics_table, number, page, text

IMAGES_PER_PAGE = 600
IMAGES_PER_GROUP = 200
PAIRS_PER_GROUP = 20  # on a page of groups; inline on index.html (few groups) up to INLINE_PAIRS_PER_GROUP
INLINE_PAIRS_PER_GROUP = 100
BEST_PAIRS = 100


def best_score(group: DiscoveredGroup) -> float:
    return max((float(p["score"]) for p in group.pairs if p.get("score") is not None), default=float("-inf"))


def ordered(groups: list[DiscoveredGroup]) -> list[DiscoveredGroup]:
    """Largest group first, then the best pair score, then the group id (a fixed order for ties)."""
    return sorted(groups, key=lambda g: (-len(g.images), -best_score(g), g.id))


def split(groups: list[DiscoveredGroup], groups_per_page: int,
          images_per_page: int = IMAGES_PER_PAGE) -> list[list[DiscoveredGroup]]:
    """Consecutive runs of ``groups``: at most ``groups_per_page`` groups and ``images_per_page`` thumbnails
    each (a group larger than that alone on its page, shown in part)."""
    pages, current, images = [], [], 0
    for group in groups:
        shown = min(len(group.images), IMAGES_PER_GROUP)
        if current and (len(current) == groups_per_page or images + shown > images_per_page):
            pages.append(current)
            current, images = [], 0
        current.append(group)
        images += shown
    return pages + [current] if current else pages


def is_paged(section: DiscoverySection) -> bool:
    return len(split(section.groups, section.groups_per_page)) > 1


def page_name(prefix: str, number_: int) -> str:
    """File of the ``number_``-th (from 1) page of groups."""
    return f"{prefix}groups-{number_:03d}.html"


def _image(image: DiscoveredImage, boxes=None) -> str:
    return figure(image.figure, overlay=boxes_svg(image.boxes if boxes is None else boxes, image.width,
                                                  image.height))


def group_html(group: DiscoveredGroup, *, paged: bool = True) -> str:
    """One group: its images with their regions outlined (``paged``: as small thumbnails), its best pairs;
    what is left out, counted."""
    images = "".join(_image(i) for i in group.images[:IMAGES_PER_GROUP])
    hidden_images = len(group.images) - IMAGES_PER_GROUP
    pairs_shown = PAIRS_PER_GROUP if paged else INLINE_PAIRS_PER_GROUP
    rows = "".join(f"<tr><td>{text(p.get('a'))}</td><td>{text(p.get('b'))}</td>"
                   f"<td class='num'>{number(p.get('score'))}</td></tr>" for p in group.pairs[:pairs_shown])
    hidden_pairs = len(group.pairs) - pairs_shown
    best = best_score(group)
    score = f", best score {number(best)}" if group.pairs else ""
    more = " ".join(s for s in (
        f"{hidden_images} more image(s) in groups.csv." if hidden_images > 0 else "",
        f"{hidden_pairs} more pair(s) in pairs.csv." if hidden_pairs > 0 else "") if s)
    return (f"<h3 id='group-{group.id}'>Group {group.id} ({len(group.images)} images{score})</h3>"
            f"<div class='grid{' thumbs' if paged else ''}'>{images}</div>"
            f"<table><tr><th>image a</th><th>image b</th><th>score</th></tr>{rows}</table>"
            + (f"<p class='muted'>{more}</p>" if more else ""))


def _summary(section: DiscoverySection) -> list[str]:
    parts = [f"<p class='method'>Method: {text(section.method)}</p>"]
    if section.note:
        parts.append(f"<p>{text(section.note)}</p>")
    parts.append(f"<p>{section.num_images} image(s), {section.num_pairs_scored} pair(s) scored, "
                 f"{len(section.groups)} group(s) found.</p>{metrics_table(section.metrics)}")
    return parts


def _plots(section: DiscoverySection) -> str:
    if not section.plots:
        return ""
    return "<h3>Plots</h3><div class='grid'>" + "".join(figure(p, "plot") for p in section.plots) + "</div>"


def inline_html(section: DiscoverySection, anchor: str) -> str:
    """The whole section on the index page (its groups fit on one page)."""
    parts = [f"<section id='{anchor}'><h2>{text(section.title)}</h2>", *_summary(section)]
    parts += [group_html(g, paged=False) for g in section.groups]
    return "".join(parts) + _plots(section) + "</section>"


def _sizes(groups: list[DiscoveredGroup]) -> str:
    largest, smallest = len(groups[0].images), len(groups[-1].images)
    return f"{largest}" if largest == smallest else f"{largest} to {smallest}"


def index_html(section: DiscoverySection, anchor: str, prefix: str) -> str:
    """The section on the index page when paged: the summary, the pages of groups, the best pairs' page."""
    pages = split(section.groups, section.groups_per_page)
    rows = "".join(
        f"<tr><td><a href='{page_name(prefix, k + 1)}'>page {k + 1}</a></td>"
        f"<td>{', '.join(str(g.id) for g in groups[:8])}{', ...' if len(groups) > 8 else ''}</td>"
        f"<td class='num'>{len(groups)}</td><td class='num'>{_sizes(groups)}</td>"
        f"<td class='num'>{number(best_score(groups[0]))}</td></tr>" for k, groups in enumerate(pages))
    return (f"<section id='{anchor}'><h2>{text(section.title)}</h2>" + "".join(_summary(section))
            + f"<p>Groups, largest first, then best pair score, on {len(pages)} pages; "
              f"<a href='{prefix}pairs.html'>the best pairs</a> on a page of their own. Every group and pair: "
              "groups.csv and pairs.csv beside discovery.json.</p>"
            + "<table><tr><th>page</th><th>groups (ids)</th><th>groups</th><th>images a group</th>"
              f"<th>best score of its first group</th></tr>{rows}</table>" + _plots(section) + "</section>")


def _pager(prefix: str, number_: int, count: int) -> str:
    previous = (f"<a href='{page_name(prefix, number_ - 1)}'>&larr; previous</a>" if number_ > 1
                else "<span class='muted'>&larr; previous</span>")
    following = (f"<a href='{page_name(prefix, number_ + 1)}'>next &rarr;</a>" if number_ < count
                 else "<span class='muted'>next &rarr;</span>")
    return (f"<nav class='pager'>{previous}<a href='index.html'>index</a>"
            f"<span>page {number_} of {count}</span>{following}</nav>")


def _best_pairs(section: DiscoverySection, prefix: str, title: str, where: dict[int, str]) -> str:
    """The ``BEST_PAIRS`` best pairs of every group, each image with the region it shares outlined."""
    candidates = [(float(p["score"]), g.id, k, g, p) for g in section.groups for k, p in enumerate(g.pairs)
                  if p.get("score") is not None]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    rows = []
    for score, gid, _, group, pair in candidates[:BEST_PAIRS]:
        images = {i.name: i for i in group.images}
        cells = []
        for name, box in ((pair.get("a"), pair.get("box_a")), (pair.get("b"), pair.get("box_b"))):
            image = images.get(name)
            shown = _image(image, [box] if box else []) if image is not None else text(name)
            cells.append(f"<td>{shown}</td>")
        rows.append(f"<tr><td class='num'>{number(score)}</td>{''.join(cells)}"
                    f"<td><a href='{where[gid]}#group-{gid}'>group {gid}</a></td></tr>")
    body = [f"<h1>{text(title)}</h1>", "<nav class='pager'><a href='index.html'>index</a></nav>",
            f"<h2>The {len(rows)} best pairs (of {len(candidates)} in groups)</h2>",
            "<table class='thumbs'><tr><th>score</th><th>image a</th><th>image b</th><th>group</th></tr>"
            + "".join(rows) + "</table>"]
    return page(f"{title}: best pairs", body)


def section_pages(section: DiscoverySection, prefix: str, title: str) -> dict[str, str]:
    """``{file name: HTML}`` of a paged section's pages of groups and of its best pairs."""
    pages = split(section.groups, section.groups_per_page)
    where = {g.id: page_name(prefix, k + 1) for k, groups in enumerate(pages) for g in groups}
    written = {}
    for k, groups in enumerate(pages):
        pager = _pager(prefix, k + 1, len(pages))
        heading = f"<h2>{text(section.title)}: groups, page {k + 1} of {len(pages)}</h2>"
        body = [f"<h1>{text(title)}</h1>", pager, heading, *[group_html(g) for g in groups], pager]
        written[page_name(prefix, k + 1)] = page(f"{title}: groups, page {k + 1}", body)
    written[f"{prefix}pairs.html"] = _best_pairs(section, prefix, title, where)
    return written

