"""Host (CPU) memory: keep freed blocks for reuse instead of handing them back to the kernel.

A CPU render allocates tensors of tens to hundreds of MiB many times per image (the ``(12, Q, C)``
bilinear tri-plane gathers, the Newton solver's work arrays). glibc's ``malloc`` serves every block
above 32 MiB with a fresh ``mmap`` and returns it with ``munmap`` when freed, so the next tensor of that
size faults in and zeroes every page again: on a 2-core machine that kernel work took half of a
``demo`` stage-1 training step (4.7 s per step of 8 images, 2.4 s with the settings below; the render benchmarks
gain less: `demo` generation at 256², 1.60 → 1.33 s). :func:`reuse_freed_host_memory` switches glibc to
its heap for all sizes and stops it from trimming the heap, so freed blocks are reused (most of the
time: a fragmented heap still grows now and then, and a step whose heap top frees more than 2 GiB, the
largest trim threshold glibc takes, returns the excess). The price: the
process keeps its peak heap until it exits, and the heap fragments, so the peak resident memory grows:
+14 % in `demo` stage-1 training, up to ~1.7× in a synthetic burst of a few large tensors.

The command line, training and the Space call it; a Python user may call it too. It is a no-op on
other C libraries (macOS, Windows, musl) and when :data:`DISABLE_ENV` is set to ``1``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

DISABLE_ENV: str = "SEMANTICHUMAN_KEEP_MALLOC"
"""Set this environment variable to ``1`` to leave the C library's allocator settings alone."""

M_TRIM_THRESHOLD: int = -1
"""glibc ``mallopt`` parameter: free heap top (bytes) above which ``free`` returns memory to the kernel."""

M_MMAP_MAX: int = -4
"""glibc ``mallopt`` parameter: the most blocks served by ``mmap`` at once (0: none, all from the heap)."""

NEVER_TRIM: int = 2**31 - 1
"""The largest ``M_TRIM_THRESHOLD`` (``mallopt`` takes an ``int``): the heap is, in effect, never trimmed."""

_applied: bool | None = None


def reuse_freed_host_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring). Idempotent.

    Returns:
        True when the settings are in effect, False where they do not apply (not glibc, or disabled
        with :data:`DISABLE_ENV`).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(DISABLE_ENV) == "1" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)) & bool(mallopt(M_MMAP_MAX, 0))  # 1 on success
    return _applied
