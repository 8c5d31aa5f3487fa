"""A collection index on disk: feature maps in memory-mapped shards, descriptors in faiss, a manifest.

Support code without any method in it; ``artdup_jax.app.index`` decides what an ArtMiner index stores.

Modules:
  atomic.py      crash-safe writes (temporary name, fsync, rename), leftovers, the one-writer lock
  store.py       ``write_shard`` / ``MapStore``: per-item maps as 16-bit fixed point in shards, read by rows
  manifest.py    the index header (weights fingerprint, settings), file records, changed and removed files
  ann.py         ``WindowIndex``: faiss over items' regional windows, exact (flat) or IVF
  neighbours.py  ``NeighbourGraph``: every item's nearest items and the candidate pairs, kept up to date
  pairs.py       ``PairLog``: verified pairs, an append-only log of atomically written chunks
  staging.py     shards and pair chunks computed by any process, kept until they are committed in order
  processes.py   ``ProcessGroup``: the processes of a ``jax.distributed`` job, step by step, errors shared

The stored dtype, measured: ArtMiner discovery (random weights, reference 16 cells, scales 20/16/12, 1000
hypotheses) over 24 images of 128 x 160 px (4 planted categories, style strength 0.3; 150 directional pairs,
scores up to 0.89) with the feature bank's cells rounded as stored, against float32:

  =====================================  ===========  ============  ===============  ============
  cells stored as                        max |dscore|  mean |dscore|  matches changed  groups
  =====================================  ===========  ============  ===============  ============
  float16                                0.053        1.7e-3        11 pairs         two merged
  bfloat16                               0.089        9.8e-3        61 pairs         two merged
  uint8, per-cell range                  0.097        1.1e-2        63 pairs         two merged
  uint16, per-cell range (``store``)     3.0e-7       4.1e-8        0                same
  float32 x (1 + 1e-5 N(0, 1)) (noise)   4.2e-7       5.6e-8        0                same
  float32 x (1 + 1e-4 N(0, 1)) (noise)   0.053        7.0e-4        2 pairs          same
  =====================================  ===========  ============  ===============  ============

Scores are stable under relative noise of 1e-5 and not under 1e-4 (random-weight features are nearly tied
between neighbouring cells); 16-bit fixed point per cell stays below the first, float16 does not. Stated
tolerance: stored and in-memory features give pair scores within 1e-5 (``tests/index``) and the same groups.
"""
