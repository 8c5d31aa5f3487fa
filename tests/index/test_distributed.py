"""``artdup index build`` and ``artdup discover --index`` as a ``jax.distributed`` job of 2 processes on localhost:
an error in one process stops both with one line each and commits nothing; the same command then completes the
job, and the index and the discovery are those one process gives, bit for bit (3 jobs in all: each costs two
process starts and their compilations)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from artdup_jax.app.index import build_index, discover_in_index
from artdup_jax.index.manifest import State
from artdup_jax.index.store import MapStore
from tests.index.conftest import CONFIG, same_discovery
from tests.index.test_index_command import GRID, SCORING

ROOT = Path(__file__).resolve().parents[2]
IMAGES_PER_SHARD = 3  # 9 files (one unreadable) -> 3 chunks: process 0 extracts one, process 1 two
PAIRS_PER_CHUNK = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_job(argv: list[str], *, flags: bool = False, fail_in_process_1: str = "",
            timeout: float = 300) -> list[tuple[int, str]]:
    """Runs ``artdup ARGV`` as processes 0 and 1 of one job on localhost; ``(exit code, stderr)`` of each. The job
    is given by the JAX_* variables, or with ``flags`` by ``--coordinator --num-processes --process-id``.
    ``fail_in_process_1``: a dotted ``module.Class.method`` that raises PermissionError in process 1 (a host
    that cannot write)."""
    address = f"localhost:{free_port()}"
    children = []
    for i in range(2):
        job = {"JAX_COORDINATOR_ADDRESS": address, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}
        args = [*argv, "--coordinator", address, "--num-processes", "2", "--process-id", str(i)] if flags else argv
        code = ("import importlib, sys\n"
                f"if {i} == 1 and {fail_in_process_1!r}:\n"
                f"    module, owner, name = {fail_in_process_1!r}.rsplit('.', 2)\n"
                "    def refuse(*args, **kwargs): raise PermissionError(13, 'Permission denied', 'staging')\n"
                "    setattr(getattr(importlib.import_module(module), owner), name, refuse)\n"
                "from artdup_jax.cli import main\n"
                f"sys.exit(main({args!r}))\n")
        environment = {k: v for k, v in os.environ.items() if k not in job}
        stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the job
        children.append((subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                                          stderr=stderr, env={**environment, "JAX_PLATFORMS": "cpu",
                                                              **({} if flags else job)}), stderr))
    try:
        codes = [child.wait(timeout) for child, _ in children]
        return [(code, (stderr.seek(0), stderr.read())[1]) for code, (_, stderr) in zip(codes, children)]
    finally:
        for child, stderr in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            stderr.close()


@pytest.fixture(scope="module")
def folder(collection, tmp_path_factory):
    """The test collection and an unreadable file among its images (later chunks' ids shift by one)."""
    copy = tmp_path_factory.mktemp("distributed") / "collection"
    shutil.copytree(collection, copy)
    (copy / "image_002b.png").write_bytes(b"not an image")
    return copy


@pytest.fixture(scope="module")
def single(folder, tmp_path_factory):
    """The index and discovery document of one process."""
    index = tmp_path_factory.mktemp("single") / "index"
    build_index(folder, index, CONFIG, images_per_shard=IMAGES_PER_SHARD, progress=False)
    found = discover_in_index(index, CONFIG, pairs_per_chunk=PAIRS_PER_CHUNK, progress=False)
    return index, found.run.document


def build_command(folder, index) -> list[str]:
    return ["index", "build", str(folder), "--index", str(index), "--random-weights", "--quiet", *GRID,
            "--images-per-shard", str(IMAGES_PER_SHARD)]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_paths(document: dict) -> dict:
    """A discovery document less its time and the index's path: groups, scores, images, counts."""
    settings = {k: v for k, v in document["settings"].items() if k != "index"}
    index = {k: v for k, v in document["index"].items() if k != "path"}
    return {**document, "seconds": 0, "settings": settings, "index": index}


def assert_same_index(index: Path, reference: Path) -> None:
    assert files_under(index / "shards") == files_under(reference / "shards")  # ids, maps, records: bit for bit
    assert State.load(index) == State.load(reference)
    assert json.loads((index / "index.json").read_text()) == json.loads((reference / "index.json").read_text())
    assert not (index / "staging").exists()


@pytest.fixture(scope="module")
def failed_then_built(folder, tmp_path_factory):
    """A build whose process 1 cannot write (what both processes said, and what the index held then), then the
    same command again: ``(index, [(exit code, stderr)] of the failed job, live images, staged chunks)``."""
    index = tmp_path_factory.mktemp("distributed") / "index"
    failed = run_job(build_command(folder, index), fail_in_process_1="artdup_jax.index.staging.ShardStaging.stage")
    held, staged = len(MapStore(index)), len(list((index / "staging").glob("*/chunk.json")))
    rerun = run_job(build_command(folder, index))
    assert [code for code, _ in rerun] == [0, 0], rerun[0][1][-2000:] + rerun[1][1][-2000:]
    return index, failed, held, staged


def test_an_error_in_one_process_stops_both_with_one_line_and_commits_nothing(failed_then_built):
    _, failed, held, staged = failed_then_built
    assert [code for code, _ in failed] == [1, 1]
    errors = [[line for line in err.splitlines() if line.startswith("error:")] for _, err in failed]
    assert all(len(lines) == 1 and "Traceback" not in err for lines, (_, err) in zip(errors, failed)), errors
    assert "process 1 of 2 failed during feature extraction" in errors[0][0]
    assert "permission denied" in errors[1][0]
    assert held == 0  # nothing committed: a readable, empty index
    assert staged == 1  # process 0's chunk, kept: the re-run (the fixture's second job) does not extract it again


def test_two_processes_build_and_discover_what_one_process_does(failed_then_built, single, tmp_path):
    reference, document = single
    index = failed_then_built[0]
    assert_same_index(index, reference)
    assert len(MapStore(index)) == 8 and "image_002b.png" in str(State.load(index).unreadable)

    out = tmp_path / "out"
    results = run_job(["discover", "--index", str(index), "--out", str(out), "--no-report", "--quiet", *SCORING,
                       "--pairs-per-chunk", str(PAIRS_PER_CHUNK)], flags=True)
    assert [code for code, _ in results] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    distributed = json.loads((out / "discovery.json").read_text())
    assert same_discovery(distributed, document) and without_paths(distributed) == without_paths(document)
    assert distributed["index"]["verified_now"] == document["index"]["verified_now"] > 2 * PAIRS_PER_CHUNK
    logs = [sorted((i / "pairs").glob("*/chunk-*.npz")) for i in (index, reference)]
    assert [p.name for p in logs[0]] == [p.name for p in logs[1]]
    for ours, theirs in zip(*logs):
        with np.load(ours) as a, np.load(theirs) as b:
            assert sorted(a.files) == sorted(b.files)
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name])
