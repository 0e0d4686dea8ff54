"""Depth- and semantics-guided sampling of stage 2 (docs/method.md §5), as pure tensor operations.

The super-resolution renderer evaluates only :data:`NUM_GUIDED_SAMPLES` samples per high-resolution ray,
placed from the stage-1 (low-resolution) render, and decodes at each sample only the parts the stage-1
semantics allow:

1. :func:`aggregate_depths` — per LR pixel, 11 candidate depths: the depths of its 3×3 neighbourhood
   (itself included) and its own depth ± :data:`DEPTH_AGGREGATION_OFFSET`, sorted. Neighbours fix the
   depth discontinuities at silhouettes: an HR pixel on a boundary gets samples at both surfaces.
2. :func:`upsample_depth_candidates` — bilinear upsampling of the candidates to the HR grid.
3. :func:`select_parts` — the LR semantic masks upsampled bilinearly; a part is decoded where its weight
   exceeds :data:`SEMANTIC_WEIGHT_THRESHOLD` (``"threshold"``) or only the highest-weight part
   (``"argmax"``, the paper's wording).

Depths are distances along the ray (the renderer's convention: 0 on background). Everything here is
pointwise or a fixed-size stencil, so :func:`guided_footprint` bounds how far a change in one LR pixel
reaches in the HR outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_positive_int

DEPTH_AGGREGATION_OFFSET: float = 0.0167
"""Offset of the two extra candidates around a pixel's own depth, metres (the reference's value)."""

NEIGHBOURHOOD_RADIUS: int = 1
"""The neighbourhood is ``(2r + 1)²`` LR pixels: 3×3."""

NUM_NEIGHBOURS: int = (2 * NEIGHBOURHOOD_RADIUS + 1) ** 2
"""Depth candidates from the neighbourhood (9)."""

NUM_GUIDED_SAMPLES: int = NUM_NEIGHBOURS + 2
"""Samples per HR ray in stage 2: 9 neighbourhood depths + own depth ± offset = 11."""

SEMANTIC_WEIGHT_THRESHOLD: float = 5e-4
"""A part is decoded at an HR pixel where its upsampled LR semantic weight exceeds this (the reference's
rendered-weight threshold); pixels whose weights sum to no more than this are background."""

FOREGROUND_ALPHA_THRESHOLD: float = SEMANTIC_WEIGHT_THRESHOLD
"""LR pixels with alpha at or below this are background: their depth (0 on empty pixels) is not a surface
depth and is never used as a candidate. It equals :data:`SEMANTIC_WEIGHT_THRESHOLD` (the masks sum to
alpha), so every HR pixel that :func:`select_parts` keeps interpolates at least one foreground LR pixel,
and the other LR pixels it interpolates are that pixel's neighbours, whose candidates are filled from
foreground depths: an HR foreground pixel never gets candidates pulled toward depth 0."""

SELECTION_MODES: tuple[str, ...] = ("threshold", "argmax")
"""``mode`` values of :func:`select_parts`."""

UPSAMPLE_MODE: str = "bilinear"
"""Interpolation of the candidates and masks to the HR grid (``align_corners=False``)."""


def _check_images(tensor, argument: str, ndim: int, layout: str) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim or not tensor.is_floating_point():
        got = (tuple(tensor.shape), tensor.dtype) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"`{argument}` must be a floating-point tensor of shape {layout}, got {got}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"`{argument}` contains NaN or infinite values.")


def _neighbourhood(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` → ``(B, 9, H, W)``: the values of each pixel's 3×3 neighbourhood (row-major, the
    pixel itself in the middle), replicating the border."""
    size = 2 * NEIGHBOURHOOD_RADIUS + 1
    padded = F.pad(images.unsqueeze(1), [NEIGHBOURHOOD_RADIUS] * 4, mode="replicate")  # (B, 1, H+2, W+2)
    height, width = images.shape[-2:]
    return torch.cat([padded[:, :, dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)], dim=1)


def aggregate_depths(
    depth: torch.Tensor,
    alpha: torch.Tensor | None = None,
    offset: float = DEPTH_AGGREGATION_OFFSET,
    use_neighbourhood: bool = True,
) -> torch.Tensor:
    """Depth aggregation: :data:`NUM_GUIDED_SAMPLES` sorted candidate depths per LR pixel.

    With ``use_neighbourhood`` (the paper's method) the candidates of a pixel are the 9 depths of its
    3×3 neighbourhood (the image border replicated) and its own depth ± ``offset``. Background is handled
    so that it never pulls candidates off the surface (toward the camera, where the renderer puts
    background depth 0):

    * a background pixel's own depth is first replaced by the mean depth of the foreground pixels in its
      neighbourhood (when it has any; such pixels border a silhouette, and their HR pixels can be
      foreground after upsampling);
    * a background neighbour contributes the pixel's own (so filled) depth instead of its own.

    Without ``use_neighbourhood`` (the "w/o DA" ablation) the candidates are the pixel's own (filled) depth
    plus ``linspace(-offset, offset, 11)``.

    Parameters:
        depth: ``(B, H, W)`` LR depth along the ray.
        alpha: Optional ``(B, H, W)`` LR opacity; pixels with alpha ≤ :data:`FOREGROUND_ALPHA_THRESHOLD`
            are background. None treats every pixel as foreground.
        offset: Metres between the own depth and the two extra candidates.
        use_neighbourhood: Aggregate the 3×3 neighbourhood (False: the "w/o DA" ablation).

    Returns:
        ``(B, 11, H, W)`` candidates, sorted ascending along dim 1.
    """
    _check_images(depth, "depth", 3, "(B, H, W)")
    if alpha is not None:
        _check_images(alpha, "alpha", 3, "(B, H, W)")
        if alpha.shape != depth.shape:
            raise ValueError(f"`alpha` must have the shape of `depth` {tuple(depth.shape)}, got {tuple(alpha.shape)}.")
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not offset >= 0:
        raise ValueError(f"`offset` must be a non-negative number (metres), got {offset!r}.")

    if alpha is None:
        foreground = torch.ones_like(depth, dtype=torch.bool)
    else:
        foreground = alpha > FOREGROUND_ALPHA_THRESHOLD
    neighbour_depth = _neighbourhood(depth)  # (B, 9, H, W)
    neighbour_fg = _neighbourhood(foreground.to(depth.dtype)) > 0
    fg_count = neighbour_fg.sum(1)
    fg_mean = torch.where(neighbour_fg, neighbour_depth, torch.zeros_like(neighbour_depth)).sum(1) / fg_count.clamp(min=1)
    own = torch.where(foreground | (fg_count == 0), depth, fg_mean)  # (B, H, W), filled

    if use_neighbourhood:
        neighbours = torch.where(neighbour_fg, neighbour_depth, own.unsqueeze(1))
        extra = torch.stack([own - offset, own + offset], dim=1)
        candidates = torch.cat([neighbours, extra], dim=1)
    else:
        spread = torch.linspace(-offset, offset, NUM_GUIDED_SAMPLES, dtype=depth.dtype, device=depth.device)
        candidates = own.unsqueeze(1) + spread.view(1, -1, 1, 1)
    return torch.sort(candidates, dim=1).values


def upsample_depth_candidates(candidates: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear upsampling (``align_corners=False``) of candidates ``(B, S, H, W)`` to ``(B, S, sH, sW)``.

    Every candidate channel is interpolated with the same non-negative weights, so candidates sorted at
    every LR pixel stay sorted at every HR pixel; a running maximum along dim 1 removes the inversions of
    one rounding error (about 1e-7 relative) that floating-point interpolation can still produce.
    """
    _check_images(candidates, "candidates", 4, "(B, S, H, W)")
    check_positive_int(scale, "scale")
    if scale == 1:
        return candidates
    height, width = candidates.shape[-2:]
    upsampled = F.interpolate(candidates, size=(height * scale, width * scale), mode=UPSAMPLE_MODE, align_corners=False)
    return torch.cummax(upsampled, dim=1).values


def select_parts(
    part_masks: torch.Tensor,
    scale: int,
    mode: str = "threshold",
    threshold: float = SEMANTIC_WEIGHT_THRESHOLD,
) -> torch.Tensor:
    """Semantic-guided sampling: which parts to decode along each HR ray.

    The LR masks are upsampled bilinearly (``align_corners=False``). HR pixels whose weights sum to no more
    than ``threshold`` are background and select no part. At foreground pixels:

    * ``"threshold"``: every part whose weight exceeds ``threshold``, and always the highest-weight part
      (so the selection contains the ``"argmax"`` one even where weights are spread thin);
    * ``"argmax"``: only the highest-weight part (ties: the lowest part index).

    Parameters:
        part_masks: ``(B, K, H, W)`` LR semantic masks (the rendered weight of each part).
        scale: HR / LR resolution factor.
        mode: One of :data:`SELECTION_MODES`.
        threshold: Weight above which a part is decoded.

    Returns:
        ``(B, K, sH, sW)`` bool.
    """
    _check_images(part_masks, "part_masks", 4, "(B, K, H, W)")
    check_positive_int(scale, "scale")
    if mode not in SELECTION_MODES:
        raise ValueError(f"`mode` must be one of {list(SELECTION_MODES)}, got {mode!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
        raise ValueError(f"`threshold` must be a non-negative number, got {threshold!r}.")
    weights = part_masks
    if scale > 1:
        height, width = part_masks.shape[-2:]
        weights = F.interpolate(part_masks, size=(height * scale, width * scale), mode=UPSAMPLE_MODE, align_corners=False)
    foreground = weights.sum(1, keepdim=True) > threshold
    best = F.one_hot(weights.argmax(1), weights.shape[1]).permute(0, 3, 1, 2).bool()
    selected = best if mode == "argmax" else best | (weights > threshold)
    return selected & foreground


def guided_footprint(scale: int) -> int:
    """How far, in HR pixels, a change in one LR pixel can reach in the guided samples.

    If the LR depth, alpha or masks change only in a set S of LR pixels, the outputs of
    :func:`aggregate_depths` + :func:`upsample_depth_candidates` and of :func:`select_parts` change only
    in HR pixels within this Chebyshev distance of the HR blocks (``scale × scale`` each) of S:

    * aggregation reads the 3×3 neighbourhood: S grows by :data:`NEIGHBOURHOOD_RADIUS` LR pixels
      (``NEIGHBOURHOOD_RADIUS · scale`` HR pixels; the masks skip this step and reach less far);
    * bilinear upsampling with ``align_corners=False`` reads, for an HR pixel, the two nearest LR pixel
      centres per axis, so an LR pixel reaches ``scale // 2`` HR pixels beyond its own block.

    Returns:
        ``NEIGHBOURHOOD_RADIUS · scale + scale // 2`` (6 for the paper's 4×).
    """
    check_positive_int(scale, "scale")
    return NEIGHBOURHOOD_RADIUS * scale + scale // 2


def guided_support(high_mask: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR pixels whose depth, alpha or masks the guided samples of some HR pixels read.

    The converse of :func:`guided_footprint`: an HR pixel reads, through bilinear upsampling, the LR
    pixels within 1 of its own LR pixel, and aggregation reads each of those pixels' 3×3 neighbourhood, so
    its samples depend on the LR pixels within ``NEIGHBOURHOOD_RADIUS + 1`` (Chebyshev) of its own. An LR
    render of only these pixels (the rest background) gives those HR pixels exactly the samples of a
    whole LR render (training's stage-2 patches render no more LR pixels than they need).

    Parameters:
        high_mask: ``(B, sH, sW)`` bool, the HR pixels to be rendered.
        scale: HR / LR resolution factor (``sH`` and ``sW`` multiples of it).

    Returns:
        ``(B, H, W)`` bool.
    """
    check_positive_int(scale, "scale")
    if not isinstance(high_mask, torch.Tensor) or high_mask.dtype != torch.bool or high_mask.ndim != 3:
        got = (tuple(high_mask.shape), high_mask.dtype) if isinstance(high_mask, torch.Tensor) else type(high_mask).__name__
        raise ValueError(f"`high_mask` must be a bool tensor of shape (B, sH, sW), got {got}.")
    if high_mask.shape[1] % scale or high_mask.shape[2] % scale:
        raise ValueError(f"`high_mask`'s height and width must be multiples of `scale` {scale}, got {tuple(high_mask.shape[1:])}.")
    own = F.max_pool2d(high_mask.unsqueeze(1).float(), scale)  # (B, 1, H, W): LR pixels holding a masked HR pixel
    radius = NEIGHBOURHOOD_RADIUS + 1
    return F.max_pool2d(own, 2 * radius + 1, stride=1, padding=radius).squeeze(1) > 0
