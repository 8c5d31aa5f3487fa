"""The weights cache: released checkpoints fetched once, verified, converted once to Orbax.

    path = resolve_weights("artminer-brueghel", "artminer")   # a converted folder, for load_weights
    path = resolve_weights("ltllModel.pth", "artminer")       # an existing path comes back unchanged

Root: ``$ARTDUP_CACHE``, else ``$XDG_CACHE_HOME/artdup-jax``, else ``~/.cache/artdup-jax``. Layout:

  weights/<name>/<file_name>      the released checkpoint (placed here by a fetch, or by hand)
  weights/<name>/sha256.json      its SHA-256, recorded at the first fetch (later fetches must match it), and
                                  the SHA-256 of the file ``orbax/`` was converted from
  weights/<name>/orbax/           its variables, converted once (``save_variables``)
  archives/<zip name>             an archive holding several checkpoints (RANSAC-Flow's model.zip), kept so
                                  that its other members need no second download; its hash beside it

Without network access a fetch fails with one line naming the URL and the exact path to place the file at;
a file placed there is used (and its hash recorded) like a downloaded one. The family must be registered
before converting (``import artdup_jax.convert``; this package sits below the methods and cannot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Callable

from artdup_jax.checkpoints.catalogue import (
    RELEASED,
    ReleasedWeights,
    UnknownWeightsError,
    get_released,
    released_for,
)
from artdup_jax.checkpoints.download import (
    CHUNK_BYTES,
    ChecksumError,
    DownloadError,
    DownloadPolicy,
    check_sha256,
    download,
    sha256_of_file,
)
from artdup_jax.checkpoints.files import ORBAX_METADATA

CACHE_ENV = "ARTDUP_CACHE"
RECORD = "sha256.json"
CONVERTED = "orbax"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".zip", ".ckpt")


class WeightsUnavailableError(DownloadError):
    """Released weights that could not be downloaded; the line names the URL and where to put the file."""

    def __init__(self, url: str, message: str, *, network: bool = False):
        super().__init__(url, message, network=network)
        self.args = (message,)  # the message names the URL already

    def __str__(self) -> str:
        return self.args[0]


class WeightsFamilyError(ValueError):
    """Released weights of another family than the option takes. One line."""


# What the ``artdup`` command reports in one line (``app.messages.error_line``).
WEIGHTS_ERRORS = (UnknownWeightsError, WeightsFamilyError, ChecksumError, DownloadError)


def cache_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "artdup-jax"


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """Where one released checkpoint lives in the cache."""

    weights: ReleasedWeights
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / "weights" / self.weights.name

    @property
    def checkpoint(self) -> Path:
        return self.folder / self.weights.file_name

    @property
    def record(self) -> Path:
        return self.folder / RECORD

    @property
    def converted(self) -> Path:
        return self.folder / CONVERTED

    @property
    def archive(self) -> Path | None:
        return self.root / "archives" / self.weights.served_name if self.weights.member else None

    def is_converted(self) -> bool:
        """A converted folder made from the checkpoint whose hash is recorded (not from an earlier copy)."""
        record = _read_record(self.record)
        return ((self.converted / ORBAX_METADATA).is_file() and record.get("sha256") is not None
                and record.get("converted_sha256") == record["sha256"])

    def recorded_sha256(self) -> str | None:
        return _read_record(self.record).get("sha256")


def locate(name: str | ReleasedWeights, root: str | os.PathLike | None = None) -> CacheEntry:
    weights = name if isinstance(name, ReleasedWeights) else get_released(name)
    return CacheEntry(weights, cache_root(root))


@dataclasses.dataclass(frozen=True)
class Fetched:
    name: str
    path: str  # the checkpoint file in the cache
    sha256: str
    size: int
    url: str
    how: str  # "cached", "downloaded", "extracted from <archive>" or "placed by hand"
    first_record: bool  # True: no hash was known, this one is now recorded


def fetch(name: str | ReleasedWeights, *, root: str | os.PathLike | None = None, mirror: str | None = None,
          force: bool = False, policy: DownloadPolicy = DownloadPolicy(),
          progress: Callable[[int, int | None], None] | None = None) -> Fetched:
    """Puts the released checkpoint ``name`` in the cache (downloading it unless a verified copy is there)
    and returns where. ``force``: download again (checked against the recorded hash; the copy in place is
    replaced only by a verified one). Does not convert (``convert``)."""
    entry = locate(name, root)
    weights = entry.weights
    url = weights.download_url(mirror)
    with _locked(entry.folder):
        recorded = entry.recorded_sha256()
        if entry.checkpoint.is_file() and not force:
            sha256 = sha256_of_file(entry.checkpoint)
            _check(entry, str(entry.checkpoint), sha256, recorded, "file")
            how = "cached" if recorded else "placed by hand"
        elif weights.member:  # the file in place is replaced only by a verified one
            if force:
                _remove(entry.archive)
            sha256, how = _from_archive(entry, url, policy, progress)
        else:
            result = _download(entry, url, entry.checkpoint, recorded, weights.sha256_prefix, policy, progress)
            sha256, how = result.sha256, "downloaded"
        if recorded is None:
            _write_record(entry.record, name=weights.name, file=weights.file_name, url=url, sha256=sha256,
                          size=entry.checkpoint.stat().st_size, how=how)
        return Fetched(weights.name, str(entry.checkpoint), sha256, entry.checkpoint.stat().st_size, url, how,
                       first_record=recorded is None and weights.sha256 is None)


def convert(name: str | ReleasedWeights, *, root: str | os.PathLike | None = None, force: bool = False) -> Path:
    """The converted folder of a fetched checkpoint, converting it first if needed."""
    from artdup_jax.checkpoints.conversion import FAMILIES
    from artdup_jax.checkpoints.orbax_io import save_variables
    from artdup_jax.checkpoints.torch_file import load_torch_checkpoint

    entry = locate(name, root)
    if entry.weights.family not in FAMILIES:
        raise RuntimeError(f"checkpoint family {entry.weights.family!r} of weights {entry.weights.name!r} is not "
                           "registered: import artdup_jax.convert first")
    with _locked(entry.folder):
        if entry.is_converted() and not force:
            return entry.converted
        record = _read_record(entry.record)
        if not entry.checkpoint.is_file() or record.get("sha256") is None:
            raise FileNotFoundError(f"{entry.checkpoint}: not fetched yet ('artdup weights fetch "
                                    f"{entry.weights.name}')")
        variables = load_torch_checkpoint(entry.weights.family, entry.checkpoint)
        save_variables(variables, entry.converted, overwrite=True)
        _write_record(entry.record, **{**record, "converted_sha256": record["sha256"]})
    return entry.converted


def resolve_weights(name_or_path: str | os.PathLike, family: str | tuple[str, ...] | None = None, *,
                    root: str | os.PathLike | None = None, mirror: str | None = None, download: bool = True,
                    policy: DownloadPolicy = DownloadPolicy(),
                    progress: Callable[[int, int | None], None] | None = None) -> str:
    """A local path for ``--weights NAME_OR_PATH``: an existing path unchanged, a released name as its
    converted folder (fetched and converted on first use). ``family``: the family (or families) the option
    takes; released weights of another family are refused."""
    text = os.fspath(name_or_path)
    if os.path.exists(text):
        return text
    if text not in RELEASED:
        if os.sep in text or text.endswith(CHECKPOINT_SUFFIXES):
            raise FileNotFoundError(f"{text}: no such checkpoint file or directory")
        get_released(text)  # raises UnknownWeightsError, listing the names
    weights = RELEASED[text]
    families = (family,) if isinstance(family, str) else tuple(family or ())
    if families and weights.family not in families:
        names = ", ".join(released_for(families)) or "none released"
        raise WeightsFamilyError(f"weights {text!r} are of family {weights.family!r}; this option takes "
                                 f"{' or '.join(repr(f) for f in families)} ({names})")
    entry = locate(weights, root)
    if entry.is_converted():
        return str(entry.converted)
    if not entry.checkpoint.is_file() and not download:
        url = weights.download_url(mirror)
        raise WeightsUnavailableError(url, _by_hand(entry, url, "not in the cache"))
    fetch(weights, root=root, mirror=mirror, policy=policy, progress=progress)
    return str(convert(weights, root=root))


def status(name: str | ReleasedWeights, root: str | os.PathLike | None = None) -> str:
    """"converted", "downloaded", "in archive", "partial" or "" (nothing in the cache)."""
    entry = locate(name, root)
    if entry.is_converted():
        return "converted"
    if entry.checkpoint.is_file():
        return "downloaded"
    if entry.archive is not None and entry.archive.is_file():
        return "in archive"
    parts = [Path(f"{path}.part") for path in (entry.checkpoint, entry.archive) if path is not None]
    return "partial" if any(part.is_file() for part in parts) else ""


def _check(entry: CacheEntry, path: str, sha256: str, recorded: str | None, what: str) -> None:
    weights = entry.weights
    if weights.sha256:
        check_sha256(path, sha256, expected=weights.sha256, what=what, expected_from="(the catalogue's)")
    elif recorded:
        check_sha256(path, sha256, expected=recorded, what=what,
                     expected_from=f"(recorded at the first fetch in {entry.record}; delete that file to accept "
                                   "another copy)")
    check_sha256(path, sha256, prefix=weights.sha256_prefix, what=what)


def _download(entry: CacheEntry, url: str, dest: Path, recorded: str | None, prefix: str | None,
              policy: DownloadPolicy, progress):
    weights = entry.weights
    expected = weights.sha256 or recorded
    source = "(the catalogue's)" if weights.sha256 else f"(recorded at the first fetch in {entry.record})"
    try:
        return download(url, dest, expected_sha256=expected, sha256_prefix=prefix,
                        expected_from=source if expected else "", policy=policy, progress=progress)
    except DownloadError as error:  # offline, dead link, HTML page...: say where the file goes by hand
        raise WeightsUnavailableError(url, _by_hand(entry, url, error.reason), network=error.network) from None


def _from_archive(entry: CacheEntry, url: str, policy: DownloadPolicy, progress) -> tuple[str, str]:
    """Extracts ``entry``'s member from its archive (downloaded first if absent); (sha256, how)."""
    archive = entry.archive
    archive_record = archive.with_name(archive.name + ".sha256.json")
    with _locked(archive.parent):
        if archive.is_file():
            recorded_archive = _read_record(archive_record).get("sha256")
            if recorded_archive is None:
                _write_record(archive_record, file=archive.name, url=url, sha256=sha256_of_file(archive),
                              size=archive.stat().st_size, how="placed by hand")
        else:
            recorded_archive = _read_record(archive_record).get("sha256")
            result = _download(entry, url, archive, recorded_archive, None, policy, progress)
            if recorded_archive is None:
                _write_record(archive_record, file=archive.name, url=url, sha256=result.sha256, size=result.size,
                              how="downloaded")
        try:
            with zipfile.ZipFile(archive) as bundle:
                member = _find_member(bundle, entry.weights.member, archive)
                part = Path(f"{entry.checkpoint}.part")
                entry.folder.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with bundle.open(member) as source, open(part, "wb") as sink:
                    for block in iter(lambda: source.read(CHUNK_BYTES), b""):
                        sink.write(block)
                        digest.update(block)
        except zipfile.BadZipFile as error:
            sha256 = sha256_of_file(archive)
            archive.unlink()
            raise ChecksumError(f"{archive}: archive rejected and deleted, not a readable zip ({error}; corrupt or "
                                f"truncated?), sha256 {sha256}", path=str(archive), expected="a zip",
                                actual=sha256) from None
    sha256 = digest.hexdigest()
    try:
        _check(entry, str(entry.checkpoint), sha256, entry.recorded_sha256(), f"member of {archive.name}")
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, entry.checkpoint)
    return sha256, f"extracted from {archive.name}"


def _find_member(bundle: zipfile.ZipFile, member: str, archive: Path) -> str:
    names = bundle.namelist()
    if member in names:
        return member
    matches = [name for name in names if name.rsplit("/", 1)[-1] == member.rsplit("/", 1)[-1]]
    if len(matches) != 1:
        raise FileNotFoundError(f"{archive}: no member {member!r} (it holds {', '.join(names[:10])}"
                                f"{', ...' if len(names) > 10 else ''})")
    return matches[0]


def _by_hand(entry: CacheEntry, url: str, reason: str) -> str:
    weights = entry.weights
    if weights.member:
        return (f"cannot fetch weights {weights.name!r} ({reason}): download {url} (a zip holding "
                f"{weights.member}) and extract {weights.member} to {entry.checkpoint}, or put the zip itself at "
                f"{entry.archive}; then run the command again")
    return (f"cannot fetch weights {weights.name!r} ({reason}): download {url} and save it as {entry.checkpoint}; "
            "then run the command again")


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_record(path: Path, **fields) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields.setdefault("recorded", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(fields, indent=1) + "\n")
    os.replace(tmp, path)


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` between processes (two fetches of one checkpoint write one part)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
