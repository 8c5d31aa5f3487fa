"""Download canvases' images at the size a method needs: local cache, bounded concurrency, timeouts, retries.

    fetched, failures = fetch_canvases(canvases, FetchSettings(max_side=1279, workers=4))
    fetched[0].path, fetched[0].file_width     # the cached file and its pixel size
    failures[0].reason                         # "HTTP 404 Not Found from https://..." (one line); the rest went on

HTTP is ``requests`` with urllib3's ``Retry`` mounted on the session (both are the de facto standard and already
installed with the project's stack): connection errors, read timeouts and answers 408 / 429 / 5xx are retried
``retries`` times with exponential back-off (``backoff`` x 1, 2, 4, ... seconds; ``Retry-After`` is honoured up
to a minute), a 4xx is final at once. Timeouts: ``connect_timeout`` to connect, ``read_timeout`` between two bytes, and
``total_timeout`` for a whole body (a server trickling bytes is cut off); a body that breaks off is fetched
again up to ``retries`` times. Every request of a canvas (its ``info.json``, then its image) that still fails
becomes that canvas's ``Failure`` with a one-line reason; the other canvases go on (``ThreadPoolExecutor`` with
``workers`` threads, one ``requests.Session`` per thread).

Cache (``cache_dir``; default ``$ARTDUP_IIIF_CACHE``, else ``$XDG_CACHE_HOME/artdup/iiif``, else
``~/.cache/artdup/iiif``): one file per URL (``info.json`` documents and images; manifests are always fetched
again), written to a temporary name and renamed, so an interrupted run never leaves a partial file; a re-run
downloads nothing it already has. Images are stored as the server sent them (no local resizing: every
method resizes with its own filter); a format outside the project's image extensions is re-encoded as PNG.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import http
import io
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image, UnidentifiedImageError
from urllib3.util.retry import Retry

from artdup_jax.data.iiif.image_api import ImageInfo, download_size, full_size, image_url, parse_info
from artdup_jax.data.iiif.manifest import Canvas, Failure

USER_AGENT = "artdup-jax (IIIF input)"
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "GIF": ".gif", "BMP": ".bmp"}
_EXIF_ORIENTATION_TAG = 0x0112
_EXIF_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height (as data.images.read_image applies)


class FetchError(RuntimeError):
    """A request that failed for good; ``str()`` is one line naming the URL, ``url`` the request."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(message)
        self.url = url


@dataclasses.dataclass(frozen=True)
class FetchSettings:
    """How images are requested. ``max_side``: longest side wanted in pixels (None: the largest served)."""

    max_side: int | None = None
    workers: int = 4
    connect_timeout: float = 10.0  # seconds to open a connection
    read_timeout: float = 30.0  # seconds of silence allowed while waiting for bytes
    total_timeout: float = 300.0  # seconds for one whole response body
    retries: int = 3  # further tries after the first, for retryable failures
    backoff: float = 0.5  # seconds; the n-th retry waits backoff * 2 ** (n - 1)
    cache_dir: str | None = None  # None: default_cache_dir()


@dataclasses.dataclass(frozen=True)
class FetchedCanvas:
    """A canvas's downloaded image: ``path`` in the cache, the ``url`` it came from, its pixel size as the
    project's image reader sees it (EXIF orientation applied), and the ``info.json`` read (None without an
    image service)."""

    canvas: Canvas
    path: str
    url: str
    file_width: int
    file_height: int
    info: ImageInfo | None


def default_cache_dir() -> str:
    if os.environ.get("ARTDUP_IIIF_CACHE"):
        return os.environ["ARTDUP_IIIF_CACHE"]
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "artdup", "iiif")


class _Retry(Retry):
    """urllib3's ``Retry`` with the wait a server asks for (``Retry-After``) capped at ``MAX_RETRY_AFTER``."""

    MAX_RETRY_AFTER = 60.0  # seconds

    def get_retry_after(self, response):
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, self.MAX_RETRY_AFTER)


def _retry(settings: FetchSettings) -> Retry:
    return _Retry(total=settings.retries, connect=settings.retries, read=settings.retries, status=settings.retries,
                 other=0, backoff_factor=settings.backoff, status_forcelist=RETRY_STATUSES,
                 allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=True)


def _reason(error: requests.RequestException, url: str, settings: FetchSettings) -> str:
    """One line for a request that failed after its retries."""
    tries = settings.retries + 1
    text = " ".join(str(error).split())
    status = re.search(r"too many (\d{3}) error responses", text)
    if status:
        code = int(status.group(1))
        return f"HTTP {code} {_phrase(code)} from {url} (tried {tries} times)"
    if isinstance(error, requests.ConnectTimeout) or "ConnectTimeoutError" in text:
        return f"no connection within {settings.connect_timeout:g} s to {url} (tried {tries} times)"
    if isinstance(error, requests.ReadTimeout) or "ReadTimeoutError" in text or "Read timed out" in text:
        return f"no answer within {settings.read_timeout:g} s from {url} (tried {tries} times)"
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidURL)):
        return f"{url} is not an http(s) URL that can be fetched"
    if isinstance(error, requests.ConnectionError):
        cause = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text) or re.search(r"\] ([^'\")\]]+)", text)
        return f"could not connect to {url} ({cause.group(1) if cause else 'connection failed'}; " \
               f"tried {tries} times)"
    return f"{type(error).__name__} for {url}: {text}"


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "error"


class Fetcher:
    """HTTP GETs with the settings' retries and timeouts, one ``requests.Session`` per thread, and the cache."""

    def __init__(self, settings: FetchSettings = FetchSettings()):
        self.settings = settings
        self.cache_dir = Path(settings.cache_dir or default_cache_dir())
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(max_retries=_retry(self.settings),
                                                    pool_maxsize=max(1, self.settings.workers))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def get(self, url: str) -> tuple[bytes, str]:
        """The body and content type of ``url``; raises ``FetchError`` (one line) when it fails for good."""
        settings = self.settings
        for attempt in range(settings.retries + 1):
            try:
                response = self._session().get(url, timeout=(settings.connect_timeout, settings.read_timeout),
                                               stream=True)
            except requests.RequestException as error:  # already retried by urllib3
                raise FetchError(_reason(error, url, settings), url) from None
            with response:
                if response.status_code >= 400:
                    code = response.status_code
                    raise FetchError(f"HTTP {code} {_phrase(code)} from {url}", url)
                deadline = time.monotonic() + settings.total_timeout
                try:
                    chunks = []
                    for chunk in response.iter_content(1 << 16):
                        chunks.append(chunk)
                        if time.monotonic() > deadline:
                            raise FetchError(f"download of {url} took longer than "
                                             f"{settings.total_timeout:g} s", url)
                    return b"".join(chunks), response.headers.get("Content-Type", "")
                except requests.RequestException as error:  # the body broke off: try again, then give up
                    if attempt == settings.retries:
                        raise FetchError(_reason(error, url, settings), url) from None
            time.sleep(settings.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def get_json(self, url: str, *, cache: bool = False) -> dict:
        """A JSON document (``cache``: keep it in the cache, for ``info.json``)."""
        path = self._cache_path(url, ".json")
        if cache and path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        body, content_type = self.get(url)
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise FetchError(f"{url} did not answer JSON (content type {content_type or 'unknown'!r})",
                             url) from None
        if not isinstance(document, dict):
            raise FetchError(f"{url} answered JSON that is not an object", url)
        if cache:
            _write_atomic(path, body)
        return document

    def get_image(self, url: str) -> tuple[str, int, int]:
        """``(cached path, width, height)`` of the image at ``url``, downloading it unless it is cached."""
        for extension in _EXTENSIONS.values():
            path = self._cache_path(url, extension)
            if path.is_file():
                return (os.fspath(path), *_oriented_size(path))
        body, content_type = self.get(url)
        try:
            with Image.open(io.BytesIO(body)) as image:
                image.load()  # a truncated or corrupt image fails here, not later in a method
                extension = _EXTENSIONS.get(image.format or "")
                if extension is None:  # e.g. JPEG 2000: stored as PNG so every reader takes it
                    extension, buffer = ".png", io.BytesIO()
                    image.save(buffer, format="PNG")
                    body = buffer.getvalue()
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise FetchError(f"{url} is not a readable image (content type {content_type or 'unknown'!r}: "
                             f"{' '.join(str(error).split())})", url) from None
        path = self._cache_path(url, extension)
        _write_atomic(path, body)
        return (os.fspath(path), *_oriented_size(path))

    def _cache_path(self, url: str, extension: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]
        return self.cache_dir / digest[:2] / f"{digest}{extension}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _oriented_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(_EXIF_ORIENTATION_TAG) in _EXIF_TRANSPOSED:
            width, height = height, width
    return width, height


# ------------------------------------------------------------------------------------------------ canvases


def fetch_canvas(canvas: Canvas, fetcher: Fetcher) -> FetchedCanvas:
    """One canvas: its ``info.json`` (cached), then its image at ``download_size``. A server that refuses the
    scaled size (HTTP 400 or 501: a level it does not really implement) is asked for the full size once.
    Without a service the painted image's own URL is downloaded as it is. Raises ``FetchError``."""
    if canvas.service is None:
        if not canvas.image_url:
            raise FetchError("no image is painted on this canvas (no image resource and no image service)")
        path, width, height = fetcher.get_image(canvas.image_url)
        return FetchedCanvas(canvas, path, canvas.image_url, width, height, None)
    info = parse_info(fetcher.get_json(canvas.service.info_url, cache=True), base=canvas.service.base,
                      version=canvas.service.version)
    if info.level is None and canvas.service.level is not None:
        info = dataclasses.replace(info, level=canvas.service.level)
    size, _ = download_size(info, fetcher.settings.max_side)
    url = image_url(info.base, info.version, size=size)
    try:
        path, width, height = fetcher.get_image(url)
    except FetchError as error:
        if size == full_size(info.version) or not re.search(r"HTTP (400|501) ", str(error)):
            raise
        url = image_url(info.base, info.version)
        path, width, height = fetcher.get_image(url)
    return FetchedCanvas(canvas, path, url, width, height, info)


def fetch_canvases(canvases: list[Canvas], settings: FetchSettings = FetchSettings(),
                   fetcher: Fetcher | None = None) -> tuple[list[FetchedCanvas | None], list[Failure]]:
    """Every canvas's image, ``settings.workers`` at a time. Returns one entry per canvas, in order (None for
    a canvas that failed) and the failures, each with a one-line reason."""
    fetcher = fetcher or Fetcher(settings)

    def one(canvas: Canvas) -> FetchedCanvas | Failure:
        try:
            return fetch_canvas(canvas, fetcher)
        except FetchError as error:
            return Failure(canvas.id, canvas.label, str(error), error.url)
        except ValueError as error:  # an info.json without a usable size
            return Failure(canvas.id, canvas.label, " ".join(str(error).split()),
                           canvas.service.info_url if canvas.service else None)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, fetcher.settings.workers)) as pool:
        results = list(pool.map(one, canvases))
    fetched = [r if isinstance(r, FetchedCanvas) else None for r in results]
    return fetched, [r for r in results if isinstance(r, Failure)]
