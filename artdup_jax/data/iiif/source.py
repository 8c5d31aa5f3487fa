"""IIIF input for the collection commands: manifests, collections or Image API services -> a local image folder.

    source = iiif_source("https://example.org/iiif/book/manifest", "runs/discover/iiif", max_side=1279)
    run = discover_folder(source.folder, "runs/discover", ...)   # any command that reads a folder
    source.image("0003-folio-2r.jpg").to_canvas([x1, y1, x2, y2])  # a box of the file -> canvas (x, y, w, h)
    source.failures                                                 # canvases not fetched, one line each

An input is a manifest or collection (Presentation 2.1 or 3.0; a URL or a JSON file), an Image API service
(its base URL or ``.../info.json``), a text file listing any of these one per line (``#`` starts a comment),
or a list of them; their canvases are concatenated in order. Each canvas's image is downloaded at the size the
method needs (``fetch``) and placed in ``folder`` as ``NNNN-label.ext`` (N: the canvas's position in the
input, so files sort in canvas order; hard links to the cache where possible). ``folder`` holds nothing else
but two hidden files that the folder readers ignore: ``.iiif-canvases.json`` (each file's canvas and the
coordinate mapping, the failures) and ``.iiif-manifests.json`` (the manifests read, so an annotated copy can
be written beside the results). ``IIIFSource.load(folder)`` reads them back.

Coordinates: a box ``[x1, y1, x2, y2]`` in the file's pixels (as ``data.images.read_image`` reads it, EXIF
orientation applied) maps to the canvas by the image's ``placement`` on it (the whole canvas unless the
manifest paints it on a part), and to the full-resolution Image API image by ``image_width / file_width``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import unicodedata
import warnings
from pathlib import Path
from typing import Sequence

from artdup_jax.data import outputs
from artdup_jax.data.iiif.fetch import Fetcher, FetchError, FetchSettings, fetch_canvases
from artdup_jax.data.iiif.image_api import image_url, region_pixels
from artdup_jax.data.iiif.manifest import (Canvas, Failure, ImageService, ManifestError, read_canvases,
                                           resource_id, service_base)

CANVASES_FILE = ".iiif-canvases.json"
MANIFESTS_FILE = ".iiif-manifests.json"


class IIIFInputError(ValueError):
    """An input that is not IIIF or could not be read at all (no canvas to try); one line, names it."""


@dataclasses.dataclass(frozen=True)
class CanvasImage:
    """A file of the folder and the canvas it shows.

    ``canvas_width`` x ``canvas_height``: canvas units; ``placement``: ``(x, y, w, h)`` of the canvas that the
    image covers; ``file_width`` x ``file_height``: the file's pixels; ``image_width`` x ``image_height``: the
    Image API image's full-resolution pixels (the file's size without a service).
    """

    file: str
    canvas_id: str
    label: str
    manifest_id: str
    canvas_width: int
    canvas_height: int
    placement: tuple[float, float, float, float]
    file_width: int
    file_height: int
    image_width: int
    image_height: int
    url: str
    service_base: str | None = None
    service_version: int | None = None
    service_level: int | None = None

    def to_canvas(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """``[x1, y1, x2, y2]`` file pixels -> ``(x, y, w, h)`` canvas units."""
        x, y, width, height = self.placement
        sx, sy = width / self.file_width, height / self.file_height
        x1, y1, x2, y2 = (float(v) for v in box)
        return x + x1 * sx, y + y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy

    def to_file(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """``[x1, y1, x2, y2]`` canvas units (e.g. a box drawn in a viewer) -> ``[x1, y1, x2, y2]`` file pixels."""
        x, y, width, height = self.placement
        sx, sy = self.file_width / width, self.file_height / height
        x1, y1, x2, y2 = (float(v) for v in box)
        return (x1 - x) * sx, (y1 - y) * sy, (x2 - x) * sx, (y2 - y) * sy

    def to_image(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """``[x1, y1, x2, y2]`` file pixels -> ``(x, y, w, h)`` full-resolution image pixels."""
        sx, sy = self.image_width / self.file_width, self.image_height / self.file_height
        x1, y1, x2, y2 = (float(v) for v in box)
        return x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy

    def region_url(self, box: Sequence[float], size: str | None = None) -> str | None:
        """The Image API URL of ``box`` (file pixels) at ``size`` (None: the largest), or None where the server
        cannot cut regions (no service, or compliance level 0)."""
        if not self.service_base or self.service_level == 0:
            return None
        x, y, width, height = self.to_image(box)
        x0, y0 = max(0, int(x)), max(0, int(y))  # outward to whole pixels, inside the image
        x1 = min(self.image_width, int(-(-(x + width) // 1)))
        y1 = min(self.image_height, int(-(-(y + height) // 1)))
        return image_url(self.service_base, self.service_version or 3,
                         region=region_pixels(x0, y0, max(1, x1 - x0), max(1, y1 - y0)), size=size)


@dataclasses.dataclass
class IIIFSource:
    """The folder made from an input: ``images`` (one per canvas fetched, in canvas order), ``failures`` (one
    per canvas or collection member that could not be fetched), and the ``manifests`` read (id -> document)."""

    inputs: list[str]
    folder: str
    images: list[CanvasImage]
    failures: list[Failure]
    manifests: dict[str, dict] = dataclasses.field(default_factory=dict)

    def image(self, file: str | os.PathLike) -> CanvasImage:
        """The canvas image of ``file`` (a name in the folder, a path relative to it, or a path inside it)."""
        name = os.path.basename(os.fspath(file))
        for image in self.images:
            if image.file == name:
                return image
        raise KeyError(f"{file}: not one of the IIIF images of {self.folder}")

    def find(self, key: str) -> CanvasImage | None:
        """The image whose canvas id, file name or label is ``key`` (None if none is)."""
        for attribute in ("canvas_id", "file", "label"):
            for image in self.images:
                if getattr(image, attribute) == key:
                    return image
        return None

    def path(self, image: CanvasImage) -> str:
        return os.path.join(self.folder, image.file)

    def report(self) -> dict:
        """What a result document lists about its IIIF input (``failures``: canvas, label, reason, url)."""
        return {"inputs": self.inputs, "canvases": len(self.images) + len(self.failures),
                "fetched": len(self.images),
                "failures": [{"canvas": f.id, "label": f.label, "reason": f.reason, "url": f.url}
                             for f in self.failures]}

    def save(self) -> None:
        outputs.save_json(os.path.join(self.folder, CANVASES_FILE),
                          {"inputs": self.inputs, "images": [dataclasses.asdict(i) for i in self.images],
                           "failures": [dataclasses.asdict(f) for f in self.failures]})
        outputs.save_json(os.path.join(self.folder, MANIFESTS_FILE), self.manifests)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> IIIFSource:
        """The source that ``iiif_source`` left in ``folder``; raises ``IIIFInputError`` if there is none."""
        path = Path(folder) / CANVASES_FILE
        if not path.is_file():
            raise IIIFInputError(f"{folder}: not a folder made from IIIF input (no {CANVASES_FILE})")
        document = json.loads(path.read_text(encoding="utf-8"))
        manifests_path = Path(folder) / MANIFESTS_FILE
        manifests = json.loads(manifests_path.read_text(encoding="utf-8")) if manifests_path.is_file() else {}
        images = [CanvasImage(**{**i, "placement": tuple(i["placement"])}) for i in document["images"]]
        return cls(document["inputs"], os.fspath(folder), images, [Failure(**f) for f in document["failures"]],
                   manifests)


# ------------------------------------------------------------------------------------------------- inputs


def _is_url(text: str) -> bool:
    return bool(re.match(r"^https?://", text.strip(), flags=re.IGNORECASE))


def _looks_like_info(document: dict) -> bool:
    """An Image API ``info.json`` (1.1 and 2.1 state ``protocol``; 3.0 has ``profile`` and a size, no items)."""
    return ("iiif.io/api/image" in str(document.get("protocol", ""))
            or ("width" in document and "height" in document and "profile" in document and "items" not in document))


def is_iiif_input(argument: str | os.PathLike) -> bool:
    """Whether a command-line input names IIIF rather than a local image folder: an http(s) URL, a JSON file
    (a manifest, collection or ``info.json``) or a text file of such URLs."""
    text = os.fspath(argument)
    if _is_url(text):
        return True
    path = Path(text)
    if not path.is_file():
        return False
    if path.suffix.lower() in (".json", ".jsonld"):
        return True
    try:
        lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (UnicodeDecodeError, OSError):
        return False
    lines = [line for line in lines if line]
    return bool(lines) and all(_is_url(line) or line.lower().endswith((".json", ".jsonld")) for line in lines)


def _service_canvas(base: str, version: int = 3) -> Canvas:
    """A bare Image API service as a canvas: its id is the service URL, its size comes from ``info.json``."""
    base = service_base(base)
    label = base.rstrip("/").rsplit("/", 1)[-1] or base
    return Canvas(id=base, label=label, width=None, height=None, manifest_id="",
                  service=ImageService(base, version, None))


def _expand(inputs: Sequence[str]) -> list[str]:
    """Text files listing inputs are replaced by their lines."""
    expanded = []
    for item in inputs:
        path = Path(item)
        if not _is_url(item) and path.is_file() and path.suffix.lower() not in (".json", ".jsonld"):
            lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            expanded += [line for line in lines if line]
        else:
            expanded.append(item)
    return expanded


def read_inputs(inputs: str | Sequence[str], fetcher: Fetcher) -> tuple[list[Canvas], list[Failure], dict]:
    """The canvases of every input, the collection members that failed, and the manifests read (id -> JSON).
    Raises ``IIIFInputError`` when no input gives a single canvas to try."""
    inputs = _expand([inputs] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(i) for i in inputs])
    canvases, failures, manifests = [], [], {}

    def load(url: str) -> dict:
        document = fetcher.get_json(url)
        if document.get("type", document.get("@type", "")).split(":")[-1] == "Manifest":
            manifests[resource_id(document) or url] = document
        return document

    problems: list[Failure] = []  # inputs that could not be read at all
    for item in inputs:
        try:
            if _is_url(item) and item.rstrip("/").endswith("/info.json"):
                canvases.append(_service_canvas(item))
                continue
            document = load(item) if _is_url(item) else json.loads(Path(item).read_text(encoding="utf-8"))
            if _looks_like_info(document):
                canvases.append(_service_canvas(item if _is_url(item) else resource_id(document) or item))
                continue
            if not _is_url(item) and document.get("type", document.get("@type", "")).endswith("Manifest"):
                manifests[resource_id(document) or item] = document
            found, missed = read_canvases(document, load=load)
        except (FetchError, ManifestError, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            problems.append(Failure(item, "", " ".join(str(error).split()), item if _is_url(item) else None))
            continue
        canvases += found
        failures += missed
    failures = problems + failures
    if not canvases:
        reasons = "; ".join(f"{f.id}: {f.reason}" for f in failures) or "no canvas in it"
        raise IIIFInputError(f"no IIIF canvas could be read from {', '.join(inputs)} ({reasons})")
    return canvases, failures, manifests


# ------------------------------------------------------------------------------------------------- folder


def _slug(label: str, limit: int = 40) -> str:
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return text[:limit].rstrip("-") or "canvas"


def _place(cached: str, destination: Path) -> None:
    """``destination`` becomes the cached file: a hard link where the file system allows, else a copy."""
    if destination.exists() or destination.is_symlink():
        destination.unlink()
    try:
        os.link(cached, destination)
    except OSError:
        shutil.copyfile(cached, destination)


def iiif_source(inputs: str | Sequence[str], folder: str | os.PathLike, *, max_side: int | None = None,
                settings: FetchSettings = FetchSettings()) -> IIIFSource:
    """Fetches every canvas of ``inputs`` into ``folder`` at ``max_side`` pixels on the longer side (None: the
    largest served; overrides ``settings.max_side``). Each canvas that fails is a one-line warning and an entry
    of ``failures``; the rest is fetched. Raises ``IIIFInputError`` if no canvas could be fetched at all."""
    settings = dataclasses.replace(settings, max_side=max_side if max_side is not None else settings.max_side)
    fetcher = Fetcher(settings)
    canvases, failures, manifests = read_inputs(inputs, fetcher)
    fetched, fetch_failures = fetch_canvases(canvases, settings, fetcher)
    failures = failures + fetch_failures
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = IIIFSource.load(folder).images if (folder / CANVASES_FILE).is_file() else []
    digits = max(4, len(str(len(canvases))))
    images = []
    for index, item in enumerate(fetched):
        if item is None:
            continue
        canvas, info = item.canvas, item.info
        name = f"{index + 1:0{digits}d}-{_slug(canvas.label)}{Path(item.path).suffix}"
        _place(item.path, folder / name)
        image_width = info.width if info else item.file_width
        image_height = info.height if info else item.file_height
        canvas_width = canvas.width or image_width
        canvas_height = canvas.height or image_height
        images.append(CanvasImage(
            file=name, canvas_id=canvas.id, label=canvas.label, manifest_id=canvas.manifest_id,
            canvas_width=canvas_width, canvas_height=canvas_height,
            placement=canvas.placement or (0.0, 0.0, float(canvas_width), float(canvas_height)),
            file_width=item.file_width, file_height=item.file_height, image_width=image_width,
            image_height=image_height, url=item.url, service_base=info.base if info else None,
            service_version=info.version if info else None, service_level=info.level if info else None))
    kept = {image.file for image in images}
    for old in previous:  # files of an earlier run that this one did not produce (never other files)
        if old.file not in kept and (folder / old.file).is_file():
            (folder / old.file).unlink()
    inputs_list = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    source = IIIFSource([os.fspath(i) for i in inputs_list], os.fspath(folder), images, failures, manifests)
    source.save()
    for failure in failures:
        warnings.warn(f"IIIF: skipping {failure.label or failure.id} ({failure.id}): {failure.reason}", stacklevel=2)
    if not images:
        raise IIIFInputError(f"none of the {len(canvases)} IIIF canvases of {', '.join(source.inputs)} could be "
                             f"fetched (first failure: {failures[0].reason})")
    return source
