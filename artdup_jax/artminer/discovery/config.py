"""Discovery settings; the defaults are the release's LTLL / Brueghel discovery."""

from __future__ import annotations

import dataclasses

from artdup_jax.artminer.resize_rule import SCALES


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """Settings; the defaults are the release's LTLL / Brueghel discovery."""

    reference_cells: int = 40  # I1 longer side (cells); also the divisor of the RANSAC tolerance
    margin: int = 3  # I1 border cells cropped after the network
    scales: tuple[int, ...] = SCALES  # I2 longer sides (cells)
    target_min_cells: int = 1
    tolerance_cells: float = 2.0  # tau_c: Hough kernel half-width and Hough-set radius (cells)
    iterations: int = 1000  # RANSAC hypotheses
    hough: bool = True  # sample from the best scale's Hough set (False: from all pooled matches)
    saliency: bool = True  # reference reweighting (LTLL, Brueghel; not Oxford)
    min_component: int = 3  # cells per connected component kept (minFeatCC)
    resample: str = "nearest"  # PIL filter of every resize (the release: NEAREST)
    threshold: float = 0.015  # edge threshold of the groups (the release's default; LTLLCluster.sh: 0.03)
    min_group_images: int = 3
    region_iou: float = 0.3
    top_k: int = 10  # candidate neighbours per image from the global descriptor
    descriptor_cells: int = 20  # longer side of the map the global descriptor pools (the smallest scale)
    exhaustive: bool = False  # score every pair instead of the top-k candidates
    symmetric: bool = True  # score both directions and keep the larger (clustering); False: i -> j only
    pairs_per_batch: int = 32
    hypothesis_chunk: int = 128
    seed: int = 0
    max_batch: int | None = None  # images per network call (None: collection.default_max_batch())

    @property
    def reference_min_cells(self) -> int:
        return 2 * self.margin + 1

    @property
    def tolerance(self) -> float:
        """RANSAC inlier distance in normalised I1 units: tau_c / reference longer side (uncropped)."""
        return self.tolerance_cells / self.reference_cells
