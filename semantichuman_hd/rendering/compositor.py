"""The K-part composition of SemanticHuman-HD (docs/method.md §4) and alpha compositing along rays.

Per sample, part ``k`` has the signed distance ``sdf_k`` (positive inside) and colour logits ``logit_k``.
The paper composes the parts by summing their DENSITIES::

    σ_k = (1/β) · sigmoid(sdf_k / β)        σ = Σ_k σ_k        w_k = σ_k / σ
    rgb = sigmoid(Σ_k w_k · logit_k)

so a part contributes nothing wherever its own density is zero: the parts' geometries are independent
(structural disentanglement). Along a ray, samples at depths ``t_s`` are alpha composited::

    δ_s = t_{s+1} − t_s      α_s = 1 − exp(−σ_s δ_s)      T_s = Π_{j<s} (1 − α_j)      W_s = T_s α_s

and a per-pixel quantity is ``Σ_s W_s · value_s`` (RGB over a white background, the semantic masks
``Σ_s W_s · w_{k,s}``, normals, depth normalised by the pixel's alpha ``Σ_s W_s``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

BETA_EPS: float = 1e-4
"""β is used as ``|β| + BETA_EPS`` (the reference's guard against a learnable β reaching zero)."""

COMPOSITIONS: tuple[str, ...] = ("sum_density", "sum_sdf")
"""How part fields combine: ``"sum_density"`` (the paper) or ``"sum_sdf"`` (the CNeRF-style ablation)."""

WHITE_BACKGROUND: float = 1.0
"""Background value of RGB images and normal pictures (white)."""

DEPTH_EPS: float = 1e-6
"""Depth is ``Σ_s W_s t_s / (alpha + DEPTH_EPS)``: the weighted mean depth where a pixel has any
opacity, fading to 0 on empty background, with bounded gradients."""

DEPTH_ALPHA_THRESHOLD: float = 0.5
"""Depth is a surface's depth only where the pixel is at least this opaque: where alpha is smaller it is
the mean depth of faint density, pulled toward the camera by :data:`DEPTH_EPS`. Depth comparisons and
depth pictures use only pixels at least this opaque."""

NORMAL_EPS: float = 1e-6
"""Vectors shorter than this are not normalised up to unit length (background normals stay ~0)."""


def effective_beta(beta: float | torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``|β| + BETA_EPS`` as a tensor on ``reference``'s device and dtype."""
    beta = torch.as_tensor(beta, device=reference.device, dtype=reference.dtype)
    return beta.abs() + BETA_EPS


def sdf_to_density(sdf: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """Density ``σ = (1/β) · sigmoid(sdf / β)`` of a signed distance (positive inside), with β used as
    ``|β| + BETA_EPS``.

    ``sdf = -inf`` gives exactly 0 density, with zero (not NaN) gradients.

    Parameters:
        sdf: Any shape.
        beta: A number or a tensor broadcastable to ``sdf`` (may require grad).
    """
    return _density(sdf, effective_beta(beta, sdf))


def _density(sdf: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sigmoid(sdf / b) / b`` for an already effective ``b``; exactly 0 (no NaN gradient) at ``-inf``."""
    present = sdf != float("-inf")
    finite_sdf = torch.where(present, sdf, torch.zeros_like(sdf))
    density = torch.sigmoid(finite_sdf / b) / b
    return torch.where(present, density, torch.zeros_like(density))


@dataclass
class PartComposition:
    """Composition of K parts at a set of samples.

    Attributes:
        density: ``(...)`` total density σ.
        part_weights: ``(..., K)`` semantic weights ``w_k``: non-negative, summing to 1 wherever some part
            is present (its sdf is not ``-inf``), all 0 where none is.
        rgb: ``(...,  3)`` colour in [0, 1].
        sdf_gradient_weights: ``(..., K)`` coefficients ``c_k`` of the sample's SDF gradient
            ``∇sdf = Σ_k c_k ∇sdf_k`` (used for normals): ``w_k`` for ``"sum_density"``, 1 for every
            present part for ``"sum_sdf"``.
    """

    density: torch.Tensor
    part_weights: torch.Tensor
    rgb: torch.Tensor
    sdf_gradient_weights: torch.Tensor


def _masked_softmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``present`` entries; all zeros where none is present.
    Absent entries get exactly 0 weight and no gradient."""
    any_present = present.any(-1, keepdim=True)
    neg_inf = torch.full_like(logits, float("-inf"))
    masked = torch.where(present, logits, neg_inf)
    masked = torch.where(any_present, masked, torch.zeros_like(logits))
    weights = torch.softmax(masked, dim=-1)
    return torch.where(any_present, weights, torch.zeros_like(weights))


def compose_parts(
    sdf: torch.Tensor,
    rgb_logits: torch.Tensor,
    beta: float | torch.Tensor,
    composition: str = "sum_density",
) -> PartComposition:
    """Compose K part fields into one density, semantic weights and colour per sample.

    ``"sum_density"`` (the paper)::

        σ_k = sdf_to_density(sdf_k, β)      σ = Σ_k σ_k      w_k = σ_k / σ

    The ratio is evaluated as ``w = softmax_k(log σ_k) = softmax_k(logsigmoid(sdf_k / β))`` (β is common
    to all parts), which equals ``σ_k / σ`` but never divides by an underflowing σ: no NaN or infinite
    gradients, exactly 0 for absent parts (``sdf_k = -inf``), exactly 0 everywhere when no part is present.

    ``"sum_sdf"`` (the CNeRF-style ablation: one global SDF, the parts' geometry coupled)::

        sdf = Σ_{k present} sdf_k      σ = sdf_to_density(sdf, β)      w = softmax_{k present}(sdf_k / β)

    Absent parts are left out of the sum (one absent part would otherwise erase all the others); the
    semantic weights favour the part whose own sdf is largest, with the same sharpness β. Here every
    part with a finite sdf moves the one surface, even where its semantic weight is negligible.

    In both: ``rgb = sigmoid(Σ_k w_k · logit_k)``.

    Parameters:
        sdf: ``(..., K)`` signed distances, positive inside, ``-inf`` for absent parts.
        rgb_logits: ``(..., K, 3)``.
        beta: A number or a tensor broadcastable to ``sdf.shape[:-1]``.
        composition: One of :data:`COMPOSITIONS`.

    Raises:
        ValueError: For an unknown composition or mismatched shapes.
    """
    if composition not in COMPOSITIONS:
        raise ValueError(f"`composition` must be one of {list(COMPOSITIONS)}, got {composition!r}.")
    if sdf.ndim < 1 or rgb_logits.shape != (*sdf.shape, 3):
        raise ValueError(
            f"`rgb_logits` must have shape (..., K, 3) matching `sdf` (..., K) = {tuple(sdf.shape)}, "
            f"got {tuple(rgb_logits.shape)}."
        )
    b = effective_beta(beta, sdf)
    b_parts = b.unsqueeze(-1) if b.ndim > 0 else b
    present = sdf != float("-inf")
    finite_sdf = torch.where(present, sdf, torch.zeros_like(sdf))
    scaled = finite_sdf / b_parts

    if composition == "sum_density":
        part_density = torch.where(present, torch.sigmoid(scaled) / b_parts, torch.zeros_like(scaled))
        density = part_density.sum(-1)
        part_weights = _masked_softmax(F.logsigmoid(scaled), present)
        gradient_weights = part_weights
    else:
        any_present = present.any(-1)
        total_sdf = finite_sdf.sum(-1)
        total_sdf = torch.where(any_present, total_sdf, torch.full_like(total_sdf, float("-inf")))
        density = _density(total_sdf, b)
        part_weights = _masked_softmax(scaled, present)
        gradient_weights = present.to(sdf.dtype)

    blended_logits = (part_weights.unsqueeze(-1) * rgb_logits).sum(-2)
    rgb = torch.sigmoid(blended_logits)
    return PartComposition(density=density, part_weights=part_weights, rgb=rgb, sdf_gradient_weights=gradient_weights)


def alpha_composite(
    density: torch.Tensor,
    depths: torch.Tensor,
    far: torch.Tensor | None = None,
    deltas: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compositing weights of samples along rays.

    Each sample stands for the interval up to the next one, ``δ_s = t_{s+1} − t_s``. The last interval
    ends at ``far`` if given (``max(far − t_last, 0)``), else it is as long as the one before it.
    ``deltas`` replaces all of this when given.

    Parameters:
        density: ``(B, R, S)`` densities σ ≥ 0.
        depths: ``(B, R, S)`` sorted sample depths.
        far: Optional ``(B, R)`` end of each ray's interval.
        deltas: Optional ``(B, R, S)`` explicit interval lengths.

    Returns:
        weights: ``(B, R, S)`` ``W_s = T_s · α_s`` with ``α_s = 1 − exp(−σ_s δ_s)``; ``Σ_s W_s`` is the
        pixel's alpha.
        transmittance: ``(B, R, S)`` ``T_s = exp(−Σ_{j<s} σ_j δ_j)``, the light reaching sample s.
    """
    if depths.shape != density.shape:
        raise ValueError(f"`depths` must have the shape of `density` {tuple(density.shape)}, got {tuple(depths.shape)}.")
    if deltas is None:
        if far is not None:
            if far.shape != density.shape[:-1]:
                raise ValueError(f"`far` must have shape {tuple(density.shape[:-1])}, got {tuple(far.shape)}.")
            last = (far.unsqueeze(-1) - depths[..., -1:]).clamp_min(0.0)
        elif depths.shape[-1] >= 2:
            last = depths[..., -1:] - depths[..., -2:-1]
        else:
            raise ValueError("`far` or `deltas` is needed to composite a single sample per ray.")
        deltas = torch.cat([depths[..., 1:] - depths[..., :-1], last], dim=-1)
    elif deltas.shape != density.shape:
        raise ValueError(f"`deltas` must have the shape of `density` {tuple(density.shape)}, got {tuple(deltas.shape)}.")
    optical_depth = density * deltas.clamp_min(0.0)
    alpha = -torch.expm1(-optical_depth)
    accumulated = torch.cumsum(optical_depth, dim=-1) - optical_depth  # exclusive cumulative sum
    transmittance = torch.exp(-accumulated)
    return transmittance * alpha, transmittance


def integrate_alpha(weights: torch.Tensor) -> torch.Tensor:
    """``(B, R)`` pixel opacity ``Σ_s W_s``."""
    return weights.sum(-1)


def integrate_rgb(weights: torch.Tensor, rgb: torch.Tensor, background: float = WHITE_BACKGROUND) -> torch.Tensor:
    """``(B, R, 3)`` colour ``Σ_s W_s c_s + (1 − alpha) · background`` from sample colours ``(B, R, S, 3)``."""
    colour = (weights.unsqueeze(-1) * rgb).sum(-2)
    return colour + (1.0 - weights.sum(-1, keepdim=True)) * background


def integrate_depth(weights: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """``(B, R)`` depth ``Σ_s W_s t_s / (alpha + DEPTH_EPS)``: the mean depth of the visible surface
    (even on semi-transparent pixels), 0 on empty background."""
    return (weights * depths).sum(-1) / (weights.sum(-1) + DEPTH_EPS)


def integrate_part_masks(weights: torch.Tensor, part_weights: torch.Tensor) -> torch.Tensor:
    """``(B, R, K)`` semantic masks ``Σ_s W_s w_{k,s}``: each in [0, 1], summing to the pixel's alpha
    (background has no part)."""
    return (weights.unsqueeze(-1) * part_weights).sum(-2)


def gradient_to_normal(sdf_gradient: torch.Tensor) -> torch.Tensor:
    """Unit outward normals ``normalize(−∇sdf)`` (sdf is positive inside) from gradients ``(..., 3)``;
    zero where the gradient vanishes."""
    return -F.normalize(sdf_gradient, dim=-1, eps=NORMAL_EPS)


def integrate_normals(weights: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """``(B, R, 3)`` world-frame unit normals ``normalize(Σ_s W_s n_s)`` from sample normals
    ``(B, R, S, 3)``; close to 0 on empty background (see :func:`normals_to_picture`)."""
    return F.normalize((weights.unsqueeze(-1) * normals).sum(-2), dim=-1, eps=NORMAL_EPS)


def normals_to_picture(normals: torch.Tensor, alpha: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Normal map picture in [0, 1]: ``alpha · (n + 1)/2 + (1 − alpha) · white``.

    Parameters:
        normals: Unit normals with the 3 components on axis ``dim`` (e.g. ``(B, R, 3)`` or ``(B, 3, H, W)``).
        alpha: Pixel opacity, with or without a size-1 axis ``dim``.
    """
    if alpha.ndim == normals.ndim - 1:
        alpha = alpha.unsqueeze(dim)
    return alpha * (normals + 1.0) / 2.0 + (1.0 - alpha) * WHITE_BACKGROUND
