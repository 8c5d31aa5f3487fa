"""Downloads against a loopback level-0 server that fails on purpose: retried 503s succeed, a canvas that times
out, one that 404s and one that always 503s are reported in one line each, and every other canvas arrives."""

import json
import socket

import pytest
from PIL import Image

from artdup_jax.data.iiif.fetch import FetchSettings, fetch_canvases
from artdup_jax.data.iiif.manifest import Canvas, ImageService, read_canvases
from tests.iiif.layout import LayoutImage, picture, write_layout
from tests.iiif.server import Fault, LoopbackServer

FAST = FetchSettings(max_side=300, workers=3, connect_timeout=2.0, read_timeout=0.5, total_timeout=10.0,
                     retries=2, backoff=0.05)


def layout(root, url, count, version=3, missing=()):
    images = [LayoutImage(f"c{k}", f"Canvas {k}", picture(k, 640, 480)) for k in range(1, count + 1)]
    return write_layout(root, url, images, version=version, missing=missing)


@pytest.fixture
def faulty(tmp_path):
    """Six canvases: c2 fails twice then works, c3 never answers in time, c4 is missing (404), c5 always
    answers 503, c6's image is not an image."""
    faults = [Fault("/images/c2/", status=503, fail_first=2), Fault("/images/c3/", delay=3.0),
              Fault("/images/c5/", status=503)]
    server = LoopbackServer(tmp_path / "site", faults)
    manifest = layout(tmp_path / "site", server.url, 6, missing=("c4",))
    for path in (tmp_path / "site/images/c6/full").rglob("default.jpg"):
        path.write_text("<html>an error page</html>")
    with server:
        yield server, manifest, FetchSettings(**{**FAST.__dict__, "cache_dir": str(tmp_path / "cache")})


def test_each_failing_canvas_has_a_one_line_reason_and_the_others_are_fetched(faulty):
    server, manifest, settings = faulty
    canvases, _ = read_canvases(manifest)
    fetched, failures = fetch_canvases(canvases, settings)
    assert [f is not None for f in fetched] == [True, True, False, False, False, False]
    reasons = {f.id.rsplit("/", 1)[-1]: f.reason for f in failures}
    assert set(reasons) == {"c3", "c4", "c5", "c6"}
    assert all("\n" not in r for r in reasons.values())
    assert reasons["c3"] == f"no answer within 0.5 s from {server.url}/images/c3/info.json (tried 3 times)"
    assert reasons["c4"] == f"HTTP 404 Not Found from {server.url}/images/c4/info.json"
    assert reasons["c5"] == f"HTTP 503 Service Unavailable from {server.url}/images/c5/info.json (tried 3 times)"
    assert reasons["c6"].startswith(f"{server.url}/images/c6/full/320,240/0/default.jpg is not a readable image")
    assert {f.id.rsplit("/", 1)[-1]: f.url for f in failures}["c4"] == f"{server.url}/images/c4/info.json"


def test_503s_are_retried_with_back_off_until_the_canvas_arrives(faulty):
    server, manifest, settings = faulty
    fetched, _ = fetch_canvases(read_canvases(manifest)[0][:2], settings)
    assert fetched[1] is not None
    assert server.hits("/images/c2/info.json") == 3  # two 503s, then the document
    assert server.hits("/images/c2/full/") == 1


def test_level_0_image_is_requested_at_a_listed_size_near_max_side(faulty):
    server, manifest, settings = faulty
    fetched, _ = fetch_canvases(read_canvases(manifest)[0][:1], settings)
    item = fetched[0]
    assert item.url == f"{server.url}/images/c1/full/320,240/0/default.jpg"  # listed: 640x480, 320x240, 160x120
    assert (item.file_width, item.file_height) == (320, 240)
    with Image.open(item.path) as image:
        assert image.size == (320, 240)


def test_a_second_run_reads_the_cache_and_sends_no_request(faulty):
    server, manifest, settings = faulty
    canvases = read_canvases(manifest)[0][:2]
    first, _ = fetch_canvases(canvases, settings)
    before = server.hits()
    second, failures = fetch_canvases(canvases, settings)
    assert server.hits() == before and failures == []
    assert [s.path for s in second] == [f.path for f in first]


def test_no_more_requests_in_flight_than_workers(tmp_path):
    server = LoopbackServer(tmp_path / "site", [Fault("/images/", delay=0.3)])
    manifest = layout(tmp_path / "site", server.url, 6, version=2)
    settings = FetchSettings(max_side=200, workers=2, read_timeout=5.0, cache_dir=str(tmp_path / "cache"))
    with server:
        fetched, failures = fetch_canvases(read_canvases(manifest)[0], settings)
    assert failures == [] and all(fetched)
    assert server.max_in_flight == 2
    assert json.loads((tmp_path / "site/images/c1/info.json").read_text())["@id"].startswith(server.url)


def test_a_server_that_is_down_is_one_line_naming_the_url(tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    canvas = Canvas("https://ex.org/c1", "Down", 100, 100, "m", ImageService(f"http://127.0.0.1:{port}/i", 3, 2))
    fetched, failures = fetch_canvases([canvas], FetchSettings(retries=1, backoff=0.01, cache_dir=str(tmp_path)))
    assert fetched == [None]
    assert failures[0].reason == (f"could not connect to http://127.0.0.1:{port}/i/info.json (Connection refused; "
                                  "tried 2 times)")
