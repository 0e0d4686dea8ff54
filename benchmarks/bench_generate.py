"""Seconds per image and peak memory of ``SemanticHumanPipeline`` generation, per preset and resolution.

Each (preset, resolution) pair runs in a fresh worker process, so that its peak memory is its own:
peak resident set size during generation on a CPU (Linux's ``VmHWM``, reset just before generating;
elsewhere ``resource.getrusage``'s peak over the process's life), with the resident size just before
generating for reference, and ``torch.cuda.max_memory_allocated`` during generation on a GPU (the
weights included, ``allocated_before_generation_mib``). Components are randomly initialised
(the cost of generating does not depend on the weights); the body model is built before timing. Prints
JSON::

    python benchmarks/bench_generate.py [--presets tiny demo paper] [--resolutions low high]
                                        [--device cpu] [--repeats 2] [--timeout 900]

A pair that does not finish within ``--timeout`` seconds is reported as skipped. ``--autocast bf16``
runs generation (``--autocast-scope synthesis``: only the mapper and the tri-plane synthesis, their
outputs cast back to float32) under ``torch.autocast``, and ``--compile`` compiles the mapper and both
tri-plane synthesis networks with ``torch.compile`` (GPU experiments; a failure is reported, not raised).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from reporting import MIB, machine_report, peak_rss_mib, print_report, synchronize
from semantichuman_hd.pipelines.pipeline_semantic_human import RESOLUTIONS, SemanticHumanPipeline
from semantichuman_hd.presets import PRESETS

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""``--autocast`` choices."""

AUTOCAST_SCOPES: tuple[str, ...] = ("all", "synthesis")
"""``--autocast-scope`` choices: autocast the whole generation, or only the mapper and tri-plane synthesis."""

def current_rss_mib() -> float:
    """Resident set size now (Linux ``/proc/self/statm``), else the peak so far."""
    try:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def reset_peak_rss() -> bool:
    """Reset the peak resident set size to the current one (Linux: ``5`` into ``/proc/self/clear_refs``);
    False where that is not possible (the peak then covers model building too)."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def autocast_to_float(function, device_type: str, dtype: torch.dtype):
    """``function`` run under ``torch.autocast(device_type, dtype)``, its tensors (and the ``planes`` and
    ``features`` of a tri-plane output) returned as float32, so that only ``function`` runs in ``dtype``."""

    def wrapped(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            output = function(*args, **kwargs)
        if isinstance(output, torch.Tensor):
            return output.float()
        for name in ("planes", "features"):
            if isinstance(getattr(output, name, None), torch.Tensor):
                setattr(output, name, getattr(output, name).float())
        return output

    return wrapped


def run_worker(args) -> dict:
    """Build one preset's pipeline and time ``--repeats`` generations at one resolution."""
    device = torch.device(args.device)
    start = time.perf_counter()
    pipe = SemanticHumanPipeline.from_preset(args.worker_preset).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.deformer  # build (or load) the body model and SDF prior outside the timing
    dtype = AUTOCAST_DTYPES[args.autocast]
    if dtype is not None and args.autocast_scope == "synthesis":
        pipe.mapper.forward = autocast_to_float(pipe.mapper.forward, device.type, dtype)
        pipe.local_generators.synthesize = autocast_to_float(pipe.local_generators.synthesize, device.type, dtype)
        pipe.super_resolution.synthesize = autocast_to_float(pipe.super_resolution.synthesize, device.type, dtype)
    if args.compile:
        pipe.mapper.forward = torch.compile(pipe.mapper.forward)
        pipe.local_generators.synthesize = torch.compile(pipe.local_generators.synthesize)
        pipe.super_resolution.synthesize = torch.compile(pipe.super_resolution.synthesize)
    build_seconds = time.perf_counter() - start
    size = pipe.config.low_resolution if args.worker_resolution == "low" else pipe.config.high_resolution

    def generate(seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        synchronize(device)
        begin = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None and args.autocast_scope == "all"):
            pipe(num_images=args.batch_size, generator=generator, resolution=args.worker_resolution, output_type="pt")
        synchronize(device)
        return time.perf_counter() - begin

    rss_before = current_rss_mib()
    peak_is_generation_only = reset_peak_rss() if device.type == "cpu" else False
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        allocated_before = torch.cuda.memory_allocated(device)
    warmup_seconds = [generate(seed) for seed in range(args.warmup)]
    seconds = [generate(args.warmup + seed) for seed in range(args.repeats)]
    result = {
        "preset": args.worker_preset,
        "resolution": args.worker_resolution,
        "size": size,
        "batch_size": args.batch_size,
        "seconds_per_image": statistics.median(seconds) / args.batch_size,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "build_seconds": build_seconds,
        "parameters": sum(p.numel() for p in pipe.mapper.parameters())
        + sum(p.numel() for p in pipe.local_generators.parameters())
        + sum(p.numel() for p in pipe.super_resolution.parameters()),
    }
    if device.type == "cuda":
        result["peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / MIB
        result["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / MIB
        result["allocated_before_generation_mib"] = allocated_before / MIB
    else:
        result["peak_rss_mib"] = peak_rss_mib()
        result["peak_rss_since_generation_start"] = peak_is_generation_only
        result["rss_before_generation_mib"] = rss_before
    return result


def run_pair(args, preset: str, resolution: str) -> dict:
    """One (preset, resolution) in a worker process; a timeout or failure is reported in the result."""
    command = [
        sys.executable, os.path.abspath(__file__),
        "--worker-preset", preset, "--worker-resolution", resolution,
        "--device", args.device, "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--batch-size", str(args.batch_size), "--autocast", args.autocast, "--autocast-scope", args.autocast_scope,
    ]  # fmt: skip
    if args.compile:
        command.append("--compile")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"preset": preset, "resolution": resolution, "skipped": f"did not finish within --timeout {args.timeout} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"preset": preset, "resolution": resolution, "failed": " | ".join(tail), "seconds_until_failure": time.perf_counter() - start}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS), help="presets (default: all)")
    parser.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS), choices=list(RESOLUTIONS), help="low and/or high (default both)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=2, help="timed generations per pair; the median is reported (default 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed generations first (default 1 on GPU, 0 on CPU)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per generation (default 1)")
    parser.add_argument("--autocast", choices=list(AUTOCAST_DTYPES), default="none", help="generate under torch.autocast (default none)")
    parser.add_argument(
        "--autocast-scope",
        choices=AUTOCAST_SCOPES,
        default="all",
        help="all: the whole generation; synthesis: only the mapper and tri-plane synthesis (default all)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the mapper and the tri-plane synthesis")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per (preset, resolution) (default 900)")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    parser.add_argument("--worker-preset", help=argparse.SUPPRESS)
    parser.add_argument("--worker-resolution", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("repeats", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup is None:
        args.warmup = 1 if torch.device(args.device).type == "cuda" else 0

    if args.worker_preset:
        print(json.dumps(run_worker(args)))
        return

    device = torch.device(args.device)
    report = {
        **machine_report(device),
        "autocast": args.autocast,
        "autocast_scope": args.autocast_scope,
        "compile": args.compile,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "results": [],
    }
    for preset in args.presets:
        for resolution in args.resolutions:
            report["results"].append(run_pair(args, preset, resolution))
            print(json.dumps(report["results"][-1]), file=sys.stderr, flush=True)
    print_report(report, args.output)


if __name__ == "__main__":
    main()
