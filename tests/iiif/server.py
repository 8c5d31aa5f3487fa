"""A loopback HTTP server for the IIIF tests: serves a folder, and fails on purpose where it is told to.

    faults = [Fault("/images/c2/", status=503, fail_first=2), Fault("/images/c3/", delay=2.0),
              Fault("/images/c4/", status=404)]
    with LoopbackServer(root, faults) as server:
        server.url              # http://127.0.0.1:PORT
        server.hits("/images/c2/")

Only 127.0.0.1, an ephemeral port, a bounded delay (``MAX_DELAY``); it stops when the ``with`` block ends.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
import time
from pathlib import Path

MAX_DELAY = 10.0  # seconds; no handler sleeps longer


@dataclasses.dataclass
class Fault:
    """Requests whose path starts with ``prefix`` wait ``delay`` seconds, then answer ``status`` (None: the
    file): all of them, or with ``fail_first`` only the first that many."""

    prefix: str
    status: int | None = None
    fail_first: int | None = None
    delay: float = 0.0


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "artdup-test-iiif"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_GET(self):  # noqa: N802
        owner: LoopbackServer = self.server.owner
        path = self.path.split("?")[0]
        fault = owner.record(path)
        try:
            if fault is not None and fault.delay:
                time.sleep(min(fault.delay, MAX_DELAY))
        finally:  # in flight: from the request's arrival until its answer starts (the client waits all along;
            owner.leave()  # counting the write too would overlap the client's next request on a fast answer)
        if fault is not None:
            failing = fault.fail_first is None or owner.hits(fault.prefix) <= fault.fail_first
            if failing and fault.status:
                try:
                    self.send_error(fault.status)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass
                return
        try:
            super().do_GET()
        except (BrokenPipeError, ConnectionResetError):
            pass


class LoopbackServer:
    """Serves ``root`` on 127.0.0.1 in a background thread, with ``faults``; counts requests per path and the
    most requests in flight at once."""

    def __init__(self, root: str | Path, faults: list[Fault] = ()):
        self.root, self.faults = Path(root), list(faults)
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        handler = functools.partial(_Handler, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def record(self, path: str) -> Fault | None:
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return next((f for f in self.faults if path.startswith(f.prefix)), None)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def hits(self, prefix: str = "/") -> int:
        with self._lock:
            return sum(n for path, n in self._hits.items() if path.startswith(prefix))

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
