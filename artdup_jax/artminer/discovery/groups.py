"""Groups of images from scored pairs, and region groups within them.

The symmetric score of an unordered pair is the larger of its two directions; pairs scoring above ``threshold``
are edges; connected components (union-find) of at least ``min_group_images`` images are groups. Region groups:
within a group, two edges are linked when they share an image and their matched regions on it (boxes around the
surviving cells) overlap with IoU > ``region_iou``; components of linked edges that cover at least
``min_group_images`` images are region groups.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.discovery.verification import PairScores


def connected_components(num_nodes: int, edges) -> list[list[int]]:
    """Node lists of the undirected graph's connected components (union-find), each in ascending order, ordered
    by their smallest node; ``edges``: ``(E, 2)`` node pairs (any integer sequence of pairs)."""
    parent = list(range(num_nodes))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in np.asarray(edges, np.int64).reshape(-1, 2):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members = collections.defaultdict(list)
    for x in range(num_nodes):
        members[root(x)].append(x)
    return list(members.values())


def cluster(num_images: int, pairs: np.ndarray, scores: np.ndarray, threshold: float,
            min_images: int = 3) -> list[list[int]]:
    """Connected components (union-find) of the graph of pairs scoring above ``threshold`` (strict, as the
    release), with at least ``min_images`` images; largest first, then by first image."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    edges = pairs[np.asarray(scores) > threshold]
    groups = [c for c in connected_components(num_images, edges) if len(c) >= min_images]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``(..., 4)`` ``[x1, y1, x2, y2]`` broadcasting; 0 where the union is empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
             - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclasses.dataclass
class Edge:
    """An unordered pair above the threshold, from the direction that scored higher."""

    a: int
    b: int
    score: float
    box_a: tuple[float, float, float, float]  # matched region on image a, pixels
    box_b: tuple[float, float, float, float]


@dataclasses.dataclass
class Group:
    images: list[int]
    edges: list[Edge]

    def regions(self) -> dict[int, list[tuple[float, ...]]]:
        """Image -> matched-region boxes from every edge of the group touching it."""
        out: dict[int, list] = {i: [] for i in self.images}
        for e in self.edges:
            out[e.a].append(e.box_a)
            out[e.b].append(e.box_b)
        return out


@dataclasses.dataclass
class RegionGroup:
    """Edges whose matched regions overlap on their shared images; ``boxes``: image -> union box."""

    images: list[int]
    edges: list[Edge]
    boxes: dict[int, tuple[float, float, float, float]]


def region_groups(group: Group, iou: float = 0.3, min_images: int = 3) -> list[RegionGroup]:
    """The release's region clusters, with boxes instead of masks: edges linked when they share an image and
    their boxes on it have IoU > ``iou``; components covering at least ``min_images`` images."""
    edges = group.edges
    if not edges:
        return []
    ends = np.array([[e.a, e.b] for e in edges])  # (E, 2)
    boxes = np.array([[e.box_a, e.box_b] for e in edges], np.float64)  # (E, 2, 4)
    # For every pair of edges and every pair of their ends: same image and overlapping boxes.
    same = ends[:, None, :, None] == ends[None, :, None, :]  # (E, E, 2, 2)
    overlap = box_iou(boxes[:, None, :, None], boxes[None, :, None, :]) > iou
    linked = np.any(same & overlap, axis=(2, 3))
    i, j = np.nonzero(np.triu(linked, 1))
    found = []
    for component in connected_components(len(edges), np.stack([i, j], 1)):
        members = [edges[k] for k in component]
        union: dict[int, list[float]] = {}
        for e in members:
            for image, box in ((e.a, e.box_a), (e.b, e.box_b)):
                old = union.get(image)
                union[image] = list(box) if old is None else [min(old[0], box[0]), min(old[1], box[1]),
                                                              max(old[2], box[2]), max(old[3], box[3])]
        if len(union) >= min_images:
            found.append(RegionGroup(sorted(union), members, {k: tuple(v) for k, v in sorted(union.items())}))
    return sorted(found, key=lambda g: (-len(g.images), g.images[0]))


def symmetric_scores(pairs: np.ndarray, directional: PairScores, symmetric: bool = True):
    """Per unordered pair: the larger direction's score, and the index (into ``directional``) of that row."""
    m = len(pairs)
    if not symmetric:
        return directional.scores[:m], np.arange(m)
    forward, backward = directional.scores[:m], directional.scores[m:2 * m]
    take_backward = backward > forward
    return np.where(take_backward, backward, forward), np.where(take_backward, np.arange(m) + m, np.arange(m))


def group_pairs(pairs: np.ndarray, directional: PairScores, num_images: int, config: DiscoveryConfig):
    """Symmetric scores, image groups and their region groups from scored directional pairs."""
    scores, row = symmetric_scores(pairs, directional, config.symmetric)
    found = cluster(num_images, pairs, scores, config.threshold, config.min_group_images)
    label = np.full(num_images, -1)
    for g, images in enumerate(found):
        label[images] = g
    edges: list[list[Edge]] = [[] for _ in found]
    for k in np.nonzero((scores > config.threshold) & (label[pairs[:, 0]] >= 0))[0] if len(pairs) else ():
        r = row[k]
        ref, tgt = directional.pairs[r]
        edges[label[pairs[k, 0]]].append(Edge(int(ref), int(tgt), float(scores[k]),
                                              tuple(map(float, directional.reference_boxes[r])),
                                              tuple(map(float, directional.target_boxes[r]))))
    groups = [Group(images, e) for images, e in zip(found, edges)]
    regions = [region_groups(g, config.region_iou, config.min_group_images) for g in groups]
    return scores, groups, regions
