"""The open body model: a human body generated deterministically by code, in the SMPL file format.

Real SMPL files may not be redistributed, so the package ships a body of its own that shares SMPL's
skeleton (the 24 joints, their order and kinematic tree, docs/method.md §2), its coordinate frame (y up,
facing +z, the person's left side at +x, T-pose at rest, pelvis joint near the origin, about 1.7 m tall)
and its file layout (``v_template``, ``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``,
``kintree_table``, ``f``), so ``smplx.SMPL`` reads it unchanged and a licensed SMPL file drops in.

How it is built (:func:`build_open_body_model`):

1. **Skeleton.** Designed rest-pose joint positions (:data:`REST_JOINTS`).
2. **Surface.** The body is a smooth union (polynomial smooth-min) of tapered capsules and ellipsoids,
   each attached to one joint; the signed distance field is sampled on a regular grid and the zero
   level set is extracted with marching cubes (Lewiner, topologically correct), giving one closed,
   manifold, outward-wound triangle mesh.
3. **Skinning weights.** Each primitive belongs to a joint, so a vertex's affinity to a joint is how
   close it lies to that joint's primitives: ``w_j ∝ exp(−(d_j − min_k d_k) / τ)`` with ``d_j`` the
   vertex's signed distance to joint j's primitives, then a few rounds of mesh-Laplacian smoothing,
   pruning of negligible weights and renormalisation.
4. **Joint regressor.** Each joint is a weighted mean of the vertices around it: Gaussian weights on
   the distance to the joint, then exponentially tilted (a three-parameter Newton solve, maximum
   entropy) so the weighted mean reproduces the designed joint exactly, all weights staying positive.
5. **Shape space.** Ten components, each a smooth deformation field of the template: every joint gets
   an affine map (bone stretch along its axis, girth scaling across it), child joints follow their
   parents' maps, and the maps are blended per vertex with the skinning weights (as in linear blend
   skinning, so the field is continuous and vertex correspondence is exact).
6. **Pose correctives.** A simple volume-preserving corrective: linear blend skinning shrinks a bent
   or twisted joint toward its centre, by about ``1 − cos(θ/2)``; each joint's ring of blended
   vertices is pushed away from the joint centre in proportion to ``1 − cos θ``, which is linear in
   the diagonal of ``R − I``, i.e. exactly expressible as SMPL pose blend shapes (strength calibrated
   so posed bodies keep their volume, :data:`POSE_CORRECTIVE_STRENGTH`).

Everything is numpy double precision with fixed inputs and no randomness, so every call returns the
same arrays (bit for bit on one platform; across platforms the transcendental functions of numpy may
round differently in the last bits, which is why caches key on :attr:`BodyModel.fingerprint`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .smpl_format import NUM_BETAS, NUM_POSE_BASIS, NUM_SMPL_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS

OPEN_BODY_VERSION: int = 2
"""Version of the generator's output; bump it whenever :func:`build_open_body_model` changes, so cached
copies (``open_body_v<version>.pkl``) are rebuilt."""

# ----------------------------------------------------------------------------------------------------
# Skeleton
# ----------------------------------------------------------------------------------------------------

_CENTRE_JOINTS: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, -0.225, 0.0),
    "spine1": (0.0, -0.105, -0.01),
    "spine2": (0.0, 0.02, -0.005),
    "spine3": (0.0, 0.08, 0.0),
    "neck": (0.0, 0.285, -0.015),
    "head": (0.0, 0.355, 0.02),
}
_LEFT_JOINTS: dict[str, tuple[float, float, float]] = {
    "left_hip": (0.085, -0.315, 0.0),
    "left_knee": (0.1, -0.71, 0.005),
    "left_ankle": (0.1, -1.105, -0.035),
    "left_foot": (0.11, -1.16, 0.085),
    "left_collar": (0.075, 0.195, -0.01),
    "left_shoulder": (0.175, 0.225, -0.015),
    "left_elbow": (0.43, 0.215, -0.03),
    "left_wrist": (0.68, 0.22, -0.03),
    "left_hand": (0.765, 0.215, -0.035),
}


def _mirror(point) -> tuple[float, float, float]:
    return (-point[0], point[1], point[2])


def _designed_joints() -> np.ndarray:
    table = dict(_CENTRE_JOINTS)
    for name, position in _LEFT_JOINTS.items():
        table[name] = position
        table["right_" + name[len("left_"):]] = _mirror(position)
    return np.array([table[name] for name in SMPL_JOINT_NAMES], dtype=np.float64)


REST_JOINTS: np.ndarray = _designed_joints()
"""Designed rest-pose (T-pose) joint positions ``(24, 3)`` in metres, SMPL joint order."""

SOLE_HEIGHT: float = -1.175
"""Height (y) of the flat soles; the body is cut by this plane."""

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def _joint(name: str) -> np.ndarray:
    return REST_JOINTS[_J[name]]


# ----------------------------------------------------------------------------------------------------
# Surface primitives
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capsule:
    """A tapered capsule from ``start`` (radius ``start_radius``) to ``end`` (radius ``end_radius``)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    start_radius: float
    end_radius: float
    joint: str
    blend: float

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        radius = max(self.start_radius, self.end_radius)
        points = np.array([self.start, self.end])
        return points.min(0) - radius, points.max(0) + radius

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance (negative inside); ``x, y, z`` broadcast together."""
        a = np.asarray(self.start)
        axis = np.asarray(self.end) - a
        length2 = float(axis @ axis)
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * axis[0] + py * axis[1] + pz * axis[2]) / length2, 0.0, 1.0)
        dx, dy, dz = px - t * axis[0], py - t * axis[1], pz - t * axis[2]
        radius = self.start_radius + t * (self.end_radius - self.start_radius)
        return np.sqrt(dx * dx + dy * dy + dz * dz) - radius


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid with semi-axes ``radii`` around ``centre``."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    joint: str
    blend: float

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, r = np.asarray(self.centre), np.asarray(self.radii)
        return c - r, c + r

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Signed distance bound of Quílez (negative inside, exact on the surface)."""
        (cx, cy, cz), (rx, ry, rz) = self.centre, self.radii
        qx, qy, qz = (x - cx) / rx, (y - cy) / ry, (z - cz) / rz
        k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
        k1 = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2 + (qz / rz) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _mirror_primitive(primitive):
    joint = primitive.joint.replace("left_", "right_")
    if isinstance(primitive, Capsule):
        return Capsule(
            _mirror(primitive.start), _mirror(primitive.end), primitive.start_radius, primitive.end_radius, joint, primitive.blend
        )
    return Ellipsoid(_mirror(primitive.centre), primitive.radii, joint, primitive.blend)


TORSO_BLEND: float = 0.045
"""Smooth-union radius of the torso pieces (metres)."""
LIMB_BLEND: float = 0.025
"""Smooth-union radius where limbs meet the body."""
DETAIL_BLEND: float = 0.01
"""Smooth-union radius of small details (nose, ears, thumb, fingers)."""


def _body_primitives() -> list:
    """The primitives of the body, in union order; left-side pieces are mirrored to the right."""
    J = {name: tuple(float(v) for v in _joint(name)) for name in SMPL_JOINT_NAMES}
    centre = [
        # Torso: pelvis block and buttocks, lower belly, waist (narrowest), chest, upper back.
        Ellipsoid((0.0, -0.215, -0.005), (0.16, 0.12, 0.105), "pelvis", TORSO_BLEND),
        Ellipsoid((0.0, -0.095, 0.012), (0.14, 0.11, 0.098), "spine1", TORSO_BLEND),
        Ellipsoid((0.0, 0.005, -0.005), (0.13, 0.12, 0.092), "spine2", TORSO_BLEND),
        Ellipsoid((0.0, 0.135, 0.0), (0.158, 0.12, 0.1), "spine3", TORSO_BLEND),
        Ellipsoid((0.0, 0.155, -0.03), (0.145, 0.105, 0.08), "spine3", TORSO_BLEND),
        # Neck and head: an egg-shaped skull, jaw, nose.
        Capsule((0.0, 0.235, -0.02), (0.0, 0.37, 0.0), 0.056, 0.052, "neck", 0.03),
        Ellipsoid((0.0, 0.435, 0.012), (0.078, 0.102, 0.096), "head", 0.02),
        Ellipsoid((0.0, 0.462, -0.005), (0.074, 0.075, 0.09), "head", 0.02),
        Ellipsoid((0.0, 0.37, 0.038), (0.056, 0.052, 0.062), "head", 0.025),
        Capsule((0.0, 0.432, 0.1), (0.0, 0.403, 0.117), 0.011, 0.013, "head", DETAIL_BLEND),
    ]
    left = [
        # Buttock and breast/pectoral shaping.
        Ellipsoid((0.07, -0.28, -0.045), (0.085, 0.095, 0.072), "pelvis", TORSO_BLEND),
        Ellipsoid((0.065, 0.125, 0.045), (0.07, 0.062, 0.06), "spine3", TORSO_BLEND),
        # Shoulder girdle: collar bone / trapezius slope.
        Capsule((0.03, 0.262, -0.025), (0.165, 0.232, -0.02), 0.05, 0.05, "left_collar", 0.035),
        # Ear.
        Ellipsoid((0.078, 0.418, 0.0), (0.012, 0.028, 0.018), "head", DETAIL_BLEND),
        # Arm: deltoid, upper arm, forearm, palm, mitten fingers, thumb.
        Ellipsoid((0.19, 0.225, -0.017), (0.075, 0.058, 0.058), "left_shoulder", LIMB_BLEND),
        Capsule(J["left_shoulder"], J["left_elbow"], 0.047, 0.037, "left_shoulder", LIMB_BLEND),
        Capsule(J["left_elbow"], J["left_wrist"], 0.037, 0.026, "left_elbow", 0.02),
        Ellipsoid((0.733, 0.216, -0.03), (0.062, 0.021, 0.043), "left_wrist", 0.018),
        Ellipsoid((0.81, 0.213, -0.035), (0.062, 0.016, 0.04), "left_hand", 0.015),
        Capsule((0.705, 0.207, -0.005), (0.765, 0.202, 0.038), 0.0145, 0.0125, "left_hand", DETAIL_BLEND),
        # Leg: thigh, shin, calf, heel, forefoot.
        Capsule(J["left_hip"], J["left_knee"], 0.082, 0.052, "left_hip", LIMB_BLEND),
        Capsule(J["left_knee"], J["left_ankle"], 0.05, 0.033, "left_knee", 0.02),
        Ellipsoid((0.1, -0.84, -0.03), (0.048, 0.11, 0.048), "left_knee", 0.02),
        Ellipsoid((0.1, -1.14, -0.035), (0.04, 0.04, 0.06), "left_ankle", 0.02),
        Ellipsoid((0.107, -1.15, 0.07), (0.046, 0.03, 0.088), "left_foot", 0.02),
    ]
    return centre + left + [_mirror_primitive(p) for p in left]


# ----------------------------------------------------------------------------------------------------
# Implicit surface → mesh
# ----------------------------------------------------------------------------------------------------

GRID_SPACING: float = 0.009
"""Marching-cubes grid spacing in metres."""

_GRID_MARGIN = 0.04
_FAR = 1.0


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum with blend radius ``k``; equals ``min(a, b)`` when ``|a − b| ≥ k``."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _body_field(primitives) -> tuple[np.ndarray, np.ndarray]:
    """Sample the body's signed distance (negative inside) on a grid; returns ``(field, origin)``.

    Each primitive is evaluated only inside its own bounding box grown by its blend radius and a
    margin: farther away it cannot change the smooth minimum.
    """
    lows, highs = zip(*(p.bounds() for p in primitives))
    low = np.floor((np.min(lows, axis=0) - _GRID_MARGIN) / GRID_SPACING) * GRID_SPACING
    high = np.max(highs, axis=0) + _GRID_MARGIN
    shape = tuple(int(n) for n in np.ceil((high - low) / GRID_SPACING).astype(int) + 1)
    axes = [low[i] + GRID_SPACING * np.arange(shape[i]) for i in range(3)]
    field = np.full(shape, _FAR)
    for primitive in primitives:
        p_low, p_high = primitive.bounds()
        grow = primitive.blend + _GRID_MARGIN
        start = np.maximum(np.floor((p_low - grow - low) / GRID_SPACING).astype(int), 0)
        stop = np.minimum(np.ceil((p_high + grow - low) / GRID_SPACING).astype(int) + 1, shape)
        block = tuple(slice(s, e) for s, e in zip(start, stop))
        x = axes[0][block[0], None, None]
        y = axes[1][None, block[1], None]
        z = axes[2][None, None, block[2]]
        field[block] = _smooth_min(field[block], primitive.distance(x, y, z), primitive.blend)
    # Flat soles: intersect with the half-space above the sole plane.
    field = np.maximum(field, (SOLE_HEIGHT - axes[1])[None, :, None])
    return field, low


def _extract_mesh(primitives) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the body field, cleaned into one closed outward-wound mesh."""
    import trimesh
    from skimage.measure import marching_cubes

    field, origin = _body_field(primitives)
    vertices, faces, _, _ = marching_cubes(field, level=0.0, spacing=(GRID_SPACING,) * 3, allow_degenerate=False)
    mesh = trimesh.Trimesh(vertices.astype(np.float64) + origin, faces.astype(np.int64), process=True)
    mesh.update_faces(mesh.nondegenerate_faces(height=1e-9))
    mesh.remove_unreferenced_vertices()
    components = mesh.split(only_watertight=False)
    if len(components) > 1:
        mesh = max(components, key=lambda m: len(m.faces))
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=6)
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


MESH_TARGET_FACES: int = 20000
"""Face count after decimation (about 10k vertices): the marching-cubes mesh is simplified by
shortest-edge collapse, which keeps it closed and manifold and evens out the triangle sizes."""


def _body_mesh(primitives) -> tuple[np.ndarray, np.ndarray]:
    """The body surface as a closed, outward-wound triangle mesh ``(vertices (V, 3), faces (F, 3))``."""
    import igl
    import trimesh

    vertices, faces = _extract_mesh(primitives)
    decimated = igl.decimate(np.asfortranarray(vertices), np.asfortranarray(faces.astype(np.int32)), MESH_TARGET_FACES)
    mesh = trimesh.Trimesh(np.asarray(decimated[0], dtype=np.float64), np.asarray(decimated[1], dtype=np.int64), process=True)
    if mesh.volume < 0:
        mesh.invert()
    if not (mesh.is_watertight and mesh.is_winding_consistent):
        raise RuntimeError("the procedural body mesh is not closed and consistently wound; the primitives need fixing")
    return np.ascontiguousarray(mesh.vertices, dtype=np.float64), np.ascontiguousarray(mesh.faces, dtype=np.int64)


# ----------------------------------------------------------------------------------------------------
# Skinning weights
# ----------------------------------------------------------------------------------------------------

SKINNING_TEMPERATURE: float = 0.02
"""τ (metres) of the soft assignment ``w_j ∝ exp(−(d_j − min_k d_k) / τ)``: how far past a joint the
influence of the neighbouring segment reaches before smoothing."""

SKINNING_SMOOTHING_STEPS: int = 30
"""Rounds of mesh-Laplacian smoothing (each averages a vertex's weights with its neighbours')."""

SKINNING_MIN_WEIGHT: float = 1e-3
"""Weights below this are dropped (then rows are renormalised), keeping the weights sparse like SMPL's."""


def _vertex_neighbour_matrix(num_vertices: int, faces: np.ndarray) -> sparse.csr_matrix:
    """Row-normalised adjacency ``(V, V)``: row i averages the neighbours of vertex i."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)).tocsr()
    adjacency.data[:] = 1.0  # duplicates from shared edges collapse to one
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sparse.diags(1.0 / degree) @ adjacency


def _joint_distances(vertices: np.ndarray, primitives) -> np.ndarray:
    """``(V, 24)``: each vertex's signed distance to the nearest primitive of each joint."""
    distances = np.full((len(vertices), NUM_SMPL_JOINTS), np.inf)
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    for primitive in primitives:
        j = _J[primitive.joint]
        distances[:, j] = np.minimum(distances[:, j], primitive.distance(x, y, z))
    return distances


def _skinning_weights(vertices: np.ndarray, faces: np.ndarray, primitives) -> np.ndarray:
    """Smooth skinning weights ``(V, 24)``, rows non-negative and summing to one."""
    distances = _joint_distances(vertices, primitives)
    weights = np.exp(-(distances - distances.min(axis=1, keepdims=True)) / SKINNING_TEMPERATURE)
    weights /= weights.sum(axis=1, keepdims=True)
    average = _vertex_neighbour_matrix(len(vertices), faces)
    for _ in range(SKINNING_SMOOTHING_STEPS):
        weights = 0.5 * weights + 0.5 * (average @ weights)
    weights[weights < SKINNING_MIN_WEIGHT] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------------
# Joint regressor
# ----------------------------------------------------------------------------------------------------

REGRESSOR_SUPPORT_SCALE: float = 1.6
"""A joint is regressed from the vertices within ``scale × (distance to the nearest vertex) + margin``."""
REGRESSOR_SUPPORT_MARGIN: float = 0.02
"""See :data:`REGRESSOR_SUPPORT_SCALE` (metres)."""


def _tilted_weights(points: np.ndarray, prior: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Positive weights ``∝ prior · exp(λ · (p − target))`` whose weighted mean is ``target``.

    The maximum-entropy correction of ``prior``: λ minimises the convex ``log Σ prior · exp(λ·(p − t))``
    (Newton's method with backtracking). ``None`` when ``target`` is not inside the points' hull.
    """
    offsets = points - target
    lam = np.zeros(3)

    def objective(lam):
        logits = offsets @ lam
        shift = logits.max()
        return shift + np.log(np.sum(prior * np.exp(logits - shift)))

    for _ in range(100):
        logits = offsets @ lam
        w = prior * np.exp(logits - logits.max())
        w /= w.sum()
        gradient = w @ offsets
        if np.linalg.norm(gradient) < 1e-9:
            return w
        centred = offsets - gradient
        hessian = (centred * w[:, None]).T @ centred + 1e-12 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        value, t = objective(lam), 1.0
        while objective(lam - t * step) > value - 1e-4 * t * (gradient @ step) and t > 1e-8:
            t *= 0.5
        lam = lam - t * step
    return None


def _joint_regressor(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """``(24, V)`` sparse, non-negative rows summing to one, with ``regressor @ vertices == joints``."""
    tree = cKDTree(vertices)
    regressor = np.zeros((len(joints), len(vertices)))
    for j, joint in enumerate(joints):
        nearest = tree.query(joint)[0]
        radius = REGRESSOR_SUPPORT_SCALE * nearest + REGRESSOR_SUPPORT_MARGIN
        for _ in range(20):
            index = np.array(sorted(tree.query_ball_point(joint, radius)))
            distance = np.linalg.norm(vertices[index] - joint, axis=1)
            prior = np.exp(-0.5 * (distance / (0.5 * radius)) ** 2)
            w = _tilted_weights(vertices[index], prior, joint) if len(index) >= 4 else None
            if w is not None:
                break
            radius *= 1.25
        else:
            raise RuntimeError(f"could not build a joint regressor for {SMPL_JOINT_NAMES[j]}")
        regressor[j, index] = w
    return regressor


# ----------------------------------------------------------------------------------------------------
# Shape space
# ----------------------------------------------------------------------------------------------------

_LEAF_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "head": (0.0, 1.0, 0.0),
    "left_hand": (1.0, 0.0, 0.0),
    "right_hand": (-1.0, 0.0, 0.0),
    "left_foot": (0.0, 0.0, 1.0),
    "right_foot": (0.0, 0.0, 1.0),
}
_TORSO_JOINTS = ("pelvis", "spine1", "spine2", "spine3", "neck")
"""Joints whose segment is scaled along the world axes: x (width), y (length), z (depth)."""


def _bone_directions() -> np.ndarray:
    """Unit direction ``(24, 3)`` of each joint's segment: towards its only child, or a fixed axis."""
    children = {j: [c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(NUM_SMPL_JOINTS)}
    directions = np.zeros((NUM_SMPL_JOINTS, 3))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        if name in _LEAF_DIRECTIONS:
            direction = np.asarray(_LEAF_DIRECTIONS[name])
        elif len(children[j]) == 1:
            direction = REST_JOINTS[children[j][0]] - REST_JOINTS[j]
        else:
            direction = np.array([0.0, 1.0, 0.0])
        directions[j] = direction / np.linalg.norm(direction)
    return directions


@dataclass(frozen=True)
class SegmentScale:
    """How one shape component scales a joint's segment: ``length`` along the bone, ``width`` across
    it (x for torso joints) and ``depth`` (z, torso joints only; limbs use ``width`` all round)."""

    length: float = 1.0
    width: float = 1.0
    depth: float | None = None


def _group(names, scale: SegmentScale) -> dict[str, SegmentScale]:
    table = {}
    for name in names:
        if name.startswith("*"):
            for side in ("left_", "right_"):
                table[side + name[1:]] = scale
        else:
            table[name] = scale
    return table


_ALL = list(_CENTRE_JOINTS) + ["*" + name[len("left_"):] for name in _LEFT_JOINTS]

SHAPE_COMPONENTS: tuple[tuple[str, dict[str, SegmentScale]], ...] = (
    ("stature", _group(_ALL, SegmentScale(length=1.03, width=1.01))),
    (
        "girth",
        _group(["pelvis", "spine3"], SegmentScale(width=1.07, depth=1.1))
        | _group(["spine1", "spine2"], SegmentScale(width=1.08, depth=1.16))
        | _group(["neck"], SegmentScale(width=1.06, depth=1.06))
        | _group(["*shoulder", "*elbow"], SegmentScale(width=1.06))
        | _group(["*hip"], SegmentScale(width=1.08))
        | _group(["*knee"], SegmentScale(width=1.04)),
    ),
    ("leg_length", _group(["*hip", "*knee"], SegmentScale(length=1.05)) | _group(["*ankle"], SegmentScale(length=1.03))),
    (
        "torso_length",
        _group(["pelvis", "spine1", "spine2", "spine3"], SegmentScale(length=1.06))
        | _group(["neck"], SegmentScale(length=1.04)),
    ),
    (
        "shoulder_width",
        _group(["*collar"], SegmentScale(length=1.2)) | _group(["spine3"], SegmentScale(width=1.05, depth=1.0)),
    ),
    ("hip_width", _group(["pelvis"], SegmentScale(width=1.1, depth=1.03)) | _group(["*hip"], SegmentScale(width=1.04))),
    (
        "arm_length",
        _group(["*shoulder", "*elbow"], SegmentScale(length=1.06))
        | _group(["*wrist", "*hand"], SegmentScale(length=1.04, width=1.04)),
    ),
    (
        "head_size",
        _group(["head"], SegmentScale(length=1.07, width=1.07)) | _group(["neck"], SegmentScale(width=1.03, depth=1.03)),
    ),
    ("chest_depth", _group(["spine3"], SegmentScale(width=1.02, depth=1.1)) | _group(["spine2"], SegmentScale(depth=1.05))),
    (
        "limb_muscle",
        _group(["*shoulder", "*elbow"], SegmentScale(width=1.1)) | _group(["*hip", "*knee"], SegmentScale(width=1.08)),
    ),
)
"""The ten shape components ``(name, per-joint segment scaling at +1 standard deviation)``; the
shape basis holds each component's vertex displacement. ``stature`` (component 0) changes the height
by about 3 % (5 cm) per unit."""


def _segment_map(j: int, scale: SegmentScale, direction: np.ndarray) -> np.ndarray:
    """The 3×3 linear map of joint j's segment for ``scale``."""
    if SMPL_JOINT_NAMES[j] in _TORSO_JOINTS:
        depth = scale.width if scale.depth is None else scale.depth
        return np.diag([scale.width, scale.length, depth])
    axial = np.outer(direction, direction)
    return scale.length * axial + scale.width * (np.eye(3) - axial)


def _deform(vertices: np.ndarray, weights: np.ndarray, scales: dict[str, SegmentScale]) -> np.ndarray:
    """Deform the template by per-segment affine maps blended with the skinning weights.

    Segment j maps ``x ↦ J'_j + M_j (x − J_j)``; the root stays put and each child joint follows its
    parent's map, ``J'_c = J'_p + M_p (J_c − J_p)``, so neighbouring maps agree at the shared joint and
    the blended field is continuous.
    """
    directions = _bone_directions()
    maps = np.stack(
        [_segment_map(j, scales.get(name, SegmentScale()), directions[j]) for j, name in enumerate(SMPL_JOINT_NAMES)]
    )
    moved = np.zeros_like(REST_JOINTS)
    moved[0] = REST_JOINTS[0]
    for j in range(1, NUM_SMPL_JOINTS):
        p = SMPL_PARENTS[j]
        moved[j] = moved[p] + maps[p] @ (REST_JOINTS[j] - REST_JOINTS[p])
    per_joint = moved[None] + np.einsum("jab,vjb->vja", maps, vertices[:, None, :] - REST_JOINTS[None])
    return np.einsum("vj,vja->va", weights, per_joint)


def _shape_directions(vertices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(V, 3, 10)``: each component's displacement of the template at +1 standard deviation."""
    return np.stack([_deform(vertices, weights, scales) - vertices for _, scales in SHAPE_COMPONENTS], axis=-1)


# ----------------------------------------------------------------------------------------------------
# Pose correctives
# ----------------------------------------------------------------------------------------------------

POSE_CORRECTIVE_STRENGTH: float = 0.15
"""c in the corrective ``δ = c · g_j · (v − J_j) · (1 − cos θ_j)``. Calibrated on the volume of the
closed mesh: over random plausible poses plain linear blend skinning loses 1–4 % of the body volume,
with c = 0.15 the posed volume stays within about 1 % of the rest volume (0.4 % on average)."""


def _pose_directions(vertices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(V, 3, 207)`` pose blend shapes: the volume-preserving joint corrective described above.

    For joint j, ``g_j = 4 s (1 − s)`` with ``s`` the vertex's total weight on j's subtree (1 on the
    ring blended half-half across the joint, 0 away from it). ``1 − cos θ = −½ tr(R − I)``, so the
    corrective sits on the three diagonal entries of the joint's ``R − I`` block.
    """
    subtree = np.eye(NUM_SMPL_JOINTS)
    for j in range(NUM_SMPL_JOINTS - 1, 0, -1):
        subtree[SMPL_PARENTS[j]] += subtree[j]  # row p accumulates all descendants (children come after parents)
    directions = np.zeros((len(vertices), 3, NUM_POSE_BASIS))
    for j in range(1, NUM_SMPL_JOINTS):
        s = weights @ subtree[j]
        ring = 4.0 * s * (1.0 - s)
        push = -0.5 * POSE_CORRECTIVE_STRENGTH * ring[:, None] * (vertices - REST_JOINTS[j])
        for diagonal in (0, 4, 8):
            directions[:, :, (j - 1) * 9 + diagonal] = push
    return directions


# ----------------------------------------------------------------------------------------------------
# Landmarks (smplx's extra keypoints)
# ----------------------------------------------------------------------------------------------------

_LANDMARKS_CENTRE: dict[str, tuple[float, float, float]] = {"nose": (0.0, 0.405, 0.14)}
_LANDMARKS_LEFT: dict[str, tuple[float, float, float]] = {
    "eye": (0.032, 0.445, 0.1),
    "ear": (0.092, 0.418, 0.0),
    "BigToe": (0.09, -1.16, 0.16),
    "SmallToe": (0.135, -1.16, 0.13),
    "Heel": (0.1, -1.17, -0.1),
    "thumb": (0.78, 0.203, 0.055),
    "index": (0.875, 0.213, -0.012),
    "middle": (0.875, 0.213, -0.03),
    "ring": (0.87, 0.213, -0.047),
    "pinky": (0.86, 0.213, -0.064),
}


def _landmark_vertex_ids(vertices: np.ndarray) -> dict[str, int]:
    """smplx ``vertex_ids``: the vertex nearest to each designed landmark (smplx's key names: ``reye``
    and ``RHeel`` are the person's right side, at −x)."""
    tree = cKDTree(vertices)
    points = dict(_LANDMARKS_CENTRE)
    for name, point in _LANDMARKS_LEFT.items():
        if name[0].isupper():
            points["L" + name], points["R" + name] = point, _mirror(point)
        else:
            points["l" + name], points["r" + name] = point, _mirror(point)
    return {name: int(tree.query(np.asarray(point))[1]) for name, point in points.items()}


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------

SMPL_ROOT_PARENT: int = 4294967295
"""The root's parent in SMPL files' ``kintree_table`` (uint32 −1)."""


def build_open_body_model() -> dict:
    """Build the open body model in the SMPL file format.

    Returns:
        ``v_template (V, 3)``, ``shapedirs (V, 3, 10)``, ``posedirs (V, 3, 207)``, ``J_regressor
        (24, V)``, ``weights (V, 24)``, ``kintree_table (2, 24)`` int64, ``f (F, 3)`` int64 (all float
        arrays float64), and ``landmark_vertex_ids`` (smplx's ``vertex_ids`` dict of ints).
    """
    primitives = _body_primitives()
    vertices, faces = _body_mesh(primitives)
    weights = _skinning_weights(vertices, faces, primitives)
    parents = np.array([SMPL_ROOT_PARENT] + list(SMPL_PARENTS[1:]), dtype=np.int64)
    return {
        "v_template": vertices,
        "shapedirs": _shape_directions(vertices, weights),
        "posedirs": _pose_directions(vertices, weights),
        "J_regressor": _joint_regressor(vertices, REST_JOINTS),
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(NUM_SMPL_JOINTS, dtype=np.int64)]),
        "f": faces,
        "landmark_vertex_ids": _landmark_vertex_ids(vertices),
    }


assert len(SHAPE_COMPONENTS) == NUM_BETAS
