"""One ``artdup`` command as a child process: its wall time, its own peak RSS, and the stage times of its progress
bars.

``run_stage`` starts ``python -m artdup_jax.cli ARGS`` with stdout and stderr to a log file and reaps it with
``os.wait4``. Each stage's peak RSS is the child's own: the high-water mark of its address space (``VmHWM`` in
``/proc/PID/status``), read while it runs. Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's peak into
a child across ``exec``, so a child of a large process (a long test session) would report the parent's peak;
that is the fallback only where ``/proc`` is missing. ``bar_times`` reads the last state of each tqdm bar in the log
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

from benchmarks.proc_status import status_kib

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
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)  # returns after exec
        own_peak_kb = 0
        while True:
            own_peak_kb = max(own_peak_kb, int(status_kib("VmHWM", child.pid) or 0))
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and not timed_out and time.perf_counter() - start > timeout:
                child.kill()
                timed_out = True
            time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    peak_kb = own_peak_kb or usage.ru_maxrss
    return Stage(tuple(args), time.perf_counter() - start, peak_kb * 1024, child.returncode, log, timed_out)


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
