"""Tri-plane features of K parts and the K per-part decoders (docs/method.md §3).

A tri-plane stores a feature field on three axis-aligned planes through the canonical box. A point
``p = (x, y, z)`` (normalised to ``[-1, 1]³``) reads each plane at its projection and averages the three
bilinear samples. The planes, in the order of the plane axis of every tri-plane tensor:

=====  =====  ==============  =====================================================
index  plane  grid (u, v)     image layout of ``planes[..., index, :, H, W]``
=====  =====  ==============  =====================================================
0      XY     (x, y)          columns (W) follow x, rows (H) follow y
1      XZ     (x, z)          columns follow x, rows follow z
2      YZ     (y, z)          columns follow y, rows follow z
=====  =====  ==============  =====================================================

``u = -1`` is the left edge of the leftmost column and ``u = +1`` the right edge of the rightmost one
(``grid_sample`` with ``align_corners=False``); outside ``[-1, 1]`` the planes read as zero. (EG3D's
``generate_planes`` projects onto XY, XZ and ZX, i.e. XZ twice and never YZ; this module does not.)

:class:`PartDecoders` holds the K small decoder MLPs as stacked per-part weights and evaluates them batched
over parts; :func:`decode_parts` turns canonical points into per-part Δsdf and colour logits and, given a
``part_mask``, decodes only the requested (point, part) pairs. The low- and high-resolution generators
share both. :func:`count_decoder_queries` counts the pairs a model decodes while it is attached.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_positive_int, check_positive_number

NUM_PLANES: int = 3
"""Planes per tri-plane."""

PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))
"""``(u, v)`` coordinate axes of each plane: XY, XZ, YZ (see the module docstring)."""

PLANE_NAMES: tuple[str, ...] = ("XY", "XZ", "YZ")
"""Names of the planes, in order."""

DECODER_OUTPUTS: int = 4
"""Decoder outputs per part: Δsdf (1) + RGB logits (3)."""

DELTA_SDF_INIT_GAIN: float = 0.01
"""The Δsdf row of each decoder's last layer starts this much smaller than the others, so a freshly
initialised generator renders close to the body prior (Δsdf of about a centimetre) instead of a random
surface. (Equalised learning rate: this scales the initial values, not the learning rate.)"""


def _project(points: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` normalised points → ``(..., 3, 2)`` ``(u, v)`` grid coordinates on the 3 planes."""
    return torch.stack([points[..., list(axes)] for axes in PLANE_AXES], dim=-2)


def check_planes(planes: torch.Tensor, argument: str = "planes", num_parts: int | None = None, channels: int | None = None) -> None:
    """Raise ``ValueError`` unless ``planes`` is a ``(B, K, 3, C, H, W)`` floating tensor."""
    if not isinstance(planes, torch.Tensor) or planes.ndim != 6 or planes.shape[2] != NUM_PLANES:
        shape = tuple(planes.shape) if isinstance(planes, torch.Tensor) else type(planes).__name__
        raise ValueError(f"`{argument}` must be a tensor of shape (B, K, {NUM_PLANES}, C, H, W), got {shape}.")
    if not planes.is_floating_point():
        raise ValueError(f"`{argument}` must be a floating-point tensor, got dtype {planes.dtype}.")
    if num_parts is not None and planes.shape[1] != num_parts:
        raise ValueError(f"`{argument}` must have K = {num_parts} parts on dim 1, got shape {tuple(planes.shape)}.")
    if channels is not None and planes.shape[3] != channels:
        raise ValueError(f"`{argument}` must have C = {channels} channels on dim 3, got shape {tuple(planes.shape)}.")


def check_points(points: torch.Tensor, batch_size: int, argument: str = "points") -> None:
    """Raise ``ValueError`` unless ``points`` is a ``(B, N, 3)`` floating tensor with ``B = batch_size``."""
    if not isinstance(points, torch.Tensor) or points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != batch_size:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"`{argument}` must be a tensor of shape ({batch_size}, N, 3), got {shape}.")
    if not points.is_floating_point():
        raise ValueError(f"`{argument}` must be a floating-point tensor, got dtype {points.dtype}.")


def check_part_mask(part_mask: torch.Tensor, batch_size: int, num_points: int, num_parts: int) -> None:
    """Raise ``ValueError`` unless ``part_mask`` is a ``(B, N, K)`` bool tensor."""
    expected = (batch_size, num_points, num_parts)
    if not isinstance(part_mask, torch.Tensor) or tuple(part_mask.shape) != expected or part_mask.dtype != torch.bool:
        got = (tuple(part_mask.shape), part_mask.dtype) if isinstance(part_mask, torch.Tensor) else type(part_mask).__name__
        raise ValueError(f"`part_mask` must be a bool tensor of shape {expected}, got {got}.")


def sample_triplanes(planes: torch.Tensor, points: torch.Tensor, part_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean tri-plane feature of every part at every point.

    Parameters:
        planes: ``(B, K, 3, C, H, W)`` tri-planes (plane order XY, XZ, YZ).
        points: ``(B, N, 3)`` points normalised to ``[-1, 1]³`` (outside: zero features).
        part_mask: Optional ``(B, N, K)`` bool; only the True (point, part) pairs are sampled, the others
            are zero.

    Returns:
        ``(B, N, K, C)`` features.
    """
    check_planes(planes)
    batch, parts, _, channels, height, width = planes.shape
    check_points(points, batch)
    count = points.shape[1]
    points = points.to(planes.dtype)
    if part_mask is not None:
        check_part_mask(part_mask, batch, count, parts)
        b, n, k = part_mask.nonzero(as_tuple=True)
        pair_features = sample_triplane_pairs(planes, b, k, points[b, n])
        features = planes.new_zeros(batch, count, parts, channels)
        return features.index_put((b, n, k), pair_features)
    if count == 0:
        return planes.new_zeros(batch, 0, parts, channels)
    # All K parts share the sampling grid of a plane: fold them into channels, one grid_sample per plane.
    images = planes.transpose(1, 2).reshape(batch * NUM_PLANES, parts * channels, height, width)
    grid = _project(points).transpose(1, 2).reshape(batch * NUM_PLANES, 1, count, 2)  # (B·3, 1, N, 2)
    sampled = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(batch, NUM_PLANES, parts, channels, count).mean(1)  # (B, K, C, N)
    return sampled.permute(0, 3, 1, 2)


TEXEL_ORDERS: dict[str, tuple[int, ...]] = {
    "plane_major": (0, 1, 2, 4, 5, 3),
    "interleaved": (0, 1, 4, 5, 2, 3),
}
"""Channels-last memory orders of ``planes (B, K, 3, C, H, W)`` that :func:`sample_triplane_pairs` reads as
a texel table without a copy, as permutations of the axes: ``(B, K, 3, H, W, C)`` (each plane an image)
and ``(B, K, H, W, 3, C)`` (the 3 planes' texels side by side, as the synthesis networks' channels-last
output layers write them)."""


def texel_order(planes: torch.Tensor) -> str | None:
    """The name of the :data:`TEXEL_ORDERS` layout ``planes`` is stored in, or None (e.g. channels first)."""
    for name, order in TEXEL_ORDERS.items():
        if planes.permute(*order).is_contiguous():
            return name
    return None


def texel_major(planes: torch.Tensor) -> torch.Tensor:
    """``planes (B, K, 3, C, H, W)`` with the same values and shape, stored channels last (the C features
    of a texel side by side in memory; unchanged if they already are). :func:`sample_triplane_pairs` then
    reads the texel table as a view instead of copying the whole table at every call (a renderer calls it
    once per chunk of rays)."""
    if texel_order(planes) is not None:
        return planes
    return planes.permute(0, 1, 2, 4, 5, 3).contiguous().permute(0, 1, 2, 5, 3, 4)


class TexelTables:
    """The texel tables of one tri-plane tensor, made on first use and shared by every read of it.

    A render reads the same planes several times (coarse and fine samples, the normals' re-query). Read
    through one ``TexelTables``, all reads gather from the same table tensor: the all-parts table of
    :func:`sample_all_parts` (a copy) is made once instead of once per read, and in the backward the
    reads' gradients add up in place in one buffer, where each read's own view of the planes would hand
    autograd a gradient of the planes' full size to add out of place (stage 2's 256² planes: 300 MB
    each). Tables are kept per grad mode: one made without gradients carries none.

    Parameters:
        planes: ``(B, K, 3, C, H, W)`` tri-planes.
    """

    def __init__(self, planes: torch.Tensor):
        check_planes(planes)
        self.planes = planes
        self.order: str = texel_order(planes) or "plane_major"
        """The :data:`TEXEL_ORDERS` layout whose rows :meth:`pairs` holds (``"plane_major"`` unless the
        planes are stored in another one)."""
        self._tables: dict[tuple[str, bool], torch.Tensor] = {}

    def _cached(self, kind: str, make) -> torch.Tensor:
        key = (kind, torch.is_grad_enabled())
        if key not in self._tables:
            self._tables[key] = make()
        return self._tables[key]

    def pairs(self) -> torch.Tensor:
        """``(B·K·3·H·W, C)``: one row per (batch element, part, plane, texel), in :attr:`order` (a view
        for ``texel_major`` planes, else a copy)."""
        channels = self.planes.shape[3]
        return self._cached("pairs", lambda: self.planes.permute(*TEXEL_ORDERS[self.order]).reshape(-1, channels))

    def all_parts(self) -> torch.Tensor:
        """``(B·3·H·W, K·C)``: one row per (batch element, plane, texel) holding all K parts' features (a copy)."""
        parts, channels = self.planes.shape[1], self.planes.shape[3]
        return self._cached("all_parts", lambda: self.planes.permute(0, 2, 4, 5, 1, 3).reshape(-1, parts * channels))


def _tables_of(planes: torch.Tensor, tables: Optional[TexelTables]) -> TexelTables:
    """``tables`` if given (checked to be ``planes``'), else a fresh one for a single read."""
    if tables is None:
        return TexelTables(planes)
    if not isinstance(tables, TexelTables) or tables.planes is not planes:
        raise ValueError("`tables` must be the TexelTables of these `planes` (TexelTables(planes)).")
    return tables


def _bilinear_corners(points: torch.Tensor, height: int, width: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """The 12 bilinear corners of normalised ``points (P, 3)`` on the 3 planes, with the conventions of
    ``grid_sample(align_corners=False, padding_mode="zeros")``: for each plane and corner, ``(plane, texel
    (P,) long = y · width + x clamped into the plane, weight (P,))``, the weight 0 for a corner outside.
    The weights are differentiable in ``points`` (twice); the texels are not."""
    uv = _project(points)  # (P, 3, 2)
    # Continuous texel coordinates: texel i covers [i, i + 1) and its centre is i + 0.5.
    px = ((uv[..., 0] + 1) * width - 1) / 2
    py = ((uv[..., 1] + 1) * height - 1) / 2
    x0, y0 = px.detach().floor(), py.detach().floor()
    fx, fy = px - x0, py - y0
    x0, y0 = x0.long(), y0.long()
    corners = []
    for plane in range(NUM_PLANES):
        for dy, wy in ((0, 1 - fy[:, plane]), (1, fy[:, plane])):
            for dx, wx in ((0, 1 - fx[:, plane]), (1, fx[:, plane])):
                xi, yi = x0[:, plane] + dx, y0[:, plane] + dy
                inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                texel = yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)
                corners.append((plane, texel, torch.where(inside, wx * wy, torch.zeros_like(wx))))
    return corners


FUSED_ROW_SUM_DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""Device types whose ``embedding_bag`` takes per-sample weights: :func:`_weighted_rows` fuses its sum there
and gathers the rows elsewhere."""


class _WeightedRowSums(torch.autograd.Function):
    """``out[p] = Σ_r weights[p, r] · table[index[p, r]]``, ``(P, F)`` from a ``(N, F)`` table and ``index``,
    ``weights`` ``(P, R)``, differentiable in the table only.

    The forward is ``F.embedding_bag`` (a sum with per-sample weights): fused, it never writes the
    ``(R, P, F)`` gathered rows that a gather, multiply and sum write and read back (``demo`` stage 1's
    all-part rows of 96 features, 10⁵ points on 2 cores: 0.06 s instead of 0.41 s). The backward
    spreads the weighted gradient into the table with one ``index_add`` (faster than
    ``embedding_bag``'s own backward on stage 2's large tables), written with differentiable operations."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index, weights)
        ctx.table_shape = table.shape
        return F.embedding_bag(index, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, weights = ctx.saved_tensors
        spread = (weights.unsqueeze(-1) * grad.unsqueeze(1)).reshape(-1, grad.shape[-1])  # (P·R, F)
        grad_table = grad.new_zeros(ctx.table_shape).index_add_(0, index.reshape(-1), spread)
        return grad_table, None, None


def _weighted_rows(table: torch.Tensor, rows: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_c weights[c] · table[rows[c]] / 3`` for the 12 corners: ``(P, F)`` from a ``(N, F)`` table.

    Where the weights carry no gradient (points without gradient: the renders' samples), one fused
    weighted sum (:class:`_WeightedRowSums`, on :data:`FUSED_ROW_SUM_DEVICES`). Otherwise (normals,
    eikonal losses: gradients in the points, differentiated again) one gather of all 12 rows, then the
    weighted sum: autograd then builds only the gradients asked for, and the gather's backward fills a
    zero gradient of the whole table once for the 12 corners instead of 12 times (``demo`` stage 2, whose
    HR tables are 16× larger: 68 → 37 s per step)."""
    if table.device.type in FUSED_ROW_SUM_DEVICES and not any(weight.requires_grad for weight in weights):
        return _WeightedRowSums.apply(table, torch.stack(rows, 1), torch.stack(weights, 1) / NUM_PLANES)
    flat = torch.stack(rows)  # (12, P)
    features = table.index_select(0, flat.reshape(-1)).view(*flat.shape, table.shape[1])  # (12, P, F)
    return (features * torch.stack(weights).unsqueeze(-1)).sum(0) / NUM_PLANES


def sample_triplane_pairs(
    planes: torch.Tensor,
    batch_index: torch.Tensor,
    part_index: torch.Tensor,
    points: torch.Tensor,
    tables: Optional[TexelTables] = None,
) -> torch.Tensor:
    """Mean tri-plane feature for a list of (batch element, part, point) triples.

    Bilinear interpolation with the conventions of ``grid_sample(align_corners=False, padding_mode="zeros")``
    written out as gathers, so that only the requested pairs cost anything. Differentiable with respect to
    ``planes`` and ``points`` (twice, for eikonal losses).

    Parameters:
        planes: ``(B, K, 3, C, H, W)`` tri-planes.
        batch_index: ``(Q,)`` long, the batch element of each query.
        part_index: ``(Q,)`` long, the part of each query.
        points: ``(Q, 3)`` normalised points.
        tables: Optional :class:`TexelTables` of ``planes``, shared with the planes' other reads.

    Returns:
        ``(Q, C)`` features.
    """
    batch, parts, _, channels, height, width = planes.shape
    # Channels last so that one gather reads the C features of a texel (a view for `texel_major` planes).
    tables = _tables_of(planes, tables)
    order, texels = tables.order, tables.pairs()  # (B·K·3·H·W, C)
    part = batch_index * parts + part_index  # (Q,)
    rows, weights = [], []
    for plane, texel, weight in _bilinear_corners(points.to(planes.dtype), height, width):
        if order == "plane_major":  # rows (b, k, plane, y, x)
            rows.append((part * NUM_PLANES + plane) * (height * width) + texel)
        else:  # rows (b, k, y, x, plane)
            rows.append((part * (height * width) + texel) * NUM_PLANES + plane)
        weights.append(weight)
    return _weighted_rows(texels, rows, weights)


def sample_all_parts(
    planes: torch.Tensor, batch_index: torch.Tensor, points: torch.Tensor, tables: Optional[TexelTables] = None
) -> torch.Tensor:
    """Mean tri-plane feature of every part at a list of (batch element, point) pairs: what
    :func:`sample_triplane_pairs` gives for the K pairs of each point, computed once per point.

    The planes are first copied part-innermost, ``(B, 3, H, W, K, C)``, so that one gathered row holds a
    texel's features for all K parts: the corner weights, their graph and the gather's indices are K
    times fewer, and each gathered row is K times longer. Differentiable with respect to ``planes`` and
    ``points`` (twice).

    Parameters:
        planes: ``(B, K, 3, C, H, W)`` tri-planes.
        batch_index: ``(P,)`` long, the batch element of each point.
        points: ``(P, 3)`` normalised points.
        tables: Optional :class:`TexelTables` of ``planes``, shared with the planes' other reads.

    Returns:
        ``(K, P, C)`` features.
    """
    batch, parts, _, channels, height, width = planes.shape
    table = _tables_of(planes, tables).all_parts()  # (B·3·H·W, K·C)
    rows, weights = [], []
    for plane, texel, weight in _bilinear_corners(points.to(planes.dtype), height, width):
        rows.append((batch_index * NUM_PLANES + plane) * (height * width) + texel)
        weights.append(weight)
    return _weighted_rows(table, rows, weights).view(-1, parts, channels).transpose(0, 1)


class PartDecoders(nn.Module):
    """K small MLPs, one per part: tri-plane feature ``(C,)`` → Δsdf (1) + RGB logits (3).

    Hidden layers use Softplus; all weights are stacked per part, ``(K, in, out)``, with equalised learning
    rate, and the K decoders run as one batched matrix product.

    Parameters:
        num_parts (`int`): K.
        in_features (`int`): C, the tri-plane channels.
        hidden_features (`Sequence[int]`): Widths of the hidden layers (the paper's decoder: ``(16, 32)``).
    """

    def __init__(self, num_parts: int, in_features: int, hidden_features: Sequence[int]):
        super().__init__()
        widths = [in_features, *hidden_features, DECODER_OUTPUTS]
        self.num_parts = num_parts
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(num_parts, fan_in, fan_out)) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(num_parts, fan_out)) for fan_out in widths[1:]])
        self.gains = [1.0 / math.sqrt(fan_in) for fan_in in widths[:-1]]
        with torch.no_grad():
            self.weights[-1][..., 0].mul_(DELTA_SDF_INIT_GAIN)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features (K, M, C)`` (row ``k`` decoded by decoder ``k``) → ``(K, M, 4)``: Δsdf, RGB logits."""
        x = features
        last = len(self.weights) - 1
        for index, (weight, bias, gain) in enumerate(zip(self.weights, self.biases, self.gains)):
            x = torch.baddbmm(bias.unsqueeze(1), x, weight * gain)
            if index < last:
                x = F.softplus(x)
        return x


def normalize_points(points: torch.Tensor, box_center: Sequence[float], box_warp: float) -> torch.Tensor:
    """Canonical points in metres ``(..., 3)`` → the box's normalised coordinates ``2 (x − centre) / box_warp``."""
    center = torch.as_tensor(box_center, dtype=points.dtype, device=points.device)
    return (points - center) * (2.0 / box_warp)


def decode_parts(
    decoders: PartDecoders,
    planes: torch.Tensor,
    points: torch.Tensor,
    box_center: Sequence[float],
    box_warp: float,
    part_mask: Optional[torch.Tensor] = None,
    tables: Optional[TexelTables] = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-part Δsdf and RGB logits at canonical points.

    Without ``part_mask`` all ``B·N·K`` (point, part) pairs are decoded (one grid_sample per plane, one
    batched matrix product per layer). With it, only the requested pairs are sampled and decoded: where
    every point asks for all parts or none (the stage-1 render's packed rays), the points are sampled for
    all parts at once (:func:`sample_all_parts`); otherwise the pairs are grouped by part into a
    ``(K, M, C)`` batch (M = the largest count of one part) for the batched decoders.

    Parameters:
        decoders: The K decoders.
        planes: ``(B, K, 3, C, H, W)`` tri-planes.
        points: ``(B, N, 3)`` canonical points, metres.
        box_center, box_warp: The tri-planes' box (centre, side).
        part_mask: Optional ``(B, N, K)`` bool, the pairs to decode.
        tables: Optional :class:`TexelTables` of ``planes``, shared with the planes' other reads (a render's).

    Returns:
        ``delta_sdf (B, N, K)`` (``-inf`` where not decoded), ``rgb_logits (B, N, K, 3)`` (0 where not
        decoded) and the number of (point, part) pairs decoded.
    """
    batch, parts = planes.shape[:2]
    count = points.shape[1]
    normalized = normalize_points(points.to(planes.dtype), box_center, box_warp)
    if part_mask is None:
        features = sample_triplanes(planes, normalized)  # (B, N, K, C)
        out = decoders(features.permute(2, 0, 1, 3).reshape(parts, batch * count, -1))  # (K, B·N, 4)
        out = out.reshape(parts, batch, count, DECODER_OUTPUTS).permute(1, 2, 0, 3)
        return out[..., 0], out[..., 1:], batch * count * parts

    delta_sdf = planes.new_full((batch, count, parts), float("-inf"))
    rgb_logits = planes.new_zeros((batch, count, parts, DECODER_OUTPUTS - 1))
    asked = part_mask.any(-1)  # (B, N)
    if bool((asked == part_mask.all(-1)).all()):  # every point: all parts or none
        b, n = asked.nonzero(as_tuple=True)
        if b.numel() == 0:
            return delta_sdf, rgb_logits, 0
        out = decoders(sample_all_parts(planes, b, normalized[b, n], tables)).to(delta_sdf.dtype)  # (K, P, 4)
        delta_sdf = delta_sdf.index_put((b, n), out[..., 0].T)
        rgb_logits = rgb_logits.index_put((b, n), out[..., 1:].transpose(0, 1))
        return delta_sdf, rgb_logits, b.numel() * parts
    # Requested pairs, ordered by part (stable: within a part, in (b, n) order).
    pairs = part_mask.permute(2, 0, 1).nonzero()  # (Q, 3): k, b, n
    num_queries = pairs.shape[0]
    if num_queries == 0:
        return delta_sdf, rgb_logits, 0
    k, b, n = pairs.unbind(1)
    features = sample_triplane_pairs(planes, b, k, normalized[b, n], tables)  # (Q, C)
    per_part = torch.bincount(k, minlength=parts)
    starts = torch.cumsum(per_part, 0) - per_part
    slot = torch.arange(num_queries, device=k.device) - starts[k]
    width = int(per_part.max())
    grouped = features.new_zeros(parts, width, features.shape[-1]).index_put((k, slot), features)
    out = decoders(grouped)[k, slot].to(delta_sdf.dtype)  # (Q, 4); an autocast decoder's output is promoted
    delta_sdf = delta_sdf.index_put((b, n, k), out[:, 0])
    rgb_logits = rgb_logits.index_put((b, n, k), out[:, 1:])
    return delta_sdf, rgb_logits, num_queries


class TriplaneDecoding:
    """``decode`` shared by the low- and high-resolution tri-plane models.

    The host is a ``ModelMixin`` whose config has ``num_parts``, ``plane_channels``, ``box_center`` and
    ``box_warp`` and which owns ``self.decoders`` (:class:`PartDecoders`). Decoder queries are counted by
    attaching :func:`count_decoder_queries`, not by the model.
    """

    def decode(
        self,
        planes: torch.Tensor,
        points_canonical: torch.Tensor,
        part_mask: Optional[torch.Tensor] = None,
        tables: Optional[TexelTables] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Per-part Δsdf and RGB logits at canonical points.

        Parameters:
            planes (`torch.Tensor`): ``(B, K, 3, C, H, W)`` tri-planes from ``synthesize``.
            points_canonical (`torch.Tensor`): ``(B, N, 3)`` canonical points in metres; points outside the
                box (``box_center ± box_warp / 2``) read zero features.
            part_mask (`torch.Tensor`, *optional*): ``(B, N, K)`` bool: decode only the True (point, part)
                pairs; the others are not computed (and not counted).
            tables (`TexelTables`, *optional*): ``TexelTables(planes)``, shared by the reads of one render
                (coarse, fine and normal queries): its tables are made once and the reads' gradients added
                in place.

        Returns:
            ``delta_sdf (B, N, K)`` (``-inf`` where masked out) and ``rgb_logits (B, N, K, 3)`` (0 where
            masked out).
        """
        config = self.config
        check_planes(planes, num_parts=config.num_parts, channels=config.plane_channels)
        check_points(points_canonical, planes.shape[0], "points_canonical")
        if part_mask is not None:
            check_part_mask(part_mask, planes.shape[0], points_canonical.shape[1], config.num_parts)
        delta_sdf, rgb_logits, _ = decode_parts(
            self.decoders, planes, points_canonical, config.box_center, config.box_warp, part_mask, tables
        )
        return delta_sdf, rgb_logits


@dataclass
class DecoderQueryCounter:
    """Decoder queries — (point, part) pairs decoded — of the models :func:`count_decoder_queries` is
    attached to: ``total`` since it was attached, ``last`` of the latest ``decode`` call."""

    total: int = 0
    last: int = 0


@contextmanager
def count_decoder_queries(*models: TriplaneDecoding) -> Iterator[DecoderQueryCounter]:
    """Count the decoder queries of ``models`` (``LocalGenerators``, ``SuperResolution3D``) inside the
    block: each model's ``decode`` is wrapped for the block's duration and restored after. A field built
    inside the block (``model.decode`` looked up there) is counted; nothing is stored on the models
    outside it. Used by benchmarks and tests::

        with count_decoder_queries(pipe.super_resolution) as counter:
            pipe(latents=latents, resolution="high")
        counter.total

    A ``decode`` call without ``part_mask`` decodes all ``B·N·K`` pairs; with one, ``part_mask.sum()``.
    """
    counter = DecoderQueryCounter()
    models = tuple(dict.fromkeys(models))  # each model counted once
    if not models:
        raise ValueError("`models` must name at least one tri-plane model to count, got none.")
    for model in models:
        if not isinstance(model, TriplaneDecoding):
            raise ValueError(f"`models` must be tri-plane models (LocalGenerators, SuperResolution3D), got {type(model).__name__}.")
        if "decode" in vars(model):
            raise ValueError(f"{type(model).__name__}.decode is already being counted; attach one counter at a time.")

    def counted(decode):
        def wrapper(planes: torch.Tensor, points_canonical: torch.Tensor, part_mask: Optional[torch.Tensor] = None, tables=None):
            result = decode(planes, points_canonical, part_mask, tables=tables)
            queries = points_canonical.shape[0] * points_canonical.shape[1] * planes.shape[1] if part_mask is None else int(part_mask.sum())
            counter.last = queries
            counter.total += queries
            return result

        return wrapper

    try:
        for model in models:
            object.__setattr__(model, "decode", counted(model.decode))
        yield counter
    finally:
        for model in models:
            vars(model).pop("decode", None)


def check_triplane_config(
    w_dim, num_parts, plane_channels, channel_base, channel_max, decoder_hidden, box_center, box_warp, beta_init
) -> tuple[int, ...]:
    """Validate the settings the low- and high-resolution tri-plane models share; returns the decoders'
    hidden widths as a tuple."""
    for name, value in (
        ("w_dim", w_dim),
        ("num_parts", num_parts),
        ("plane_channels", plane_channels),
        ("channel_base", channel_base),
        ("channel_max", channel_max),
    ):
        check_positive_int(value, name)
    check_box(box_center, box_warp)
    check_positive_number(beta_init, "beta_init")
    return check_decoder_hidden(decoder_hidden)


def check_box(box_center, box_warp) -> tuple[float, float, float]:
    """Validate the tri-plane box; returns ``box_center`` as a tuple of 3 floats."""
    if isinstance(box_warp, bool) or not isinstance(box_warp, (int, float)) or not (math.isfinite(box_warp) and box_warp > 0):
        raise ValueError(f"`box_warp` must be a positive finite number (the box side in metres), got {box_warp!r}.")
    try:
        center = tuple(float(value) for value in box_center)
    except (TypeError, ValueError):
        center = ()
    if len(center) != 3 or not all(math.isfinite(value) for value in center):
        raise ValueError(f"`box_center` must be 3 finite numbers (metres), got {box_center!r}.")
    return center


def check_decoder_hidden(decoder_hidden) -> tuple[int, ...]:
    """Validate the decoders' hidden widths; returns them as a tuple."""
    widths = tuple(decoder_hidden) if isinstance(decoder_hidden, (list, tuple)) else None
    if widths is None or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"`decoder_hidden` must be a list of positive integers (hidden widths), got {decoder_hidden!r}.")
    return widths
