"""What the benchmarks share: naming the device they ran on, waiting for it, printing the JSON report."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time

import torch

MIB: int = 1 << 20
"""Bytes per mebibyte."""


def peak_rss_mib() -> float:
    """Peak resident set size of this process: Linux's ``VmHWM`` (which :func:`reset_peak_rss` can reset),
    else ``ru_maxrss`` (KiB on Linux, bytes on macOS; the process's whole life)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_report(device: torch.device) -> dict:
    """The header of every benchmark report: where and with what it ran."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        # Allocator settings of the process (e.g. glibc.malloc.hugetlb=1, training/README.md), if any.
        **({"glibc_tunables": os.environ["GLIBC_TUNABLES"]} if os.environ.get("GLIBC_TUNABLES") else {}),
    }


SPEED_MATMUL_SIZE: int = 1024
"""Side of the square float32 matrices of :func:`machine_speed`'s product (2 GFLOP)."""

SPEED_COPY_MIB: int = 64
"""Megabytes :func:`machine_speed` copies (far beyond any cache: memory bandwidth)."""


def machine_speed(device: torch.device, repeats: int = 5) -> dict:
    """How fast the machine is right now, in about a second: float32 matrix-product throughput, memory
    copy bandwidth and the time of one small operation (the per-operation overhead that many small tensors
    pay). A shared machine drifts (on a 2-core cloud CPU, training steps by ±20 % within the hour); recorded
    around a benchmark's timed steps, these tell a run on a busy machine from one on a quiet one. Each
    figure is the best of ``repeats``."""

    def best_seconds(work, count: int) -> float:
        work()
        synchronize(device)
        best = float("inf")
        for _ in range(repeats):
            begin = time.perf_counter()
            for _ in range(count):
                work()
            synchronize(device)
            best = min(best, (time.perf_counter() - begin) / count)
        return best

    generator = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(SPEED_MATMUL_SIZE, SPEED_MATMUL_SIZE, generator=generator, device=device) for _ in range(2))
    source = torch.empty(SPEED_COPY_MIB * MIB // 4, device=device).fill_(1.0)
    target = torch.empty_like(source)
    small = torch.ones(256, device=device)
    matmul = best_seconds(lambda: a @ b, 4)
    copy = best_seconds(lambda: target.copy_(source), 2)
    small_op = best_seconds(lambda: small.mul(2.0), 200)
    return {
        "matmul_gflops": round(2 * SPEED_MATMUL_SIZE**3 / matmul / 1e9, 1),
        "copy_gib_per_second": round(2 * SPEED_COPY_MIB / 1024 / copy, 2),  # read + write
        "small_op_microseconds": round(small_op * 1e6, 2),
    }


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def print_report(report: dict, output: str | None = None) -> None:
    """Print ``report`` as JSON on stdout and, with ``output``, also write it to that file."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as file:
            file.write(text + "\n")
