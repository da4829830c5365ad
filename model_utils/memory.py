"""Giving freed memory back to the operating system after a long run.

glibc's allocator keeps what a run freed inside its heaps (the worker thread's arena above all: a run of many
photos allocates and frees a raster, its masks and the gallery's scores per photo), so QGIS stayed about 0.1 MB
per photo larger after the run had ended although nothing was still in use. ``malloc_trim`` returns the whole
free pages of every arena. Elsewhere (Windows, macOS, musl) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl, or no C library by that name: nothing to give back this way
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def return_freed_memory() -> bool:
    """Hand the allocator's free pages back to the system; True when something was returned."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
