"""A static HTML page of discovered groups: each group's images with their matched regions outlined.

Self-contained folder: ``index.html`` plus ``thumbs/`` (one JPEG per image, longer side ``thumbnail_px``).
Boxes are drawn as absolutely positioned outlines in percent of the thumbnail, so they stay on the image at
any display size. Input is the JSON ``artdup_jax.app.discover`` writes (``groups`` with per-image ``regions`` in
original pixels).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from artdup_jax.data.images import ImageReadError, read_image
from artdup_jax.data.outputs import to_uint8

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#469990",
           "#9a6324")

STYLE = """
body { font-family: sans-serif; margin: 1em; background: #fafafa; }
.group { margin-bottom: 2em; padding: 0.5em; background: #fff; border: 1px solid #ddd; }
.images { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; }
.frame { position: relative; display: inline-block; line-height: 0; }
.frame img { max-width: 256px; max-height: 256px; }
.box { position: absolute; border: 2px solid; box-sizing: border-box; }
figcaption { font-size: 0.8em; max-width: 256px; word-break: break-all; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; }
"""


def _thumbnail_name(index: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:60]
    return f"{index:05d}_{stem}.jpg"


def write_thumbnail(path: str, out_path: str, thumbnail_px: int = 256) -> bool:
    """JPEG thumbnail of an image (longer side ``thumbnail_px``); False if the image cannot be read."""
    try:
        pixels = to_uint8(read_image(path))
    except ImageReadError:
        return False
    image = Image.fromarray(np.ascontiguousarray(pixels))
    image.thumbnail((thumbnail_px, thumbnail_px), Image.Resampling.LANCZOS)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    image.save(out_path, format="JPEG", quality=88)
    return True


def _box_div(box, width: float, height: float, colour: str, title: str) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = 100 * x1 / width, 100 * y1 / height
    w, h = 100 * (x2 - x1) / width, 100 * (y2 - y1) / height
    return (f'<div class="box" style="left:{left:.2f}%;top:{top:.2f}%;width:{w:.2f}%;height:{h:.2f}%;'
            f'border-color:{colour}" title="{html.escape(title)}"></div>')


def write_report(result: dict, folder: str | os.PathLike, out_dir: str | os.PathLike, *,
                 thumbnail_px: int = 256, title: str = "ArtMiner discovery") -> str:
    """Writes ``out_dir/index.html`` and ``out_dir/thumbs/``; returns the HTML path.

    ``result``: the discovery JSON (``groups[i]["images"][j]`` has ``file``, ``width``, ``height``,
    ``regions``; ``unreadable`` lists files that could not be read).
    """
    out_dir = Path(out_dir)
    thumbs = out_dir / "thumbs"
    written: dict[str, str] = {}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{result.get('num_images', 0)} images, {result.get('num_pairs_scored', 0)} pairs scored, "
             f"{len(result.get('groups', []))} groups (score &gt; {result.get('settings', {}).get('threshold')}).</p>"]
    for group in result.get("groups", []):
        parts.append(f"<div class='group'><h2>Group {group['id']} ({len(group['images'])} images)</h2>"
                     "<div class='images'>")
        for image in group["images"]:
            name = image["file"]
            if name not in written:
                thumb = _thumbnail_name(len(written), name)
                if not write_thumbnail(os.path.join(folder, name), os.fspath(thumbs / thumb), thumbnail_px):
                    continue
                written[name] = thumb
            boxes = "".join(_box_div(box, image["width"], image["height"], COLOURS[k % len(COLOURS)],
                                     f"region {k}") for k, box in enumerate(image["regions"]))
            parts.append(f"<figure><div class='frame'><img src='thumbs/{html.escape(written[name])}' "
                         f"alt='{html.escape(name)}'>{boxes}</div>"
                         f"<figcaption>{html.escape(name)}</figcaption></figure>")
        parts.append("</div><table><tr><th>image a</th><th>image b</th><th>score</th></tr>")
        parts += [f"<tr><td>{html.escape(p['a'])}</td><td>{html.escape(p['b'])}</td><td>{p['score']:.4f}</td></tr>"
                  for p in group["pairs"]]
        parts.append("</table></div>")
    if result.get("unreadable"):
        parts.append("<h2>Unreadable files</h2><ul>")
        parts += [f"<li>{html.escape(u['file'])}: {html.escape(u['error'])}</li>" for u in result["unreadable"]]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    temporary = out_dir / ".tmp-index.html"
    temporary.write_text("\n".join(parts), encoding="utf-8")
    os.replace(temporary, path)
    return os.fspath(path)
