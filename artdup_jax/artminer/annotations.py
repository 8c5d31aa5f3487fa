"""The official one-shot detection annotation format (``brueghelTest.json``, ``brueghelVal.json``).

``{class: [{"query": [image_name, [x1, y1, x2, y2]], "gt": [[image_name, [x1, y1, x2, y2]], ...]}, ...]}``: one
entry per annotated instance, each a query whose ``gt`` lists every other instance of its class. Boxes are integer
pixels of the original image (x = column).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path


class AnnotationError(ValueError):
    """The annotation file is malformed or does not fit the image folder; the message says where."""


@dataclasses.dataclass(frozen=True)
class AnnotatedQuery:
    category: str
    index: int  # position in the category's list
    image: str  # file name
    box: tuple[int, int, int, int]  # [x1, y1, x2, y2] pixels
    gt: tuple[tuple[str, tuple[int, int, int, int]], ...]  # every other instance of the class


def _entry(item, where: str) -> tuple[str, tuple[int, int, int, int]]:
    if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], (list, tuple)) and len(item[1]) == 4):
        raise AnnotationError(f"{where}: expected [image_name, [x1, y1, x2, y2]], got {item!r:.200}")
    try:
        box = tuple(int(v) for v in item[1])
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: box must hold 4 numbers, got {item[1]!r}") from None
    return item[0], box


def parse_annotations(data, source: str = "annotations") -> list[AnnotatedQuery]:
    """The official format ``{class: [{"query": [name, box], "gt": [[name, box], ...]}, ...]}`` -> queries
    in file order."""
    if not isinstance(data, dict) or not data:
        raise AnnotationError(f"{source}: expected a non-empty JSON object of classes")
    queries = []
    for category, items in data.items():
        if not isinstance(items, list):
            raise AnnotationError(f"{source}: class {category!r} must map to a list of instances")
        for index, item in enumerate(items):
            where = f"{source}: class {category!r} instance {index}"
            if not isinstance(item, dict) or "query" not in item or "gt" not in item:
                raise AnnotationError(f"{where}: expected an object with 'query' and 'gt'")
            image, box = _entry(item["query"], f"{where} query")
            if not isinstance(item["gt"], list) or not item["gt"]:
                raise AnnotationError(f"{where}: 'gt' must be a non-empty list")
            gt = tuple(_entry(g, f"{where} gt {k}") for k, g in enumerate(item["gt"]))
            queries.append(AnnotatedQuery(str(category), index, image, box, gt))
    return queries


def read_annotations(path: str | os.PathLike) -> list[AnnotatedQuery]:
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such annotation file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from None
    return parse_annotations(data, str(path))
