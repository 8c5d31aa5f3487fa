"""Results as W3C Web Annotations: one AnnotationPage per canvas that IIIF viewers (Mirador, UV) load.

    source = IIIFSource.load("runs/discover/iiif")       # source.image: file -> CanvasImage (local_images(folder))
    annotations = discovery_annotations(run.document, source.image, Provenance("artminer-discover", "ltll.pth"))
    files = write_annotations(annotations, "runs/discover/annotations", source.images,
                              base_url="https://host/annotations/", manifests=source.manifests)
    files.pages      # canvas id -> page file; files.manifests: copies of the manifests with the pages linked

An annotation (JSON-LD, ``@context`` ``http://www.w3.org/ns/anno.jsonld``, a ``urn:uuid`` id derived from its
content, so a re-run gives the same ids) targets one region: a ``SpecificResource`` whose ``source`` is the
canvas (``partOf`` its manifest) and whose ``FragmentSelector`` is ``xywh=x,y,w,h`` in the canvas's own units
(the method's box in file pixels, scaled by ``CanvasImage.to_canvas``; rounded outward to integers and kept
inside the canvas). Its motivations are ``commenting`` and ``linking``; its bodies:

* a ``TextualBody`` (``commenting``) a person reads in the viewer;
* a ``TextualBody`` (``tagging``): ``artdup match``, ``artdup group``, ``artdup detection`` or ``artdup query``;
* a ``TextualBody`` (``assessing``, ``application/json``): ``score``, ``method``, ``weights`` (None: random
  weights, a smoke test) and the result's own keys (group id, rank, ...);
* per linked region (the other side of a match, the other members of a group, the query of a detection):
  a ``SpecificResource`` (``linking``) naming that canvas and ``xywh``, and for IIIF input its Image API
  region URL as an ``Image`` (``linking``); the annotated region's own Image API URL is an ``Image`` body with
  purpose ``identifying``. Regions of level-0 services have no URL (such servers cannot cut regions).

Local (non-IIIF) folders work the same way with ``local_images``: the target is the file's URI and
``xywh`` is in its pixels.

Viewers: Mirador 4.0.0 draws ``xywh`` in the painted image's pixels instead of canvas units, so its boxes are
misplaced on canvases whose size differs from their image's (ProjectMirador/mirador#4533); the annotations
follow the specification (tests/iiif/test_mirador.py keeps an expected failure for it).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

from artdup_jax.data import outputs
from artdup_jax.data.iiif.manifest import presentation_version, resource_id
from artdup_jax.data.images import read_image
from artdup_jax.data.iiif.source import CanvasImage

ANNOTATION_CONTEXT = "http://www.w3.org/ns/anno.jsonld"
MEDIA_FRAGMENTS = "http://www.w3.org/TR/media-frags/"
SOFTWARE = {"type": "Software", "name": "artdup-jax"}
_NAMESPACE = uuid.UUID("6f1c1d3e-5d0a-4a43-9c55-0b7a8f1e2a10")  # ids: uuid5 of the annotation's content

Lookup = Callable[[str], CanvasImage]


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What produced a result: ``method`` (e.g. ``artminer-discover``) and ``weights`` (a checkpoint name or
    path; None: random weights)."""

    method: str
    weights: str | None = None


@dataclasses.dataclass(frozen=True)
class Region:
    """A box ``[x1, y1, x2, y2]`` in the pixels of ``image``'s file."""

    image: CanvasImage
    box: tuple[float, float, float, float]

    def xywh(self) -> str:
        """``xywh=x,y,w,h`` in canvas units: outward to integers, inside the canvas."""
        x, y, width, height = self.image.to_canvas(self.box)
        x0 = min(max(0, math.floor(x + 1e-6)), self.image.canvas_width - 1)
        y0 = min(max(0, math.floor(y + 1e-6)), self.image.canvas_height - 1)
        x1 = max(min(self.image.canvas_width, math.ceil(x + width - 1e-6)), x0 + 1)
        y1 = max(min(self.image.canvas_height, math.ceil(y + height - 1e-6)), y0 + 1)
        return f"xywh={x0},{y0},{x1 - x0},{y1 - y0}"

    def source(self) -> dict:
        if not self.image.manifest_id:
            return {"id": self.image.canvas_id, "type": "Image"}
        return {"id": self.image.canvas_id, "type": "Canvas",
                "partOf": [{"id": self.image.manifest_id, "type": "Manifest"}]}

    def specific_resource(self, purpose: str | None = None) -> dict:
        resource = {"type": "SpecificResource"}
        if purpose:
            resource["purpose"] = purpose
        resource["source"] = self.source()
        resource["selector"] = {"type": "FragmentSelector", "conformsTo": MEDIA_FRAGMENTS, "value": self.xywh()}
        return resource

    def image_body(self, purpose: str) -> dict | None:
        url = self.image.region_url(self.box)
        return {"id": url, "type": "Image", "format": "image/jpeg", "purpose": purpose} if url else None


def annotation(region: Region, linked: Sequence[Region], *, kind: str, text: str, assessment: dict,
               provenance: Provenance) -> dict:
    """One annotation of ``region`` linking ``linked`` (see the module docstring for its shape)."""
    values = {"score": None, **assessment, "method": provenance.method, "weights": provenance.weights,
              "kind": kind}
    bodies = [{"type": "TextualBody", "purpose": "commenting", "format": "text/plain", "language": "en",
               "value": text},
              {"type": "TextualBody", "purpose": "tagging", "value": f"artdup {kind}"},
              {"type": "TextualBody", "purpose": "assessing", "format": "application/json",
               "value": json.dumps(values, sort_keys=True)}]
    own = region.image_body("identifying")
    bodies += [own] if own else []
    for other in linked:
        bodies.append(other.specific_resource("linking"))
        image = other.image_body("linking")
        bodies += [image] if image else []
    target = region.specific_resource()
    key = json.dumps([kind, target, [b for b in bodies if b.get("purpose") != "commenting"]], sort_keys=True)
    return {"@context": ANNOTATION_CONTEXT, "id": f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}", "type": "Annotation",
            "motivation": ["commenting", "linking"], "creator": dict(SOFTWARE), "body": bodies, "target": target}


def _describe(region: Region) -> str:
    return f"“{region.image.label}” ({region.xywh()})"


def _weights_text(provenance: Provenance) -> str:
    return f"weights {provenance.weights}" if provenance.weights else "random weights (a smoke test)"


# ------------------------------------------------------------------------------------------------ results


def match_annotations(a: Region, b: Region, score: float, provenance: Provenance, **extra) -> list[dict]:
    """The two annotations of a verified match: each side targets its own region and links the other."""
    found = []
    for this, other in ((a, b), (b, a)):
        text = (f"{provenance.method}: match, score {score:.3f}, with {_describe(other)}; "
                f"{_weights_text(provenance)}")
        found.append(annotation(this, [other], kind="match", text=text, assessment={"score": score, **extra},
                                provenance=provenance))
    return found


def group_annotations(members: Sequence[Region], provenance: Provenance, *, group: int,
                      scores: Sequence[float | None] = (), **extra) -> list[dict]:
    """One annotation per member region of a group, each linking every other member. ``scores``: per member,
    e.g. its best pair score in the group."""
    found = []
    for k, region in enumerate(members):
        others = [m for j, m in enumerate(members) if j != k]
        score = scores[k] if k < len(scores) else None
        text = (f"{provenance.method}: group {group} ({len(members)} regions); this region recurs in "
                f"{', '.join(_describe(o) for o in others)}; {_weights_text(provenance)}")
        found.append(annotation(region, others, kind="group", text=text,
                                assessment={"score": score, "group": group, **extra}, provenance=provenance))
    return found


def discovery_annotations(document: dict, lookup: Lookup, provenance: Provenance | None = None) -> list[dict]:
    """Every verified pair (``groups[].pairs``) as a match and every region group (``groups[].region_groups``)
    as a group, from ``discover``'s JSON document (file names relative to its folder, boxes in file pixels).
    ``provenance`` None: ``artminer-discover`` with the document's ``settings.checkpoint``."""
    provenance = provenance or Provenance("artminer-discover", (document.get("settings") or {}).get("checkpoint"))
    found = []
    for group in document.get("groups", []):
        best: dict[str, float] = {}
        for pair in group.get("pairs", []):
            a, b = Region(lookup(pair["a"]), tuple(pair["box_a"])), Region(lookup(pair["b"]), tuple(pair["box_b"]))
            found += match_annotations(a, b, float(pair["score"]), provenance, group=group["id"])
            for name in (pair["a"], pair["b"]):
                best[name] = max(best.get(name, -math.inf), float(pair["score"]))
        for k, region_group in enumerate(group.get("region_groups", [])):
            members = [Region(lookup(m["file"]), tuple(m["box"])) for m in region_group["images"]]
            scores = [best.get(m["file"]) for m in region_group["images"]]
            found += group_annotations(members, provenance, group=group["id"], scores=scores, region_group=k,
                                       num_pairs=region_group.get("num_pairs"))
    return found


def detection_annotations(document: dict, lookup: Lookup, query: CanvasImage, provenance: Provenance, *,
                          top: int | None = None, min_score: float | None = None) -> list[dict]:
    """The detections of ``detect``'s document (``{"box", "detections": [{"file", "score", "box"}]}``, best
    first), the ``top`` best at or above ``min_score``: one annotation per detected region linking the query
    region, and one on the query region (``query``: its ``CanvasImage``) linking them all."""
    query_region = Region(query, tuple(document["box"]))
    kept = [d for d in document.get("detections", []) if min_score is None or d["score"] >= min_score][:top]
    regions = [Region(lookup(d["file"]), tuple(d["box"])) for d in kept]
    found = []
    for rank, (detection, region) in enumerate(zip(kept, regions), start=1):
        text = (f"{provenance.method}: detection {rank}, score {detection['score']:.3f}, of the query "
                f"{_describe(query_region)}; {_weights_text(provenance)}")
        found.append(annotation(region, [query_region], kind="detection", text=text,
                                assessment={"score": float(detection["score"]), "rank": rank},
                                provenance=provenance))
    if regions:
        text = (f"{provenance.method}: query region; {len(regions)} detection(s), best score "
                f"{kept[0]['score']:.3f} in {_describe(regions[0])}; {_weights_text(provenance)}")
        found.append(annotation(query_region, regions, kind="query", text=text,
                                assessment={"score": None, "detections": len(regions)}, provenance=provenance))
    return found


# -------------------------------------------------------------------------------------------- local files


def local_image(path: str | os.PathLike, width: int, height: int) -> CanvasImage:
    """A local image file as the target of annotations: its URI, ``xywh`` in its own pixels."""
    path = Path(path).absolute()
    return CanvasImage(file=path.name, canvas_id=path.as_uri(), label=path.name, manifest_id="",
                       canvas_width=width, canvas_height=height, placement=(0.0, 0.0, float(width), float(height)),
                       file_width=width, file_height=height, image_width=width, image_height=height,
                       url=path.as_uri())


def local_images(folder: str | os.PathLike) -> Lookup:
    """``file -> CanvasImage`` for a local folder (sizes read from the files as ``read_image`` sees them)."""
    cache: dict[str, CanvasImage] = {}

    def lookup(file: str) -> CanvasImage:
        if file not in cache:
            path = Path(folder) / file
            height, width = read_image(os.fspath(path)).shape[:2]
            cache[file] = local_image(path, width, height)
        return cache[file]

    return lookup


# ------------------------------------------------------------------------------------------------- output


@dataclasses.dataclass
class AnnotationFiles:
    """What ``write_annotations`` wrote: per canvas its page file and URL, the index, the annotated manifests."""

    directory: str
    pages: dict[str, str]
    urls: dict[str, str]
    index: str
    manifests: list[str]


def _page_name(image: CanvasImage) -> str:
    return f"{Path(image.file).stem}.json"


def annotation_pages(annotations: Iterable[dict], images: Sequence[CanvasImage], base_url: str
                     ) -> dict[str, dict]:
    """One AnnotationPage per canvas that has annotations (canvas id -> page), its id ``base_url`` + the page
    file name; ``images``: the canvases, for their file names and labels."""
    by_canvas: dict[str, list[dict]] = {}
    for item in annotations:
        by_canvas.setdefault(item["target"]["source"]["id"], []).append(item)
    pages = {}
    for image in images:
        if image.canvas_id in by_canvas and image.canvas_id not in pages:
            items = list({a["id"]: a for a in by_canvas[image.canvas_id]}.values())  # one of each id
            pages[image.canvas_id] = {"@context": ANNOTATION_CONTEXT, "id": base_url + _page_name(image),
                                      "type": "AnnotationPage", "label": f"artdup-jax results on {image.label}",
                                      "items": items}
    return pages


def annotated_manifest(manifest: dict, page_urls: dict[str, str], manifest_url: str | None = None) -> dict:
    """A copy of ``manifest`` whose canvases list our pages (3.0 ``annotations``, 2.1 ``otherContent``), so a
    viewer given the copy loads them. ``manifest_url``: the copy's new id (where it will be served)."""
    manifest = copy.deepcopy(manifest)
    if presentation_version(manifest) == 3:
        canvases = [c for c in manifest.get("items", []) if isinstance(c, dict)]
        for canvas in canvases:
            if canvas.get("id") in page_urls:
                canvas.setdefault("annotations", []).append({"id": page_urls[canvas["id"]], "type": "AnnotationPage"})
        if manifest_url:
            manifest["id"] = manifest_url
    else:
        for sequence in manifest.get("sequences", []):
            for canvas in sequence.get("canvases", []):
                if resource_id(canvas) in page_urls:
                    canvas.setdefault("otherContent", []).append({"@id": page_urls[resource_id(canvas)],
                                                                 "@type": "sc:AnnotationList"})
        if manifest_url:
            manifest["@id"] = manifest_url
    return manifest


def write_annotations(annotations: Sequence[dict], directory: str | os.PathLike, images: Sequence[CanvasImage],
                      *, base_url: str | None = None, manifests: dict[str, dict] | None = None) -> AnnotationFiles:
    """Writes one AnnotationPage per annotated canvas to ``directory``, ``index.json`` (canvas, label, page,
    count) and, for each of ``manifests`` (id -> document, e.g. ``IIIFSource.manifests``) that has annotated
    canvases, ``manifest-N.json``: a copy listing the pages. ``base_url``: where ``directory`` will be served
    (ends with ``/``; None: its ``file://`` URI); page ids and the copies' ids are under it."""
    directory = Path(directory).absolute()
    base_url = base_url or directory.as_uri() + "/"
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    pages = annotation_pages(annotations, images, base_url)
    labels = {image.canvas_id: image.label for image in images}
    files, urls, index = {}, {}, []
    for canvas_id, page in pages.items():
        name = page["id"][len(base_url):]
        files[canvas_id] = outputs.save_json(os.fspath(directory / name), page)
        urls[canvas_id] = page["id"]
        index.append({"canvas": canvas_id, "label": labels.get(canvas_id, ""), "page": page["id"], "file": name,
                      "annotations": len(page["items"])})
    written = []
    for k, (manifest_id, manifest) in enumerate((manifests or {}).items(), start=1):
        linked = {c: u for c, u in urls.items() if any(i.canvas_id == c and i.manifest_id == manifest_id
                                                        for i in images)}
        if linked:
            name = f"manifest-{k}.json"
            written.append(outputs.save_json(os.fspath(directory / name),
                                             annotated_manifest(manifest, linked, base_url + name)))
    index_path = outputs.save_json(os.fspath(directory / "index.json"),
                                   {"pages": index, "manifests": [Path(p).name for p in written]})
    return AnnotationFiles(os.fspath(directory), files, urls, index_path, written)
