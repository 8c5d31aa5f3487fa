"""Feature maps of an image collection at several scales, computed once and kept in memory.

A map is keyed by ``(image path, longer-side cells, shorter-side minimum)``: the resize rule's two numbers
fix its size. Images are read once per ``ensure`` call for all their missing scales; resized images of equal
pixel size (so equal cell size) go through the network together, in batches padded to a power of two (zero
images; BN is in inference mode, so batch members never interact). Input images are never padded in
space: zero padding would change the border features.

Memory: a 4:3 image's 7-scale pyramid is about 18k cells x 256 floats (18 MB in float32). ``store_dtype``
(e.g. ``jnp.bfloat16``) halves it; ``max_bytes`` evicts the least recently used maps.

Disk (``directory``): every computed map is also written there (``.npy``, atomically: temporary file + rename),
and a later cache, in this run or another, loads it instead of running the network. A file is named by a hash
of what decides the map: the image's absolute path, size and modification time, the scale, the shorter-side
minimum, the resample filter, the store dtype and a fingerprint of the weights. Editing an image or changing the
weights therefore misses the old files (they stay until the folder is deleted); a killed run keeps every map
written before it died, and re-running resumes from them.
"""

from __future__ import annotations

import collections
import hashlib
import os
from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.artminer.model import features
from artdup_jax.artminer.resize_rule import as_float_image, cells_for_size, resize_to_cells
from artdup_jax.data import outputs
from artdup_jax.data.images import read_image, read_image_size


def default_max_batch() -> int:
    """Images per network call when none is given: 1 on CPU, 8 on an accelerator.

    On a CPU one image per call is faster than batches: one image's activations stay in cache, and the host
    reads and resizes the next image while the network runs.
    """
    return 1 if jax.default_backend() == "cpu" else 8


def _power_of_two_at_least(n: int, cap: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return max(n, min(size, cap))


class FeatureCache:
    """Raw feature maps ``(rows, cols, 256)`` of images at the resize rule's scales.

    Args:
      variables: ArtMiner network variables (``{"params", "batch_stats"}``).
      resample: PIL filter of the resize rule ("nearest" = the release's behaviour).
      max_batch: images per network call (None: ``default_max_batch()``).
      read: ``path -> (H, W, 3)`` float32 RGB in [0, 1].
      max_bytes: optional bound on the cached maps (least recently used evicted first).
      store_dtype: dtype the maps are kept in.
      directory: optional folder where maps persist between runs (module docstring).
    """

    def __init__(self, variables: dict, *, resample: str = "nearest", max_batch: int | None = None,
                 read: Callable[[str], np.ndarray] = read_image, max_bytes: int | None = None,
                 store_dtype=jnp.float32, directory: str | os.PathLike | None = None):
        self.variables = variables
        self.resample = resample
        self.max_batch = max_batch or default_max_batch()
        self.read = read
        self.max_bytes = max_bytes
        self.store_dtype = store_dtype
        self._maps: collections.OrderedDict[tuple, jnp.ndarray] = collections.OrderedDict()
        self._sizes: dict[str, tuple[int, int]] = {}
        self._bytes = 0
        self.maps_computed = 0  # network outputs produced so far (a reused map does not count)
        self.directory = os.fspath(directory) if directory is not None else None
        self.maps_loaded = 0  # maps read back from ``directory``
        self._weights_fingerprint: str | None = None

    @staticmethod
    def key(path: str, longer_cells: int, min_cells: int) -> tuple[str, int, int]:
        return os.path.abspath(os.fspath(path)), int(longer_cells), int(min_cells)

    def __contains__(self, key) -> bool:
        return key in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def image_size(self, path: str) -> tuple[int, int]:
        """``(H, W)`` of the image as ``read`` returns it (header only when not read yet)."""
        path = os.path.abspath(os.fspath(path))
        if path not in self._sizes:
            self._sizes[path] = tuple(read_image_size(path)) if self.read is read_image else \
                tuple(self.read(path).shape[:2])
        return self._sizes[path]

    def map_size(self, path: str, longer_cells: int, min_cells: int) -> tuple[int, int]:
        """``(rows, cols)`` of the map at that scale, without computing it."""
        height, width = self.image_size(path)
        return cells_for_size(width, height, longer_cells, min_cells)

    def weights_fingerprint(self) -> str:
        """SHA-1 of every weight and statistic of the network (computed once)."""
        if self._weights_fingerprint is None:
            digest = hashlib.sha1()
            for path, leaf in jax.tree_util.tree_flatten_with_path(self.variables)[0]:
                digest.update(jax.tree_util.keystr(path).encode())
                digest.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
            self._weights_fingerprint = digest.hexdigest()
        return self._weights_fingerprint

    def disk_path(self, key: tuple[str, int, int]) -> str | None:
        """Where the map of ``key`` persists (None without a directory or when the image cannot be stat'ed)."""
        if self.directory is None:
            return None
        path, longer_cells, min_cells = key
        try:
            stat = os.stat(path)
        except OSError:
            return None
        fields = (path, stat.st_size, stat.st_mtime_ns, longer_cells, min_cells, self.resample,
                  np.dtype(self.store_dtype).name, self.weights_fingerprint())
        name = hashlib.sha1(repr(fields).encode()).hexdigest()
        return os.path.join(self.directory, name[:2], f"{name}.npy")

    def _load(self, key) -> bool:
        """Reads the map of ``key`` from the directory into memory; False when it is not there (or unreadable)."""
        location = self.disk_path(key)
        if location is None or not os.path.exists(location):
            return False
        try:
            value = np.load(location)
        except (OSError, ValueError):  # a damaged file is recomputed (and rewritten)
            return False
        self._store(key, jnp.asarray(value, self.store_dtype))
        self.maps_loaded += 1
        return True

    def ensure(self, paths: Iterable[str], scales: Sequence[int], min_cells: int) -> None:
        """Computes (or loads from the directory) every missing map of ``paths`` x ``scales``."""
        pending: dict[tuple[int, int], list] = collections.defaultdict(list)
        for path in paths:
            missing = [s for s in scales if self.key(path, s, min_cells) not in self._maps
                       and not self._load(self.key(path, s, min_cells))]
            if not missing:
                continue
            image = as_float_image(self.read(path))
            self._sizes[os.path.abspath(os.fspath(path))] = tuple(image.shape[:2])
            for scale in missing:
                resized = resize_to_cells(image, scale, min_cells, resample=self.resample)
                bucket = pending[resized.shape[:2]]
                bucket.append((self.key(path, scale, min_cells), resized))
                if len(bucket) == self.max_batch:
                    self._run(pending.pop(resized.shape[:2]))
        for bucket in pending.values():
            self._run(bucket)
        self._evict()

    def _run(self, bucket: list) -> None:
        keys = [key for key, _ in bucket]
        batch = np.stack([image for _, image in bucket])
        size = _power_of_two_at_least(len(batch), self.max_batch)
        if size > len(batch):
            batch = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])
        out = features(self.variables, batch).astype(self.store_dtype)
        for index, key in enumerate(keys):
            self._store(key, out[index])
            location = self.disk_path(key)
            if location is not None:
                outputs.save_npy(location, np.asarray(out[index], np.float32))
        self.maps_computed += len(keys)

    def _store(self, key, value) -> None:
        if key in self._maps:
            self._bytes -= self._maps.pop(key).nbytes
        self._maps[key] = value
        self._bytes += value.nbytes

    def _evict(self) -> None:
        while self.max_bytes is not None and self._bytes > self.max_bytes and len(self._maps) > 1:
            _, value = self._maps.popitem(last=False)
            self._bytes -= value.nbytes

    def get(self, path: str, longer_cells: int, min_cells: int) -> jnp.ndarray:
        """The ``(rows, cols, 256)`` map, computed now if it is not cached."""
        key = self.key(path, longer_cells, min_cells)
        if key not in self._maps:
            self.ensure([path], [longer_cells], min_cells)
            if key not in self._maps:  # evicted at once by a too-small max_bytes
                raise MemoryError(f"max_bytes={self.max_bytes} cannot hold the map of {path} at {longer_cells}")
        self._maps.move_to_end(key)
        return self._maps[key]
