"""StyleGAN2 tri-plane synthesis helpers shared by the low-resolution generators
(:class:`~semantichuman_hd.models.local_generators.LocalGenerators`) and the super-resolution module
(:class:`~semantichuman_hd.models.super_resolution.SuperResolution3D`): their output type, the block
resolutions, the check of the codes ``ws`` and the loop over synthesis blocks (docs/method.md §3, §5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from diffusers.utils import BaseOutput
from torch import nn

from ..checks import check_positive_int
from .stylegan2 import PairSelection

FIRST_BLOCK_RESOLUTION: int = 4
"""Side of the learned constant input of every synthesis network."""


@dataclass
class TriplaneOutput(BaseOutput):
    """Tri-planes of the K parts.

    Attributes:
        planes: ``(B, K, 3, C, H, W)`` tri-plane features (plane order XY, XZ, YZ).
        features: ``(B, K, Cf, H, W)`` the last synthesis feature map (input of the super-resolution module).

    ``features`` defaults to None only so that Accelerate's mixed-precision wrapper can rebuild the output
    from a mapping (see :class:`~semantichuman_hd.generator.GeneratorOutput`).
    """

    planes: torch.Tensor
    features: Optional[torch.Tensor] = None


def synthesis_resolutions(plane_resolution: int) -> list[int]:
    """Block resolutions ``4, 8, …, plane_resolution``; raise ``ValueError`` unless it is a power of 2 ≥ 4."""
    check_positive_int(plane_resolution, "plane_resolution")
    levels = math.log2(plane_resolution)
    if plane_resolution < FIRST_BLOCK_RESOLUTION or levels != int(levels):
        raise ValueError(
            f"`plane_resolution` must be a power of 2 of at least {FIRST_BLOCK_RESOLUTION}, got {plane_resolution!r}."
        )
    return [2**level for level in range(int(math.log2(FIRST_BLOCK_RESOLUTION)), int(levels) + 1)]


def check_ws(ws: torch.Tensor, num_parts: int, w_dim: int, num_ws: Optional[int] = None) -> None:
    """Raise ``ValueError`` unless ``ws`` is a finite ``(B, K, num_ws, w_dim)`` tensor (any ``num_ws`` ≥ 1 if None)."""
    n = "num_ws" if num_ws is None else num_ws
    if (
        not isinstance(ws, torch.Tensor)
        or ws.ndim != 4
        or ws.shape[1] != num_parts
        or ws.shape[3] != w_dim
        or ws.shape[2] < 1
        or (num_ws is not None and ws.shape[2] != num_ws)
    ):
        shape = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
        raise ValueError(f"`ws` must be a tensor of shape (B, {num_parts}, {n}, {w_dim}), got {shape}.")
    if not torch.isfinite(ws).all():
        raise ValueError("`ws` contains NaN or infinite values.")


def run_blocks(
    blocks: nn.ModuleList, x, img, ws: torch.Tensor, noise_mode: str, generator, pairs: Optional[PairSelection] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run StyleGAN2 blocks on ``ws (B, K, num_ws, w_dim)`` (``(1, P, num_ws, w_dim)`` for ``pairs``),
    handing each block its slice of codes."""
    index = 0
    for block in blocks:
        x, img = block(x, img, ws[:, :, index : index + block.num_conv + block.num_toplanes], noise_mode, generator, pairs)
        index += block.num_conv
    return x, img
