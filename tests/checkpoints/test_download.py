"""HTTP downloads against a loopback server: resume, redirects, timeouts, corrupt and truncated files."""

import hashlib
import io
import time
import zipfile

import pytest

from artdup_jax.checkpoints import cache, catalogue
from artdup_jax.checkpoints.download import ChecksumError, DownloadError, DownloadPolicy, download
from tests.checkpoints.loopback import closed_port_url, serving

PAYLOAD = bytes(range(256)) * 4096 + b"tail" * 1000  # a little over one 1 MiB chunk
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
NO_RETRY = DownloadPolicy(timeout_s=5, retries=0, backoff_s=0.01)


def test_download_writes_the_file_and_reports_its_sha256(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        result = download(f"{server.url()}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert result.sha256 == SHA256 and result.size == len(PAYLOAD) and result.resumed_from == 0
    assert not (tmp_path / "w.pth.part").exists()


def test_interrupted_download_resumes_from_the_part_file(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        with pytest.raises(DownloadError, match="run again to resume"):
            download(f"{server.url('cut')}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
        kept = (tmp_path / "w.pth.part").stat().st_size
        assert 0 < kept < len(PAYLOAD) and not (tmp_path / "w.pth").exists()
        sent_before = server.sent["w.pth"]
        result = download(f"{server.url('cut')}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
        resent = server.sent["w.pth"] - sent_before
    assert result.resumed_from == kept and resent == len(PAYLOAD) - kept < len(PAYLOAD)
    assert result.sha256 == SHA256 and (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_a_file_changed_since_the_interruption_is_downloaded_whole(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        with pytest.raises(DownloadError):
            download(f"{server.url('cut')}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
        server.files["w.pth"] = b"new version " + PAYLOAD
        result = download(f"{server.url()}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
    assert (tmp_path / "w.pth").read_bytes() == b"new version " + PAYLOAD
    assert result.sha256 == hashlib.sha256(b"new version " + PAYLOAD).hexdigest()


def test_a_retry_within_one_call_resumes_instead_of_starting_over(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        result = download(f"{server.url('cut')}/w.pth", tmp_path / "w.pth",
                          policy=DownloadPolicy(timeout_s=5, retries=2, backoff_s=0.01))
        assert server.sent["w.pth"] == len(PAYLOAD) == result.transferred  # no byte sent twice
    assert result.sha256 == SHA256


def test_redirect_is_followed(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        result = download(f"{server.url('redirect')}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
    assert result.final_url.endswith("/files/w.pth") and result.sha256 == SHA256


def test_corrupt_download_is_rejected_naming_both_hashes(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        with pytest.raises(ChecksumError) as error:
            download(f"{server.url('corrupt')}/w.pth", tmp_path / "w.pth", expected_sha256=SHA256, policy=NO_RETRY)
    assert SHA256 in str(error.value) and error.value.actual in str(error.value) and error.value.actual != SHA256
    assert not (tmp_path / "w.pth").exists() and not (tmp_path / "w.pth.part").exists()


def test_file_name_hash_prefix_rejects_a_wrong_file(tmp_path):
    with serving({"resnet18-0badc0de.pth": PAYLOAD}) as server:
        with pytest.raises(ChecksumError, match="0badc0de"):
            download(f"{server.url()}/resnet18-0badc0de.pth", tmp_path / "r.pth", sha256_prefix="0badc0de",
                     policy=NO_RETRY)
    assert not (tmp_path / "r.pth").exists()


def test_html_page_is_refused(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        with pytest.raises(DownloadError, match="HTML page"):
            download(f"{server.url('html')}/w.pth", tmp_path / "w.pth", policy=NO_RETRY)
    assert not (tmp_path / "w.pth").exists()


def test_missing_file_is_not_retried(tmp_path):
    with serving({}) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(f"{server.url()}/gone.pth", tmp_path / "gone.pth",
                     policy=DownloadPolicy(timeout_s=5, retries=3, backoff_s=0.01))
        assert server.requests["gone.pth"] == 1


def test_stalled_server_times_out(tmp_path):
    with serving({"w.pth": PAYLOAD}) as server:
        start = time.perf_counter()
        with pytest.raises(DownloadError, match="timed out"):
            download(f"{server.url('stall')}/w.pth", tmp_path / "w.pth",
                     policy=DownloadPolicy(timeout_s=0.3, retries=0))
    assert time.perf_counter() - start < 2.5


@pytest.fixture
def released(monkeypatch):
    """A catalogue entry for PAYLOAD (hash unknown in advance, like most released files)."""
    weights = catalogue.ReleasedWeights("test-payload", "artminer", "resnet18", "https://example.invalid/w.pth",
                                        "w.pth", "test file", "tests")
    monkeypatch.setitem(catalogue.RELEASED, weights.name, weights)
    return weights


def test_first_fetch_records_the_hash_and_a_truncated_refetch_is_rejected(tmp_path, released):
    with serving({"w.pth": PAYLOAD}) as server:
        first = cache.fetch(released.name, root=tmp_path, mirror=server.url(), policy=NO_RETRY)
        assert first.first_record and first.how == "downloaded"
        assert cache.locate(released.name, tmp_path).recorded_sha256() == SHA256
        with pytest.raises(ChecksumError) as error:
            cache.fetch(released.name, root=tmp_path, mirror=server.url("truncated"), force=True, policy=NO_RETRY)
    assert SHA256 in str(error.value) and hashlib.sha256(PAYLOAD[: len(PAYLOAD) // 2]).hexdigest() in str(error.value)
    assert open(first.path, "rb").read() == PAYLOAD  # the verified copy stays; the truncated one is not used


def test_a_cached_file_that_no_longer_matches_its_record_is_refused(tmp_path, released):
    with serving({"w.pth": PAYLOAD}) as server:
        fetched = cache.fetch(released.name, root=tmp_path, mirror=server.url(), policy=NO_RETRY)
    with open(fetched.path, "r+b") as f:
        f.write(b"X")
    with pytest.raises(ChecksumError, match=SHA256):
        cache.fetch(released.name, root=tmp_path, mirror=closed_port_url(), policy=NO_RETRY)


def test_an_archive_is_downloaded_once_for_all_its_members(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("a.pth", b"first member")
        bundle.writestr("b.pth", b"second member")
    for member in ("a.pth", "b.pth"):
        weights = catalogue.ReleasedWeights(f"test-{member}", "ransac_flow", "ransac_flow",
                                            "https://example.invalid/model.zip", member, "test", "tests",
                                            remote_name="model.zip", member=member)
        monkeypatch.setitem(catalogue.RELEASED, weights.name, weights)
    with serving({"model.zip": buffer.getvalue()}) as server:
        a = cache.fetch("test-a.pth", root=tmp_path, mirror=server.url(), policy=NO_RETRY)
        b = cache.fetch("test-b.pth", root=tmp_path, mirror=server.url(), policy=NO_RETRY)
        assert server.requests["model.zip"] == 1
    assert open(a.path, "rb").read() == b"first member" and open(b.path, "rb").read() == b"second member"
    assert a.how == b.how == "extracted from model.zip"
