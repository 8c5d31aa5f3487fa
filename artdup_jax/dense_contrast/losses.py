"""Cell-classification InfoNCE: each A cell must pick out its true B cell among all B cells."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def cell_logits(embedding_a, embedding_b, temperature: float):
    """(B, h, w, D), (B, h, w, D) → (B, h*w, h*w) cosine similarities / temperature (A cells × B cells)."""
    batch, h, w, dim = embedding_a.shape
    a = embedding_a.reshape(batch, h * w, dim)
    b = embedding_b.reshape(batch, h * w, dim)
    return jnp.einsum("bnd,bmd->bnm", a, b) / temperature


def cell_matching_loss(logits, target_cell):
    """logits (B, N, N); target_cell (B, N) int32, -1 = no partner. Returns (loss, accuracy) over valid cells."""
    valid = target_cell >= 0
    labels = jnp.where(valid, target_cell, 0)
    per_cell = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    count = jnp.maximum(valid.sum(), 1)
    loss = jnp.sum(jnp.where(valid, per_cell, 0.0)) / count
    accuracy = jnp.sum(valid & (jnp.argmax(logits, axis=-1) == labels)) / count
    return loss, accuracy
