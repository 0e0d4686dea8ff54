"""Sanity check of the FID/KID path on a dataset folder: FID and KID×1000 of its first half against its
second half (one distribution: KID ≈ 0), against the second half blurred, and against it colour-shifted.

    python benchmarks/bench_fid_sanity.py DATASET_DIR [--device cpu] [--output results.json]

The dataset is split in two halves of ``N // 2`` in index order; pictures are read at their native
resolution, white-padded to square. The InceptionV3 is the evaluation's
(:func:`semantichuman_hd.evaluation.resolve_inception_weights`).
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.transforms.functional import gaussian_blur

from reporting import machine_report, print_report
from semantichuman_hd.data import SemanticHumanDataset
from semantichuman_hd.evaluation import InceptionFeatures, fid_from_features, kernel_inception_distance, resolve_inception_weights

BLUR_SIGMA: float = 2.0
"""Standard deviation in pixels of the Gaussian blur."""

BLUR_KERNEL: int = 9
"""Side of the blur kernel in pixels."""

COLOUR_SCALE: tuple[float, float, float] = (0.8, 1.0, 1.15)
"""Per-channel gain of the colour shift (RGB)."""

COLOUR_OFFSET: tuple[float, float, float] = (0.0, 0.05, 0.0)
"""Per-channel offset of the colour shift (RGB, after the gain; clamped to [0, 1])."""

BATCH: int = 16
"""Pictures per Inception batch."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="dataset folder (docs/dataset_format.md)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=None, help="also write the JSON report here")
    args = parser.parse_args()
    device = torch.device(args.device)
    start = time.perf_counter()
    dataset = SemanticHumanDataset(args.dataset)
    half = dataset.num_samples // 2
    if half < 2:
        raise SystemExit(f"the dataset needs at least 4 samples, it has {dataset.num_samples}")
    network = InceptionFeatures(resolve_inception_weights()).to(device)

    def pictures(indices) -> torch.Tensor:
        return torch.stack([(dataset.load(i)["image"] + 1) / 2 for i in indices])

    def features(batch: torch.Tensor):
        return torch.cat([network(batch[i : i + BATCH]) for i in range(0, len(batch), BATCH)]).numpy()

    first, second = pictures(range(half)), pictures(range(half, 2 * half))
    variants = {
        "halves": second,
        f"blurred_sigma_{BLUR_SIGMA:g}px": gaussian_blur(second, kernel_size=BLUR_KERNEL, sigma=BLUR_SIGMA),
        "colour_shifted": (second * torch.tensor(COLOUR_SCALE).view(1, 3, 1, 1) + torch.tensor(COLOUR_OFFSET).view(1, 3, 1, 1)).clamp(0, 1),
    }
    reference = features(first)
    report = {"machine": machine_report(device), "dataset": args.dataset, "num_per_half": half, "image_size": dataset.image_size}
    for name, batch in variants.items():
        other = features(batch)
        kid, kid_std = kernel_inception_distance(reference, other, subset_size=min(1000, half))
        report[name] = {"fid": fid_from_features(reference, other), "kid_x1000": kid * 1000, "kid_std_x1000": kid_std * 1000}
    report["inception"] = network.source
    report["seconds"] = time.perf_counter() - start
    print_report(report, args.output)


if __name__ == "__main__":
    main()
