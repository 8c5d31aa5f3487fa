"""The feature bank: every image's discovery features, computed once and padded to static shapes.

Per image: the reference (I1) map at ``reference_cells`` on its longer side (shorter >= 2 margin + 1), per-cell
L2 normalisation, optional saliency weighting (each cell times 1 - the mean cosine with its 4 neighbours; border
cells 0), then ``margin`` cells cropped; the target (I2) maps at every scale of ``scales`` (shorter side >= 1),
per-cell L2 normalisation; and the regional global descriptor (``candidates.global_descriptors``). Cell lists
are padded to the collection's largest map, rounded up to multiples of ``PAD_CELLS``; masks say what is real.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.collection import FeatureCache
from artdup_jax.artminer.discovery.candidates import global_descriptors
from artdup_jax.artminer.discovery.config import DiscoveryConfig
from artdup_jax.artminer.model import l2_normalise
from artdup_jax.data.host_memory import release_free_heap
from artdup_jax.data.images import ImageReadError

PAD_CELLS = 64  # bank cell lists are padded to multiples of this (fewer distinct shapes, fewer compilations)


def saliency_weights(normalised: jnp.ndarray) -> jnp.ndarray:
    """``(R, C)`` weight ``1 - a``: ``a`` = mean cosine of an interior cell with its 4 neighbours; border cells
    get ``a = 1`` (weight 0). ``normalised``: ``(R, C, D)`` per-cell unit features."""
    centre = normalised[1:-1, 1:-1]
    dots = [jnp.sum(centre * normalised[2:, 1:-1], -1), jnp.sum(centre * normalised[:-2, 1:-1], -1),
            jnp.sum(centre * normalised[1:-1, :-2], -1), jnp.sum(centre * normalised[1:-1, 2:], -1)]
    a = jnp.ones(normalised.shape[:2], normalised.dtype).at[1:-1, 1:-1].set(jnp.mean(jnp.stack(dots), 0))
    return 1.0 - a


def prepare_reference(raw_map, margin: int, saliency: bool) -> np.ndarray:
    """Raw ``(R, C, D)`` I1 map -> ``(R - 2 margin, C - 2 margin, D)`` normalised (and weighted) cells."""
    feats = l2_normalise(jnp.asarray(raw_map, jnp.float32))
    if saliency:
        feats = feats * saliency_weights(feats)[..., None]
    rows, cols = feats.shape[:2]
    return np.asarray(feats[margin:rows - margin, margin:cols - margin])


def prepare_target(raw_map) -> np.ndarray:
    """Raw ``(R, C, D)`` I2 map at one scale -> per-cell L2-normalised."""
    return np.asarray(l2_normalise(jnp.asarray(raw_map, jnp.float32)))


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def _pad_flat(maps: Sequence[np.ndarray], dtype, multiple: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(R, C, D)`` maps -> ``(N, L, D)`` row-major cells (zeros after), valid ``(N, L)``, ``(N, 2)`` hw, where
    ``L`` is the largest ``R C`` rounded up to ``multiple`` (collections of similar sizes share compilations)."""
    hw = np.array([m.shape[:2] for m in maps], np.int32).reshape(-1, 2)
    length = _round_up(max(1, int((hw[:, 0] * hw[:, 1]).max(initial=1))), multiple)
    depth = maps[0].shape[-1] if maps else 1
    out = np.zeros((len(maps), length, depth), dtype)
    for i, m in enumerate(maps):  # images, not pairs
        out[i, : m.shape[0] * m.shape[1]] = np.asarray(m, dtype).reshape(-1, depth)
    valid = np.arange(length)[None, :] < (hw[:, 0] * hw[:, 1])[:, None]
    return out, valid, hw


@dataclasses.dataclass
class FeatureBank:
    """Per-image discovery features, padded to static shapes (host memory; gathered per batch of pairs).

    reference: ``(N, L1, D)`` prepared I1 cells, row-major over ``reference_hw``; reference_valid ``(N, L1)``.
    targets: per scale ``(N, L2_s, D)`` normalised I2 cells; target_valid per scale ``(N, L2_s)``.
    reference_hw: ``(N, 2)`` cropped I1 grid; target_hw: ``(N, S, 2)``; image_hw: ``(N, 2)`` original pixels.
    descriptors: ``(N, W, D)`` regional global descriptors (``global_descriptors``) for candidate pairs.
    """

    paths: list[str]
    image_hw: np.ndarray
    reference: np.ndarray
    reference_valid: np.ndarray
    reference_hw: np.ndarray
    targets: list[np.ndarray]
    target_valid: list[np.ndarray]
    target_hw: np.ndarray
    descriptors: np.ndarray
    margin: int
    reference_image_hw: np.ndarray | None = None  # pixels the reference rows' boxes map to (None: image_hw)

    def __len__(self) -> int:
        return len(self.paths)


def extract_features(variables: dict, paths: Sequence[str], config: DiscoveryConfig = DiscoveryConfig(), *,
                     cache: FeatureCache | None = None, store_dtype=np.float32, chunk: int = 64,
                     on_images: Callable[[int], object] | None = None) -> tuple[FeatureBank, list[tuple[str, str]]]:
    """Features of every readable image, computed once per image and scale (``FeatureCache``).

    Returns the bank (readable images only, in input order) and ``[(path, error)]`` for unreadable files.
    ``on_images(n)`` is called after each ``chunk`` of images (a progress bar's ``update``).
    """
    if cache is None:
        cache = FeatureCache(variables, resample=config.resample, max_batch=config.max_batch)
    elif cache.resample != config.resample:
        raise ValueError(f"the cache resamples with {cache.resample!r}, the config with {config.resample!r}")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    unreadable: list[tuple[str, str]] = []
    readable: list[str] = []

    target_scales = list(dict.fromkeys(tuple(config.scales) + (config.descriptor_cells,)))

    def reference_key(path):
        """The I1 map's cache key; when the reference scale is also a target scale and the two shorter-side
        minima give the same size, the input pixels are identical, so the target map serves (not recomputed)."""
        if config.reference_cells in target_scales and (
                cache.map_size(path, config.reference_cells, config.reference_min_cells)
                == cache.map_size(path, config.reference_cells, config.target_min_cells)):
            return config.reference_cells, config.target_min_cells
        return config.reference_cells, config.reference_min_cells

    def ensure(batch):  # an image is read once per call: once for I1 (if needed), once for every I2 scale
        cache.ensure(batch, target_scales, config.target_min_cells)
        own = [p for p in batch if reference_key(p)[1] != config.target_min_cells]
        cache.ensure(own, [config.reference_cells], config.reference_min_cells)

    for start in range(0, len(paths), chunk):
        batch = paths[start:start + chunk]
        try:
            ensure(batch)
            readable += batch
        except ImageReadError:  # find the culprits one by one; the rest of the chunk still counts
            for path in batch:
                try:
                    ensure([path])
                    readable.append(path)
                except ImageReadError as error:
                    unreadable.append((path, str(error)))
        if on_images is not None:
            on_images(len(batch))

    release_free_heap()  # the pages of the maps read or computed above, before the bank takes their place
    bank = _fill_bank(cache, readable, config, store_dtype, reference_key)
    release_free_heap()
    return bank, unreadable


def _padded_length(hw: np.ndarray) -> int:
    """Cells per image of a padded ``(N, L, D)`` array for maps of ``hw`` ``(N, 2)``: the largest ``R C``
    rounded up to ``PAD_CELLS`` (as ``_pad_flat``)."""
    return _round_up(max(1, int((hw[:, 0] * hw[:, 1]).max(initial=1))), PAD_CELLS)


def _fill_bank(cache: FeatureCache, readable: list[str], config: DiscoveryConfig, store_dtype,
               reference_key: Callable[[str], tuple[int, int]]) -> FeatureBank:
    """The bank of ``readable`` (every map in ``cache`` or its directory), filled in place one image at a time.

    The padded arrays are allocated once from the maps' sizes (``cache.map_size``, nothing computed); each
    image's maps are then read, prepared and copied in, so the host holds the bank and one image's maps, never
    the bank and a list of every map (the same arrays as ``_pad_flat`` of the lists, zeros after each map).
    """
    margin = config.margin
    reference_hw = np.array([[max(0, n - 2 * margin) for n in cache.map_size(p, *reference_key(p))]
                             for p in readable], np.int32).reshape(-1, 2)
    target_hw = [np.array([cache.map_size(p, scale, config.target_min_cells) for p in readable],
                          np.int32).reshape(-1, 2) for scale in config.scales]
    depth = cache.get(readable[0], *reference_key(readable[0])).shape[-1] if readable else 1
    reference = np.zeros((len(readable), _padded_length(reference_hw), depth), store_dtype)
    targets = [np.zeros((len(readable), _padded_length(hw), depth), store_dtype) for hw in target_hw]

    def put(out: np.ndarray, i: int, hw: np.ndarray, cells: np.ndarray) -> None:
        if tuple(cells.shape[:2]) != tuple(hw[i]):
            raise ValueError(f"{readable[i]}: a map of {cells.shape[:2]} cells where {tuple(hw[i])} was planned")
        out[i, : hw[i, 0] * hw[i, 1]] = np.asarray(cells, store_dtype).reshape(-1, depth)

    descriptor_maps = []  # the smallest maps (a few hundred cells each), pooled at the end
    for i, path in enumerate(readable):  # images, not pairs
        raw = np.asarray(cache.get(path, *reference_key(path)), np.float32)
        put(reference, i, reference_hw, prepare_reference(raw, margin, config.saliency))
        for s, scale in enumerate(config.scales):
            put(targets[s], i, target_hw[s], prepare_target(cache.get(path, scale, config.target_min_cells)))
        descriptor_maps.append(np.asarray(cache.get(path, config.descriptor_cells, config.target_min_cells)))

    def valid(hw: np.ndarray, length: int) -> np.ndarray:
        return np.arange(length)[None, :] < (hw[:, 0] * hw[:, 1])[:, None]

    return FeatureBank(
        paths=readable,
        image_hw=np.array([cache.image_size(p) for p in readable], np.int64).reshape(-1, 2),
        reference=reference, reference_valid=valid(reference_hw, reference.shape[1]), reference_hw=reference_hw,
        targets=targets, target_valid=[valid(hw, t.shape[1]) for hw, t in zip(target_hw, targets)],
        target_hw=np.stack(target_hw, 1) if readable else np.zeros((0, len(config.scales), 2), np.int32),
        descriptors=global_descriptors(descriptor_maps) if readable else np.zeros((0, 1, 1), np.float32),
        margin=margin)
