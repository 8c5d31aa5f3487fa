"""IIIF input of the collection commands: FOLDER, and the query or reference image, given as IIIF.

    folder, source = collection_folder("https://host/iiif/manifest.json", "runs/discover", max_side=1279,
                                       settings=FetchSettings(workers=4))
    run = discover_folder(folder, "runs/discover", ..., iiif=input_report(source))
    path, image, _ = single_image("Folio 2r", source, "runs/detect", max_side=1279, settings=settings)

FOLDER is IIIF when ``data.iiif.is_iiif_input`` says so (an http(s) URL, a manifest / collection /
``info.json`` file, or a text file listing them); its canvases are fetched into ``OUT/iiif`` at ``max_side``
pixels on the longer side (the size the method reads; the download cache is shared by every run), and a
canvas that fails is a one-line warning and an entry of ``input_report(source)["failures"]``. A local folder
is returned as it is, with no source.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

from artdup_jax.artminer.resize_rule import pixels_for_cells
from artdup_jax.data import outputs
from artdup_jax.data.iiif.fetch import FetchSettings
from artdup_jax.data.iiif.source import CanvasImage, IIIFInputError, IIIFSource, iiif_source, is_iiif_input

IIIF_FOLDER = "iiif"  # OUT/iiif: the collection's canvases
QUERY_FOLDER = "iiif-query"  # OUT/iiif-query: a query / reference image given as IIIF of its own


def artminer_side(scales: Sequence[int]) -> int:
    """Pixels on the longer side that ArtMiner reads at its largest scale (``scales``: longer sides in cells)."""
    return pixels_for_cells(max(scales))


def alignment_side(size: int, rule: str) -> int:
    """Pixels on the longer side to fetch for an alignment at ``size`` (``rule``: the side ``size`` sets). For
    the shorter side the aspect ratio is not known before the download: 3 x ``size`` keeps it at ``size`` or
    more up to 3:1."""
    return size if rule == "longer" else 3 * size


def collection_folder(argument: str | os.PathLike, out: str | os.PathLike, *, max_side: int | None,
                      settings: FetchSettings = FetchSettings()) -> tuple[str, IIIFSource | None]:
    """``(folder, source)``: a local folder as it is (source None), or the IIIF input fetched into
    ``out/iiif``. Raises ``IIIFInputError`` when no canvas at all could be fetched."""
    if not is_iiif_input(argument):
        return os.fspath(argument), None
    source = iiif_source(os.fspath(argument), Path(out) / IIIF_FOLDER, max_side=max_side, settings=settings)
    return source.folder, source


def input_report(source: IIIFSource | None) -> dict | None:
    """What a result document records of its IIIF input: the inputs, how many canvases were fetched, each
    failure (canvas, label, one-line reason, url) and each file's canvas id (None for a local folder)."""
    if source is None:
        return None
    return {**source.report(), "files": {image.file: image.canvas_id for image in source.images}}


def single_image(argument: str, source: IIIFSource | None, out: str | os.PathLike, *, max_side: int | None,
                 settings: FetchSettings = FetchSettings()) -> tuple[str, CanvasImage | None, IIIFSource | None]:
    """``(path, canvas image, its source)`` of a query or reference image: a canvas of ``source`` (its id, label
    or file name), an IIIF input of its own (its first canvas, fetched into ``out/iiif-query``), or a local
    file (no canvas image, no source). Raises ``IIIFInputError`` for a canvas of ``source`` that failed, or a
    name that is neither a file nor one of its canvases."""
    argument = os.fspath(argument)
    if source is not None:
        image = source.find(argument)
        if image is not None:
            return source.path(image), image, source
        failed = next((f for f in source.failures if argument in (f.id, f.label)), None)
        if failed is not None:
            raise IIIFInputError(f"{argument}: this canvas could not be fetched ({failed.reason})")
    if is_iiif_input(argument):
        own = iiif_source(argument, Path(out) / QUERY_FOLDER, max_side=max_side, settings=settings)
        return own.path(own.images[0]), own.images[0], own
    if source is not None and not os.path.exists(argument):
        labels = ", ".join(repr(i.label) for i in source.images[:3])
        raise IIIFInputError(f"{argument}: neither an image file nor a canvas of {', '.join(source.inputs)} "
                             f"(give a canvas id, label or file name, e.g. {labels})")
    return argument, None, None


def file_box(image: CanvasImage, canvas_box: Sequence[float]) -> list[int]:
    """``[x1, y1, x2, y2]`` in canvas units (as a IIIF viewer shows the canvas) -> the file's whole pixels,
    outward, clipped to the file."""
    x1, y1, x2, y2 = image.to_file(canvas_box)
    return [max(0, math.floor(x1)), max(0, math.floor(y1)), min(image.file_width, math.ceil(x2)),
            min(image.file_height, math.ceil(y2))]


def record_input(document_path: str | os.PathLike, source: IIIFSource | None) -> None:
    """Adds ``input_report(source)`` as ``"iiif"`` to a result JSON file another step wrote (align-group's
    ``group.json``); nothing for a local folder."""
    if source is None or not os.path.isfile(document_path):
        return
    document = json.loads(Path(document_path).read_text(encoding="utf-8"))
    outputs.save_json(os.fspath(document_path), {**document, "iiif": input_report(source)})
