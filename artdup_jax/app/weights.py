"""``artdup weights list`` and ``artdup weights fetch NAME``: the released checkpoints, by name.

    rows = list_weights()                        # one WeightsRow per released checkpoint, cached or not
    result = fetch_weights("artminer-brueghel")  # downloaded (resumable), verified, converted to Orbax
    result.converted                             # what ``--weights artminer-brueghel`` loads

The catalogue is ``artdup_jax.checkpoints.catalogue``; the cache and its layout ``checkpoints.cache``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import artdup_jax.convert  # noqa: F401  (registers every family, so fetched checkpoints can be converted)
from artdup_jax.checkpoints import cache
from artdup_jax.checkpoints.catalogue import RELEASED, get_released
from artdup_jax.checkpoints.download import DownloadPolicy

UNKNOWN_HASH_NOTE = ("sha256 'first fetch': no hash was published; the first complete fetch records it in the "
                     "cache and every later fetch must match it")


@dataclasses.dataclass(frozen=True)
class WeightsRow:
    name: str
    method: str
    family: str
    cached: str  # "converted", "downloaded", "in archive", "partial" or "" (see ``cache.status``)
    size_bytes: int | None  # the cached file's size, else the catalogue's approximate size, else None
    url: str  # where it is fetched from (the mirror's URL when one is set)
    description: str
    sha256: str  # the known or recorded hash, "<prefix>..." from a torchvision file name, or "first fetch"
    path: str  # where the checkpoint is (or will be) in the cache
    archive: str  # the zip at ``url`` that holds it ("" for a plain file)


def list_weights(*, cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
                 method: str | None = None) -> list[WeightsRow]:
    """Every released checkpoint (of ``method`` when given), with its state in the cache."""
    rows = []
    for weights in RELEASED.values():
        if method is not None and weights.method != method:
            continue
        entry = cache.locate(weights, cache_dir)
        size = entry.checkpoint.stat().st_size if entry.checkpoint.is_file() else weights.approx_bytes
        sha256 = (weights.sha256 or entry.recorded_sha256()
                  or (f"{weights.sha256_prefix}..." if weights.sha256_prefix else "first fetch"))
        rows.append(WeightsRow(weights.name, weights.method, weights.family, cache.status(weights, cache_dir), size,
                               weights.download_url(mirror), weights.description, sha256, str(entry.checkpoint),
                               weights.served_name if weights.member else ""))
    return rows


@dataclasses.dataclass(frozen=True)
class FetchResult:
    name: str
    family: str
    path: str  # the released checkpoint in the cache
    sha256: str
    size_bytes: int
    converted: str  # its Orbax folder, what ``--weights NAME`` loads
    url: str
    how: str  # "cached", "downloaded", "extracted from model.zip" or "placed by hand"
    first_record: bool  # no hash was published: this fetch recorded it


def fetch_weights(name: str, *, force: bool = False, cache_dir: str | os.PathLike | None = None,
                  mirror: str | None = None, policy: DownloadPolicy | None = None,
                  progress: Callable[[int, int | None], None] | None = None) -> FetchResult:
    """Downloads (resuming a partial download), verifies and converts ``name`` once; ``force``: again."""
    weights = get_released(name)
    fetched = cache.fetch(weights, root=cache_dir, mirror=mirror, force=force, policy=policy or DownloadPolicy(),
                          progress=progress)
    converted = cache.convert(weights, root=cache_dir, force=force)
    return FetchResult(weights.name, weights.family, fetched.path, fetched.sha256, fetched.size, str(converted),
                       fetched.url, fetched.how, fetched.first_record)


def table(rows: list[WeightsRow]) -> list[str]:
    """The lines ``artdup weights list`` prints: one per checkpoint, then the note on unknown hashes."""
    lines = [f"{'name':30s} {'method':11s} {'family':13s} {'cached':10s} {'size':>6s}  {'sha256':12s} url"]
    for row in rows:
        size = f"{row.size_bytes / 2**20:.0f}M" if row.size_bytes else "?"
        sha256 = row.sha256 if row.sha256.endswith(("...", "fetch")) else row.sha256[:9] + "..."
        lines.append(f"{row.name:30s} {row.method:11s} {row.family:13s} {row.cached or '-':10s} {size:>6s}  "
                     f"{sha256:12s} {row.url}")
    for archive in sorted({row.archive for row in rows if row.archive}):
        names = [row.name for row in rows if row.archive == archive]
        lines.append(f"{archive} holds {', '.join(names)}: downloaded once, kept in the cache for the others")
    if any(row.sha256 == "first fetch" for row in rows):
        lines.append(UNKNOWN_HASH_NOTE)
    return lines
