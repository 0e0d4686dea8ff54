"""The canonical body SDF prior (docs/method.md §2): signed distance to the canonical body mesh, positive
inside, stored on a voxel grid and sampled trilinearly. Computed once per body model with libigl's
winding-number signed distance and cached in the user cache directory as safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..paths import user_cache_dir
from .voxel_grid import VoxelGrid, cached_voxel_grids, grid_nodes, grid_resolution

PRIOR_VOXEL_SIZE: float = 0.01
"""Grid spacing of the SDF prior in metres (about one pixel of a 256² image of the fixed camera)."""

PRIOR_PADDING: float = 0.15
"""Margin around the canonical mesh covered by the grid, in metres; wider than the part shell."""

PRIOR_SHELL_WIDTH: float = 0.1
"""Parts live in a shell ``|SDF_body| <= PRIOR_SHELL_WIDTH`` around the body; outside it a part has no
density (the reference sets the prior to −1e8 there)."""

_CACHE_VERSION = "v1"


def mesh_signed_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed distance from ``points (N, 3)`` to a closed mesh, POSITIVE INSIDE (libigl's sign is
    negative inside; signs come from generalised winding numbers, robust to small mesh defects)."""
    import igl

    distance = igl.signed_distance(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        sign_type=igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER,
    )[0]
    return -distance


class BodySDFPrior(nn.Module):
    """Signed distance to the canonical body surface (positive inside), trilinear on a voxel grid.

    Parameters:
        grid: A one-channel :class:`VoxelGrid` of signed distances.

    Outside the grid the value continues as the border value minus the distance to the grid's box, so
    it stays negative and keeps decreasing away from the body.
    """

    def __init__(self, grid: VoxelGrid):
        super().__init__()
        if grid.num_channels != 1:
            raise ValueError(f"`grid` must have one channel, got {grid.num_channels}.")
        self.grid = grid

    @classmethod
    def from_mesh(
        cls, vertices: np.ndarray, faces: np.ndarray, voxel_size: float = PRIOR_VOXEL_SIZE, padding: float = PRIOR_PADDING
    ) -> "BodySDFPrior":
        """Compute the grid from a closed mesh ``vertices (V, 3)``, ``faces (F, 3)``."""
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"`vertices` must have shape (V, 3), got {vertices.shape}.")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"`faces` must have shape (F, 3), got {faces.shape}.")
        box_min = vertices.min(0) - padding
        box_max = vertices.max(0) + padding
        resolution = grid_resolution(box_min, box_max, voxel_size)
        nodes = grid_nodes(box_min, box_max, resolution)
        sdf = mesh_signed_distance(nodes.reshape(-1, 3), vertices, faces).reshape(nodes.shape[:3])
        values = torch.from_numpy(sdf).float().unsqueeze(0)
        return cls(VoxelGrid(values, box_min, box_max))

    @classmethod
    def cached(
        cls,
        vertices: np.ndarray,
        faces: np.ndarray,
        voxel_size: float = PRIOR_VOXEL_SIZE,
        padding: float = PRIOR_PADDING,
        cache_dir: str | Path | None = None,
    ) -> "BodySDFPrior":
        """Like :meth:`from_mesh`, reusing a grid cached under ``cache_dir`` (default: the user cache)
        for the same mesh and grid settings."""
        directory = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "sdf_prior"
        grids = cached_voxel_grids(
            directory,
            "body_sdf",
            (np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)),
            f"{_CACHE_VERSION}:{voxel_size}:{padding}",
            lambda: {"sdf": cls.from_mesh(vertices, faces, voxel_size, padding).grid},
        )
        return cls(grids["sdf"])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """SDF ``(...,)`` at canonical ``points (..., 3)``."""
        sdf = self.grid(points)[..., 0]
        return sdf - self.grid.distance_outside(points)
