"""Picture operations the metrics share: face crops around the projected head joint, hard label maps
from soft part masks, antialiased down-sampling, PSNR."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..body.smpl_format import SMPL_JOINT_NAMES

HEAD_JOINT: int = SMPL_JOINT_NAMES.index("head")
"""Index of SMPL's head joint, the centre of the face crops."""

FACE_CROP_FRACTION: float = 1.0 / 8.0
"""Side of a face crop as a fraction of the picture side (the face discriminators' crop: H/8)."""

LABEL_ALPHA_THRESHOLD: float = 0.5
"""A generated pixel gets a part label where its coverage (alpha) is at least this; else background."""

WHITE: float = 1.0
"""Padding value of crops that leave the picture (white background)."""


def face_crops(pictures: torch.Tensor, centres: torch.Tensor, fraction: float = FACE_CROP_FRACTION) -> torch.Tensor:
    """Square crops of side ``round(fraction · H)`` centred on ``centres``, white outside the picture.

    Parameters:
        pictures: ``(B, C, H, W)`` square pictures in [0, 1] with a white background.
        centres: ``(B, 2)`` normalised pixel coordinates ``(u, v)`` of the crop centres (``(0, 0)`` the
            top-left corner, ``(1, 1)`` the bottom-right one).
        fraction: Crop side over picture side, in (0, 1].

    Returns:
        ``(B, C, s, s)`` crops (nearest pixels, no resampling).
    """
    if pictures.ndim != 4 or pictures.shape[-1] != pictures.shape[-2]:
        raise ValueError(f"`pictures` must be square (B, C, H, H), got {tuple(pictures.shape)}.")
    if centres.shape != (pictures.shape[0], 2):
        raise ValueError(f"`centres` must have shape ({pictures.shape[0]}, 2), got {tuple(centres.shape)}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}.")
    size = pictures.shape[-1]
    side = max(1, round(fraction * size))
    padded = F.pad(pictures, (side, side, side, side), value=WHITE)
    corners = torch.nan_to_num(centres.float() * size - side / 2, nan=-float(side)).round().long().clamp(-side, size)
    crops = [padded[b, :, top + side : top + 2 * side, left + side : left + 2 * side] for b, (left, top) in enumerate(corners.tolist())]
    return torch.stack(crops)


def label_maps(masks: torch.Tensor, alpha: torch.Tensor, threshold: float = LABEL_ALPHA_THRESHOLD) -> torch.Tensor:
    """Hard label maps ``(B, H, W)`` int64 (0 = background, ``k + 1`` = part ``k``) from soft part masks
    ``(B, K, H, W)`` and coverage ``alpha (B, H, W)``: the strongest part where ``alpha ≥ threshold``."""
    labels = masks.argmax(1) + 1
    return torch.where(alpha >= threshold, labels, torch.zeros_like(labels))


def downsample(pictures: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, C, size, size)`` with antialiased bilinear resampling (the upsampling
    consistency loss's down-sampling)."""
    return F.interpolate(pictures.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def psnr(first: torch.Tensor, second: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR in dB between two tensors of values in [0, ``peak``] (``inf`` when equal)."""
    mse = float(((first.double() - second.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)
