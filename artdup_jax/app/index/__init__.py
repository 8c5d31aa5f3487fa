"""``artdup index``: a collection's ArtMiner features stored once; discovery and detection that read them.

    build_index("collection/", "runs/index", DiscoveryConfig(), checkpoint="ltllModel.pth")
    add_to_index("runs/index", ["new_scans/"], checkpoint="ltllModel.pth")  # features of the new images only
    run = discover_in_index("runs/index", out="runs/discover")  # verifies only pairs never verified before
    detect_in_index("scan.jpg", [120, 40, 380, 300], "runs/index", checkpoint="ltllModel.pth")

The index folder (``artdup_jax.index`` holds the storage; this module says what goes in it)::

    index.json     format, weights fingerprint, the feature settings (``FEATURE_FIELDS``)
    state.json     ids removed or replaced, files that could not be read
    shards/        per image (``store.write_shard``): the discovery reference map (prepared: L2-normalised,
                   saliency-weighted, margin cropped) and the target map at every scale (L2-normalised), as
                   16-bit fixed point, the raw feature norm of every target cell (detection restores raw
                   features from it), the pooled regional descriptor (float32) and the file's record
    ann/           the IVF index, the mean descriptor and every image's nearest images (large collections)
    pairs/<key>/   verified pairs for one set of scoring settings (``SCORE_FIELDS``): scores and boxes
    staging/       chunks extracted but not yet committed (``index.staging``; gone after a complete build)

Image ids are given in the order images are stored: a build of a folder gives its readable images, sorted,
the ids 0, 1, ..., as ``discover_folder`` numbers them, so both verify every pair with the same RANSAC draws.
Many processes (``jax.distributed``, ``index.processes``): each extracts, or verifies, its contiguous block of
chunks and stages it; process 0 alone holds the writer lock and commits every chunk in order, so the index and
the groups are the ones one process gives.
Memory: a build holds one shard's maps; discovery holds one batch of pairs' maps (``store.PaddedCells`` reads
them from the memory-mapped shards), the descriptors and the verified edges, never the whole collection.

Modules:
  settings    the fields the stored maps and the pair scores depend on; weights; pooled descriptors
  build       build_index, add_to_index, index_info
  update      what a build or an add stores, chunk by chunk, by one process or by many
  candidates  the pairs a discovery verifies, and their verification by one process or by many
  discover    discover_in_index (and the memory-mapped ``stored_bank``)
  detect      detect_in_index (``IndexedMaps`` serves the stored maps to ``artminer.detect``)
"""

from artdup_jax.app.index.build import IndexInfo, IndexUpdate, add_to_index, build_index, index_info
from artdup_jax.app.index.detect import IndexedMaps, detect_in_index
from artdup_jax.app.index.discover import IndexDiscovery, discover_in_index, stored_bank
from artdup_jax.app.index.settings import (
    FEATURE_FIELDS,
    IMAGES_PER_SHARD,
    PAIRS_PER_CHUNK,
    SCORE_FIELDS,
    config_from_settings,
    feature_settings,
    score_key,
    weights_for,
)

__all__ = [
    "FEATURE_FIELDS", "IMAGES_PER_SHARD", "PAIRS_PER_CHUNK", "SCORE_FIELDS", "IndexDiscovery", "IndexInfo",
    "IndexUpdate", "IndexedMaps", "add_to_index", "build_index", "config_from_settings", "detect_in_index",
    "discover_in_index", "feature_settings", "index_info", "score_key", "stored_bank", "weights_for",
]
