"""One field of a Linux process's ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ...), in kB as the kernel reports."""

from __future__ import annotations


def status_kib(field: str, pid: int | str = "self") -> float | None:
    """``field`` of ``/proc/PID/status`` in kB (``pid`` "self": this process); None where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
