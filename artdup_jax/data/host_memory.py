"""Host memory the process keeps after freeing it, handed back to the operating system.

glibc's ``malloc`` serves blocks below its (adaptive, up to 32 MB) mmap threshold from heaps that it shrinks
only from their top: after many short-lived arrays of a few MB (feature maps read from disk, XLA buffers of
eager operations, the compiler's own memory) the freed pages stay resident, and a large allocation made next
(a feature bank) adds to them. ``release_free_heap`` asks glibc to hand every whole free page back
(``malloc_trim(0)``); it frees nothing that is in use and does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """Returns freed heap pages to the operating system (glibc ``malloc_trim(0)``); False where unavailable."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
