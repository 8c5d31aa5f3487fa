"""One file over HTTP(S): resumable, verified, moved into place only when whole.

    result = download(url, "cache/weights/x/x.pth", expected_sha256=None, policy=DownloadPolicy(timeout_s=30))
    result.sha256, result.size, result.resumed_from

* The bytes go to ``DEST.part``; an interrupted download (closed connection, timeout, retry exhausted) leaves
  it there, and the next call asks the server for the rest (``Range: bytes=N-``, with ``If-Range`` and the
  first answer's ETag / Last-Modified, so a file changed in between is sent whole). A server that ignores
  the range (200 instead of 206) is read from the start again.
* SHA-256 is computed while writing (the part already on disk is hashed first, once).
* Redirects are followed (urllib's handler keeps the ``Range`` header on each hop).
* Connection errors, timeouts, short reads and HTTP 429 / 5xx are retried with exponential back-off;
  other HTTP errors are not.
* The whole file is checked against ``expected_sha256`` (or the torch.hub file-name prefix
  ``sha256_prefix``) and against the announced length; a mismatch raises ``ChecksumError`` naming both
  hashes, deletes the part (a resume would only extend the wrong bytes) and never touches ``DEST``.
* An HTML answer (a file host's "link expired" page) is refused instead of being saved as a checkpoint.
* ``DEST`` appears by ``os.replace`` of the finished, fsynced part: readers never see half a file.

urllib (standard library) rather than ``requests``: it does everything above (timeouts, ranges, redirects)
with no dependency the package does not already declare.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Callable

CHUNK_BYTES = 1 << 20
USER_AGENT = "artdup-jax (weights download)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(OSError):
    """A download that did not complete (network, HTTP status, HTML answer). One line, names the URL."""

    def __init__(self, url: str, reason: str, *, network: bool = False):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason
        self.network = network  # True: the server could not be reached or the connection failed


class ChecksumError(ValueError):
    """Downloaded or placed bytes whose SHA-256 (or length) is not the expected one. One line."""

    def __init__(self, message: str, *, path: str, expected: str, actual: str):
        super().__init__(message)
        self.path, self.expected, self.actual = path, expected, actual


@dataclasses.dataclass(frozen=True)
class DownloadPolicy:
    """Timeouts and retries. ``timeout_s`` bounds the connection and every read; attempt k (from 0) waits
    ``backoff_s * 2**k`` before the next one."""

    timeout_s: float = 30.0
    retries: int = 3  # an offline machine learns it in 0.5 + 1 + 2 s
    backoff_s: float = 0.5


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    path: str  # the final file
    sha256: str
    size: int
    resumed_from: int  # bytes already in DEST.part when this call started (0: fresh download)
    transferred: int  # bytes received over the network by this call, all attempts together
    final_url: str  # after redirects


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str, actual: str, *, expected: str | None = None, prefix: str | None = None,
                 what: str = "file", expected_from: str = "") -> None:
    """Raises ``ChecksumError`` if ``actual`` differs from ``expected`` (or does not start with ``prefix``).
    ``expected_from`` says where the expected value comes from, for the message."""
    where = f" {expected_from}" if expected_from else ""
    if expected and actual != expected.lower():
        raise ChecksumError(f"{path}: {what} rejected (corrupt or truncated?): sha256 {actual}, expected "
                            f"{expected.lower()}{where}", path=path, expected=expected.lower(), actual=actual)
    if prefix and not actual.startswith(prefix.lower()):
        raise ChecksumError(f"{path}: {what} rejected (corrupt or truncated?): sha256 {actual}, expected "
                            f"{prefix.lower()}... (the hash in its released file name)",
                            path=path, expected=f"{prefix.lower()}...", actual=actual)


class _Retry(Exception):
    """An attempt that failed in a way worth retrying (the part on disk is kept)."""


def download(url: str, dest: str | os.PathLike, *, expected_sha256: str | None = None,
             sha256_prefix: str | None = None, expected_from: str = "", policy: DownloadPolicy = DownloadPolicy(),
             progress: Callable[[int, int | None], None] | None = None) -> DownloadResult:
    """Downloads ``url`` to ``dest`` (see the module docstring). ``progress(done_bytes, total_bytes_or_None)``
    is called after every chunk."""
    dest = os.fspath(dest)
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    resumed_from = os.path.getsize(part) if os.path.isfile(part) else 0
    transferred, last_error = 0, None
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff_s * 2 ** (attempt - 1))
        try:
            sha256, size, final_url, received = _attempt(url, part, policy.timeout_s, progress)
            transferred += received
            break
        except _Retry as error:
            transferred += getattr(error, "received", 0)
            last_error = error
    else:
        have = os.path.getsize(part) if os.path.isfile(part) else 0
        kept = f"; {have} bytes kept in {part}, run again to resume" if have else ""
        raise DownloadError(url, f"download failed after {policy.retries + 1} attempt(s): {last_error}{kept}",
                            network=getattr(last_error, "network", True))

    try:
        check_sha256(url, sha256, expected=expected_sha256, prefix=sha256_prefix, what="download",
                     expected_from=expected_from)
    except ChecksumError as error:
        for leftover in (part, part + ".validator"):
            if os.path.isfile(leftover):
                os.remove(leftover)
        raise ChecksumError(f"{error} (deleted, not used)", path=error.path, expected=error.expected,
                            actual=error.actual) from None
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    if os.path.isfile(part + ".validator"):
        os.remove(part + ".validator")
    return DownloadResult(dest, sha256, size, resumed_from, transferred, final_url)


def _attempt(url: str, part: str, timeout_s: float, progress) -> tuple[str, int, str, int]:
    """One request: resumes ``part`` if it has bytes. Returns (sha256, size, final url, bytes received)."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    validator_file = part + ".validator"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if os.path.isfile(validator_file):  # the server sends the whole file (200) if it changed meanwhile
            with open(validator_file) as f:
                request.add_header("If-Range", f.read().strip())
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing after the part's end: it is whole, or wrong
            error.close()
            whole = re.fullmatch(r"bytes \*/(\d+)", error.headers.get("Content-Range", "").strip())
            if whole and int(whole[1]) == offset:
                return sha256_of_file(part), offset, url, 0
            os.remove(part)
            raise _retry("server refused the resume range; starting over", network=False) from None
        if error.code == 429 or error.code >= 500:
            raise _retry(f"HTTP {error.code} {error.reason}", network=False) from None
        raise DownloadError(url, f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _retry(_reason(error), network=True) from None

    received = 0
    with response:
        final_url = response.geturl()
        content_type = response.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            raise DownloadError(url, f"the server answered with an HTML page ({final_url}), not the file; the "
                                     "link may have moved")
        status = response.status
        start, total = 0, _length(response.headers.get("Content-Length"))
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != offset:
                os.remove(part)
                raise _retry(f"unexpected Content-Range {response.headers.get('Content-Range')!r}; starting over",
                             network=False)
            start, total = offset, (None if match[3] == "*" else int(match[3]))
        else:
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if validator and not validator.startswith("W/"):  # If-Range takes strong validators only
                with open(validator_file, "w") as f:
                    f.write(validator)
            elif os.path.isfile(validator_file):
                os.remove(validator_file)
        digest = hashlib.sha256()
        mode = "r+b" if start else "wb"
        with open(part, mode) as f:
            if start:
                for block in iter(lambda: f.read(CHUNK_BYTES), b""):  # hash what is already there
                    digest.update(block)
                f.seek(start)
                f.truncate()
            try:
                while True:
                    block = response.read(CHUNK_BYTES)
                    if not block:
                        break
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    if progress is not None:
                        progress(start + received, total)
            except (OSError, http.client.HTTPException) as error:
                f.flush()
                raise _retry(_reason(error), network=True, received=received) from None
        size = start + received
    if total is not None and size < total:
        raise _retry(f"connection closed after {size} of {total} bytes", network=True, received=received)
    if total is not None and size > total:
        os.remove(part)
        raise _retry(f"received {size} bytes, more than the announced {total}; starting over", network=False,
                     received=received)
    return digest.hexdigest(), size, final_url, received


def _retry(message: str, *, network: bool, received: int = 0) -> _Retry:
    error = _Retry(message)
    error.network, error.received = network, received
    return error


def _length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    if isinstance(reason, socket.timeout) or isinstance(error, TimeoutError):
        return "timed out"
    return str(reason).strip() or type(reason).__name__
