"""Giving freed memory back to the operating system, where the C allocator allows (glibc).

glibc's ``malloc`` raises its mmap threshold each time a large block is
freed (up to 32 MB), after which blocks of that size come from its heaps,
and freed heap pages stay in the process for reuse: a service that handled
large frames keeps its peak. ``trim`` returns the free pages of every heap.
(Fixing the threshold instead, so that every large block is its own mapping,
cost the stream 3 ms a frame in page faults: ``benchmarks/README.md``.)
Elsewhere (musl, macOS) it is a no-op that returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["trim"]


@functools.cache
def _libc():
    """glibc, or None where the C library is another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def trim() -> bool:
    """Return the free pages of every malloc heap to the system; False where not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
