"""Look at a dataset folder: a contact sheet of random samples, and per-part label statistics
(:func:`~semantichuman_hd.data.dataset.dataset_stats`, re-exported here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checks import check_positive_int
from ..io import atomic_path
from .dataset import SemanticHumanDataset, dataset_stats
from .labels import colorize_labels

__all__ = ["ABSENT_TILE_VALUE", "PREVIEW_TILE", "SHEET_COLUMNS", "dataset_stats", "preview_dataset"]

PREVIEW_TILE: int = 256
"""Side in pixels of each tile of the contact sheet."""

ABSENT_TILE_VALUE: int = 200
"""Grey level of the tile shown where a sample has no normal map."""

SHEET_COLUMNS: tuple[str, ...] = ("image", "labels", "normals")
"""Columns of the contact sheet, one row per sample."""


def _to_uint8(picture: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [−1, 1] → ``(H, W, 3) uint8``."""
    return ((picture.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def preview_dataset(root: str | os.PathLike, out_path: str | os.PathLike, num: int = 8, seed: int = 0, tile: int = PREVIEW_TILE) -> Path:
    """Write a contact sheet PNG of ``num`` random samples: one row each, ``image | colour-coded
    labels | normals`` (a grey tile where the dataset has no normals).

    Parameters:
        root: The dataset folder.
        out_path: The PNG to write (atomically).
        num: Number of samples (at most the dataset size; all of them if fewer).
        seed: Seed of the random choice, so the same sheet comes back.
        tile: Side of each tile in pixels.

    Returns:
        The path written.
    """
    check_positive_int(num, "num")
    check_positive_int(tile, "tile")
    dataset = SemanticHumanDataset(root, image_size=tile)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(dataset.num_samples, size=min(num, dataset.num_samples), replace=False).tolist())
    rows = []
    for index in chosen:
        item = dataset.load(index)
        image = _to_uint8(item["image"])
        labels = colorize_labels(item["segm"])
        if "normals" in item:
            normals = _to_uint8(item["normals"])
        else:
            normals = np.full((tile, tile, 3), ABSENT_TILE_VALUE, dtype=np.uint8)
        rows.append(np.concatenate([image, labels, normals], axis=1))
    sheet = np.concatenate(rows, axis=0)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return out_path
