"""``artdup detect IMAGE FOLDER --box X1 Y1 X2 Y2``: one-shot detection of a box over a folder (ArtMiner).

    run = detect_in_folder("scan.jpg", [120, 40, 380, 300], "collection/", checkpoint="brueghelModel.pth")
    run.detections[0]     # {"file", "score", "box"}, best first

The query image and box are checked first (a box outside the image is an error naming the image and its
size); unusable files of the folder are skipped with a warning each and listed under ``skipped``; the rest
is searched. With ``out``: ``out/detections.json``.
"""

from __future__ import annotations

import dataclasses
import os

from artdup_jax.artminer import DetectionConfig, FeatureCache, Query, detect, init_variables, load_weights
from artdup_jax.data import outputs
from artdup_jax.data.folders import ImageFolderError, image_files, readable_images
from artdup_jax.data.images import read_image


class QueryBoxError(ValueError):
    """A query box that is empty or not inside its image; one line, names the image."""


@dataclasses.dataclass
class DetectionRun:
    """The ranked detections of one query box over a folder (``file`` relative to the folder)."""

    image: str
    box: list[int]
    folder: str
    detections: list[dict]  # {"file", "score", "box"}, best first
    skipped: list[dict]  # {"file", "reason"}
    num_searched: int
    cache_dir: str | None
    maps_loaded: int
    maps_computed: int
    iiif: dict | None = None  # app.iiif_input.input_report of a IIIF folder: failed canvases, file -> canvas

    def document(self) -> dict:
        document = {"image": self.image, "box": self.box, "detections": self.detections, "skipped": self.skipped}
        return document if self.iiif is None else {**document, "iiif": self.iiif}


def check_query_box(image: str, box: list[int]) -> None:
    """Raises ``QueryBoxError`` unless ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H`` in ``image``."""
    height, width = read_image(image).shape[:2]
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        raise QueryBoxError(f"{image}: query box {box} is empty (need x1 < x2 and y1 < y2)")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise QueryBoxError(f"{image}: query box {box} is outside the {width}x{height} image (x from 0 to "
                            f"{width}, y from 0 to {height})")


def detect_in_folder(image: str, box: list[int], folder: str, *, checkpoint: str | None = None,
                     scales: tuple[int, ...] | None = None, cache: str | None = None,
                     out: str | None = None, iiif: dict | None = None) -> DetectionRun:
    """Ranks every readable image of ``folder`` by its best match of ``box`` in ``image`` (``checkpoint``:
    ArtMiner weights; None: random weights, a smoke test only). ``cache``: where feature maps persist (default
    ``out/cache`` when ``out`` is given); ``out``: also write ``out/detections.json``; ``iiif``: what the
    folder's IIIF input reported (its failed canvases), kept in the document."""
    check_query_box(image, box)
    paths, ignored = image_files(folder)
    variables = load_weights(checkpoint) if checkpoint else init_variables()
    paths, failed = readable_images(paths)
    if not paths:
        raise ImageFolderError(f"{folder}: none of its {len(failed)} image file(s) could be read")
    skipped = [{"file": name, "reason": reason} for name, reason in ignored] + [
        {"file": os.path.relpath(path, folder), "reason": reason.replace(path, os.path.basename(path))}
        for path, reason in failed]
    config = DetectionConfig(scales=tuple(scales)) if scales else DetectionConfig()
    cache_dir = cache or (os.path.join(out, "cache") if out else None)
    feature_cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch, directory=cache_dir)
    ranked = detect(variables, [Query(image, tuple(box))], paths, config, cache=feature_cache)[0]
    detections = [{"file": os.path.relpath(p, folder), "score": float(s), "box": [int(v) for v in b]}
                  for p, s, b in zip(ranked.paths, ranked.scores, ranked.boxes)]
    run = DetectionRun(image, list(box), folder, detections, skipped, len(paths), cache_dir,
                       feature_cache.maps_loaded, feature_cache.maps_computed, iiif)
    if out:
        outputs.save_json(os.path.join(out, "detections.json"), run.document())
    return run
