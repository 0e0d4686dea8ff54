"""A vectorised z-buffer triangle rasterizer in pure PyTorch.

It turns triangle meshes, already projected by :meth:`~semantichuman_hd.rendering.cameras.Cameras.project`
(normalised pixel coordinates and camera z-depth per vertex), into per-pixel fragments: the index of
the visible face, its depth and the barycentric coordinates of the pixel centre in it. Attributes
(colours, normals, canonical coordinates) are then interpolated with :func:`interpolate`.

How it works, without a Python loop over triangles:

1. Each triangle's bounding box of covered pixel centres is computed; triangles are grouped by the
   size of that box, rounded up to a power of two (a handful of groups).
2. In a group of window size ``s``, every triangle enumerates the ``s × s`` pixel centres of its
   window at once; the edge functions give the barycentric coordinates of each candidate pixel and
   the candidates inside the triangle are kept (large groups are processed in chunks that bound the
   memory).
3. The depth test is one ``scatter_reduce(amin)`` over a 64-bit key per candidate: the IEEE bits of
   the (positive) depth in the high 32 bits, which order like the depths themselves, and the face index
   in the low 32 bits, so the nearest fragment wins and exact ties go to the lower face index — the
   result is deterministic.
4. Barycentrics of the winning faces are recomputed at the pixel centres and corrected for
   perspective.

Pixel conventions are those of :mod:`.cameras`: normalised ``(u, v)`` with ``(0, 0)`` the top-left
image corner; pixel ``(row i, column j)`` has its centre at ``((j + 0.5)/W, (i + 0.5)/H)``. Triangles
are double-sided (no back-face culling); vertices at or behind the camera (depth ≤ ``near``) drop
their triangles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_positive_int

__all__ = ["RasterOutput", "interpolate", "rasterize"]

DEFAULT_NEAR: float = 1e-3
"""Triangles with a vertex at camera depth at or below this are discarded."""

MAX_CANDIDATES_PER_CHUNK: int = 1 << 22
"""Upper bound on the candidate (triangle, pixel) pairs evaluated at once (memory bound)."""

EDGE_TOLERANCE: float = 1e-6
"""Relative tolerance on the barycentric inside test, so pixel centres on a shared edge are never
missed by both triangles."""

_EMPTY_KEY = torch.iinfo(torch.int64).max
_FACE_BITS = 32


@dataclass
class RasterOutput:
    """Per-pixel fragments of a rasterized batch of meshes.

    Parameters:
        face_index: ``(B, H, W)`` long, the visible face (an index into ``faces``), −1 for background.
        depth: ``(B, H, W)`` camera z-depth of the visible surface, ``inf`` for background.
        barycentrics: ``(B, H, W, 3)`` perspective-correct barycentric coordinates of the pixel centre
            in the visible face (zeros for background); they sum to 1 on covered pixels.
    """

    face_index: torch.Tensor
    depth: torch.Tensor
    barycentrics: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, pixels covered by a face."""
        return self.face_index >= 0


def _check_inputs(pixels: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> None:
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    if not torch.is_tensor(pixels) or pixels.ndim != 3 or pixels.shape[-1] != 2:
        shape = tuple(pixels.shape) if torch.is_tensor(pixels) else type(pixels).__name__
        raise ValueError(f"`pixels` must be a tensor of shape (B, N, 2), got {shape}.")
    if not torch.is_tensor(depth) or depth.shape != pixels.shape[:2]:
        shape = tuple(depth.shape) if torch.is_tensor(depth) else type(depth).__name__
        raise ValueError(f"`depth` must be a tensor of shape {tuple(pixels.shape[:2])} (B, N) matching `pixels`, got {shape}.")
    if not torch.is_tensor(faces) or faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        shape = (tuple(faces.shape), faces.dtype) if torch.is_tensor(faces) else type(faces).__name__
        raise ValueError(f"`faces` must be an integer tensor of shape (F, 3), got {shape}.")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= pixels.shape[1]):
        raise ValueError(f"`faces` must index vertices in [0, {pixels.shape[1]}), got the range [{int(faces.min())}, {int(faces.max())}].")
    if faces.shape[0] >= 1 << (_FACE_BITS - 1):
        raise ValueError(f"`faces` may hold at most {1 << (_FACE_BITS - 1)} faces, got {faces.shape[0]}.")
    if height * width * pixels.shape[0] >= 1 << 62:
        raise ValueError("The image batch is too large to index.")


def _edge_barycentrics(corners: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space barycentrics of ``points (..., 2)`` in triangles ``corners (..., 3, 2)``.

    Computed relative to the first corner so the products stay small (accurate in float32).

    Returns ``barycentrics (..., 3)`` and the signed doubled area ``(...)``.
    """
    a, b, c = corners.unbind(-2)
    ab, ac, ap = b - a, c - a, points - a
    area = ab[..., 0] * ac[..., 1] - ab[..., 1] * ac[..., 0]
    w1 = (ap[..., 0] * ac[..., 1] - ap[..., 1] * ac[..., 0]) / area
    w2 = (ab[..., 0] * ap[..., 1] - ab[..., 1] * ap[..., 0]) / area
    return torch.stack([1.0 - w1 - w2, w1, w2], dim=-1), area


def _perspective_correct(screen: torch.Tensor, corner_depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth from screen-space ``screen (..., 3)`` and the corner
    depths ``(..., 3)``: attributes are linear in ``1/z`` on screen."""
    inverse = screen / corner_depth
    inverse_depth = inverse.sum(-1)
    return inverse / inverse_depth.unsqueeze(-1), 1.0 / inverse_depth


def rasterize(
    pixels: torch.Tensor,
    depth: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    near: float = DEFAULT_NEAR,
) -> RasterOutput:
    """Rasterize a batch of triangle meshes with a depth test.

    Parameters:
        pixels: ``(B, N, 2)`` normalised pixel coordinates ``(u, v)`` of the vertices (from
            :meth:`Cameras.project`).
        depth: ``(B, N)`` camera z-depth of the vertices (from :meth:`Cameras.project`).
        faces: ``(F, 3)`` vertex indices of the triangles, shared by the batch.
        height: Image height H in pixels.
        width: Image width W in pixels.
        near: Triangles with a vertex at depth ≤ ``near`` are discarded.

    Returns:
        A :class:`RasterOutput` of ``(B, H, W)`` fragments.

    Raises:
        ValueError: On malformed shapes or sizes.
    """
    _check_inputs(pixels, depth, faces, height, width)
    device = pixels.device
    dtype = torch.float64 if pixels.dtype == torch.float64 else torch.float32
    batch = pixels.shape[0]
    faces = faces.long()

    # Vertices in pixel units with pixel centres at integer coordinates.
    scale = torch.tensor([width, height], device=device, dtype=dtype)
    screen = pixels.to(dtype) * scale - 0.5
    corners = screen[:, faces]  # (B, F, 3, 2)
    corner_depth = depth.to(dtype)[:, faces]  # (B, F, 3)

    low = torch.ceil(corners.amin(-2))  # (B, F, 2) first covered pixel centre (x, y)
    high = torch.floor(corners.amax(-2))
    low = torch.maximum(low, torch.zeros_like(low))
    high = torch.minimum(high, torch.tensor([width - 1, height - 1], device=device, dtype=dtype))
    extent = high - low + 1  # pixels covered by the box, per axis
    a, b, c = corners.unbind(-2)
    area = (b - a)[..., 0] * (c - a)[..., 1] - (b - a)[..., 1] * (c - a)[..., 0]
    keep = (extent > 0).all(-1) & (corner_depth > near).all(-1) & (area.abs() > 0) & torch.isfinite(corners).all(-1).all(-1)

    key_buffer = torch.full((batch * height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
    batch_index, face_index = keep.nonzero(as_tuple=True)
    if face_index.numel():
        size = extent[batch_index, face_index].amax(-1).long()
        window = torch.ceil(torch.log2(size.to(torch.float64))).long()  # window side 2**window ≥ size
        for level in torch.unique(window).tolist():
            side = 1 << level
            in_level = (window == level).nonzero(as_tuple=True)[0]
            offsets = torch.stack(
                torch.meshgrid(torch.arange(side, device=device), torch.arange(side, device=device), indexing="xy"), -1
            ).reshape(-1, 2).to(dtype)  # (s², 2) as (dx, dy)
            chunk = max(1, MAX_CANDIDATES_PER_CHUNK // (side * side))
            for start in range(0, in_level.numel(), chunk):
                selected = in_level[start : start + chunk]
                bi, fi = batch_index[selected], face_index[selected]
                candidates = low[bi, fi].unsqueeze(1) + offsets  # (T, s², 2)
                inside_box = (candidates <= high[bi, fi].unsqueeze(1)).all(-1)
                bary, _ = _edge_barycentrics(corners[bi, fi].unsqueeze(1), candidates)
                inside = inside_box & (bary >= -EDGE_TOLERANCE).all(-1)
                _, fragment_depth = _perspective_correct(bary, corner_depth[bi, fi].unsqueeze(1))
                t, k = inside.nonzero(as_tuple=True)
                fragment_depth = fragment_depth[t, k].to(torch.float32)
                position = candidates[t, k].long()
                flat = (bi[t] * height + position[:, 1]) * width + position[:, 0]
                # Positive float32 depths order like their IEEE bit patterns read as integers.
                depth_bits = fragment_depth.clamp_min(near).view(torch.int32).to(torch.int64)
                keys = (depth_bits << _FACE_BITS) | fi[t]
                key_buffer.scatter_reduce_(0, flat, keys, reduce="amin")

    covered = key_buffer != _EMPTY_KEY
    winner = torch.where(covered, key_buffer & ((1 << _FACE_BITS) - 1), torch.full_like(key_buffer, -1))
    face_map = winner.view(batch, height, width)

    barycentrics = torch.zeros(batch * height * width, 3, device=device, dtype=dtype)
    depth_map = torch.full((batch * height * width,), float("inf"), device=device, dtype=dtype)
    flat_covered = covered.nonzero(as_tuple=True)[0]
    if flat_covered.numel():
        bi = flat_covered // (height * width)
        pixel = flat_covered % (height * width)
        centre = torch.stack([pixel % width, pixel // width], -1).to(dtype)
        fi = winner[flat_covered]
        screen_bary, _ = _edge_barycentrics(corners[bi, fi], centre)
        screen_bary = screen_bary.clamp_min(0.0)
        screen_bary = screen_bary / screen_bary.sum(-1, keepdim=True)
        bary, fragment_depth = _perspective_correct(screen_bary, corner_depth[bi, fi])
        barycentrics[flat_covered] = bary
        depth_map[flat_covered] = fragment_depth
    return RasterOutput(
        face_index=face_map,
        depth=depth_map.view(batch, height, width).to(pixels.dtype),
        barycentrics=barycentrics.view(batch, height, width, 3).to(pixels.dtype),
    )


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, raster: RasterOutput, background: float = 0.0) -> torch.Tensor:
    """Interpolate per-vertex attributes at the visible fragments.

    Parameters:
        attributes: ``(B, N, C)`` per-vertex values (or ``(N, C)``, shared by the batch).
        faces: ``(F, 3)`` the faces given to :func:`rasterize`.
        raster: Its output.
        background: Value of uncovered pixels.

    Returns:
        ``(B, H, W, C)`` interpolated attributes.
    """
    batch, height, width = raster.face_index.shape
    if attributes.ndim == 2:
        attributes = attributes.unsqueeze(0).expand(batch, -1, -1)
    if attributes.ndim != 3 or attributes.shape[0] != batch:
        raise ValueError(f"`attributes` must have shape (N, C) or ({batch}, N, C), got {tuple(attributes.shape)}.")
    channels = attributes.shape[-1]
    output = attributes.new_full((batch, height, width, channels), background)
    b, i, j = raster.mask.nonzero(as_tuple=True)
    if b.numel():
        corner_vertices = faces.long()[raster.face_index[b, i, j]]  # (P, 3)
        values = attributes[b.unsqueeze(1), corner_vertices]  # (P, 3, C)
        weights = raster.barycentrics[b, i, j].to(attributes.dtype)
        output[b, i, j] = (weights.unsqueeze(-1) * values).sum(1)
    return output
