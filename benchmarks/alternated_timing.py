"""One batched call of ours against the same work done by a sequential baseline, timed in alternation.

``time_alternated`` runs ``ours`` once untimed (the first call, compilation included, is reported apart), then
``rounds`` times each of ``ours`` and ``baseline`` in turn, and keeps the best wall and CPU times of each: on a
shared machine, alternation spreads other jobs' load over both, and the best time is the least disturbed.
"""

from __future__ import annotations

import time


def time_alternated(ours, baseline, rounds: int = 3):
    """``(ours_result, baseline_result, times)``; times: ``ours_seconds``, ``ours_first_call_seconds``,
    ``opencv_seconds``, ``speedup``, ``ours_cpu_seconds``, ``opencv_cpu_seconds``, ``cpu_speedup`` (the baseline
    is OpenCV in every use)."""
    start = time.perf_counter()
    ours_result = ours()
    first_call = time.perf_counter() - start
    wall = {"ours": [], "baseline": []}
    cpu = {"ours": [], "baseline": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("baseline", baseline)):
            start, cpu_start = time.perf_counter(), time.process_time()
            result = fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
            if name == "ours":
                ours_result = result
            else:
                baseline_result = result
    times = {"ours_seconds": min(wall["ours"]), "ours_first_call_seconds": first_call,
             "opencv_seconds": min(wall["baseline"]), "speedup": min(wall["baseline"]) / min(wall["ours"]),
             "ours_cpu_seconds": min(cpu["ours"]), "opencv_cpu_seconds": min(cpu["baseline"]),
             "cpu_speedup": min(cpu["baseline"]) / min(cpu["ours"])}
    return ours_result, baseline_result, times
