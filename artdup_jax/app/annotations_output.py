"""``OUT/annotations/`` of ``discover`` and ``detect``: their results as W3C Web Annotations.

    files = discovery_annotation_files(run, source, Provenance("artminer-discover", "artminer-ltll"))
    files.index        # OUT/annotations/index.json: per canvas its AnnotationPage file and URL
    files.manifests    # OUT/annotations/manifest-N.json: the input's manifests with the pages linked

One AnnotationPage per annotated canvas (``report.annotations``: the target canvas and a ``FragmentSelector``
in its units, the score, method and weights, the linked regions and, for IIIF input, their Image API URLs).
A local folder's images are targets too (their ``file://`` URIs, pixels). ``base_url``: where ``OUT/annotations``
will be served (page and manifest ids are under it); None: its ``file://`` address. Files of an earlier run
listed in the folder's ``index.json`` are removed first, so the folder holds this run's pages only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from artdup_jax.app.detect import DetectionRun
from artdup_jax.app.discover import DiscoveryRun
from artdup_jax.data.iiif.source import CanvasImage, IIIFSource
from artdup_jax.data.images import read_image_size
from artdup_jax.report.annotations import (AnnotationFiles, Provenance, detection_annotations,
                                           discovery_annotations, local_image, local_images, write_annotations)

ANNOTATIONS_FOLDER = "annotations"


def _recording(source: IIIFSource | None, folder: str) -> tuple[Callable[[str], CanvasImage], list[CanvasImage]]:
    """A ``file -> CanvasImage`` lookup over the source (or the local folder), and the images it gave, in order."""
    lookup = source.image if source is not None else local_images(folder)
    seen: dict[str, CanvasImage] = {}

    def recorded(file: str) -> CanvasImage:
        if file not in seen:
            seen[file] = lookup(file)
        return seen[file]

    return recorded, seen


def _clear_previous(directory: Path) -> None:
    """Removes the pages and manifests an earlier run listed in ``directory/index.json`` (nothing else)."""
    index = directory / "index.json"
    if not index.is_file():
        return
    try:
        listed = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    names = [page.get("file", "") for page in listed.get("pages", [])] + list(listed.get("manifests", []))
    for name in names:
        path = directory / name
        if name and path.parent == directory and path.is_file():
            path.unlink()


def _write(annotations: list[dict], out_dir: str | os.PathLike, images: Sequence[CanvasImage],
           base_url: str | None, manifests: dict[str, dict]) -> AnnotationFiles:
    directory = Path(out_dir) / ANNOTATIONS_FOLDER
    _clear_previous(directory)
    unique = list({image.canvas_id: image for image in images}.values())
    return write_annotations(annotations, directory, unique, base_url=base_url, manifests=manifests)


def discovery_annotation_files(run: DiscoveryRun, source: IIIFSource | None, provenance: Provenance, *,
                               base_url: str | None = None) -> AnnotationFiles:
    """Every verified pair of ``run`` as a match and every region group as a group, in ``OUT/annotations``."""
    lookup, seen = _recording(source, run.folder)
    annotations = discovery_annotations(run.document, lookup, provenance)
    return _write(annotations, run.out_dir, list(seen.values()), base_url, source.manifests if source else {})


def query_image(path: str | os.PathLike, image: CanvasImage | None) -> CanvasImage:
    """The query's canvas image: ``image`` for a IIIF canvas, else the local file as a target (its pixels)."""
    if image is not None:
        return image
    height, width = read_image_size(os.fspath(path))
    return local_image(path, width, height)


def detection_annotation_files(run: DetectionRun, out: str | os.PathLike, query: CanvasImage,
                               source: IIIFSource | None, provenance: Provenance, *, top: int | None = None,
                               base_url: str | None = None, query_source: IIIFSource | None = None
                               ) -> AnnotationFiles:
    """The ``top`` best detections of ``run`` (each linking the query region) and the query region (``query``:
    its canvas image; ``query_source``: the IIIF input it came from, when not ``source``), in ``out/annotations``."""
    lookup, seen = _recording(source, run.folder)
    annotations = detection_annotations(run.document(), lookup, query, provenance, top=top)
    manifests = {**(query_source.manifests if query_source else {}), **(source.manifests if source else {})}
    return _write(annotations, out, [query, *seen.values()], base_url, manifests)
