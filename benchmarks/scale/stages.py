"""One ``artdup`` command as a child process: its wall time, its own peak RSS, and the stage times of its progress
bars.

``run_stage`` starts ``python -m artdup_jax.cli ARGS`` with stdout and stderr to a log file and reaps it with
``os.wait4``, whose resource usage is that child's alone (``ru_maxrss``: its peak resident set, kB on Linux), so
each stage's peak RSS is measured separately. ``bar_times`` reads the last state of each tqdm bar in the log
(``stage: 100%|...| n/total [elapsed<left, rate]``): the count and elapsed seconds per stage.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

_BAR = re.compile(r"([A-Za-z][\w ()-]*?): +\d+%\|[^|]*\| *(\d+)/(\d+) \[([\d:]+)<")


@dataclasses.dataclass(frozen=True)
class Stage:
    args: tuple[str, ...]
    seconds: float  # wall clock, start-up and compilation included
    peak_rss_bytes: int  # the child's own peak resident set
    returncode: int  # -9: killed at the time budget
    log: Path
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def bars(self) -> dict[str, tuple[int, float]]:
        return bar_times(self.text())


def run_stage(args: list[str], log: str | os.PathLike, *, timeout: float | None = None,
              env: dict | None = None) -> Stage:
    """Runs ``python -m artdup_jax.cli *args``; killed (``timed_out``) once ``timeout`` seconds have passed."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "artdup_jax.cli", *args]
    start = time.perf_counter()
    timed_out = False
    with open(log, "w") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and not timed_out and time.perf_counter() - start > timeout:
                child.kill()
                timed_out = True
            time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return Stage(tuple(args), time.perf_counter() - start, usage.ru_maxrss * 1024, child.returncode, log, timed_out)


def _seconds(clock: str) -> float:
    value = 0.0
    for part in clock.split(":"):
        value = value * 60 + float(part)
    return value


def bar_times(text: str) -> dict[str, tuple[int, float]]:
    """``{stage: (count done, elapsed seconds)}`` from the last update of each progress bar in ``text``."""
    found = {}
    for piece in re.split(r"[\r\n]", text):
        match = _BAR.search(piece)
        if match:
            found[match.group(1).strip()] = (int(match.group(2)), _seconds(match.group(4)))
    return found
