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

Training goes one step further (:func:`restart_with_huge_pages`): it restarts its process with glibc's
heap on transparent huge pages (2 MB instead of 4 KB), which the big tables a training step reads at
random (the bodies' skinning tables, the tri-planes' texel tables) reach through far fewer TLB entries.
That is an environment setting read when a process starts, hence the restart.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from pathlib import Path

DISABLE_ENV: str = "SEMANTICHUMAN_KEEP_MALLOC"
"""Set this environment variable to ``1`` to leave the C library's allocator settings alone."""

M_TRIM_THRESHOLD: int = -1
"""glibc ``mallopt`` parameter: free heap top (bytes) above which ``free`` returns memory to the kernel."""

M_MMAP_MAX: int = -4
"""glibc ``mallopt`` parameter: the most blocks served by ``mmap`` at once (0: none, all from the heap)."""

NEVER_TRIM: int = 2**31 - 1
"""The largest ``M_TRIM_THRESHOLD`` (``mallopt`` takes an ``int``): the heap is, in effect, never trimmed."""

_applied: bool | None = None


def _switched_off() -> bool:
    """Whether :data:`DISABLE_ENV` asks to leave the C library's allocator alone."""
    return os.environ.get(DISABLE_ENV) == "1"


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
    if _switched_off() or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)) & bool(mallopt(M_MMAP_MAX, 0))  # 1 on success
    return _applied


TUNABLES_ENV: str = "GLIBC_TUNABLES"
"""glibc's environment variable of tunables (``name=value`` pairs joined by ``:``), read at process start."""

HUGE_PAGES_TUNABLE: str = "glibc.malloc.hugetlb"
"""glibc tunable (2.35 and newer): ``1`` makes ``malloc`` ask the kernel for transparent huge pages
(``madvise``) on the memory it takes."""

HUGE_PAGES_MIN_GLIBC: tuple[int, int] = (2, 35)
"""The first glibc with :data:`HUGE_PAGES_TUNABLE`."""

TRANSPARENT_HUGE_PAGES: Path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
"""The kernel's transparent-huge-page mode, e.g. ``always [madvise] never`` (the bracketed one is in force)."""


def huge_pages_on_request() -> bool:
    """Whether this process's glibc can ask for transparent huge pages and the kernel grants them (its
    mode is ``madvise`` or ``always``)."""
    name, version = platform.libc_ver()
    try:
        release = tuple(int(part) for part in version.split(".")[:2])
        mode = TRANSPARENT_HUGE_PAGES.read_text()
    except (ValueError, OSError):
        return False
    return name == "glibc" and release >= HUGE_PAGES_MIN_GLIBC and ("[madvise]" in mode or "[always]" in mode)


def restart_with_huge_pages() -> None:
    """Restart this process (``os.execv``: same process id, arguments and environment) with
    :data:`HUGE_PAGES_TUNABLE` set to 1, unless it is set already (to anything), the system cannot give
    huge pages (:func:`huge_pages_on_request`), or :data:`DISABLE_ENV` is ``1``; then it returns at once.

    For scripts, first thing when run as ``__main__`` (``training/train.py``, the training benchmark):
    everything done before is lost. On a 2-core CPU, alternating pairs of ``demo`` training runs gained
    −1 to +14 % images per second in stage 1 (median +8 %); stage 2 measured −10 to +9 %, its steady-state
    steps unchanged (training/README.md)."""
    tunables = os.environ.get(TUNABLES_ENV, "")
    if _switched_off() or HUGE_PAGES_TUNABLE in tunables or not huge_pages_on_request():
        return
    setting = f"{HUGE_PAGES_TUNABLE}=1"
    os.environ[TUNABLES_ENV] = f"{tunables}:{setting}" if tunables else setting
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
