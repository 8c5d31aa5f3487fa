"""Child processes with a time limit: each part of the check runs in its own, so a hang or a crash costs that part
alone. Output goes, line by line and prefixed with the part's name, to the check's log and to stdout."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Sequence


@dataclasses.dataclass
class Finished:
    """How a child process ended: ``returncode`` is None when it was stopped at its time limit."""

    command: list[str]
    returncode: int | None
    seconds: float
    tail: list[str]

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclasses.dataclass
class Context:
    """What every part needs: where it runs and writes, and how it starts child processes.

    ``device``: ``"gpu"`` (the real check) or ``"cpu"`` (``--dry-run``); ``work``: scratch files (training
    workdirs, per-part JSON), not returned by the device tool; ``out``: the returned report folder.
    """

    device: str
    dry_run: bool
    out: Path
    work: Path
    env: dict
    log_path: Path
    wheelhouse: Path | None = None  # carried wheels
    site: Path | None = None  # where the missing ones are installed (first on the children's PYTHONPATH)
    device_count: int = 1  # JAX's devices, from the preflight
    echo: bool = True
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def log(self, label: str, line: str) -> None:
        text = f"[{label}] {line.rstrip()}"
        with self._lock:
            with open(self.log_path, "a", encoding="utf-8", errors="replace") as f:
                f.write(text + "\n")
            if self.echo:
                print(text, flush=True)

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def run(self, label: str, command: Sequence[str], timeout_s: float, env: dict | None = None,
            keep_lines: int = 40) -> Finished:
        """Runs ``command`` (in the repository root) for at most ``timeout_s`` seconds; SIGTERM to its whole
        process group at the limit, SIGKILL 5 s later."""
        command = [str(c) for c in command]
        self.log(label, f"$ {' '.join(command)}  (limit {timeout_s:.0f} s)")
        started = time.monotonic()
        tail: deque[str] = deque(maxlen=keep_lines)
        child = subprocess.Popen(command, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def pump():
            for raw in iter(child.stdout.readline, b""):
                # tqdm redraws with carriage returns: keep the last state of each line.
                line = raw.decode("utf-8", errors="replace").rstrip("\n").split("\r")[-1]
                tail.append(line)
                self.log(label, line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            returncode = child.wait(timeout=max(timeout_s, 1.0))
        except subprocess.TimeoutExpired:
            returncode = None
            _stop_group(child)
        reader.join(timeout=10)
        seconds = time.monotonic() - started
        ending = "timed out" if returncode is None else f"exit {returncode}"
        self.log(label, f"-> {ending} after {seconds:.1f} s")
        return Finished(command, returncode, seconds, list(tail))


def _stop_group(child: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def read_json(path: Path):
    """The JSON at ``path``, or None if it is missing or unreadable (a child stopped while writing it)."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value) -> None:
    """Writes atomically (a reader never sees half a file)."""
    import json

    path = Path(path)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=_plain))
    os.replace(temporary, path)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
