"""A dense voxel grid over an axis-aligned box, sampled trilinearly: the storage behind the body SDF prior
and the skinning-weight field."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..io import atomic_path


def grid_resolution(box_min: np.ndarray, box_max: np.ndarray, voxel_size: float) -> tuple[int, int, int]:
    """Number of grid nodes along x, y, z so that node spacing is at most ``voxel_size``."""
    if not voxel_size > 0:
        raise ValueError(f"`voxel_size` must be positive, got {voxel_size!r}.")
    extent = np.asarray(box_max, dtype=np.float64) - np.asarray(box_min, dtype=np.float64)
    if np.any(extent <= 0):
        raise ValueError(f"`box_max` must exceed `box_min` on every axis, got {box_min!r} and {box_max!r}.")
    return tuple(int(math.ceil(e / voxel_size)) + 1 for e in extent)  # type: ignore[return-value]


def grid_nodes(box_min: np.ndarray, box_max: np.ndarray, resolution: tuple[int, int, int]) -> np.ndarray:
    """Positions of the grid nodes, ``(D, H, W, 3)`` = (z, y, x) node order, xyz coordinates."""
    xs, ys, zs = (np.linspace(box_min[a], box_max[a], resolution[a]) for a in range(3))
    z, y, x = np.meshgrid(zs, ys, xs, indexing="ij")
    return np.stack([x, y, z], axis=-1)


class VoxelGrid(nn.Module):
    """``C`` channels on the nodes of a regular grid spanning ``[box_min, box_max]``.

    Parameters:
        values: ``(C, D, H, W)`` node values; D, H, W run along z, y, x.
        box_min: ``(3,)`` xyz position of node ``[0, 0, 0]``.
        box_max: ``(3,)`` xyz position of the last node.
    """

    def __init__(self, values: torch.Tensor, box_min, box_max):
        super().__init__()
        if values.ndim != 4:
            raise ValueError(f"`values` must have shape (C, D, H, W), got {tuple(values.shape)}.")
        self.register_buffer("values", values.float().contiguous())
        self.register_buffer("box_min", torch.as_tensor(box_min, dtype=torch.float32).reshape(3))
        self.register_buffer("box_max", torch.as_tensor(box_max, dtype=torch.float32).reshape(3))

    @property
    def num_channels(self) -> int:
        return self.values.shape[0]

    def normalize(self, points: torch.Tensor) -> torch.Tensor:
        """Map xyz points to grid_sample's ``[-1, 1]`` coordinates (``align_corners=True``)."""
        box_min = self.box_min.to(points.dtype)
        box_max = self.box_max.to(points.dtype)
        return (points - box_min) / (box_max - box_min) * 2.0 - 1.0

    def inside(self, points: torch.Tensor) -> torch.Tensor:
        """``(...,)`` whether each point lies within the box."""
        return ((points >= self.box_min.to(points.dtype)) & (points <= self.box_max.to(points.dtype))).all(-1)

    def distance_outside(self, points: torch.Tensor) -> torch.Tensor:
        """``(...,)`` Euclidean distance from each point to the box (0 inside)."""
        below = (self.box_min.to(points.dtype) - points).clamp_min(0)
        above = (points - self.box_max.to(points.dtype)).clamp_min(0)
        return (below + above).norm(dim=-1)

    def node_table(self) -> torch.Tensor:
        """``(D·H·W, C)`` node values, one row per node in the flat order of :meth:`corners`."""
        return self.values.flatten(1).transpose(0, 1)

    def corners(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The 8 trilinear corners of flat ``points (M, 3)``, and the weights' spatial derivatives.

        With ``rows = table[index]`` for a ``(D·H·W, C)`` table laid out like :meth:`node_table`,
        ``(weights.unsqueeze(1) @ rows)`` is the trilinear sample (what :meth:`forward` returns, border
        values repeated outside the box) and ``gradients.transpose(1, 2) @ rows`` its ``(M, 3, C)``
        derivative along x, y, z (0 along an axis where the point lies outside the box).

        Returns:
            index ``(M, 8)`` flat node indices, weights ``(M, 8)``, gradients ``(M, 8, 3)``.
        """
        depth, height, width = self.values.shape[1:]
        sizes = torch.tensor([width, height, depth], device=points.device)
        box_min = self.box_min.to(points.dtype)
        per_metre = (sizes - 1).to(points.dtype) / (self.box_max.to(points.dtype) - box_min)
        node = (points - box_min) * per_metre  # continuous node coordinates, xyz
        limit = (sizes - 1).to(points.dtype)
        inside = (node >= 0) & (node <= limit)
        node = torch.minimum(node.clamp_min(0), limit)
        low = torch.minimum(node.floor(), (sizes - 2).clamp_min(0).to(points.dtype))
        frac = node - low
        low = low.long()
        slope = torch.where(inside, per_metre.expand_as(node), torch.zeros_like(node))
        # Per axis: the two corners' weights (1 − f, f) and their derivatives (−s, s).
        weight = torch.stack([1 - frac, frac], dim=-1)  # (M, 3, 2)
        derivative = torch.stack([-slope, slope], dim=-1)  # (M, 3, 2)
        wx, wy, wz = weight.unbind(1)
        dx, dy, dz = derivative.unbind(1)

        def outer(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            """(M, 2) z, y, x factors → (M, 8) in (z, y, x) corner order."""
            return (a[:, :, None, None] * b[:, None, :, None] * c[:, None, None, :]).reshape(-1, 8)

        weights = outer(wz, wy, wx)
        gradients = torch.stack([outer(wz, wy, dx), outer(wz, dy, wx), outer(dz, wy, wx)], dim=-1)
        step = torch.tensor([0, 1], device=points.device)
        x = (low[:, 0:1] + step).clamp_max(width - 1)
        y = (low[:, 1:2] + step).clamp_max(height - 1)
        z = (low[:, 2:3] + step).clamp_max(depth - 1)
        index = ((z[:, :, None, None] * height + y[:, None, :, None]) * width + x[:, None, None, :]).reshape(-1, 8)
        return index, weights, gradients

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Trilinear samples ``(..., C)`` at ``points`` ``(..., 3)``; outside the box the border values
        are repeated (callers decide what "outside" means for their quantity)."""
        if points.shape[-1] != 3:
            raise ValueError(f"`points` must have shape (..., 3), got {tuple(points.shape)}.")
        lead = points.shape[:-1]
        coords = self.normalize(points.reshape(1, -1, 1, 1, 3))
        values = self.values.to(points.dtype).unsqueeze(0)
        sampled = F.grid_sample(values, coords, mode="bilinear", padding_mode="border", align_corners=True)
        return sampled.reshape(self.num_channels, -1).transpose(0, 1).reshape(*lead, self.num_channels)


def cached_voxel_grids(
    folder: str | Path,
    prefix: str,
    key_arrays,
    settings: str,
    build: Callable[[], dict[str, "VoxelGrid"]],
) -> dict[str, "VoxelGrid"]:
    """Voxel grids built once per input and reused from a safetensors file in ``folder``.

    Parameters:
        folder: Cache folder (created on demand).
        prefix: File name prefix, e.g. ``"body_sdf"``.
        key_arrays: NumPy arrays the grids are computed from; with ``settings`` they name the file.
        settings: Everything else the result depends on (a version, voxel size, padding…), as text.
        build: Computes the grids (``name → VoxelGrid``) when no readable cache entry exists.

    An unreadable or incomplete entry is recomputed and overwritten; entries are written atomically.
    """
    digest = hashlib.sha256()
    for array in key_arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(settings.encode())
    path = Path(folder) / f"{prefix}_{digest.hexdigest()[:16]}.safetensors"
    if path.exists():
        try:
            # Copied out of the file's memory map, so the grids never depend on the file staying intact.
            tensors = {key: value.clone() for key, value in load_file(str(path)).items()}
            names = {key.rsplit(".", 1)[0] for key in tensors}
            return {name: VoxelGrid(tensors[f"{name}.values"], tensors[f"{name}.box_min"], tensors[f"{name}.box_max"]) for name in names}
        except Exception:  # an unreadable cache entry is recomputed and overwritten
            pass
    grids = build()
    tensors = {}
    for name, grid in grids.items():
        tensors.update({f"{name}.values": grid.values, f"{name}.box_min": grid.box_min, f"{name}.box_max": grid.box_max})
    with atomic_path(path) as tmp:
        save_file({key: value.contiguous() for key, value in tensors.items()}, str(tmp))
    return grids
