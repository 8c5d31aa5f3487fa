"""IIIF Presentation 2.1 and 3.0 manifests and collections -> ``Canvas`` records (id, label, size, image service).

    canvases, failures = read_canvases(json.load(open("manifest.json")))
    canvases[0].service.base, canvases[0].service.version, canvases[0].service.level

A careful parser of our own rather than a library, because the Python IIIF libraries build documents or read
one version only: ``iiif-prezi3`` (the IIIF community's) builds and validates 3.0 resources and rejects 2.1,
``iiif-prezi`` builds 2.x and is unmaintained since 2019, and ``piffle``'s dataclasses read both but as
attribute bags that leave the actual work to the caller: finding the painting image (2.1 ``images`` /
``oa:Choice``, 3.0 ``items`` / ``Choice``), its service (a dict or a list, ``@id`` or ``id``, an
``ImageService2`` inside a 3.0 manifest), the Image API version and compliance level from ``@context``,
``type`` or ``profile`` (a URI, a short name or a list), and labels (a string, a list, ``@value`` objects
or a language map). That normalisation is what this module does, in one place, tested on both versions.

Coordinates: a canvas has its own ``width`` x ``height`` (abstract units, usually the image's pixels but not
always); the painted image fills ``placement`` = ``(x, y, w, h)`` of it (the whole canvas unless the
painting annotation targets ``#xywh=``). Collections are followed through ``load(url) -> dict`` (members
given inline are read as they are); a member that cannot be loaded is a ``Failure`` and the others go on.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable

MAX_COLLECTION_DEPTH = 8


class ManifestError(ValueError):
    """A document that is not a IIIF manifest or collection; one line, names it."""


@dataclasses.dataclass(frozen=True)
class ImageService:
    """An Image API service: ``base`` (no trailing slash, no ``/info.json``), API major ``version`` (1, 2 or 3)
    and compliance ``level`` (0, 1, 2; None when the manifest does not say)."""

    base: str
    version: int
    level: int | None

    @property
    def info_url(self) -> str:
        return f"{self.base}/info.json"


@dataclasses.dataclass(frozen=True)
class Canvas:
    """One canvas and the image painted on it.

    ``width``/``height``: the canvas's own size (None when absent: a bare service list, filled from
    ``info.json``). ``image_width``/``image_height``: the painted image's pixel size as the manifest states
    it (None: unknown until ``info.json``). ``placement``: ``(x, y, w, h)`` canvas units covered by the
    image; None means the whole canvas. ``image_url``: the painting resource's own URL (used when there is
    no ``service``).
    """

    id: str
    label: str
    width: int | None
    height: int | None
    manifest_id: str
    service: ImageService | None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    placement: tuple[float, float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """Something that could not be read or fetched (a canvas, a collection member): its id, its label and
    one line saying why; ``url``: the request that failed, if any."""

    id: str
    label: str
    reason: str
    url: str | None = None


# ------------------------------------------------------------------------------------------------ basics


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resource_id(resource) -> str | None:
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict):
        return resource.get("id") or resource.get("@id")
    return None


def _type(resource) -> str:
    if not isinstance(resource, dict):
        return ""
    kind = resource.get("type") or resource.get("@type") or ""
    kind = kind[0] if isinstance(kind, list) and kind else kind
    return str(kind).split(":")[-1]  # "sc:Canvas" -> "Canvas", "oa:Choice" -> "Choice", "dctypes:Image" -> "Image"


def _int(value) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(round(number)) if number > 0 else None


def label_text(label, default: str = "") -> str:
    """A label as one string: a string, a list of strings, ``{"@value": ...}`` objects (2.1), or a 3.0
    language map (``en`` first, then ``none``, then the first language)."""
    if label is None:
        return default
    if isinstance(label, str):
        return label
    if isinstance(label, (list, tuple)):
        parts = [label_text(item) for item in label]
        return next((p for p in parts if p), default)
    if isinstance(label, dict):
        if "@value" in label:
            return str(label["@value"])
        for language in ("en", "none", *label.keys()):
            if language in label:
                return label_text(label[language], default)
    return default


def presentation_version(document: dict) -> int:
    """2 or 3, from ``@context`` (``presentation/3`` or ``/2``), else from the keys (``@type`` is 2.x)."""
    contexts = " ".join(str(c) for c in _as_list(document.get("@context")))
    if "presentation/3" in contexts:
        return 3
    if "presentation/2" in contexts:
        return 2
    return 2 if "@type" in document else 3


# ----------------------------------------------------------------------------------------------- services


def profile_level(profile) -> int | None:
    for entry in _as_list(profile):
        if isinstance(entry, str):
            found = re.search(r"level([012])", entry)
            if found:
                return int(found.group(1))
    return None


def service_version(service: dict, default: int) -> int:
    kind = _type(service)
    if kind == "ImageService3":
        return 3
    if kind in ("ImageService2", "ImageService1"):
        return int(kind[-1])
    text = " ".join(str(c) for c in _as_list(service.get("@context"))) + " " + " ".join(
        p for p in _as_list(service.get("profile")) if isinstance(p, str))
    found = re.search(r"iiif\.io/api/image/([123])", text)
    return int(found.group(1)) if found else default


def image_service(services, default_version: int) -> ImageService | None:
    """The first Image API service among ``services`` (a dict or a list; other services, e.g. auth or search,
    are passed over). ``default_version``: the version assumed when nothing says (the manifest's)."""
    for service in _as_list(services):
        if isinstance(service, str):  # a bare URL: assume the manifest's version, level unknown
            return ImageService(service_base(service), default_version, None)
        if not isinstance(service, dict):
            continue
        kind, base = _type(service), resource_id(service)
        profile = " ".join(p for p in _as_list(service.get("profile")) if isinstance(p, str))
        contexts = " ".join(str(c) for c in _as_list(service.get("@context")))
        is_image = kind.startswith("ImageService") or "api/image" in profile or "api/image" in contexts
        if base and is_image:
            return ImageService(service_base(base), service_version(service, default_version),
                                profile_level(service.get("profile")))
    return None


def service_base(url: str) -> str:
    url = url.strip()
    if url.endswith("/info.json"):
        url = url[: -len("/info.json")]
    return url.rstrip("/")


# ------------------------------------------------------------------------------------------------ canvases


def _painted(resource) -> dict | None:
    """The image of a painting body/resource: a Choice gives its default (2.1) or first item (3.0)."""
    if isinstance(resource, list):
        resource = resource[0] if resource else None
    if not isinstance(resource, dict):
        return None
    if _type(resource) == "Choice":
        options = _as_list(resource.get("default")) + _as_list(resource.get("items")) + _as_list(resource.get("item"))
        return _painted(options[0]) if options else None
    if _type(resource) == "SpecificResource" and isinstance(resource.get("source"), dict):
        return _painted(resource["source"])
    return resource


def _placement(target) -> tuple[float, float, float, float] | None:
    """``#xywh=x,y,w,h`` of a painting annotation's target (a string or a SpecificResource)."""
    selectors = []
    if isinstance(target, str):
        selectors.append(target)
    elif isinstance(target, dict):
        selectors.append(resource_id(target) or "")
        selectors += [s.get("value", "") for s in _as_list(target.get("selector")) if isinstance(s, dict)]
    for text in selectors:
        found = re.search(r"xywh=(?:pixel:)?([\d.]+),([\d.]+),([\d.]+),([\d.]+)", text or "")
        if found:
            return tuple(float(v) for v in found.groups())
    return None


def _canvas(raw: dict, manifest_id: str, version: int, index: int) -> Canvas:
    if version == 3:
        annotations = [a for page in _as_list(raw.get("items")) if isinstance(page, dict)
                       for a in _as_list(page.get("items")) if isinstance(a, dict)]
        painting = [a for a in annotations if "painting" in str(a.get("motivation", "painting"))]
        image = _painted(painting[0].get("body")) if painting else None
        target = painting[0].get("target") if painting else None
    else:
        painting = [a for a in _as_list(raw.get("images")) if isinstance(a, dict)]
        image = _painted(painting[0].get("resource")) if painting else None
        target = painting[0].get("on") if painting else None
    service = image_service(image.get("service"), version) if image else None
    placement = _placement(target)
    canvas_id = resource_id(raw) or f"{manifest_id}#canvas-{index}"
    return Canvas(id=canvas_id, label=label_text(raw.get("label"), default=f"canvas {index + 1}"),
                  width=_int(raw.get("width")), height=_int(raw.get("height")), manifest_id=manifest_id,
                  service=service, image_url=resource_id(image) if image else None,
                  image_width=_int(image.get("width")) if image else None,
                  image_height=_int(image.get("height")) if image else None, placement=placement)


def manifest_canvases(document: dict) -> list[Canvas]:
    """The canvases of one manifest, in order (2.1: the first sequence, as the spec makes it the default)."""
    version = presentation_version(document)
    manifest_id = resource_id(document) or ""
    if version == 3:
        raw = [c for c in _as_list(document.get("items")) if _type(c) == "Canvas"]
    else:
        sequences = [s for s in _as_list(document.get("sequences")) if isinstance(s, dict)]
        raw = [c for c in _as_list(sequences[0].get("canvases")) if isinstance(c, dict)] if sequences else []
    return [_canvas(c, manifest_id, version, i) for i, c in enumerate(raw)]


def _embedded(node: dict) -> bool:
    """Whether a collection member is given inline (else it is a reference to load)."""
    return any(key in node for key in ("sequences", "items", "members", "manifests", "collections"))


def _members(document: dict) -> Iterable[dict | str]:
    """A collection's manifests and sub-collections in order (2.1 ``members`` or ``collections`` then
    ``manifests``; 3.0 ``items``)."""
    if presentation_version(document) == 3:
        return _as_list(document.get("items"))
    if document.get("members"):
        return _as_list(document["members"])
    return _as_list(document.get("collections")) + _as_list(document.get("manifests"))


def read_canvases(document: dict, load: Callable[[str], dict] | None = None
                  ) -> tuple[list[Canvas], list[Failure]]:
    """Every canvas of a manifest, or of every manifest a collection reaches (depth-first, in order, each
    manifest once). ``load(url) -> dict`` fetches members that are only referenced; without it they are
    failures. Raises ``ManifestError`` for a document that is neither a manifest nor a collection."""
    kind = _type(document) if isinstance(document, dict) else ""
    if kind not in ("Manifest", "Collection"):
        name = resource_id(document) if isinstance(document, dict) else None
        raise ManifestError(f"{name or 'document'}: not a IIIF manifest or collection (type {kind or 'missing'!r};"
                            " expected Manifest or Collection, Presentation 2.1 or 3.0)")
    canvases: list[Canvas] = []
    failures: list[Failure] = []
    seen: set[str] = set()

    def visit(node: dict, depth: int) -> None:
        node_id, label = resource_id(node) or "", label_text(node.get("label"))
        if node_id and node_id in seen:
            return
        seen.add(node_id)
        if not _embedded(node):
            if load is None:
                failures.append(Failure(node_id, label, "referenced by the collection but not embedded, and "
                                                        "no loader given", node_id))
                return
            try:
                node = load(node_id)
            except Exception as error:  # noqa: BLE001 - one member failing is recorded; the others go on
                failures.append(Failure(node_id, label, _one_line(error), node_id))
                return
        kind = _type(node)
        if kind == "Manifest":
            canvases.extend(manifest_canvases(node))
        elif kind == "Collection" and depth < MAX_COLLECTION_DEPTH:
            for member in _members(node):
                visit(member if isinstance(member, dict) else {"id": member}, depth + 1)
        elif kind == "Collection":
            failures.append(Failure(node_id, label, f"collections nested deeper than {MAX_COLLECTION_DEPTH}"))
        else:
            failures.append(Failure(node_id, label, f"not a manifest or collection (type {kind or 'missing'!r})"))

    visit(document, 0)
    return canvases, failures


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
