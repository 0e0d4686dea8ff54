"""What the benchmarks share: naming the device they ran on, waiting for it, printing the JSON report."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys

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
