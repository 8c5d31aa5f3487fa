"""IIIF Image API URLs (versions 1.1, 2.1 and 3.0) and ``info.json``.

    info = parse_info(json.load(open("info.json")), base="https://example.org/iiif/page1")
    size, (w, h) = download_size(info, max_side=1279)     # "1279," (2.x) or "1279,853" (3.0), or a listed size
    image_url(info.base, info.version, size=size)           # .../full/1279,/0/default.jpg
    image_url(info.base, info.version, region=region_pixels(10, 20, 300, 200))

URL: ``{base}/{region}/{size}/{rotation}/{quality}.{format}``. Regions are in the full-resolution image's
pixels (``x,y,w,h``, integers, origin top-left) or percentages of it (``pct:x,y,w,h``). Sizes: the largest
the server gives is ``max`` in 3.0 and ``full`` in 1.1 / 2.1; a width is ``w,`` in 1.1 / 2.1 and ``w,h`` in
3.0 (its canonical form, and what level-0 servers of 3.0 store); ``!w,h`` (best fit, level 2). Quality is
``default`` (``native`` in 1.1).

Hand-written rather than ``piffle.image.IIIFImageClient``: that client does not know the API version (it
writes ``full`` for 3.0 and ``w,`` where 3.0 level-0 servers need ``w,h``) and knows nothing of compliance
levels or ``sizes``, which decide what a server will answer; the grammar itself is the few lines below.

Which size to download (``download_size``): no larger than ``max_side`` on the longer side, never upscaled,
within ``maxWidth`` / ``maxHeight`` / ``maxArea``. Level 0 (or no level stated) serves only the sizes it lists
in ``sizes``: the smallest listed one that reaches ``max_side`` (else the largest), or ``full`` / ``max``
when none is listed. Level 1 and 2 scale freely.
"""

from __future__ import annotations

import dataclasses
import math

from artdup_jax.data.iiif.manifest import profile_level, resource_id, service_base, service_version


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What ``info.json`` says: full-resolution ``width`` x ``height`` pixels, the ``sizes`` it lists as
    ``(w, h)``, its limits (None: none stated), and the service ``base``, ``version`` and ``level``."""

    base: str
    version: int
    level: int | None
    width: int
    height: int
    sizes: tuple[tuple[int, int], ...] = ()
    max_width: int | None = None
    max_height: int | None = None
    max_area: int | None = None


def parse_info(document: dict, base: str | None = None, version: int | None = None) -> ImageInfo:
    """An ``info.json`` document. ``base``: the service URL it was fetched through, kept in preference to the
    document's own ``id`` (servers behind proxies often report an internal host name there); ``version``: the
    version assumed when the document does not say. Raises ValueError without a positive width and height."""
    width, height = document.get("width"), document.get("height")
    if not (isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0):
        raise ValueError(f"info.json of {base or resource_id(document)}: no positive width and height "
                         f"(width={width!r}, height={height!r})")
    profile = document.get("profile")
    level = profile_level(profile)
    if level is None and isinstance(document.get("compliance"), str):  # 1.1 puts the level here
        level = profile_level(document["compliance"])
    limits = {}
    for entry in [document] + [p for p in (profile if isinstance(profile, list) else []) if isinstance(p, dict)]:
        for key in ("maxWidth", "maxHeight", "maxArea"):
            if isinstance(entry.get(key), (int, float)) and entry[key] > 0:
                limits.setdefault(key, int(entry[key]))
    sizes = tuple(sorted((int(s["width"]), int(s["height"])) for s in document.get("sizes") or []
                         if isinstance(s, dict) and s.get("width") and s.get("height")))
    return ImageInfo(base=service_base(base or resource_id(document) or ""),
                     version=service_version(document, version or 3), level=level, width=int(width),
                     height=int(height), sizes=sizes, max_width=limits.get("maxWidth"),
                     max_height=limits.get("maxHeight"), max_area=limits.get("maxArea"))


# ------------------------------------------------------------------------------------------------ grammar


def region_pixels(x: float, y: float, width: float, height: float) -> str:
    """``x,y,w,h`` in full-resolution image pixels (rounded to integers)."""
    return ",".join(str(int(round(v))) for v in (x, y, width, height))


def region_percent(x: float, y: float, width: float, height: float) -> str:
    """``pct:x,y,w,h``, each in percent of the full image's width or height."""
    return "pct:" + ",".join(f"{v:.6g}" for v in (x, y, width, height))


def full_size(version: int) -> str:
    """The whole region at the largest size the server gives."""
    return "max" if version >= 3 else "full"


def size_for(version: int, width: int, height: int) -> str:
    """A scaled size: ``w,h`` (3.0) or ``w,`` (1.1, 2.1; the height follows from the aspect ratio)."""
    return f"{width},{height}" if version >= 3 else f"{width},"


def confined_size(width: int, height: int) -> str:
    """``!w,h``: the largest size that fits in ``width`` x ``height``, aspect kept (level 2)."""
    return f"!{width},{height}"


def image_url(base: str, version: int, *, region: str = "full", size: str | None = None, rotation: float = 0,
              fmt: str = "jpg") -> str:
    """``{base}/{region}/{size}/{rotation}/{quality}.{fmt}``; ``size`` None: ``full_size(version)``."""
    quality = "native" if version < 2 else "default"
    return f"{service_base(base)}/{region}/{size or full_size(version)}/{rotation:g}/{quality}.{fmt}"


def info_url(base: str) -> str:
    return f"{service_base(base)}/info.json"


# ------------------------------------------------------------------------------------------ size choice


def _limit_scale(info: ImageInfo) -> float:
    """The largest scale the server's limits allow (1: none). ``maxHeight`` defaults to ``maxWidth``."""
    max_height = info.max_height or info.max_width
    scale = 1.0
    if info.max_width:
        scale = min(scale, info.max_width / info.width)
    if max_height:
        scale = min(scale, max_height / info.height)
    if info.max_area:
        scale = min(scale, math.sqrt(info.max_area / (info.width * info.height)))
    return scale


def download_size(info: ImageInfo, max_side: int | None) -> tuple[str, tuple[int, int]]:
    """The size parameter to request for an image whose longer side should be at most ``max_side`` pixels
    (None: the largest available), and the ``(width, height)`` it should give."""
    longer = max(info.width, info.height)
    wanted = 1.0 if max_side is None else min(1.0, max_side / longer)
    if info.level in (None, 0):
        if not info.sizes:
            limit = _limit_scale(info)
            return full_size(info.version), (round(info.width * limit), round(info.height * limit))
        target = longer * wanted
        reaching = [s for s in info.sizes if max(s) >= target - 0.5]
        width, height = min(reaching, key=max) if reaching else max(info.sizes, key=max)
        return size_for(info.version, width, height), (width, height)
    scale = min(wanted, _limit_scale(info))
    if scale >= 1.0:
        return full_size(info.version), (info.width, info.height)
    width, height = max(1, int(round(info.width * scale))), max(1, int(round(info.height * scale)))
    return size_for(info.version, width, height), (width, height)
