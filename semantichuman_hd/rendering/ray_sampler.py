"""Where to sample along rays: ray–box clipping, stratified depths, and importance depths drawn from a
coarse pass's weights (docs/method.md §4: 36 stratified + 36 importance samples per ray).

All depths are distances ``t`` along unit ray directions: the sample points are ``o + t · d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_positive_int

IMPORTANCE_WEIGHT_PADDING: float = 0.01
"""Added to every (blurred) coarse weight before importance sampling, so that empty-looking stretches
of a ray still get a few samples (the coarse pass can miss thin structures)."""

IMPORTANCE_BLUR_WINDOW: int = 3
"""Each coarse weight is replaced by the maximum over this many neighbouring samples before importance
sampling: a surface between two coarse samples then draws samples on both sides of it."""

_PDF_EPS = 1e-12


def ray_box_intersection(
    origins: torch.Tensor, directions: torch.Tensor, box_min: torch.Tensor, box_max: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip rays to axis-aligned boxes (slab method).

    Parameters:
        origins: ``(B, R, 3)`` ray origins.
        directions: ``(B, R, 3)`` ray directions (need not be unit; zero components are handled).
        box_min, box_max: ``(B, 3)`` or ``(3,)`` box corners, e.g. the posed body's box grown by a margin.

    Returns:
        near, far: ``(B, R)`` ray parameters where each ray enters and leaves its batch element's box,
        with ``near`` clamped to 0 (a ray starting inside the box starts sampling at its origin).
        Both are 0 for rays that miss.
        hit: ``(B, R)`` True where the ray meets the box in front of its origin (``far > near``).
    """
    if origins.ndim != 3 or origins.shape[-1] != 3:
        raise ValueError(f"`origins` must have shape (B, R, 3), got {tuple(origins.shape)}.")
    if directions.shape != origins.shape:
        raise ValueError(f"`directions` must have the shape of `origins` {tuple(origins.shape)}, got {tuple(directions.shape)}.")
    batch = origins.shape[0]
    corners = []
    for name, corner in (("box_min", box_min), ("box_max", box_max)):
        corner = torch.as_tensor(corner, device=origins.device, dtype=origins.dtype)
        if corner.shape == (3,):
            corner = corner.expand(batch, 3)
        if corner.shape != (batch, 3):
            raise ValueError(f"`{name}` must have shape (3,) or ({batch}, 3), got {tuple(corner.shape)}.")
        corners.append(corner.unsqueeze(1))
    low, high = corners
    if not bool((high >= low).all()):
        raise ValueError("`box_max` must be >= `box_min` on every axis.")

    parallel = directions == 0
    safe_directions = torch.where(parallel, torch.ones_like(directions), directions)
    t_low = (low - origins) / safe_directions
    t_high = (high - origins) / safe_directions
    t_enter = torch.minimum(t_low, t_high)
    t_exit = torch.maximum(t_low, t_high)
    # A ray parallel to a slab is inside it for all t, or for none.
    inside_slab = (origins >= low) & (origins <= high)
    infinity = torch.full_like(t_enter, float("inf"))
    t_enter = torch.where(parallel, torch.where(inside_slab, -infinity, infinity), t_enter)
    t_exit = torch.where(parallel, torch.where(inside_slab, infinity, -infinity), t_exit)

    near = t_enter.amax(-1).clamp_min(0.0)
    far = t_exit.amin(-1)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit


def stratified_depths(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    perturb: bool = True,
) -> torch.Tensor:
    """``(B, R, S)`` sorted depths, one per equal bin of ``[near, far]``: uniform within its bin when
    ``perturb``, else the bin's midpoint (deterministic).

    Parameters:
        near, far: ``(B, R)`` ray intervals (``far >= near``).
        num_samples: S.
        generator: Random generator for the perturbation (on the tensors' device).
    """
    check_positive_int(num_samples, "num_samples")
    if near.shape != far.shape:
        raise ValueError(f"`near` and `far` must have the same shape, got {tuple(near.shape)} and {tuple(far.shape)}.")
    shape = (*near.shape, num_samples)
    if perturb:
        offsets = torch.rand(shape, generator=generator, device=near.device, dtype=near.dtype)
    else:
        offsets = torch.full(shape, 0.5, device=near.device, dtype=near.dtype)
    fractions = (torch.arange(num_samples, device=near.device, dtype=near.dtype) + offsets) / num_samples
    return near.unsqueeze(-1) + (far - near).unsqueeze(-1) * fractions


def _sample_bins(depths: torch.Tensor) -> torch.Tensor:
    """``(..., S + 1)`` edges of the bins that the samples ``(..., S)`` stand for: midpoints between
    neighbours, and the first and last samples as the outer edges (so importance samples stay within
    the range of the coarse samples)."""
    middle = 0.5 * (depths[..., 1:] + depths[..., :-1])
    return torch.cat([depths[..., :1], middle, depths[..., -1:]], dim=-1)


def importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    perturb: bool = True,
) -> torch.Tensor:
    """Draw ``(B, R, S')`` sorted depths from the piecewise-constant pdf that the coarse ``weights`` put
    on the bins around the coarse ``depths`` (inverse transform sampling). Detached: sample positions
    carry no gradient.

    Each sample stands for the bin from the midpoint with its previous neighbour to the midpoint with
    its next one (the first and last bins end at the first and last samples). The weights are first
    max-blurred over :data:`IMPORTANCE_BLUR_WINDOW` neighbours and padded by
    :data:`IMPORTANCE_WEIGHT_PADDING`; the uniform variates are stratified (one per ``1/S'`` of
    probability, jittered when ``perturb``, else centred), so the outputs come out sorted.

    Parameters:
        depths: ``(B, R, S)`` sorted coarse depths, ``S >= 2``.
        weights: ``(B, R, S)`` non-negative coarse compositing weights.
        num_samples: S'.
        generator: Random generator for the jitter.
    """
    check_positive_int(num_samples, "num_samples")
    if depths.ndim < 1 or depths.shape[-1] < 2:
        raise ValueError(f"`depths` must hold at least 2 samples per ray, got shape {tuple(depths.shape)}.")
    if weights.shape != depths.shape:
        raise ValueError(f"`weights` must have the shape of `depths` {tuple(depths.shape)}, got {tuple(weights.shape)}.")
    depths = depths.detach()
    weights = weights.detach().clamp_min(0.0)
    batch_shape, count = depths.shape[:-1], depths.shape[-1]
    flat_depths = depths.reshape(-1, count)
    flat_weights = weights.reshape(-1, 1, count)

    pad = IMPORTANCE_BLUR_WINDOW // 2
    blurred = F.max_pool1d(F.pad(flat_weights, (pad, pad), mode="replicate"), IMPORTANCE_BLUR_WINDOW, stride=1)
    bin_weights = blurred.squeeze(1) + IMPORTANCE_WEIGHT_PADDING
    pdf = bin_weights / bin_weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], dim=-1)  # (M, S + 1)
    cdf[:, -1] = 1.0
    edges = _sample_bins(flat_depths)  # (M, S + 1)

    rows = flat_depths.shape[0]
    if perturb:
        jitter = torch.rand(rows, num_samples, generator=generator, device=depths.device, dtype=depths.dtype)
    else:
        jitter = torch.full((rows, num_samples), 0.5, device=depths.device, dtype=depths.dtype)
    uniform = (torch.arange(num_samples, device=depths.device, dtype=depths.dtype) + jitter) / num_samples

    above = torch.searchsorted(cdf.contiguous(), uniform.contiguous(), right=True).clamp(1, count)
    below = above - 1
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    edge_below, edge_above = edges.gather(1, below), edges.gather(1, above)
    span = cdf_above - cdf_below
    fraction = torch.where(span > _PDF_EPS, (uniform - cdf_below) / span.clamp_min(_PDF_EPS), torch.zeros_like(span))
    samples = edge_below + fraction.clamp(0.0, 1.0) * (edge_above - edge_below)
    return samples.reshape(*batch_shape, num_samples)


def merge_depths(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted union of two depth sets ``(..., S1)`` and ``(..., S2)``.

    Returns:
        depths: ``(..., S1 + S2)`` sorted.
        order: ``(..., S1 + S2)`` indices into ``cat([first, second], -1)``: per-sample values computed
        for the two sets are merged the same way with ``torch.gather(cat([a, b], -1), -1, order)``.
    """
    if first.shape[:-1] != second.shape[:-1]:
        raise ValueError(
            f"`first` and `second` must share their leading shape, got {tuple(first.shape)} and {tuple(second.shape)}."
        )
    depths, order = torch.sort(torch.cat([first, second], dim=-1), dim=-1, stable=True)
    return depths, order
