"""artdup-jax: find and align near-duplicate patterns in art collections, in JAX.

Layers (imports point down only):
  entry points  train/, eval/, artdup_jax.cli
  methods       artdup_jax.ransac_flow, artdup_jax.artminer, artdup_jax.segswap
  support       artdup_jax.data, artdup_jax.convert, artdup_jax.training
  primitives    artdup_jax.nn, artdup_jax.geometry
"""

__version__ = "0.1.0"
