"""Starting a run from earlier weights (``config.init_from``): stage 2 from stage 1, fine-tuning, etc.

``init_from`` may name a training workdir (its newest checkpoint's ``params`` / ``batch_stats`` are taken,
not its optimiser state or step) or a directory of converted variables (``artdup_jax.checkpoints``).
Used only when the run's own workdir has no checkpoint yet; a resumed run always continues itself.
"""

from __future__ import annotations

import jax
import numpy as np

from artdup_jax.checkpoints.resolver import load_folder


def load_initial_variables(path: str) -> dict:
    """``init_from``'s variables: a training workdir's newest checkpoint, or a converted folder."""
    try:
        return load_folder(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"init_from={error}") from None


def replace_matching(fresh: dict, loaded: dict, *, source: str) -> dict:
    """``fresh`` with every leaf that ``loaded`` also has; structure and shapes must agree where both exist."""
    flat_loaded = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
    mismatched = []

    def pick(path, leaf):
        if path not in flat_loaded:
            return leaf
        value = np.asarray(flat_loaded[path])
        if value.shape != leaf.shape:
            mismatched.append(f"{jax.tree_util.keystr(path)}: expected {leaf.shape}, got {value.shape}")
            return leaf
        return value.astype(leaf.dtype)

    result = jax.tree_util.tree_map_with_path(pick, fresh)
    if mismatched:
        raise ValueError(f"init_from={source}: shape mismatch for " + "; ".join(mismatched))
    if not any(path in flat_loaded for path, _ in jax.tree_util.tree_flatten_with_path(fresh)[0]):
        raise ValueError(f"init_from={source}: no variable matches the model")
    return result
