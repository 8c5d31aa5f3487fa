"""A loopback HTTP file server for the download tests; the first path segment picks how it misbehaves.

  /files/NAME      the file with an ETag, honouring ``Range: bytes=N-`` (206 + Content-Range) unless an
                   ``If-Range`` names another version
  /redirect/NAME   302 to /files/NAME
  /cut/NAME        the first request for NAME: full Content-Length, half the bytes, connection closed;
                   later requests as /files
  /corrupt/NAME    the file with one byte flipped
  /truncated/NAME  the first half of the file, announced as the whole (Content-Length of the half)
  /html/NAME       an HTML page, as a file host answers for an expired link
  /stall/NAME      headers, then nothing for longer than any test's timeout

``server.sent[NAME]`` counts the body bytes sent for NAME, ``server.requests[NAME]`` the requests.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.server
import re
import socket
import threading
import time
import urllib.parse

_RANGE = re.compile(r"bytes=(\d+)-$")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        _, mode, name = urllib.parse.unquote(self.path).split("/", 2)
        server.requests[name] += 1
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/files/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name not in server.files:
            self.send_error(404)
            return
        data = server.files[name]
        if mode == "html":
            return self._send(200, b"<html><body>This link has expired.</body></html>", "text/html; charset=utf-8")
        if mode == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if mode == "truncated":
            data = data[: len(data) // 2]
        if mode == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
            return
        if mode == "cut" and name not in server.cut_done:
            server.cut_done.add(name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", _etag(data))
            self.end_headers()
            half = data[: len(data) // 2]
            self.wfile.write(half)
            self.wfile.flush()
            server.sent[name] += len(half)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        match = _RANGE.match(self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and if_range is not None and if_range != _etag(data):
            match = None  # changed since the part was written: the whole file
        if match:
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(206, data[start:], "application/octet-stream",
                       {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, name)
            return
        self._send(200, data, "application/octet-stream", {}, name)

    def _send(self, status, body, content_type, headers=None, name=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if name is not None:
            self.send_header("ETag", _etag(self.server.files[name]))
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        if name is not None:
            self.server.sent[name] += len(body)


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:16]}"'


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = dict(files)
        self.sent: collections.Counter = collections.Counter()
        self.requests: collections.Counter = collections.Counter()
        self.cut_done: set[str] = set()

    def url(self, mode: str = "files") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}"


@contextlib.contextmanager
def serving(files: dict[str, bytes]):
    server = LoopbackServer(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused: what an offline machine sees, quickly)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"
