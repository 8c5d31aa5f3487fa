"""Query boxes as discovery references, and re-ranking detections by the discovery score.

  scores = box_discovery_scores(variables, [(path, box)], database_paths, config)   # (Q, N) pair scores
  reranked = rerank_detections(variables, queries, detections, config, top_n=100)

The release has no re-ranking code: the paper's second Table-1 column is described, its parameters are
not. Our reconstruction, from the release's building blocks:

* Reference: the query box as ``oxford_retrieval.py`` uses it (``FeatImgRefBbox``): the box at
  ``config.reference_cells`` on its longer side (the Oxford protocol's 25), up to ``config.margin`` context
  cells a side for the network, context removed, per-cell L2 normalisation (+ saliency if configured).
* Target: the whole candidate image at the discovery scales; the discovery pair score (batched ``score_pairs``,
  features once per image). Only the images that hold one of a query's ``top_n`` detections are scored.
* New order of the top ``top_n`` detections: by ``score(query, image) * [box meets the verified region]``,
  where the verified region is the box around the target cells that survived post-processing (so a box elsewhere in a
  matching image drops to 0); ties keep the cosine order. Detections after ``top_n`` keep their order.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.detection import DetectionConfig, Query, RankedDetections, query_crop
from artdup_jax.artminer.discovery.bank import PAD_CELLS, _pad_flat, extract_features, saliency_weights
from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.discovery.verification import score_pairs
from artdup_jax.artminer.model import features, l2_normalise
from artdup_jax.data.images import read_image

# The release's box-reference settings (oxford_retrieval.py): 25 cells on the box's longer side, 5 context cells.
BOX_REFERENCE = DiscoveryConfig(reference_cells=25, margin=5, saliency=False)


def box_reference(variables: dict, image: np.ndarray, box: Sequence[float], config: DiscoveryConfig) -> np.ndarray:
    """The release's box reference: ``(h, w, D)`` normalised cells covering ``box`` of ``image`` ``(H, W, 3)``."""
    crop = query_crop(image, tuple(int(round(v)) for v in box),
                      DetectionConfig(query_longer_cells=config.reference_cells,
                                      query_min_cells=config.reference_min_cells, context_cells=config.margin,
                                      resample=config.resample))
    cells = l2_normalise(features(variables, jnp.asarray(crop.pixels)[None])[0])
    if config.saliency:
        cells = cells * saliency_weights(cells)[..., None]
    top, bottom, left, right = crop.context
    return np.asarray(cells[top:cells.shape[0] - bottom, left:cells.shape[1] - right])


@dataclasses.dataclass
class BoxScores:
    """Discovery scores of query boxes against images.

    scores: ``(Q, N)`` float32 in [0, 1]; regions: ``(Q, N, 4)`` ``[x1, y1, x2, y2]`` pixels of each image around
    the target cells that survived (zeros where none did); unreadable: ``[(path, error)]`` skipped images.
    """

    scores: np.ndarray
    regions: np.ndarray
    unreadable: list[tuple[str, str]]


def box_discovery_scores(variables: dict, queries: Sequence[tuple[str, Sequence[float]]],
                         database_paths: Sequence[str], config: DiscoveryConfig = BOX_REFERENCE, *,
                         pairs: np.ndarray | None = None) -> BoxScores:
    """One-directional discovery scores with each query box ``(path, [x1, y1, x2, y2])`` as the reference.

    ``pairs``: ``(P, 2)`` (query, database index) to score; default every query against every image. Unscored
    and unreadable entries are 0.
    """
    bank, unreadable = extract_features(variables, database_paths, config)
    references = [box_reference(variables, read_image(path), box, config) for path, box in queries]
    bank.reference, bank.reference_valid, bank.reference_hw = _pad_flat(references, np.float32, PAD_CELLS)
    bank.reference_image_hw = np.array([read_image(p).shape[:2] for p, _ in queries]).reshape(-1, 2)
    bank.margin = 0  # the context is already removed
    row = {p: i for i, p in enumerate(bank.paths)}
    if pairs is None:
        pairs = np.stack(np.meshgrid(np.arange(len(queries)), np.arange(len(database_paths)), indexing="ij"),
                         -1).reshape(-1, 2)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    bank_row = np.array([row.get(os.path.abspath(os.fspath(database_paths[d])), -1) for d in pairs[:, 1]],
                        np.int64)
    readable = bank_row >= 0
    scores = np.zeros((len(queries), len(database_paths)), np.float32)
    regions = np.zeros((len(queries), len(database_paths), 4), np.float64)
    if readable.any():
        found = score_pairs(bank, np.stack([pairs[readable, 0], bank_row[readable]], 1), config)
        q, d = pairs[readable, 0], pairs[readable, 1]
        scores[q, d] = found.scores
        regions[q, d] = found.target_boxes
    return BoxScores(scores, regions, unreadable)


def _meets(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``(N,)`` whether each ``[x1, y1, x2, y2]`` box intersects its region (empty regions meet nothing)."""
    width = np.minimum(boxes[:, 2], regions[:, 2]) - np.maximum(boxes[:, 0], regions[:, 0])
    height = np.minimum(boxes[:, 3], regions[:, 3]) - np.maximum(boxes[:, 1], regions[:, 1])
    nonempty = (regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])
    return nonempty & (width > 0) & (height > 0)


@dataclasses.dataclass
class Reranked:
    """Detections in their new order; ``discovery``: ``(N,)`` each one's re-ranking key (NaN after top_n)."""

    detections: RankedDetections
    discovery: np.ndarray


def rerank_detections(variables: dict, queries: Sequence[Query], detections: Sequence[RankedDetections],
                      config: DiscoveryConfig = BOX_REFERENCE, *, top_n: int = 100) -> list[Reranked]:
    """Re-orders each query's first ``top_n`` detections by the discovery score (module docstring)."""
    if len(queries) != len(detections):
        raise ValueError(f"{len(queries)} queries but {len(detections)} detection lists")
    heads = [d.paths[:top_n] for d in detections]
    images = list(dict.fromkeys(p for head in heads for p in head))
    column = {p: i for i, p in enumerate(images)}
    pairs = np.array([(q, column[p]) for q, head in enumerate(heads) for p in dict.fromkeys(head)],
                     np.int64).reshape(-1, 2)
    found = box_discovery_scores(variables, [(q.image, q.box) for q in queries], images, config, pairs=pairs)
    for path, error in found.unreadable:
        print(f"warning: re-ranking skips {path}: {error}", file=sys.stderr)

    results = []
    for q, (ranked, head) in enumerate(zip(detections, heads)):
        n = len(head)
        cols = np.array([column[p] for p in head], np.int64)
        key = found.scores[q, cols].astype(np.float64) * _meets(ranked.boxes[:n].astype(np.float64),
                                                                 found.regions[q, cols])
        order = np.concatenate([np.argsort(-key, kind="stable"), np.arange(n, len(ranked))]).astype(np.int64)
        reordered = RankedDetections(paths=[ranked.paths[i] for i in order], scores=ranked.scores[order],
                                     boxes=ranked.boxes[order], scales=ranked.scales[order],
                                     cells=ranked.cells[order])
        discovery = np.full(len(ranked), np.nan)
        discovery[:n] = key[order[:n]]
        results.append(Reranked(reordered, discovery))
    return results
