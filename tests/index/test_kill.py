"""``kill -9`` during a build and during a discovery, then the same command again: the result of an
uninterrupted run. The command runs in a child process, killed once it has committed a few shards / chunks."""

import glob
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from artdup_jax.app.index import build_index, discover_in_index
from artdup_jax.index.store import MapStore
from tests.index.conftest import CONFIG, same_discovery

ROOT = Path(__file__).resolve().parents[2]


def kill_when(code: str, committed: str, count: int, timeout: float = 600) -> int:
    """Runs ``code`` in a child Python; SIGKILLs it once ``count`` paths match the glob ``committed``; returns
    how many match once it is dead (the child must not have finished)."""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(glob.glob(committed)) >= count:
                child.send_signal(signal.SIGKILL)
                child.wait()
                return len(glob.glob(committed))
            assert child.poll() is None, f"the child ended before the kill: {child.stderr.read().decode()[-2000:]}"
            time.sleep(0.02)
        raise AssertionError("the child committed nothing in time")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_build_killed_midway_resumes_to_the_uninterrupted_index(collection, reference_run, tmp_path):
    index = tmp_path / "index"
    code = ("from artdup_jax.app.index import build_index; from tests.index.conftest import CONFIG; "
            f"build_index({str(collection)!r}, {str(index)!r}, CONFIG, images_per_shard=1, progress=False)")
    done = kill_when(code, str(index / "shards" / "[0-9]*"), 2)
    images = len(glob.glob(str(collection / "*.png")))
    assert 2 <= done < images
    build_index(collection, index, CONFIG, images_per_shard=1, progress=False)  # the same command again
    build_index(collection, tmp_path / "whole", CONFIG, progress=False)
    resumed, whole = MapStore(index), MapStore(tmp_path / "whole")
    assert [resumed.records[i]["path"] for i in resumed.ids] == [whole.records[i]["path"] for i in whole.ids]
    for i in whole.ids:
        for m in range(1 + len(CONFIG.scales)):
            np.testing.assert_array_equal(resumed.read(i, m), whole.read(i, m))
    assert not glob.glob(str(index / "shards" / ".tmp-*"))
    assert same_discovery(discover_in_index(index, CONFIG, progress=False).run.document, reference_run.document)


def test_a_discovery_killed_midway_resumes_to_the_uninterrupted_result(collection, reference_run, tmp_path):
    index = tmp_path / "index"
    build_index(collection, index, CONFIG, progress=False)
    code = ("from artdup_jax.app.index import discover_in_index; from tests.index.conftest import CONFIG; "
            f"discover_in_index({str(index)!r}, CONFIG, pairs_per_chunk=1, progress=False)")
    done = kill_when(code, str(index / "pairs" / "*" / "chunk-*.npz"), 2)
    again = discover_in_index(index, CONFIG, progress=False)
    assert done >= 2 and again.num_verified_now == again.num_candidates - done > 0
    assert same_discovery(again.run.document, reference_run.document)
    assert not glob.glob(str(index / "pairs" / "*" / ".tmp-*"))
