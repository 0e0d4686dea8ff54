"""Garment geometry of the synthetic clothed humans, defined on the body model so it poses with it.

Every garment is built from a :class:`GarmentSpec` (a kind, a few numbers, its materials) on a
:class:`BodyState`, the body evaluated for one shape and pose. Two kinds of geometry exist:

* **Offset surfaces** (tops, trousers, sleeves, shoes, belts, straps, hair caps, hat crowns): a subset
  of the body's faces, chosen by the vertices' REST-POSE coordinates (T-pose, betas 0) and skinning
  weights, pushed outward along the posed body normals by a per-vertex offset. They inherit the body's
  skinning (each garment vertex follows its body vertex), so they pose and reshape exactly with it.
  Layers never z-fight: offsets grow with the layer (body < tucked top < bottoms < untucked top < belt
  < outerwear < bag straps), see :data:`LAYER_OFFSETS`.
* **Skinned surfaces** (skirts, dress and coat skirts, long hair, hat brims, glasses, bags): built in
  the SHAPED rest pose from the body's cross-sections and joints, with skinning weights of their own,
  and posed by linear blend skinning with the body's bone transforms. Skirts are frustum-like surfaces
  hanging from the hips whose weights blend the pelvis into the two hips around the hem — not offsets
  of each leg.

Topology never depends on the shape or pose, so building a garment on the rest body with betas 0 (the
"template" state) gives per-vertex texture coordinates, and building it on the canonical Da-pose body
gives the garment's ground-truth canonical mesh (:func:`build_outfit` on a canonical state).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...body.body_model import BodyModel
from ...body.smpl_format import SMPL_JOINT_NAMES
from ...parts import PARTS, part_index
from .textures import SPEC_DECIMALS, Material

__all__ = [
    "BodyState",
    "BodyTopology",
    "GarmentSpec",
    "LAYER_OFFSETS",
    "MeshPiece",
    "body_state",
    "build_garment",
    "GARMENT_KINDS",
]

J = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}

LAYER_OFFSETS: dict[str, float] = {
    "leggings": 0.004,
    "top_tucked": 0.006,
    "bottoms": 0.011,
    "shoes": 0.013,
    "top_untucked": 0.016,
    "boots": 0.02,
    "belt": 0.022,
    "outerwear": 0.03,
    "strap": 0.012,  # added on top of the outermost torso layer
}
"""Base outward offsets (metres) of the offset-surface layers, increasing from the skin outwards."""

HAIR_OFFSET: float = 0.012
"""Offset of a hair cap above the scalp (styles add volume on top)."""
HAT_CLEARANCE: float = 0.014
"""How far a hat crown sits above the hair."""

CLIP_CACHE_SIZE: int = 64
"""Cut regions remembered per body topology (a garment is cut once and placed on several states)."""

CONE_SECTORS: int = 48
"""Angular resolution of skirt-like and hair-sheet surfaces."""
CONE_ROWS: int = 26
"""Vertical resolution of skirt-like surfaces."""
CROSS_SECTION_SLAB: float = 0.02
"""Half-height (metres) of the slab of body vertices measured for a cross-section."""
CONE_CLEARANCE: float = 0.012
"""Minimal gap between nested skirt-like surfaces (a coat over a dress)."""
HEM_SKINNING: float = 0.85
"""Share of the hip bones in the skinning weights of a skirt at knee height and below (the rest follows
the waist; the share grows with the drop below the rim)."""


# ----------------------------------------------------------------------------------------------------
# The body: fixed topology and per-sample state
# ----------------------------------------------------------------------------------------------------


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of a triangle mesh."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_normals = np.cross(v1 - v0, v2 - v0)
    normals = np.zeros_like(vertices)
    for axis in range(3):
        for corner in range(3):
            normals[:, axis] += np.bincount(faces[:, corner], weights=face_normals[:, axis], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


@dataclass
class BodyTopology:
    """What garments need to know about a body model, independent of shape and pose.

    Attributes:
        faces: ``(F, 3)`` body triangles.
        template: ``(V, 3)`` rest-pose vertices with betas 0 (T-pose); region selection uses these.
        template_normals: ``(V, 3)`` their normals.
        joints: ``(24, 3)`` rest joints with betas 0.
        weights: ``(V, 24)`` skinning weights.
        arm, leg, head: ``(V,)`` masks of vertices mostly skinned to the arm chain (shoulder to hand),
            the leg chain (hip to toes) and the head.
        torso: ``(V,)`` the rest (trunk and neck).
        arm_field, leg_field, head_field, torso_field: ``(V,)`` the same segments as smooth signed fields
            (positive inside, zero on the boundary; from the skinning weights), for clean garment cuts.
        clip_cache: Recently cut regions (:func:`clip_region`), by a digest of their field.
    """

    faces: np.ndarray
    template: np.ndarray
    template_normals: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    arm: np.ndarray
    leg: np.ndarray
    head: np.ndarray
    torso: np.ndarray
    arm_field: np.ndarray
    leg_field: np.ndarray
    head_field: np.ndarray
    torso_field: np.ndarray
    clip_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_body_model(cls, body: BodyModel) -> "BodyTopology":
        faces = body.faces.cpu().numpy().astype(np.int64)
        template = body.smpl.v_template.detach().cpu().numpy().astype(np.float64)
        weights = body.lbs_weights.detach().cpu().numpy().astype(np.float64)
        with torch.no_grad():
            joints = body().rest_joints[0].cpu().numpy().astype(np.float64)
        arm_joints = [J[f"{side}_{name}"] for side in ("left", "right") for name in ("shoulder", "elbow", "wrist", "hand")]
        leg_joints = [J[f"{side}_{name}"] for side in ("left", "right") for name in ("hip", "knee", "ankle", "foot")]
        arm_field = weights[:, arm_joints].sum(1) - 0.5
        leg_field = weights[:, leg_joints].sum(1) - 0.5
        head_field = weights[:, J["head"]] - 0.5
        torso_field = -np.maximum(np.maximum(arm_field, leg_field), head_field)
        arm, leg, head, torso = arm_field >= 0, leg_field >= 0, head_field >= 0, torso_field > 0
        return cls(
            faces, template, vertex_normals(template, faces), joints, weights, arm, leg, head, torso,
            arm_field, leg_field, head_field, torso_field,
        )

    # Named heights and widths of the rest body (betas 0), used to place garment boundaries.
    def y(self, joint: str) -> float:
        return float(self.joints[J[joint], 1])

    def x(self, joint: str) -> float:
        return float(self.joints[J[joint], 0])

    @property
    def eye_height(self) -> float:
        """Height of the eyes (a fixed fraction of the head above the head joint)."""
        return self.y("head") + 0.5 * (self.head_top - self.y("head"))

    @property
    def head_top(self) -> float:
        return float(self.template[self.head, 1].max())

    @property
    def sole_height(self) -> float:
        return float(self.template[:, 1].min())

    @property
    def crotch_height(self) -> float:
        """Lowest torso (non-leg) point between the legs."""
        central = self.torso & (np.abs(self.template[:, 0]) < 0.03)
        return float(self.template[central, 1].min())

    @functools.cached_property
    def face_points(self) -> dict[str, list[float]]:
        """Rest-pose positions (betas 0) of the facial features painted on the skin: the eyes, brows and
        mouth, each the front-most head surface at its height."""
        eye_y = self.eye_height
        head_y = self.y("head")
        points = {}
        for name, (x, y) in {
            "left_eye": (0.032, eye_y),
            "right_eye": (-0.032, eye_y),
            "left_brow": (0.034, eye_y + 0.022),
            "right_brow": (-0.034, eye_y + 0.022),
            "mouth": (0.0, head_y + 0.2 * (eye_y - head_y)),
        }.items():
            near = self.head & (np.abs(self.template[:, 0] - x) < 0.012) & (np.abs(self.template[:, 1] - y) < 0.012)
            z = float(self.template[near, 2].max()) if near.any() else float(self.template[self.head, 2].max())
            points[name] = [x, y, z]
        return points


@dataclass
class BodyState:
    """The body evaluated for one shape and pose (numpy, float64).

    Attributes:
        topology: The model's :class:`BodyTopology`.
        shaped: ``(V, 3)`` shaped rest-pose vertices (T-pose, betas applied).
        rest_joints: ``(24, 3)`` shaped rest joints.
        transforms: ``(24, 4, 4)`` bone transforms (rest → posed, translation included).
        vertices: ``(V, 3)`` posed vertices.
        normals: ``(V, 3)`` posed vertex normals.
        joints: ``(24, 3)`` posed joints.
    """

    topology: BodyTopology
    shaped: np.ndarray
    rest_joints: np.ndarray
    transforms: np.ndarray
    vertices: np.ndarray
    normals: np.ndarray
    joints: np.ndarray

    def skin(self, rest_points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Pose shaped rest-space points ``(M, 3)`` with skinning ``weights (M, 24)``."""
        blended = np.einsum("mj,jrc->mrc", weights, self.transforms)
        return np.einsum("mrc,mc->mr", blended[:, :3, :3], rest_points) + blended[:, :3, 3]


@torch.no_grad()
def body_state(
    body: BodyModel,
    topology: BodyTopology,
    betas: torch.Tensor | None = None,
    body_pose: torch.Tensor | None = None,
    global_orient: torch.Tensor | None = None,
    transl: torch.Tensor | None = None,
) -> BodyState:
    """Evaluate ``body`` for one shape and pose (``(1, ·)`` tensors; missing ones are zeros)."""
    from smplx.lbs import blend_shapes

    output = body(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)
    smpl = body.smpl
    shaped = smpl.v_template if betas is None else smpl.v_template + blend_shapes(betas.to(smpl.v_template), smpl.shapedirs)[0]
    vertices = output.vertices[0].double().cpu().numpy()
    return BodyState(
        topology=topology,
        shaped=shaped.double().cpu().numpy().reshape(-1, 3),
        rest_joints=output.rest_joints[0].double().cpu().numpy(),
        transforms=output.bone_transforms[0].double().cpu().numpy(),
        vertices=vertices,
        normals=vertex_normals(vertices, topology.faces),
        joints=output.joints[0].double().cpu().numpy(),
    )


# ----------------------------------------------------------------------------------------------------
# Garment specifications and mesh pieces
# ----------------------------------------------------------------------------------------------------


@dataclass
class GarmentSpec:
    """One garment of an outfit (JSON-serialisable through :meth:`to_dict`).

    Parameters:
        part: Its part, one of :data:`~semantichuman_hd.parts.PARTS` (hair is ``"body"``).
        kind: The builder, a key of :data:`GARMENT_KINDS`.
        params: Shape numbers of the builder (lengths as fractions between body landmarks, offsets in
            metres, ...).
        materials: Its materials; pieces refer to them by position.
    """

    part: str
    kind: str
    params: dict[str, float] = field(default_factory=dict)
    materials: list[Material] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "part": self.part,
            "kind": self.kind,
            "params": {key: round(float(value), SPEC_DECIMALS) for key, value in self.params.items()},
            "materials": [m.to_dict() for m in self.materials],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "GarmentSpec":
        return cls(
            part=data["part"],
            kind=data["kind"],
            params={key: float(value) for key, value in data["params"].items()},
            materials=[Material.from_dict(m) for m in data["materials"]],
        )


@dataclass
class MeshPiece:
    """A triangle mesh of one garment piece.

    Attributes:
        vertices: ``(M, 3)`` positions in the state it was built on.
        faces: ``(F, 3)`` triangles.
        part: Index of its part in :data:`PARTS`.
        material: Index of its material in the garment's list.
    """

    vertices: np.ndarray
    faces: np.ndarray
    part: int
    material: int


# ----------------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------------


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


@dataclass
class SurfaceRegion:
    """A region of the body surface cut out along a level set.

    Its vertices are points on body edges: vertex ``m`` is ``(1 − t_m)·body[a_m] + t_m·body[b_m]``
    (``a = b``, ``t = 0`` for whole body vertices), so the region can be placed on any body state.

    Attributes:
        a, b: ``(M,)`` body vertex indices.
        t: ``(M,)`` interpolation weights.
        faces: ``(F, 3)`` triangles (oriented as the body's).
    """

    a: np.ndarray
    b: np.ndarray
    t: np.ndarray
    faces: np.ndarray

    def lerp(self, values: np.ndarray) -> np.ndarray:
        """Per-body-vertex ``values (V, ...)`` interpolated at the region's vertices."""
        t = self.t.reshape((-1,) + (1,) * (values.ndim - 1))
        return (1.0 - t) * values[self.a] + t * values[self.b]


def clip_region(topology: BodyTopology, field_values: np.ndarray) -> SurfaceRegion | None:
    """The part of the body surface where the per-vertex ``field_values (V,)`` is ≥ 0.

    Triangles crossing the level set are cut along it (the field is taken linear on each triangle), so
    garment edges follow smooth curves instead of the triangles' jagged boundaries. Cut points are
    shared between neighbouring triangles (the region stays one connected mesh). None if empty.
    """
    key = hashlib.blake2b(np.ascontiguousarray(field_values, dtype=np.float64).tobytes(), digest_size=16).digest()
    if key in topology.clip_cache:
        return topology.clip_cache[key]
    region = _clip_region(topology, field_values)
    if len(topology.clip_cache) >= CLIP_CACHE_SIZE:
        topology.clip_cache.pop(next(iter(topology.clip_cache)))
    topology.clip_cache[key] = region
    return region


def _clip_region(topology: BodyTopology, field_values: np.ndarray) -> SurfaceRegion | None:
    faces = topology.faces
    num_vertices = len(topology.template)
    values = field_values[faces]  # (F, 3)
    inside = values >= 0
    count = inside.sum(1)

    def vertex_nodes(vertex):
        return vertex, vertex, np.zeros(len(vertex))

    def edge_nodes(i, j, fi, fj):
        t = fi / (fi - fj)
        swap = i > j
        a, b = np.where(swap, j, i), np.where(swap, i, j)
        return a, b, np.where(swap, 1.0 - t, t)

    pieces = []  # lists of corner (a, b, t) triples per output triangle
    full = faces[count == 3]
    pieces.append([vertex_nodes(full[:, k]) for k in range(3)])
    for wanted, lone_inside in ((1, True), (2, False)):
        selected = count == wanted
        if not selected.any():
            continue
        f, v, flags = faces[selected], values[selected], inside[selected]
        lone = np.argmax(flags if lone_inside else ~flags, axis=1)  # the odd corner
        order = (lone[:, None] + np.arange(3)[None, :]) % 3  # rotate: odd corner first, orientation kept
        f = np.take_along_axis(f, order, 1)
        v = np.take_along_axis(v, order, 1)
        p01 = edge_nodes(f[:, 0], f[:, 1], v[:, 0], v[:, 1])
        p02 = edge_nodes(f[:, 0], f[:, 2], v[:, 0], v[:, 2])
        if lone_inside:
            pieces.append([vertex_nodes(f[:, 0]), p01, p02])
        else:
            v1, v2 = vertex_nodes(f[:, 1]), vertex_nodes(f[:, 2])
            pieces.append([p01, v1, v2])
            pieces.append([p01, v2, p02])
    corners_a = np.concatenate([np.stack([c[0] for c in piece], 1) for piece in pieces])
    corners_b = np.concatenate([np.stack([c[1] for c in piece], 1) for piece in pieces])
    corners_t = np.concatenate([np.stack([c[2] for c in piece], 1) for piece in pieces])
    if len(corners_a) == 0:
        return None
    keys = corners_a.astype(np.int64) * num_vertices + corners_b
    unique, inverse = np.unique(keys.reshape(-1), return_inverse=True)
    first = np.zeros(len(unique), dtype=np.int64)
    first[inverse] = np.arange(inverse.size)
    a, b, t = corners_a.reshape(-1)[first], corners_b.reshape(-1)[first], corners_t.reshape(-1)[first]
    triangles = inverse.reshape(-1, 3)
    # Drop triangles collapsed onto a cut point (a corner exactly on the level set).
    distinct = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) & (triangles[:, 0] != triangles[:, 2])
    return SurfaceRegion(a, b, t, triangles[distinct])


def offset_piece(state: BodyState, field_values: np.ndarray, offsets: np.ndarray | float, part: int, material: int = 0) -> MeshPiece | None:
    """The body surface where ``field_values (V,) ≥ 0`` (cut along the level set), pushed out along the
    posed normals by ``offsets`` (a number or ``(V,)`` per body vertex); None if empty."""
    region = clip_region(state.topology, field_values)
    if region is None or len(region.faces) == 0:
        return None
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), field_values.shape)
    normals = region.lerp(state.normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    vertices = region.lerp(state.vertices) + region.lerp(offsets)[:, None] * normals
    return MeshPiece(vertices, region.faces, part, material)


def grid_faces(rows: int, columns: int, wrap: bool, keep: np.ndarray | None = None) -> np.ndarray:
    """Triangles of a ``rows × columns`` vertex grid (row-major); ``wrap`` joins the last column to the
    first; ``keep (rows-1, columns or columns-1)`` drops quads where False."""
    quads_per_row = columns if wrap else columns - 1
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(quads_per_row), indexing="ij")
    if keep is not None:
        r, c = r[keep], c[keep]
    else:
        r, c = r.reshape(-1), c.reshape(-1)
    c1 = (c + 1) % columns
    a, b, d, e = r * columns + c, r * columns + c1, (r + 1) * columns + c, (r + 1) * columns + c1
    return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)]).astype(np.int64)


def cross_section_extent(points: np.ndarray, centre: np.ndarray, heights: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Radial extent of a point cloud around a vertical axis.

    Parameters:
        points: ``(P, 3)`` points (rest pose).
        centre: ``(2,)`` the axis position ``(x, z)``.
        heights: ``(R,)`` heights of the cross-sections.
        angles: ``(S,)`` azimuths (0 = front +z, π/2 = the person's left +x).

    Returns:
        ``(R, S)`` the largest distance from the axis of the points within :data:`CROSS_SECTION_SLAB` of
        each height and within one sector of each azimuth (0 where there are none).
    """
    extent = np.zeros((len(heights), len(angles)))
    low, high = heights.min() - CROSS_SECTION_SLAB, heights.max() + CROSS_SECTION_SLAB
    points = points[(points[:, 1] > low) & (points[:, 1] < high)]
    if len(points) == 0:
        return extent
    dx, dz = points[:, 0] - centre[0], points[:, 2] - centre[1]
    radius = np.hypot(dx, dz)
    azimuth = np.arctan2(dx, dz)
    sector = 2.0 * math.pi / len(angles)
    # Each point counts for every (height, azimuth) cell within the slab and one sector of it.
    row_step = (heights[-1] - heights[0]) / max(len(heights) - 1, 1) if len(heights) > 1 else 1.0
    row_reach = int(math.ceil(CROSS_SECTION_SLAB / max(abs(row_step), 1e-9))) + 1
    row_centre = np.rint((points[:, 1] - heights[0]) / row_step).astype(np.int64) if len(heights) > 1 else np.zeros(len(points), np.int64)
    angle_step = (angles[-1] - angles[0]) / max(len(angles) - 1, 1)
    around = (azimuth - angles[0]) % (2 * math.pi)
    around = np.where(around > angles[-1] - angles[0] + 2 * sector, around - 2 * math.pi, around)  # just before the start
    column_centre = np.rint(around / angle_step).astype(np.int64)
    column_reach = int(math.ceil(sector / angle_step)) + 1
    for row_offset in range(-row_reach, row_reach + 1):
        rows = row_centre + row_offset
        valid_row = (rows >= 0) & (rows < len(heights))
        rows_clipped = np.clip(rows, 0, len(heights) - 1)
        near_height = valid_row & (np.abs(points[:, 1] - heights[rows_clipped]) < CROSS_SECTION_SLAB)
        for column_offset in range(-column_reach, column_reach + 1):
            columns = (column_centre + column_offset) % len(angles) if np.isclose(angle_step * len(angles), 2 * math.pi) else column_centre + column_offset
            valid = near_height & (columns >= 0) & (columns < len(angles))
            columns = np.clip(columns, 0, len(angles) - 1)
            difference = np.abs((azimuth - angles[columns] + math.pi) % (2 * math.pi) - math.pi)
            valid &= difference < sector
            np.maximum.at(extent, (rows_clipped[valid], columns[valid]), radius[valid])
    return extent


def _smooth_circular(values: np.ndarray, passes: int, wrap: bool) -> np.ndarray:
    for _ in range(passes):
        if wrap:
            values = 0.25 * np.roll(values, 1, -1) + 0.5 * values + 0.25 * np.roll(values, -1, -1)
        else:
            padded = np.concatenate([values[..., :1], values, values[..., -1:]], -1)
            values = 0.25 * padded[..., :-2] + 0.5 * padded[..., 1:-1] + 0.25 * padded[..., 2:]
    return values


@dataclass
class ConeLayers:
    """Radii of the skirt-like surfaces built so far for one outfit, so outer ones clear inner ones.

    Attributes:
        heights: ``(R,)`` heights of the recorded rows (rest pose, shaped body).
        radii: ``(R, 360)`` the largest radius at each height and whole degree of azimuth.
    """

    heights: list[np.ndarray] = field(default_factory=list)
    radii: list[np.ndarray] = field(default_factory=list)

    def clearance(self, heights: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """``(R, S)`` radius the next surface must exceed (0 where nothing is below it)."""
        result = np.zeros((len(heights), len(angles)))
        degrees = np.round(np.degrees(angles) % 360).astype(int) % 360
        for layer_heights, layer_radii in zip(self.heights, self.radii):
            # Rows run downwards; interpolate linearly between them (no staircase).
            position = np.interp(-heights, -layer_heights, np.arange(len(layer_heights)))
            inside = (heights >= layer_heights.min() - 1e-9) & (heights <= layer_heights.max() + 1e-9)
            lower = np.floor(position).astype(np.int64)
            upper = np.minimum(lower + 1, len(layer_heights) - 1)
            weight = (position - lower)[:, None]
            radii = (1 - weight) * layer_radii[lower][:, degrees] + weight * layer_radii[upper][:, degrees]
            result = np.where(inside[:, None], np.maximum(result, radii + CONE_CLEARANCE), result)
        return result

    def add(self, heights: np.ndarray, angles: np.ndarray, radii: np.ndarray) -> None:
        full = np.zeros((len(heights), 360))
        degrees = np.degrees(angles) % 360
        order = np.argsort(degrees)
        for row in range(len(heights)):
            full[row] = np.interp(np.arange(360), degrees[order], radii[row, order], period=360)
        self.heights.append(heights)
        self.radii.append(full)


@dataclass
class BuildContext:
    """Shared state while building one outfit on one body state."""

    state: BodyState
    cones: ConeLayers = field(default_factory=ConeLayers)
    hair_height: float | None = None  # top-of-scalp offset reached by the hair (hats sit above it)


def skirt_piece(
    context: BuildContext,
    top: float,
    hem: float,
    offset: float,
    flare: float,
    pleats: float,
    pleat_count: float,
    opening: float,
    part: int,
    material: int = 0,
) -> MeshPiece:
    """A frustum-like surface hanging from the hips: a skirt, the skirt of a dress or a coat.

    Parameters:
        top: Height of its upper rim (rest pose, betas 0; mapped to the shaped body through the hip joints).
        hem: Height of the hem (rest pose, betas 0).
        offset: Gap to the body's cross-section.
        flare: Angle (radians) of the flare below the rim.
        pleats: Relative radial amplitude of the folds at the hem.
        pleat_count: Number of folds around.
        opening: Angular width (radians) of a front opening (0 for a closed surface).
    """
    state, topology = context.state, context.state.topology
    # Heights on the shaped body: map rest heights through the pelvis → ankle span of the shaped joints.
    template_span = topology.y("pelvis") - topology.y("left_ankle")
    shaped_span = state.rest_joints[J["pelvis"], 1] - state.rest_joints[J["left_ankle"], 1]

    def shaped_height(y: float) -> float:
        return state.rest_joints[J["pelvis"], 1] + (y - topology.y("pelvis")) * shaped_span / template_span

    heights = np.linspace(shaped_height(top), shaped_height(hem), CONE_ROWS)
    wrap = opening <= 0
    if wrap:
        angles = np.linspace(0.0, 2 * math.pi, CONE_SECTORS, endpoint=False)
    else:
        angles = np.linspace(opening / 2, 2 * math.pi - opening / 2, CONE_SECTORS)
    body = ~topology.arm & ~topology.head
    centre = np.array([state.rest_joints[J["pelvis"], 0], float(np.mean(state.shaped[topology.torso & (np.abs(state.shaped[:, 1] - heights[0]) < 0.05), 2]))])
    extent = cross_section_extent(state.shaped[body], centre, heights, angles)
    extent = np.maximum.accumulate(extent, axis=0)  # a skirt never narrows downwards
    drop = heights[0] - heights
    radius = np.maximum(extent + offset, extent[:1] + offset + drop[:, None] * math.tan(flare))
    radius = np.maximum(radius, context.cones.clearance(heights, angles))
    radius = _smooth_circular(radius, 3, wrap)
    radius = np.maximum(radius, np.maximum(extent + offset, context.cones.clearance(heights, angles)))
    radius = np.maximum.accumulate(radius, axis=0)
    t = np.linspace(0.0, 1.0, CONE_ROWS)[:, None]
    radius = radius * (1.0 + pleats * t * np.sin(pleat_count * angles)[None, :])
    # Skinning follows the absolute drop below the rim, so nested skirts (a coat over a dress) bend alike.
    drop_fraction = np.clip(drop / max(heights[0] - state.rest_joints[J["left_knee"], 1], 1e-3), 0.0, 1.0)[:, None]
    context.cones.add(heights, angles, radius)

    rest = np.stack(
        [centre[0] + radius * np.sin(angles), np.repeat(heights[:, None], len(angles), 1), centre[1] + radius * np.cos(angles)], -1
    ).reshape(-1, 3)
    # Skinning: the rim copies the nearest body vertex; lower rows blend into the hips by side.
    candidates = np.flatnonzero(body)
    rim = rest[: len(angles)]
    nearest = candidates[np.argmin(((state.shaped[candidates][None] - rim[:, None]) ** 2).sum(-1), axis=1)]
    rim_weights = topology.weights[nearest]  # (S, 24)
    side = np.clip(0.5 + 0.5 * np.sin(angles) / 0.7, 0.0, 1.0)
    hips = np.zeros((len(angles), 24))
    hips[:, J["left_hip"]] = side
    hips[:, J["right_hip"]] = 1.0 - side
    share = HEM_SKINNING * drop_fraction[:, :, None] ** 0.8  # (R, 1, 1)
    weights = ((1.0 - share) * rim_weights[None] + share * hips[None]).reshape(-1, 24)
    vertices = state.skin(rest, weights)
    faces = grid_faces(CONE_ROWS, len(angles), wrap)
    return MeshPiece(vertices, faces, part, material)


def rigid_box(state: BodyState, joint: str, centre: np.ndarray, size: np.ndarray, part: int, material: int = 0, rounding: float = 0.3) -> MeshPiece:
    """A rounded box (a superellipsoid) of ``size`` (full extents) at ``centre`` in the shaped rest pose,
    attached rigidly to ``joint``."""
    rows, columns = 12, 16
    u = np.linspace(-math.pi / 2, math.pi / 2, rows)[:, None]
    v = np.linspace(-math.pi, math.pi, columns, endpoint=False)[None, :]
    exponent = max(rounding, 0.05)

    def signed_power(value, power):
        return np.sign(value) * np.abs(value) ** power

    x = signed_power(np.cos(u), exponent) * signed_power(np.sin(v), exponent)
    y = signed_power(np.sin(u), exponent) * np.ones_like(v)
    z = signed_power(np.cos(u), exponent) * signed_power(np.cos(v), exponent)
    rest = np.stack([x, y, z], -1).reshape(-1, 3) * (np.asarray(size) / 2) + centre
    faces = grid_faces(rows, columns, wrap=True)
    weights = np.zeros((len(rest), 24))
    weights[:, J[joint]] = 1.0
    return MeshPiece(state.skin(rest, weights), faces, part, material)


def rigid_annulus(
    state: BodyState,
    joint: str,
    centre: np.ndarray,
    inner: np.ndarray,
    outer: np.ndarray,
    normal_axis: int,
    part: int,
    material: int = 0,
    angles: np.ndarray | None = None,
    droop: float = 0.0,
) -> MeshPiece:
    """A flat ring (or a disc when ``inner`` is 0) attached rigidly to ``joint``.

    ``inner`` and ``outer`` are ``(S,)`` radii per angle (or numbers); the ring lies in the plane normal to
    the rest axis ``normal_axis`` (1: horizontal brims, 2: glasses facing +z) through ``centre``; ``droop``
    lowers the outer rim of a horizontal ring.
    """
    if angles is None:
        angles = np.linspace(0.0, 2 * math.pi, 32, endpoint=False)
    wrap = np.isclose((angles[-1] - angles[0]) % (2 * math.pi) + (angles[1] - angles[0]), 2 * math.pi)
    inner = np.broadcast_to(np.asarray(inner, dtype=np.float64), angles.shape)
    outer = np.broadcast_to(np.asarray(outer, dtype=np.float64), angles.shape)
    radii = np.stack([inner, outer])  # (2, S)
    a, b = np.sin(angles)[None], np.cos(angles)[None]
    if normal_axis == 1:  # horizontal ring: x = r sin, z = r cos
        points = np.stack([radii * a, np.zeros_like(radii) - droop * np.array([[0.0], [1.0]]), radii * b], -1)
    else:  # vertical ring facing z: x = r sin, y = r cos
        points = np.stack([radii * a, radii * b, np.zeros_like(radii)], -1)
    rest = points.reshape(-1, 3) + centre
    faces = grid_faces(2, len(angles), wrap=bool(wrap))
    weights = np.zeros((len(rest), 24))
    weights[:, J[joint]] = 1.0
    return MeshPiece(state.skin(rest, weights), faces, part, material)


# ----------------------------------------------------------------------------------------------------
# Regions of the rest body
# ----------------------------------------------------------------------------------------------------


# Regions are signed fields over the body vertices (≥ 0 inside): intersection is the minimum, union
# the maximum, complement the negation. Geometric conditions are in metres, segment conditions come
# from the skinning weights; the cut follows whichever condition is active.


def _torso_band(topology: BodyTopology, low: float, high: float) -> np.ndarray:
    """Trunk and leg surface (not arms or head) with rest height in ``[low, high]``."""
    y = topology.template[:, 1]
    return np.minimum.reduce([np.maximum(topology.torso_field, topology.leg_field), y - low, high - y])


def _neckline_field(topology: BodyTopology, height: float, depth: float, width: float, style: float) -> np.ndarray:
    """Below a neckline: ``height`` at the back, lowered by up to ``depth`` at the front centre over
    ``width`` (``style`` 0 = round scoop, 1 = V)."""
    x, y, z = topology.template.T
    centre_z = topology.joints[J["neck"], 2]
    front = np.clip((z - centre_z) / 0.05, 0.0, 1.0)
    across = np.clip(np.abs(x) / max(width, 1e-3), 0.0, 1.0)
    profile = (1.0 - across) if style >= 0.5 else np.sqrt(np.clip(1.0 - across**2, 0.0, 1.0))
    return height - depth * front * profile - y


def _sleeve_field(topology: BodyTopology, length: float) -> np.ndarray:
    """Arm surface from the shoulder out to ``length`` (0 = the shoulder joint, 1 = the wrist)."""
    reach = _lerp(topology.x("left_shoulder"), topology.x("left_wrist"), length)
    return np.minimum(topology.arm_field, reach - np.abs(topology.template[:, 0]))


def _upper_body_field(topology: BodyTopology, params: dict, hem: float) -> np.ndarray:
    """Tops and outerwear: trunk from the hem to the neckline, sleeves or armholes, front opening."""
    neck = topology.y("neck") + params.get("collar", 0.0)
    shoulder = topology.y("left_shoulder")
    x, y, z = topology.template.T
    region = np.minimum(
        _torso_band(topology, hem, neck),
        _neckline_field(topology, neck - 0.01, params.get("neck_depth", 0.03), params.get("neck_width", 0.07), params.get("neck_v", 0.0)),
    )
    strap = params.get("strap_width", 0.0)
    if strap > 0:  # tank top / dress straps: cut armholes around the shoulders
        armhole = np.minimum(y - (shoulder - params.get("armhole", 0.1)), np.abs(x) - strap)
        region = np.minimum(region, -armhole)
    else:
        region = np.maximum(region, np.minimum(_sleeve_field(topology, params.get("sleeve", 0.0)), neck - y))
    opening = params.get("opening", 0.0)
    if opening > 0:  # open jacket: no front strip
        strip = np.minimum.reduce([opening / 2 - np.abs(x), z - topology.joints[J["spine2"], 2], topology.torso_field])
        region = np.minimum(region, -strip)
    return region


# ----------------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------------


def _shaped_y(state: BodyState, y: float) -> float:
    """A rest height of the template mapped to the shaped body through the neck → pelvis span."""
    topology = state.topology
    t0, t1 = topology.y("pelvis"), topology.y("neck")
    s0, s1 = state.rest_joints[J["pelvis"], 1], state.rest_joints[J["neck"], 1]
    return s0 + (y - t0) * (s1 - s0) / (t1 - t0)


def _sleeve_looseness(topology: BodyTopology, looseness: float) -> np.ndarray:
    """Per-vertex extra offset growing along the arms (wider cuffs)."""
    x = np.abs(topology.template[:, 0])
    along = np.clip((x - topology.x("left_shoulder")) / (topology.x("left_wrist") - topology.x("left_shoulder")), 0.0, 1.0)
    return looseness * along * np.clip(topology.arm_field + 0.5, 0.0, 1.0)


def build_top(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """T-shirts, long sleeves, tank tops, crop tops, and the bodice of dresses (part "tops")."""
    topology, params = context.state.topology, spec.params
    hem = _lerp(topology.y("spine2"), topology.crotch_height + 0.02, params["hem"])
    offset = params["offset"] + _sleeve_looseness(topology, params.get("looseness", 0.0))
    pieces = [offset_piece(context.state, _upper_body_field(topology, params, hem), offset, part_index(spec.part))]
    return [piece for piece in pieces if piece is not None]


def build_dress(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """A dress: an upper body down to the hips plus a skirt from the hips (part "tops")."""
    topology, params = context.state.topology, spec.params
    rim = topology.y("pelvis") - 0.03
    mask = _upper_body_field(topology, params, rim - 0.04)
    offset = params["offset"] + _sleeve_looseness(topology, params.get("looseness", 0.0))
    pieces = [offset_piece(context.state, mask, offset, part_index(spec.part))]
    hem = _lerp(topology.y("left_hip") - 0.1, topology.y("left_ankle") + 0.05, params["length"])
    pieces.append(skirt_piece(context, rim, hem, params["offset"], params["flare"], params["pleats"], params["pleat_count"], 0.0, part_index(spec.part)))
    return [piece for piece in pieces if piece is not None]


def build_outerwear(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Jackets (down to the hips) and long coats (with a skirt to the knees or below), open or closed."""
    topology, params = context.state.topology, spec.params
    long = params.get("long", 0.0) >= 0.5
    rim = topology.y("pelvis") - 0.03
    hem = rim - 0.04 if long else _lerp(topology.y("spine1"), topology.crotch_height + 0.01, params["hem"])
    offset = params["offset"] + _sleeve_looseness(topology, params.get("looseness", 0.0))
    pieces = [offset_piece(context.state, _upper_body_field(topology, params, hem), offset, part_index(spec.part))]
    if long:
        length = _lerp(topology.y("left_knee") + 0.15, topology.y("left_ankle") + 0.15, params["length"])
        pieces.append(
            skirt_piece(context, rim, length, params["offset"], params["flare"], 0.0, 0.0, params.get("opening", 0.0) * 2.2, part_index(spec.part))
        )
    return [piece for piece in pieces if piece is not None]


def build_trousers(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Trousers, jeans, leggings and shorts (part "bottoms"): the trunk below the waist and the legs to the hem."""
    topology, params = context.state.topology, spec.params
    waist = _lerp(topology.y("spine1"), topology.y("pelvis"), params["waist"])
    hem = _lerp(topology.crotch_height - 0.08, topology.y("left_ankle"), params["length"])
    mask = _torso_band(topology, hem, waist)
    y = topology.template[:, 1]
    below_knee = np.clip((topology.y("left_knee") - y) / (topology.y("left_knee") - topology.y("left_ankle")), 0.0, 1.0)
    offset = params["offset"] + params.get("flare", 0.0) * below_knee
    piece = offset_piece(context.state, mask, offset, part_index(spec.part))
    return [] if piece is None else [piece]


def build_skirt(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """A skirt (part "bottoms"): a waistband on the hips plus a frustum-like surface below them."""
    topology, params = context.state.topology, spec.params
    waist = _lerp(topology.y("spine1"), topology.y("pelvis"), params["waist"])
    rim = topology.y("pelvis") - 0.03
    pieces = [offset_piece(context.state, _torso_band(topology, rim - 0.04, waist), params["offset"], part_index(spec.part))]
    hem = _lerp(topology.y("left_hip") - 0.1, topology.y("left_ankle") + 0.05, params["length"])
    pieces.append(skirt_piece(context, rim, hem, params["offset"], params["flare"], params["pleats"], params["pleat_count"], 0.0, part_index(spec.part)))
    return [piece for piece in pieces if piece is not None]


def build_shoes(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Shoes, sneakers and boots (part "shoes"): the feet up to ``height`` above the ankle joint."""
    topology, params = context.state.topology, spec.params
    top = _lerp(topology.y("left_ankle"), topology.y("left_knee"), params["height"])
    y = topology.template[:, 1]
    mask = np.minimum(topology.leg_field, top - y)
    # Thicker at the sole and the toe so the shoe reads as a shoe.
    toe = np.clip((topology.template[:, 2] - 0.05) / 0.1, 0.0, 1.0) * (y < topology.y("left_ankle"))
    sole = np.clip((topology.sole_height + 0.03 - y) / 0.03, 0.0, 1.0)
    offset = params["offset"] + 0.006 * toe + 0.008 * sole
    piece = offset_piece(context.state, mask, offset, part_index(spec.part))
    return [] if piece is None else [piece]


def _scalp_field(topology: BodyTopology, drop: float, front: float) -> np.ndarray:
    """Head (and upper neck) surface above a hairline: high on the forehead, above the ears at the sides,
    at the nape at the back; ``drop`` lowers it everywhere, ``front`` raises or lowers the forehead."""
    y, z = topology.template[:, 1], topology.template[:, 2]
    eye = topology.eye_height
    relative = z - topology.joints[J["head"], 2]
    hairline = np.interp(relative, [-0.06, -0.02, 0.03, 0.07], [topology.y("neck") + 0.04, eye - 0.01, eye + 0.02, eye + 0.055 + front])
    head_or_neck = np.maximum(topology.head_field, np.minimum(topology.torso_field, y - topology.y("neck")))
    return np.minimum(head_or_neck, y - (hairline - drop))


def build_hair(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Hair (part "body"): a cap over the scalp, plus a sheet falling behind the head for bobs and long
    hair, or a bun."""
    state, topology, params = context.state, context.state.topology, spec.params
    style = params["style"]  # 0 buzz, 1 short, 2 bob, 3 long, 4 bun
    volume = params.get("volume", 0.0)
    cap_offset = (0.004 if style < 1 else HAIR_OFFSET) + volume
    pieces = [offset_piece(state, _scalp_field(topology, 0.0, params.get("fringe", 0.0)), cap_offset, part_index(spec.part))]
    context.hair_height = cap_offset
    if style >= 2 and style < 4:
        head = topology.head
        centre = np.array([state.rest_joints[J["head"], 0], state.rest_joints[J["head"], 2] - 0.01])
        top = float(state.shaped[head, 1].max()) - 0.035
        bottom = _shaped_y(state, topology.y("neck") - 0.02) if style < 3 else _shaped_y(state, _lerp(topology.y("left_shoulder"), topology.y("spine2"), params.get("length", 0.5)))
        rows = CONE_ROWS
        heights = np.linspace(top, bottom, rows)
        angles = np.linspace(0.55 * math.pi, 1.45 * math.pi, CONE_SECTORS // 2 + 1)
        points = state.shaped[head | topology.torso]
        extent = cross_section_extent(points, centre, heights, angles)
        head_extent = cross_section_extent(state.shaped[head], centre, heights, angles)
        # The sheet hangs straight from the widest part of the head; around the shoulders it follows the body.
        widest = np.maximum.accumulate(head_extent, axis=0)
        radius = np.maximum(widest, extent) + cap_offset + 0.006
        below_neck = (heights < state.rest_joints[J["neck"], 1])[:, None]
        radius = np.where(below_neck, np.maximum(radius, extent + params.get("clearance", 0.0) + 0.01), radius)
        radius = _smooth_circular(radius, 2, wrap=False)
        rest = np.stack([centre[0] + radius * np.sin(angles), np.repeat(heights[:, None], len(angles), 1), centre[1] + radius * np.cos(angles)], -1).reshape(-1, 3)
        # Sides stop at the jaw, the back goes down to the length.
        side = np.abs(np.sin(angles)) > 0.75
        keep = np.ones((rows - 1, len(angles) - 1), dtype=bool)
        quad_height = 0.5 * (heights[:-1] + heights[1:])
        jaw = _shaped_y(state, topology.y("neck") + 0.03)
        quad_side = side[:-1] | side[1:]
        keep &= ~(quad_side[None, :] & (quad_height[:, None] < jaw))
        neck_y, head_y = state.rest_joints[J["neck"], 1], state.rest_joints[J["head"], 1]
        s = np.clip((head_y - heights) / max(head_y - neck_y, 1e-3), 0.0, 1.0)[:, None, None]
        s2 = np.clip((neck_y - heights) / 0.08, 0.0, 1.0)[:, None, None]
        weights = np.zeros((rows, len(angles), 24))
        weights[..., J["head"]] = (1 - s)[..., 0]
        weights[..., J["neck"]] = (s * (1 - s2))[..., 0]
        weights[..., J["spine3"]] = (s * s2)[..., 0]
        pieces.append(MeshPiece(state.skin(rest, weights.reshape(-1, 24)), grid_faces(rows, len(angles), False, keep), part_index(spec.part), 0))
    if style >= 4:
        head = state.rest_joints[J["head"]]
        top = float(state.shaped[topology.head, 1].max())
        back = float(state.shaped[topology.head, 2].min())
        size = params.get("bun_size", 0.08)
        centre = np.array([head[0], top - 0.05, back + 0.02])
        pieces.append(rigid_box(state, "head", centre, np.array([size, size * 0.85, size]), part_index(spec.part), 0, rounding=1.0))
    return [piece for piece in pieces if piece is not None]


def build_hat(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Hats (part "accessories"): a crown over the head (0 cap, 1 beanie, 2 sun hat) and a brim."""
    state, topology, params = context.state, context.state.topology, spec.params
    style = params["style"]
    hair = context.hair_height or 0.0
    drop = 0.02 if style == 1 else 0.0
    crown_mask = np.minimum(_scalp_field(topology, drop, 0.02), topology.template[:, 1] - topology.eye_height - (0.012 if style != 1 else -0.002))
    crown_offset = hair + HAT_CLEARANCE + (0.006 if style == 1 else 0.0)
    pieces = [offset_piece(state, crown_mask, crown_offset, part_index(spec.part), 0)]
    if style != 1:
        head = topology.head
        rim_y = _shaped_y(state, topology.eye_height + 0.03)
        centre = np.array([state.rest_joints[J["head"], 0], state.rest_joints[J["head"], 2] - 0.005])
        if style == 0:
            angles = np.linspace(-0.45 * math.pi, 0.45 * math.pi, 17)
        else:
            angles = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
        extent = cross_section_extent(state.shaped[head], centre, np.array([rim_y]), angles)[0]
        inner = np.maximum(extent, 0.05) + crown_offset - 0.004
        width = params["brim"] * (np.cos(angles) ** 2 if style == 0 else 1.0)
        pieces.append(
            rigid_annulus(
                state, "head", np.array([centre[0], rim_y, centre[1]]), inner, inner + width, 1, part_index(spec.part), 1,
                angles=angles, droop=params.get("droop", 0.0),
            )
        )
    return [piece for piece in pieces if piece is not None]


def build_glasses(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Glasses (part "accessories"): two frames around the eyes and, for sunglasses, dark lenses."""
    state, topology, params = context.state, context.state.topology, spec.params
    face = topology.face_points
    radius = params["radius"]
    pieces = []
    # Face points are template positions; move them to the shaped head (rigidly with the head joint).
    shift = state.rest_joints[J["head"]] - topology.joints[J["head"]]
    for side in ("left_eye", "right_eye"):
        centre = np.asarray(face[side]) + shift + np.array([0.004 * np.sign(face[side][0]), 0.0, 0.03])
        pieces.append(rigid_annulus(state, "head", centre, radius * 0.8, radius, 2, part_index(spec.part), 0))
        if params.get("tinted", 0.0) >= 0.5:
            pieces.append(rigid_annulus(state, "head", centre + np.array([0, 0, -0.001]), 0.0, radius * 0.8, 2, part_index(spec.part), 1))
    left = np.asarray(face["left_eye"]) + shift
    bridge_centre = np.array([0.0, left[1] + 0.004, left[2] + 0.03])
    pieces.append(rigid_box(state, "head", bridge_centre, np.array([0.03, 0.006, 0.004]), part_index(spec.part), 0))
    return pieces


def _band_field(topology: BodyTopology, start: np.ndarray, end: np.ndarray, width: float) -> np.ndarray:
    """Trunk surface within ``width / 2`` of the plane containing the line ``start → end`` and the depth
    axis (a diagonal band around the trunk, front and back)."""
    direction = (end - start)[:2] / np.linalg.norm((end - start)[:2])
    normal = np.array([-direction[1], direction[0]])
    distance = (topology.template[:, :2] - start[:2]) @ normal
    along = (topology.template[:, :2] - start[:2]) @ direction
    length = np.linalg.norm((end - start)[:2])
    return np.minimum.reduce(
        [np.maximum(topology.torso_field, topology.leg_field), width / 2 - np.abs(distance), along + 0.1, length + 0.02 - along]
    )


def build_bag(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """Bags (part "accessories"): 0 a cross-body bag on a diagonal strap, 1 a backpack with two straps."""
    state, topology, params = context.state, context.state.topology, spec.params
    strap_offset = params["strap_offset"]
    pieces: list[MeshPiece | None] = []
    if params["style"] < 0.5:
        side = 1.0 if params.get("side", 1.0) >= 0.5 else -1.0
        start = np.array([side * 0.09, topology.y("neck") + 0.01, 0.0])
        end = np.array([-side * 0.15, topology.y("pelvis") - 0.02, 0.0])
        pieces.append(offset_piece(state, _band_field(topology, start, end, params["strap_width"]), strap_offset, part_index(spec.part), 1))
        size = np.array([params["width"], params["height"], 0.05])
        x = -side * 0.13
        y = _shaped_y(state, topology.y("pelvis") - 0.03)
        near = topology.torso & (np.abs(state.shaped[:, 1] - y) < 0.04) & (np.abs(state.shaped[:, 0] - x) < 0.04)
        surface = float(state.shaped[near, 2].max()) if near.any() else 0.12
        centre = np.array([x * 0.8, y, surface + strap_offset + size[2] / 2])
        pieces.append(rigid_box(state, "pelvis", centre, size, part_index(spec.part), 0))
    else:
        for side in (-1.0, 1.0):
            start = np.array([side * 0.085, topology.y("neck") + 0.02, 0.0])
            end = np.array([side * 0.11, topology.y("spine1") + 0.02, 0.0])
            pieces.append(offset_piece(state, _band_field(topology, start, end, params["strap_width"]), strap_offset, part_index(spec.part), 1))
        size = np.array([params["width"] * 1.3, params["height"] * 2.0, 0.12])
        y = _shaped_y(state, topology.y("spine2") + 0.04)
        near = topology.torso & (np.abs(state.shaped[:, 1] - y) < 0.05) & (np.abs(state.shaped[:, 0]) < 0.05)
        surface = float(state.shaped[near, 2].min()) if near.any() else -0.1
        centre = np.array([0.0, y, surface - strap_offset - size[2] / 2])
        pieces.append(rigid_box(state, "spine3", centre, size, part_index(spec.part), 0))
    return [piece for piece in pieces if piece is not None]


def build_belt(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """A belt (part "accessories"): a band around the waist."""
    topology, params = context.state.topology, spec.params
    y = _lerp(topology.y("spine1"), topology.y("pelvis"), params["waist"])
    mask = np.minimum(_torso_band(topology, y - params["width"] / 2, y + params["width"] / 2), -topology.leg_field)
    piece = offset_piece(context.state, mask, params["offset"], part_index(spec.part))
    return [] if piece is None else [piece]


GARMENT_KINDS: dict[str, Callable[[GarmentSpec, BuildContext], list[MeshPiece]]] = {
    "top": build_top,
    "dress": build_dress,
    "outerwear": build_outerwear,
    "trousers": build_trousers,
    "skirt": build_skirt,
    "shoes": build_shoes,
    "hair": build_hair,
    "hat": build_hat,
    "glasses": build_glasses,
    "bag": build_bag,
    "belt": build_belt,
}
"""Garment builders by kind."""


def build_garment(spec: GarmentSpec, context: BuildContext) -> list[MeshPiece]:
    """The mesh pieces of one garment on the context's body state.

    Raises:
        ValueError: If the kind or part is unknown.
    """
    if spec.kind not in GARMENT_KINDS:
        raise ValueError(f"garment `kind` must be one of {sorted(GARMENT_KINDS)}, got {spec.kind!r}.")
    if spec.part not in PARTS:
        raise ValueError(f"garment `part` must be one of {list(PARTS)}, got {spec.part!r}.")
    return GARMENT_KINDS[spec.kind](spec, context)
