"""Giving freed memory back to the operating system, where the C allocator allows (glibc).

glibc's ``malloc`` raises its mmap threshold each time a large block is
freed (up to 32 MB), after which blocks of that size come from the heap, and
freed heap pages stay in the process. A service that handles frames of many
sizes then keeps its peak for good. ``keep_large_blocks_mapped`` fixes the
threshold (large blocks are always their own mappings, returned on free) and
``trim`` returns the free pages of every heap. Elsewhere (musl, macOS) both
are no-ops that return False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["MMAP_THRESHOLD", "keep_large_blocks_mapped", "trim"]

#: Blocks of at least this many bytes get their own mapping (glibc's starting value: 128 KiB).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter, from glibc's malloc.h


@functools.cache
def _libc():
    """glibc, or None where the C library is another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def keep_large_blocks_mapped(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; False where not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def trim() -> bool:
    """Return the free pages of every malloc heap to the system; False where not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
