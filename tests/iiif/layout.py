"""A static level-0 IIIF layout for the tests: ``info.json`` and full-image JPEGs at the sizes it declares, and
a Presentation 3.0 or 2.1 manifest over them. Written independently of ``artdup_jax.data.iiif`` (which reads
what this writes), from the Image API and Presentation API specifications.

    image = LayoutImage("c1", "Folio 1r", picture, canvas_size=(2000, 1600))
    write_layout(root, "http://127.0.0.1:PORT", [image, ...], version=3)
    # root/images/c1/info.json, root/images/c1/full/{w},{h}/0/default.jpg (3.0; 2.1: full/{w},/0/...),
    # root/images/c1/full/max/0/default.jpg, root/manifest.json

A level-0 server answers only the files it has: ``sizes`` lists the full size and halvings down to
``min_side`` pixels, which is also what OpenSeadragon (in Mirador) requests for a level-0 image without tiles.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image


@dataclasses.dataclass
class LayoutImage:
    """``picture``: ``(H, W, 3)`` uint8 at full resolution; ``canvas_size``: ``(width, height)`` of its canvas
    (None: the picture's size)."""

    identifier: str
    label: str
    picture: np.ndarray
    canvas_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.picture.shape[1], self.picture.shape[0]


def declared_sizes(width: int, height: int, min_side: int = 64) -> list[tuple[int, int]]:
    sizes, (w, h) = [], (width, height)
    while min(w, h) >= min_side or not sizes:
        sizes.append((w, h))
        w, h = (w + 1) // 2, (h + 1) // 2
    return sorted(sizes)


def image_base(base_url: str, identifier: str) -> str:
    return f"{base_url}/images/{identifier}"


def write_image(root: Path, base_url: str, image: LayoutImage, version: int = 3) -> dict:
    """The image's level-0 files and ``info.json``; returns the ``info.json`` document."""
    folder = Path(root) / "images" / image.identifier
    width, height = image.size
    sizes = declared_sizes(width, height)
    full = Image.fromarray(image.picture)
    for w, h in sizes:
        name = f"{w},{h}" if version == 3 else f"{w},"
        path = folder / "full" / name / "0" / "default.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        full.resize((w, h), Image.Resampling.LANCZOS).save(path, quality=90)
    largest = folder / "full" / ("max" if version == 3 else "full") / "0" / "default.jpg"
    largest.parent.mkdir(parents=True, exist_ok=True)
    full.save(largest, quality=90)
    base = image_base(base_url, image.identifier)
    if version == 3:
        info = {"@context": "http://iiif.io/api/image/3/context.json", "id": base, "type": "ImageService3",
                "protocol": "http://iiif.io/api/image", "profile": "level0", "width": width, "height": height,
                "sizes": [{"width": w, "height": h} for w, h in sizes]}
    else:
        info = {"@context": "http://iiif.io/api/image/2/context.json", "@id": base,
                "protocol": "http://iiif.io/api/image", "profile": ["http://iiif.io/api/image/2/level0.json"],
                "width": width, "height": height, "sizes": [{"width": w, "height": h} for w, h in sizes]}
    (folder / "info.json").write_text(json.dumps(info, indent=1))
    return info


def manifest_v3(base_url: str, images: list[LayoutImage], name: str = "manifest.json") -> dict:
    canvases = []
    for image in images:
        width, height = image.canvas_size or image.size
        canvas_id = f"{base_url}/canvas/{image.identifier}"
        base = image_base(base_url, image.identifier)
        body = {"id": f"{base}/full/max/0/default.jpg", "type": "Image", "format": "image/jpeg",
                "width": image.size[0], "height": image.size[1],
                "service": [{"id": base, "type": "ImageService3", "profile": "level0"}]}
        canvases.append({"id": canvas_id, "type": "Canvas", "label": {"en": [image.label]}, "width": width,
                         "height": height,
                         "items": [{"id": f"{canvas_id}/page", "type": "AnnotationPage",
                                    "items": [{"id": f"{canvas_id}/page/image", "type": "Annotation",
                                               "motivation": "painting", "body": body, "target": canvas_id}]}]})
    return {"@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{base_url}/{name}",
            "type": "Manifest", "label": {"en": ["artdup-jax test collection"]}, "items": canvases}


def manifest_v2(base_url: str, images: list[LayoutImage], name: str = "manifest.json") -> dict:
    canvases = []
    for image in images:
        width, height = image.canvas_size or image.size
        canvas_id = f"{base_url}/canvas/{image.identifier}"
        base = image_base(base_url, image.identifier)
        resource = {"@id": f"{base}/full/full/0/default.jpg", "@type": "dctypes:Image", "format": "image/jpeg",
                    "width": image.size[0], "height": image.size[1],
                    "service": {"@context": "http://iiif.io/api/image/2/context.json", "@id": base,
                                "profile": "http://iiif.io/api/image/2/level0.json"}}
        canvases.append({"@id": canvas_id, "@type": "sc:Canvas", "label": image.label, "width": width,
                         "height": height, "images": [{"@type": "oa:Annotation", "motivation": "sc:painting",
                                                       "resource": resource, "on": canvas_id}]})
    return {"@context": "http://iiif.io/api/presentation/2/context.json", "@id": f"{base_url}/{name}",
            "@type": "sc:Manifest", "label": "artdup-jax test collection",
            "sequences": [{"@type": "sc:Sequence", "canvases": canvases}]}


def write_layout(root: str | Path, base_url: str, images: list[LayoutImage], *, version: int = 3,
                 missing: tuple[str, ...] = (), name: str = "manifest.json") -> dict:
    """Every image's files (except those in ``missing``: listed in the manifest, never written) and the
    manifest at ``root/name``; returns the manifest."""
    root = Path(root)
    for image in images:
        if image.identifier not in missing:
            write_image(root, base_url, image, version)
    manifest = (manifest_v3 if version == 3 else manifest_v2)(base_url, images, name)
    (root / name).write_text(json.dumps(manifest, indent=1))
    return manifest


def picture(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth random colour picture (JPEG-friendly), ``(height, width, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 215, size=(max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
