"""Meshes of generated people (per part or whole) and frame sequences (turntables, animations) as files.

**Part meshes.** In canonical space part ``k`` fills the region where its signed distance is positive
(docs/method.md §2)::

    sdf_k(x) = SDF_body(x) + Δsdf_k(x)

and, as in rendering, it has no density beyond the shell around the body (``SDF_body < −w``,
``w = PRIOR_SHELL_WIDTH``). The mesh of part ``k`` is the zero level set of::

    f_k(x) = min(sdf_k(x), SDF_body(x) + w)

the part intersected with the body grown by ``w``. ``f_k`` is continuous, so marching cubes places the
cut accurately where a part reaches the outer edge of the shell, and the decoders are queried only
inside the grown body (elsewhere ``f_k = SDF_body + w < 0``). Deeper inside the body than the shell the
renderer never sees a part (rays stop at the surface); there the field is continued as it is, so the
solids are not hollowed out. The whole person is the union ``f = max_k f_k``.

Vertex colours are the colour field at the vertices, mapped to RGB by the renderer's compositor with
only the vertex's own part present (``sigmoid`` of that part's logits); on the whole person each vertex
takes the colour of the part with the largest ``f_k`` there (the part whose surface it lies on).

Meshes are in the body model's frame (metres, y up): the canonical Da-pose, or posed by forward linear
blend skinning (:meth:`~semantichuman_hd.body.deformer.InverseLBSDeformer.canonical_to_posed`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .body.deformer import InverseLBSDeformer, PosedBody
from .checks import check_positive_number
from .body.sdf_prior import PRIOR_SHELL_WIDTH
from .io import atomic_path
from .parts import PARTS
from .rendering.compositor import compose_parts

logger = logging.getLogger(__name__)

CanonicalField = Callable[[torch.Tensor, Optional[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
"""``(points (1, M, 3) canonical, part_mask (1, M, K) | None) → (Δsdf (1, M, K), rgb_logits (1, M, K, 3))``."""

PriorField = Callable[[torch.Tensor], torch.Tensor]
"""``points (..., 3) canonical → SDF_body (...,)``, positive inside."""

MESH_SUFFIXES: tuple[str, ...] = (".glb", ".obj", ".ply")
"""File types :func:`save_mesh` writes, chosen by the path's suffix."""

VIDEO_SUFFIXES: tuple[str, ...] = (".gif", ".mp4")
"""File types :func:`save_video` writes, chosen by the path's suffix."""

WHOLE_PERSON: str = "person"
"""Name of the whole-person (union of all parts) mesh."""

DEFAULT_GRID_RESOLUTION: int = 128
"""Grid nodes along the longest side of the canonical box (about 1.5 cm spacing for a 1.7 m body)."""

MIN_GRID_RESOLUTION: int = 8
"""Smallest accepted ``grid_resolution``."""

MAX_GRID_RESOLUTION: int = 512
"""Largest accepted ``grid_resolution``: memory grows with its cube (at 512, about 130 MB per part for
a standing body's box, plus marching cubes' own)."""

GRID_MARGIN: float = 0.03
"""Extra margin of the canonical box beyond the shell, metres, so every surface closes inside it."""

GRID_CHUNK_SIZE: int = 1 << 17
"""Grid nodes (or mesh vertices) evaluated at a time."""

SURFACE_LEVEL: float = 0.0
"""Meshes are the zero level set of the part fields (positive inside)."""

DEFAULT_FPS: float = 12.0
"""Frame rate of turntables, and of animations whose motion has no frame rate."""

DEFAULT_TURNTABLE_FRAMES: int = 24
"""Frames of a turntable (one every 15°)."""

DEFAULT_FRAMES_PER_BATCH: int = 4
"""Frames of a turntable or animation rendered in one batch."""

MP4_DEPENDENCY: str = "imageio-ffmpeg"
"""Package that lets imageio write MP4 files."""

MP4_MACRO_BLOCK: int = 2
"""MP4 frame sides are rounded up to a multiple of this (H.264 in yuv420p needs even sides)."""


# ----------------------------------------------------------------------------------------------------
# Canonical grids and marching cubes
# ----------------------------------------------------------------------------------------------------


@dataclass
class CanonicalGrid:
    """Part fields ``f_k`` (see the module docstring) on a regular canonical grid.

    Attributes:
        values: ``(P, X, Y, Z)`` float32 values of the ``P`` selected parts; X, Y, Z run along x, y, z.
        origin: ``(3,)`` position of node ``[0, 0, 0]`` (metres).
        spacing: Node spacing (metres, equal on the three axes).
        parts: Indices of the selected parts, in the order of ``values``.
    """

    values: np.ndarray
    origin: np.ndarray
    spacing: float
    parts: tuple[int, ...]


@dataclass
class MeshExport:
    """Result of a mesh export.

    Attributes:
        meshes: ``trimesh.Trimesh`` by name (a part name, or :data:`WHOLE_PERSON`), with RGBA vertex
            colours; parts without a surface are left out.
        paths: The written file of each mesh (empty when nothing was written).
        empty_parts: Names of the requested parts that have no surface (the person does not wear them).
        latents: ``(1, K, z_dim)`` latents of the person, when the mesh came from the pipeline.
    """

    meshes: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
    empty_parts: list = field(default_factory=list)
    latents: Optional[torch.Tensor] = None


def check_grid_resolution(grid_resolution, argument: str = "grid_resolution") -> int:
    """``grid_resolution`` if it is an integer in [:data:`MIN_GRID_RESOLUTION`, :data:`MAX_GRID_RESOLUTION`]."""
    if isinstance(grid_resolution, bool) or not isinstance(grid_resolution, int) or not MIN_GRID_RESOLUTION <= grid_resolution <= MAX_GRID_RESOLUTION:
        raise ValueError(
            f"`{argument}` must be an integer in [{MIN_GRID_RESOLUTION}, {MAX_GRID_RESOLUTION}], got {grid_resolution!r}."
        )
    return grid_resolution


def canonical_box(canonical_vertices, shell_width: float = PRIOR_SHELL_WIDTH, margin: float = GRID_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """``(box_min, box_max)`` of canonical body vertices ``(V, 3)`` grown by the shell and ``margin``."""
    vertices = np.asarray(torch.as_tensor(canonical_vertices).detach().cpu(), dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"`canonical_vertices` must have shape (V, 3) with V >= 1, got {vertices.shape}.")
    grow = shell_width + margin
    return vertices.min(0) - grow, vertices.max(0) + grow


def grid_layout(box_min, box_max, grid_resolution: int) -> tuple[tuple[int, int, int], float]:
    """Node counts along x, y, z and the common spacing of a grid with ``grid_resolution`` nodes along
    the box's longest side (the other sides get as many nodes as cover them at that spacing)."""
    check_grid_resolution(grid_resolution)
    extent = np.asarray(box_max, dtype=np.float64) - np.asarray(box_min, dtype=np.float64)
    if extent.shape != (3,) or not np.all(np.isfinite(extent)) or np.any(extent <= 0):
        raise ValueError(f"`box_max` must exceed `box_min` on every axis, got {box_min!r} and {box_max!r}.")
    spacing = float(extent.max()) / (grid_resolution - 1)
    counts = tuple(int(math.ceil(e / spacing - 1e-9)) + 1 for e in extent)
    return counts, spacing  # type: ignore[return-value]


def part_mesh_field(prior: torch.Tensor, delta_sdf: torch.Tensor, shell_width: float = PRIOR_SHELL_WIDTH) -> torch.Tensor:
    """``f_k = min(SDF_body + Δsdf_k, SDF_body + w)`` of priors ``(...,)`` and residuals ``(..., P)``."""
    return prior.unsqueeze(-1) + delta_sdf.clamp(max=shell_width)


def _part_request(parts: Sequence[int], num_parts: int, count: int, device) -> Optional[torch.Tensor]:
    """A ``(1, count, K)`` decoder mask of ``parts``, or None when all parts are wanted."""
    if sorted(parts) == list(range(num_parts)):
        return None
    mask = torch.zeros(num_parts, dtype=torch.bool, device=device)
    mask[list(parts)] = True
    return mask.view(1, 1, -1).expand(1, count, -1)


def _check_parts(parts: Sequence[int], num_parts: int) -> tuple[int, ...]:
    parts = tuple(int(k) for k in parts)
    if not parts or any(not 0 <= k < num_parts for k in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"`parts` must be distinct part indices in [0, {num_parts - 1}], got {parts!r}.")
    return parts


@torch.no_grad()
def evaluate_canonical_grid(
    canonical_field: CanonicalField,
    prior: PriorField,
    box_min,
    box_max,
    grid_resolution: int,
    parts: Sequence[int],
    num_parts: int,
    shell_width: float = PRIOR_SHELL_WIDTH,
    chunk_size: int = GRID_CHUNK_SIZE,
    device: torch.device | str = "cpu",
) -> CanonicalGrid:
    """Evaluate the part fields ``f_k`` of ``parts`` on a canonical grid over ``[box_min, box_max]``.

    The grid has ``grid_resolution`` nodes along the box's longest side; nodes are evaluated
    ``chunk_size`` at a time, and the decoders only where ``SDF_body >= −shell_width``.
    """
    parts = _check_parts(parts, num_parts)
    counts, spacing = grid_layout(box_min, box_max, grid_resolution)
    origin = torch.as_tensor(np.asarray(box_min, dtype=np.float64), dtype=torch.float32, device=device)
    num_x, num_y, num_z = counts
    total = num_x * num_y * num_z
    values = torch.empty(len(parts), total, dtype=torch.float32)
    for start in range(0, total, chunk_size):
        flat = torch.arange(start, min(start + chunk_size, total), device=device)
        index = torch.stack([flat // (num_y * num_z), (flat // num_z) % num_y, flat % num_z], dim=-1)
        points = origin + index.to(torch.float32) * spacing
        body = prior(points).float()
        chunk = (body + shell_width).unsqueeze(-1).repeat(1, len(parts))
        near = body >= -shell_width
        if near.any():
            inside = points[near].unsqueeze(0)
            delta_sdf, _ = canonical_field(inside, _part_request(parts, num_parts, inside.shape[1], device))
            chunk[near] = part_mesh_field(body[near], delta_sdf[0][:, list(parts)].float(), shell_width)
        values[:, start : start + flat.shape[0]] = chunk.T.cpu()
    grid = values.reshape(len(parts), num_x, num_y, num_z).numpy()
    return CanonicalGrid(values=grid, origin=np.asarray(box_min, dtype=np.float64), spacing=spacing, parts=parts)


def marching_cubes(volume: np.ndarray, origin, spacing: float, level: float = SURFACE_LEVEL) -> tuple[np.ndarray, np.ndarray] | None:
    """Closed triangle mesh of the ``level`` set of ``volume (X, Y, Z)`` (positive inside), or None
    when nothing is inside.

    The volume is padded with an outside border, so surfaces that reach the grid's edge are closed
    there. Faces are wound counter-clockwise seen from outside (outward normals, positive volume).

    Returns:
        ``vertices (V, 3)`` float64 at ``origin + index · spacing`` and ``faces (F, 3)`` int64.
    """
    from skimage.measure import marching_cubes as skimage_marching_cubes

    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or min(volume.shape) < 2:
        raise ValueError(f"`volume` must have shape (X, Y, Z) with every side >= 2, got {volume.shape}.")
    if not np.isfinite(volume).all():
        raise ValueError("`volume` contains NaN or infinite values.")
    if not (volume > level).any():
        return None
    outside = min(float(volume.min()), level) - spacing
    padded = np.pad(volume, 1, mode="constant", constant_values=outside)
    vertices, faces, _, _ = skimage_marching_cubes(padded, level=level, spacing=(spacing,) * 3, gradient_direction="ascent")
    if len(faces) == 0:
        return None
    vertices = vertices.astype(np.float64) + np.asarray(origin, dtype=np.float64) - spacing
    return vertices, faces.astype(np.int64)


@torch.no_grad()
def surface_colors(
    canonical_field: CanonicalField,
    prior: PriorField,
    vertices,
    parts: Sequence[int],
    num_parts: int,
    shell_width: float = PRIOR_SHELL_WIDTH,
    chunk_size: int = GRID_CHUNK_SIZE,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Colours of canonical surface points ``vertices (V, 3)`` of the union of ``parts``.

    Each point takes the colour of the part of ``parts`` with the largest ``f_k`` there, mapped to RGB
    by :func:`~semantichuman_hd.rendering.compositor.compose_parts` with only that part present.

    Returns:
        ``colors (V, 3)`` float32 in [0, 1] and ``owner (V,)`` int64, the winning part's index.
    """
    parts = _check_parts(parts, num_parts)
    points_all = torch.as_tensor(np.asarray(vertices), dtype=torch.float32, device=device).reshape(-1, 3)
    colors, owners = [], []
    selected = torch.tensor(parts, device=device)
    for start in range(0, points_all.shape[0], chunk_size):
        points = points_all[start : start + chunk_size]
        delta_sdf, logits = canonical_field(points.unsqueeze(0), _part_request(parts, num_parts, points.shape[0], device))
        fields = part_mesh_field(prior(points).float(), delta_sdf[0][:, selected].float(), shell_width)
        owner = selected[fields.argmax(-1)]
        sdf = torch.full((points.shape[0], num_parts), float("-inf"), device=device)
        sdf[torch.arange(points.shape[0], device=device), owner] = 0.0  # only the owner present
        colors.append(compose_parts(sdf, logits[0].float(), beta=1.0).rgb.cpu())
        owners.append(owner.cpu())
    if not colors:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    return torch.cat(colors).numpy().astype(np.float32), torch.cat(owners).numpy().astype(np.int64)


def colored_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray):
    """A ``trimesh.Trimesh`` with opaque RGBA vertex colours from ``colors (V, 3)`` in [0, 1]."""
    import trimesh

    rgba = np.concatenate([np.clip(colors, 0, 1) * 255, np.full((len(colors), 1), 255.0)], axis=1).round().astype(np.uint8)
    return trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba, process=False)


@torch.no_grad()
def extract_meshes(
    canonical_field: CanonicalField,
    prior: PriorField,
    canonical_vertices,
    parts: Sequence[int] | None = None,
    grid_resolution: int = DEFAULT_GRID_RESOLUTION,
    num_parts: int = len(PARTS),
    part_names: Sequence[str] = PARTS,
    shell_width: float = PRIOR_SHELL_WIDTH,
    chunk_size: int = GRID_CHUNK_SIZE,
    device: torch.device | str = "cpu",
) -> MeshExport:
    """Canonical meshes of one person's parts, by marching cubes on the part fields (module docstring).

    Parameters:
        canonical_field: The person's canonical part field (Δsdf and RGB logits of the K parts).
        prior: The canonical body SDF prior.
        canonical_vertices: ``(V, 3)`` canonical body vertices: the grid covers them grown by the shell.
        parts: Indices of the parts to mesh, one mesh each; None for the whole person (one mesh, the
            union of all parts, named :data:`WHOLE_PERSON`).
        grid_resolution: Grid nodes along the longest side of the box.
        num_parts, part_names: K and the parts' names.
        shell_width: The parts' shell beyond the body surface.
        chunk_size: Points evaluated at a time.
        device: Where the field is evaluated.

    Returns:
        A :class:`MeshExport` with the meshes (no paths); parts without a surface are listed in
        ``empty_parts`` and noted in the log.
    """
    if len(part_names) != num_parts:
        raise ValueError(f"`part_names` must name the {num_parts} parts, got {list(part_names)!r}.")
    union = parts is None
    selected = tuple(range(num_parts)) if union else _check_parts(parts, num_parts)
    box_min, box_max = canonical_box(canonical_vertices, shell_width)
    grid = evaluate_canonical_grid(canonical_field, prior, box_min, box_max, grid_resolution, selected, num_parts, shell_width, chunk_size, device)
    if union:
        volumes = {WHOLE_PERSON: (grid.values.max(0), selected)}
    else:
        volumes = {part_names[k]: (grid.values[i], (k,)) for i, k in enumerate(selected)}
    result = MeshExport()
    for name, (volume, owners) in volumes.items():
        surface = marching_cubes(volume, grid.origin, grid.spacing)
        if surface is None:
            result.empty_parts.append(name)
            logger.warning("%s has no surface (nothing of it lies inside the body's shell): no mesh for it.", name)
            continue
        vertices, faces = surface
        colors, _ = surface_colors(canonical_field, prior, vertices, owners, num_parts, shell_width, chunk_size, device)
        result.meshes[name] = colored_mesh(vertices, faces, colors)
    return result


@torch.no_grad()
def pose_mesh(mesh, deformer: InverseLBSDeformer, posed: PosedBody):
    """A copy of canonical ``mesh`` with its vertices moved by forward linear blend skinning of the
    first body of ``posed`` (the deformer's skinning weights, shape offsets and bone transforms)."""
    device = posed.transforms.device
    vertices = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=device).unsqueeze(0)
    posed_vertices = deformer.canonical_to_posed(vertices, _first_body(posed))[0]
    moved = mesh.copy()
    moved.vertices = posed_vertices.double().cpu().numpy()
    return moved


def _first_body(posed: PosedBody) -> PosedBody:
    if posed.batch_size == 1:
        return posed
    raise ValueError(f"`posed` must hold one body to pose a mesh, got {posed.batch_size}.")


# ----------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------


def check_mesh_path(path: str | os.PathLike, argument: str = "path") -> Path:
    """``path`` as a Path if its suffix is one of :data:`MESH_SUFFIXES` (case-insensitive)."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"`{argument}` must end in one of {list(MESH_SUFFIXES)} (the mesh format), got {str(path)!r}.")
    return path


def mesh_paths(path: str | os.PathLike, names: Sequence[str], argument: str = "path") -> dict[str, Path]:
    """Output file of each mesh: ``path`` itself for one mesh, ``{stem}_{name}{suffix}`` beside it for several."""
    path = check_mesh_path(path, argument)
    if len(names) == 1:
        return {names[0]: path}
    return {name: path.with_name(f"{path.stem}_{name}{path.suffix}") for name in names}


def save_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` (a ``trimesh.Trimesh`` with vertex colours) as .glb, .obj or .ply by ``path``'s
    suffix, atomically. Returns the path."""
    path = check_mesh_path(path)
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix.lower()[1:])
    return path


def mp4_available() -> bool:
    """Whether imageio can write MP4 here (it needs :data:`MP4_DEPENDENCY`)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def check_video_path(path: str | os.PathLike, argument: str = "path") -> Path:
    """``path`` as a Path if its suffix is one of :data:`VIDEO_SUFFIXES`.

    Raises:
        ValueError: For another suffix.
        ImportError: For ``.mp4`` when :data:`MP4_DEPENDENCY` is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"`{argument}` must end in one of {list(VIDEO_SUFFIXES)} (the video format), got {str(path)!r}.")
    if suffix == ".mp4" and not mp4_available():
        raise ImportError(
            f"writing {str(path)!r} as MP4 needs the {MP4_DEPENDENCY} package: `pip install {MP4_DEPENDENCY}`, or write a .gif instead."
        )
    return path


def save_video(frames: Sequence, path: str | os.PathLike, fps: float = DEFAULT_FPS) -> Path:
    """Write ``frames`` (PIL images or ``(H, W, 3)`` uint8 arrays, all one size) as a looping GIF or an
    MP4 by ``path``'s suffix, atomically. Returns the path.

    Raises:
        ValueError: For an unknown suffix, no frames, frames of different sizes or a bad ``fps``.
        ImportError: For ``.mp4`` without :data:`MP4_DEPENDENCY`.
    """
    import imageio.v3 as iio

    path = check_video_path(path)
    check_positive_number(fps, "fps", unit="frames per second")
    arrays = [np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame) for frame in frames]
    if not arrays:
        raise ValueError("`frames` must hold at least one frame, got none.")
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 3 or arrays[0].shape[-1] != 3 or arrays[0].dtype != np.uint8:
        raise ValueError(f"`frames` must be images of one size (H, W, 3) uint8, got shapes {sorted(map(str, shapes))} and dtype {arrays[0].dtype}.")
    stack = np.stack(arrays)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":  # Pillow merges identical consecutive frames (their durations add up)
            iio.imwrite(tmp, stack, extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=0)
        else:  # H.264 wants even sides: imageio resizes odd ones up by one pixel
            iio.imwrite(tmp, stack, extension=".mp4", plugin="FFMPEG", fps=float(fps), macro_block_size=MP4_MACRO_BLOCK)
    return path
