"""Throughput of the synthetic clothed-human dataset generator.

Generates a few samples at 256² and 1024² into a temporary folder (pictures and index written, as
``semantichuman-hd make-dataset synthetic`` does) and prints JSON with images per second::

    python benchmarks/bench_synthetic_data.py [--workers 2] [--num-256 32] [--num-1024 6]

With ``--workers W`` > 1 the timing includes starting the worker processes (a few seconds), so use
enough samples for a steady-state figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from semantichuman_hd.data.synthetic import generate_dataset


def measure(num: int, resolution: int, workers: int, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_dataset(os.path.join(folder, "data"), num, resolution=resolution, seed=seed, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    return {"resolution": resolution, "num": num, "workers": workers, "seconds": round(seconds, 3), "images_per_second": round(num / seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--num-256", type=int, default=32, help="samples at 256² (default 32)")
    parser.add_argument("--num-1024", type=int, default=6, help="samples at 1024² (default 6)")
    args = parser.parse_args()
    if args.workers == 1:
        torch.set_num_threads(1)
    results = {
        "cpu_count": os.cpu_count(),
        "256": measure(args.num_256, 256, args.workers),
        "1024": measure(args.num_1024, 1024, args.workers),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
