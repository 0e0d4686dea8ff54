"""What :class:`~semantichuman_hd.pipelines.SemanticHumanPipeline` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput


@dataclass
class SemanticHumanPipelineOutput(BaseOutput):
    """Output of :class:`~semantichuman_hd.pipelines.SemanticHumanPipeline`.

    Attributes:
        images: RGB renders: a list of PIL images, ``(B, H, W, 3)`` floats in [0, 1] (``"np"``), or
            ``(B, 3, H, W)`` (``"pt"``).
        semantic_masks: ``(B, K, H, W)`` rendered weight of each part (they sum to the alpha).
        semantic_images: colour-coded part pictures (same container as ``images``).
        depth: ``(B, H, W)`` expected ray depth (0 on the background).
        normals: normal pictures ``(n + 1) / 2``, white background (same container as ``images``).
        alpha: ``(B, H, W)`` coverage.
        latents: ``(B, K, z_dim)`` latents used, to reproduce or edit the result.
    """

    images: list | np.ndarray | torch.Tensor
    semantic_masks: np.ndarray | torch.Tensor
    semantic_images: list | np.ndarray | torch.Tensor
    depth: np.ndarray | torch.Tensor
    normals: list | np.ndarray | torch.Tensor
    alpha: np.ndarray | torch.Tensor
    latents: torch.Tensor
