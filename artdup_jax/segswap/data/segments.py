"""Where synthetic SegSwap pairs get their objects and backgrounds: segment sources.

A segment source is a list of images, each with zero or more segments (boolean masks at the image's
resolution). Three kinds:

  CocoSegments          COCO 2017 "thing" instances, from tensorflow-datasets' ``coco/2017_panoptic`` (the
                        plain ``coco/2017`` config has boxes only). The user prepares it; nothing downloads.
  FolderSegments        ``images/NAME.*`` with ``masks/NAME.png``: 0 = background, every other value (grey
                        level, or R + 256 G + 256² B for colour PNGs) is one segment.
  UnsupervisedSegments  any images; segments are regions of Felzenszwalb's graph-based merging, kept when
                        they are a reasonable size and shape (the paper's v2 "segments", not objects).

Images are ``(H, W, 3)`` uint8 RGB with the longer side at most ``max_side`` (640 by default, COCO's size,
so that the generator's 20-px dilation means what it means in the paper).

Groups: images showing the same content (the unraphael copies all show one painting) share a group id. An
object is never pasted onto a background of its own group, and in-batch negatives between images whose
groups meet are dropped from the loss.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from artdup_jax.data.embedded import embedded_images
from artdup_jax.data.images import read_image
from artdup_jax.data.synthetic_collection import unraphael_images

COCO_THING_CLASSES = 80  # panoptic labels 0..79 are the "thing" classes (people, animals, objects); the rest is stuff
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
NO_CATEGORY = -1  # a segment whose category is unknown: it differs from every other segment


@dataclasses.dataclass(frozen=True)
class Segment:
    image_index: int
    mask: np.ndarray  # (H, W) bool, at the resolution of ``source.image(image_index)``
    category: int = NO_CATEGORY


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrinks (INTER_AREA) so that the longer side is at most ``max_side``; ``(H, W, C)`` or ``(H, W)``."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return np.ascontiguousarray(image)
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _resize_labels(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if labels.shape[:2] == tuple(size_hw):
        return labels
    return cv2.resize(labels.astype(np.int32).astype(np.float32), size_hw[::-1],
                      interpolation=cv2.INTER_NEAREST).astype(np.int64)


class SegmentSource:
    """Base class: ``len``, ``image(i)``, ``segments(i)``, ``group(i)`` and object sampling for the generator."""

    max_side: int = 640

    def __len__(self) -> int:
        raise NotImplementedError

    def image(self, index: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB, longer side at most ``max_side``."""
        raise NotImplementedError

    def segments(self, index: int) -> tuple[Segment, ...]:
        raise NotImplementedError

    def group(self, index: int) -> int:
        return index

    def categories(self, index: int) -> frozenset[int]:
        return frozenset(s.category for s in self.segments(index) if s.category != NO_CATEGORY)

    def sample_object(self, rng: np.random.Generator, background: int, tries: int = 50) -> Segment | None:
        """A segment from an image of another group, of a category the background does not show.

        Image first, then segment (the paper picks a category first; ``CocoSegments`` does). None if ``tries``
        images in a row offer nothing.
        """
        excluded = self.categories(background)
        for _ in range(tries):
            index = int(rng.integers(len(self)))
            if self.group(index) == self.group(background):
                continue
            usable = [s for s in self.segments(index) if s.category == NO_CATEGORY or s.category not in excluded]
            if usable:
                return usable[int(rng.integers(len(usable)))]
        return None


class _CachedSource(SegmentSource):
    """A local source: one group per image, decoded images and their segments kept in LRU caches. Subclasses
    call ``_cache(count, groups)`` and implement ``_load(i)`` (the image) and ``_find_segments(i)``."""

    def _cache(self, count: int, groups: Sequence[int] | None) -> None:
        self._groups = list(range(count) if groups is None else groups)
        if len(self._groups) != count:
            raise ValueError(f"{len(self._groups)} groups for {count} images")
        self._image = functools.lru_cache(maxsize=256)(self._load)
        self._segments = functools.lru_cache(maxsize=4096)(self._find_segments)

    def __len__(self) -> int:
        return len(self._groups)

    def group(self, index: int) -> int:
        return self._groups[index]

    def image(self, index: int) -> np.ndarray:
        return self._image(index)

    def segments(self, index: int) -> tuple[Segment, ...]:
        return self._segments(index)

    def _load(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _find_segments(self, index: int) -> tuple[Segment, ...]:
        raise NotImplementedError


class UnsupervisedSegments(_CachedSource):
    """Felzenszwalb regions of any images (segments cached per image).

    Args:
      images: ``(H, W, 3)`` uint8 arrays, or paths of image files (read on demand).
      groups: one content id per image (default: every image its own group).
      segment_side: the longer side the segmentation runs at (speed; masks are upsampled to the image).
      scale: Felzenszwalb's scale at that size (larger: fewer, bigger regions).
      area: a region's connected component is kept if its area is within this fraction of the image.
      min_fill: ... and if it covers at least this fraction of its bounding box (no thin, stringy regions).
      max_segments: the largest ones kept per image.
    """

    def __init__(self, images: Sequence[np.ndarray | str | os.PathLike], groups: Sequence[int] | None = None, *,
                 max_side: int = 640, segment_side: int = 160, scale: float = 300.0, sigma: float = 0.8,
                 area: tuple[float, float] = (0.02, 0.4), min_fill: float = 0.3, max_segments: int = 8):
        if not len(images):
            raise ValueError("UnsupervisedSegments needs at least one image")
        self._images = list(images)
        self.max_side = max_side
        self._options = dict(segment_side=segment_side, scale=scale, sigma=sigma, area=area, min_fill=min_fill,
                             max_segments=max_segments)
        self._cache(len(self._images), groups)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, **options) -> "UnsupervisedSegments":
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return cls(paths, **options)

    def _load(self, index: int) -> np.ndarray:
        item = self._images[index]
        if not isinstance(item, np.ndarray):
            item = np.round(read_image(item) * 255).astype(np.uint8)
        return fit_image(item[..., :3], self.max_side)

    def _find_segments(self, index: int) -> tuple[Segment, ...]:
        masks = felzenszwalb_segments(self.image(index), **self._options)
        return tuple(Segment(index, mask) for mask in masks)


def felzenszwalb_segments(image: np.ndarray, *, segment_side: int = 160, scale: float = 300.0, sigma: float = 0.8,
                          area: tuple[float, float] = (0.02, 0.4), min_fill: float = 0.3,
                          max_segments: int = 8) -> list[np.ndarray]:
    """Object-like regions of an ``(H, W, 3)`` uint8 image: ``(H, W)`` bool masks, largest first.

    Felzenszwalb-Huttenlocher merges pixels into regions along a minimum spanning tree of colour differences;
    each connected component of a region, holes filled, is kept if its area and bounding-box fill fit and
    it does not span (almost) the whole image.
    """
    from scipy import ndimage
    from skimage.segmentation import felzenszwalb

    height, width = image.shape[:2]
    small = fit_image(image, segment_side)
    pixels = small.shape[0] * small.shape[1]
    labels = felzenszwalb(small, scale=scale, sigma=sigma, min_size=max(1, int(area[0] * pixels / 2)))
    found = []
    for label in range(int(labels.max()) + 1):
        count, components = cv2.connectedComponents((labels == label).astype(np.uint8), connectivity=8)
        for component in range(1, count):
            region = ndimage.binary_fill_holes(components == component)
            fraction = region.sum() / pixels
            rows, cols = np.nonzero(region)
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            if not area[0] <= fraction <= area[1] or region.sum() < min_fill * box or box > 0.9 * pixels:
                continue
            found.append((fraction, region))
    found.sort(key=lambda item: -item[0])
    return [_resize_labels(region.astype(np.int64), (height, width)).astype(bool)
            for _, region in found[:max_segments]]


class FolderSegments(_CachedSource):
    """Images with label-map masks: ``images_dir/NAME.<ext>`` and ``masks_dir/NAME.png``.

    Every non-zero value of a mask is one segment (colour PNGs: value = R + 256 G + 256² B, COCO-panoptic
    style). With ``values_are_categories`` the value is also the segment's category (semantic label maps);
    otherwise categories are unknown. Images without a mask file serve as backgrounds only.
    """

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike, *,
                 groups: Sequence[int] | None = None, values_are_categories: bool = False, max_side: int = 640,
                 min_area: float = 0.005):
        self._paths = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise FileNotFoundError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self._masks_dir = Path(masks_dir)
        if not self._masks_dir.is_dir():
            raise FileNotFoundError(f"{masks_dir}: no such mask folder")
        self.values_are_categories = values_are_categories
        self.max_side = max_side
        self.min_area = min_area
        self._cache(len(self._paths), groups)

    def _load(self, index: int) -> np.ndarray:
        return fit_image(np.round(read_image(self._paths[index]) * 255).astype(np.uint8), self.max_side)

    def _find_segments(self, index: int) -> tuple[Segment, ...]:
        path = self._masks_dir / (self._paths[index].stem + ".png")
        if not path.exists():
            return ()
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: not a readable mask")
        labels = label_values(raw[..., ::-1] if raw.ndim == 3 else raw)
        labels = _resize_labels(labels, self.image(index).shape[:2])
        segments = []
        for value in np.unique(labels):
            mask = labels == value
            if value == 0 or mask.mean() < self.min_area:
                continue
            category = int(value) if self.values_are_categories else NO_CATEGORY
            segments.append(Segment(index, mask, category))
        return tuple(segments)


def label_values(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer labels from a grey ``(H, W)`` or RGB ``(H, W, 3)`` mask (R + 256 G + 256² B)."""
    mask = np.asarray(mask)
    if mask.ndim == 2:
        return mask.astype(np.int64)
    rgb = mask[..., :3].astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


class CocoSegments(SegmentSource):
    """COCO 2017 instances from a prepared tensorflow-datasets ``coco/2017_panoptic``.

    Needs random access, i.e. the dataset prepared in ArrayRecord format::

      tfds build coco/2017_panoptic --data_dir DIR --file_format array_record

    (the download of COCO is the user's; nothing here fetches it). Segments are the non-crowd "thing"
    instances covering at least ``min_area`` of their image; the category is the panoptic label. The
    instance index (image -> objects, category -> objects; the release's ``COCO2017_train_img2obj.json``) is
    built on first use by reading the annotations only, and cached as ``index_<split>.json`` beside the
    dataset (or in ``cache_dir``).
    """

    def __init__(self, split: str = "train", *, data_dir: str | None = None, name: str = "coco/2017_panoptic",
                 max_side: int = 640, min_area: float = 0.01, cache_dir: str | None = None):
        try:
            import tensorflow_datasets as tfds
        except ImportError as e:
            raise ImportError("COCO segments need tensorflow-datasets (pip install tensorflow-datasets), "
                              "or use FolderSegments / UnsupervisedSegments") from e
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"{name} is not prepared in {builder.data_dir}: run `tfds build {name} --data_dir DIR "
                f"--file_format array_record` (needs the COCO 2017 images and panoptic annotations), or use "
                f"FolderSegments / UnsupervisedSegments")
        try:
            self._records = builder.as_data_source(split=split)
            skip = tfds.decode.SkipDecoding()
            annotations = builder.as_data_source(split=split, decoders={"image": skip, "panoptic_image": skip})
        except NotImplementedError as e:
            raise FileNotFoundError(f"{name} in {builder.data_dir} has no random access: prepare it again with "
                                    f"`--file_format array_record`") from e
        self.max_side = max_side
        self.min_area = min_area
        cache = Path(cache_dir or builder.data_dir) / f"index_{split.replace('[', '_').replace(']', '_')}.json"
        self._objects = self._index(annotations, cache)  # image -> [(panoptic id, label)]
        self._by_category: dict[int, list[tuple[int, int]]] = {}
        for image, objects in enumerate(self._objects):
            for object_id, label in objects:
                self._by_category.setdefault(label, []).append((image, object_id))
        self._category_ids = sorted(self._by_category)
        self._example = functools.lru_cache(maxsize=64)(self._read)

    def _index(self, annotations, cache: Path) -> list[list[tuple[int, int]]]:
        if cache.exists():
            return [[tuple(o) for o in objects] for objects in json.loads(cache.read_text())]
        index = []
        for record in annotations:
            objects = record["panoptic_objects"]
            keep = ((np.asarray(objects["label"]) < COCO_THING_CLASSES)
                    & ~np.asarray(objects["is_crowd"], bool) & (np.asarray(objects["area"]) > 0))
            index.append([(int(i), int(label)) for i, label, k in zip(objects["id"], objects["label"], keep) if k])
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(index))
        return index

    def __len__(self) -> int:
        return len(self._objects)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        record = self._records[index]
        image = fit_image(np.asarray(record["image"])[..., :3], self.max_side)
        ids = _resize_labels(label_values(np.asarray(record["panoptic_image"])), image.shape[:2])
        return image, ids

    def image(self, index: int) -> np.ndarray:
        return self._example(index)[0]

    def categories(self, index: int) -> frozenset[int]:
        return frozenset(label for _, label in self._objects[index])

    def _segment(self, index: int, object_id: int, label: int) -> Segment | None:
        mask = self._example(index)[1] == object_id
        return Segment(index, mask, label) if mask.mean() >= self.min_area else None

    def segments(self, index: int) -> tuple[Segment, ...]:
        found = (self._segment(index, object_id, label) for object_id, label in self._objects[index])
        return tuple(s for s in found if s is not None)

    def sample_object(self, rng: np.random.Generator, background: int, tries: int = 50) -> Segment | None:
        """The paper's choice: a category absent from the background, uniformly, then one of its instances."""
        absent = [c for c in self._category_ids if c not in self.categories(background)]
        for _ in range(tries):
            instances = self._by_category[absent[int(rng.integers(len(absent)))]]
            image, object_id = instances[int(rng.integers(len(instances)))]
            segment = self._segment(image, object_id, self._label(image, object_id))
            if segment is not None:
                return segment
        return None

    def _label(self, image: int, object_id: int) -> int:
        return next(label for i, label in self._objects[image] if i == object_id)


def bundled_images() -> tuple[list[np.ndarray], list[int]]:
    """The offline default images and their groups: scikit-image's photographs (one group each) and, when
    the ``unraphael`` package is installed, its 11 copies of one painting (a single group)."""
    photos = list(embedded_images())
    paintings = [image for _, image in unraphael_images()]
    return photos + paintings, list(range(len(photos))) + [len(photos)] * len(paintings)


def folder_images(folder: str | os.PathLike, max_side: int = 640) -> list[np.ndarray]:
    """Every image of a folder (sorted by name) as ``(H, W, 3)`` uint8, longer side at most ``max_side``."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return [fit_image(np.round(read_image(p) * 255).astype(np.uint8), max_side) for p in paths]


def bundled_paintings() -> list[np.ndarray]:
    """Style images for the offline default: the unraphael copies (empty list if not installed)."""
    return [image for _, image in unraphael_images()]


def make_source(kind: str, *, image_folder: str = "", mask_folder: str = "", tfds_data_dir: str = "",
                split: str = "train", max_side: int = 640,
                segment_area: tuple[float, float] = (0.02, 0.4)) -> SegmentSource:
    """A source by name: ``coco``, ``folder`` (image_folder + mask_folder) or ``unsupervised`` (image_folder,
    or the bundled images when empty; ``segment_area``: the kept regions' area range, fractions of the image)."""
    if kind == "coco":
        return CocoSegments(split, data_dir=tfds_data_dir or None, max_side=max_side)
    if kind == "folder":
        if not image_folder or not mask_folder:
            raise ValueError("segments 'folder' needs image_folder and mask_folder")
        return FolderSegments(image_folder, mask_folder, max_side=max_side)
    if kind == "unsupervised":
        if image_folder:
            return UnsupervisedSegments.from_folder(image_folder, max_side=max_side, area=tuple(segment_area))
        images, groups = bundled_images()
        return UnsupervisedSegments(images, groups, max_side=max_side, area=tuple(segment_area))
    raise ValueError(f"unknown segment source {kind!r}; use coco, folder or unsupervised")
