"""The ``artdup`` command's persistent compilation cache: XLA programs compiled by one run are read back by the
next, so a command run again (the same models, image sizes and batch shapes) skips compilation, which takes
seconds per program on CPU (the batched robust estimators, the networks) and can exceed the work itself on a
small collection.

The cache is JAX's own (keyed by the program, the compiler options, the backend and the jax / jaxlib versions,
so a stale entry is never used), in ``xla/`` under the tool's cache root (``$ARTDUP_CACHE``, else
``$XDG_CACHE_HOME/artdup-jax``, else ``~/.cache/artdup-jax``), bounded to :data:`MAX_BYTES` (least recently used
entries go first). Only programs whose compilation took at least a second are written. It stays off where
``ARTDUP_COMPILATION_CACHE=0``, where the user already gave JAX a cache folder (``JAX_COMPILATION_CACHE_DIR``,
which is then used as is), and where the folder cannot be created or the ``filelock`` package (a dependency,
which JAX needs to bound the size) is missing: the command then runs without it. Library callers are left
alone: only the command turns it on.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from artdup_jax.checkpoints.cache import cache_root

OPT_OUT = "ARTDUP_COMPILATION_CACHE"
MAX_BYTES = 2 * 2**30


def compilation_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of the compiled programs under the tool's cache root (``root`` overrides the root)."""
    return cache_root(root) / "xla"


def enable_compilation_cache(environ=os.environ) -> Path | None:
    """Point JAX's persistent compilation cache at :func:`compilation_cache_dir`; the folder, or None where it
    stays off (opted out, already configured by the user, or not writable)."""
    if environ.get(OPT_OUT, "1") == "0" or jax.config.jax_compilation_cache_dir:
        return None
    try:  # JAX bounds the cache's size under a file lock; without it every read would warn
        import filelock  # noqa: F401
    except ImportError:
        return None
    folder = compilation_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return folder
