"""Posed → canonical deformation by inverse linear blend skinning (docs/method.md §2), in pure PyTorch.

Forward skinning of a canonical point ``x_c`` (canonical pose, betas 0)::

    x_shaped = x_c + D(x_c) · betas                      # shape offset in the canonical pose
    x_p      = Σ_i w_i(x_c) · T_i · x_shaped,           T_i = G_i(θ, β) · G_i(θ_canonical, β)⁻¹

with fixed skinning weights ``w`` and canonical-pose shape directions ``D`` stored on a voxel grid
around the canonical body (filled by inverse-distance weighting of the nearest body vertices, as the
reference does), and ``G_i`` the body model's bone transforms. Posing a body blends, once per grid
node, the bones' transforms into ``A | t = Σ_i w_i T_i`` and the shape offset ``s = D · betas``: a
15-channel node table per body (:attr:`PosedBody.skinning`). Trilinear interpolation is linear, so
interpolating that table gives exactly the blend of the interpolated weights, and one gather of 8 table
rows gives a point's skinning ``x_p = A(x_c) (x_c + s(x_c)) + t(x_c)`` together with its exact
Jacobian (the interpolation weights' derivatives).

The inverse map solves ``forward(x_c) = x_p`` by Newton's method with that Jacobian, started from the
inverse transforms of the few bones nearest to ``x_p`` (the reference uses Broyden's method from the
same starts). Several starts may converge to different canonical points; the one nearest the canonical
body surface wins, because every part lives in a thin shell around the body. Points farther than
``cull_distance`` from the posed body are culled: first cheaply by per-bone capsules, then by the
canonical SDF prior of the solution (skinning is nearly isometric close to the surface).

The result is differentiable with respect to the posed points: one Newton step is re-applied with
gradients, so ``∂x_c/∂x_p`` is the inverse skinning Jacobian and SDF gradients carry from canonical to
posed space (normals).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..paths import user_cache_dir
from ..precision import full_precision
from .sdf_prior import BodySDFPrior
from .smpl_format import NUM_BETAS, NUM_SMPL_JOINTS
from .voxel_grid import VoxelGrid, cached_voxel_grids, grid_nodes, grid_resolution

_SKINNING_CACHE_VERSION = "v1"
"""Bump when the skinning-grid construction changes, so cached grids are rebuilt."""

CULL_DISTANCE: float = 0.12
"""Posed points farther than this from the posed body surface (metres) are culled (empty space)."""

SKINNING_VOXEL_SIZE: float = 0.025
"""Grid spacing of the canonical skinning-weight / shape-direction field, in metres."""

SKINNING_PADDING: float = 0.2
"""Margin of the skinning field's box around the canonical body, in metres."""

NUM_SKINNING_NEIGHBOURS: int = 10
"""Body vertices blended (inverse-distance weighted) into each skinning-grid node, as the reference."""

NUM_ROOT_INITS: int = 3
"""Solver starts per point: the inverse transforms of this many nearest distinct bones."""

SOLVER_ITERATIONS: int = 20
"""Maximum Newton iterations of the inverse skinning solve."""

SOLVER_TOLERANCE: float = 1e-5
"""A start converged when ``|forward(x_c) − x_p|`` is below this (metres)."""

MAX_SOLVER_STEP: float = 0.1
"""Largest canonical step of one solver iteration, in metres (damps early overshoot)."""

SKINNING_CHANNELS: int = 15
"""Channels of a posed body's node table: the blended rotation-and-scale ``A`` (9, row-major), the
blended translation ``t`` (3) and the shape offset ``s`` (3)."""

DEFORM_CHUNK_SIZE: int = 1 << 16
"""Posed points solved at a time (bounds the memory of the capsule test and the Newton solve)."""

COMPILE_MIN_POINTS: int = 2
"""With the compiled solver (:meth:`InverseLBSDeformer.compile_solver`), active sets smaller than this run
eagerly: under dynamic shapes a single point would compile a graph of its own. Every larger set runs
compiled, the last iterations' few hundred stragglers included (300 points: 0.15 ms per iteration against
0.74 ms eager on a 2-core CPU)."""

LEAF_EXTENSION: float = 0.6
"""Leaf bones (head, hands, feet) get a capsule of this fraction of their parent bone's length."""


@dataclass
class PosedBody:
    """A batch of posed bodies, ready for inverse skinning.

    Attributes:
        transforms: ``(B, 24, 4, 4)`` canonical-pose → posed transform of each bone.
        betas: ``(B, 10)`` shape coefficients.
        vertices: ``(B, V, 3)`` posed body vertices.
        segment_start, segment_end: ``(B, S, 3)`` posed bone capsule axes.
        segment_radius: ``(B, S)`` capsule radii (farthest body vertex assigned to each capsule).
        skinning: ``(B, D·H·W, 15)`` each body's node table on the deformer's skinning grid: blended
            ``A`` (9), ``t`` (3) and shape offset ``s`` (3) (see the module docstring).
    """

    transforms: torch.Tensor
    betas: torch.Tensor
    vertices: torch.Tensor
    segment_start: torch.Tensor
    segment_end: torch.Tensor
    segment_radius: torch.Tensor
    skinning: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.transforms.shape[0]

    def bounds(self, margin: float = CULL_DISTANCE) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3)`` corners of the posed body's bounding box grown by ``margin``."""
        return self.vertices.amin(1) - margin, self.vertices.amax(1) + margin


@dataclass
class DeformerOutput:
    """Attributes:
    canonical: ``(B, N, 3)`` canonical points (the input point where culled).
    valid: ``(B, N)`` False for culled points and points whose solve did not converge.
    """

    canonical: torch.Tensor
    valid: torch.Tensor


def _segment_distance(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Distances ``(M, S)`` from ``points (M, 3)`` to segments ``start, end (M, S, 3)``."""
    axis = end - start
    rel = points.unsqueeze(1) - start
    t = ((rel * axis).sum(-1) / axis.square().sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return (rel - t.unsqueeze(-1) * axis).norm(dim=-1)


def _capsule_distance(points: torch.Tensor, batch_index: torch.Tensor, posed: "PosedBody") -> torch.Tensor:
    """Distances ``(M, S)`` from flat ``points (M, 3)`` of bodies ``batch_index`` to their posed bone
    capsules (axis distance minus radius). Expanded into dot products, one matrix product per body, so no
    ``(M, S, 3)`` temporaries are made."""
    distance = points.new_empty(points.shape[0], posed.segment_start.shape[1])
    for body in range(posed.batch_size):
        rows = (batch_index == body).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        p = points[rows]
        start, end = posed.segment_start[body], posed.segment_end[body]
        axis = end - start
        length2 = axis.square().sum(-1).clamp_min(1e-12)
        along = p @ axis.T - (start * axis).sum(-1)  # (m, S) (p − start)·axis
        rel2 = p.square().sum(-1, keepdim=True) - 2 * p @ start.T + start.square().sum(-1)  # |p − start|²
        t = (along / length2).clamp(0, 1)
        squared = (rel2 - 2 * t * along + t.square() * length2).clamp_min(0)
        distance[rows] = squared.sqrt() - posed.segment_radius[body]
    return distance


def _solve_3x3(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``matrix⁻¹ vector`` for ``(M, 3, 3)`` and ``(M, 3)``, by the adjugate (elementwise, no LAPACK)."""
    a, b, c = matrix[:, 0].unbind(-1)
    d, e, f = matrix[:, 1].unbind(-1)
    g, h, i = matrix[:, 2].unbind(-1)
    co_a, co_b, co_c = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * co_a + b * co_b + c * co_c
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    adjugate = torch.stack(
        [
            torch.stack([co_a, c * h - b * i, b * f - c * e], -1),
            torch.stack([co_b, a * i - c * g, c * d - a * f], -1),
            torch.stack([co_c, b * g - a * h, a * e - b * d], -1),
        ],
        dim=-2,
    )
    return (adjugate @ vector.unsqueeze(-1)).squeeze(-1) / det.unsqueeze(-1)


def _bone_segments(parents: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Capsules as (start joint, end joint or -1 for a leaf extension, owning bone)."""
    starts, ends, owners = [], [], []
    children = {i: [j for j, p in enumerate(parents) if p == i] for i in range(len(parents))}
    for joint, parent in enumerate(parents):
        if parent >= 0:
            starts.append(parent), ends.append(joint), owners.append(parent)
        if not children[joint]:
            starts.append(joint), ends.append(-1), owners.append(joint)
    return starts, ends, owners


class InverseLBSDeformer(nn.Module):
    """Maps posed points to the canonical body space (see the module docstring).

    Parameters:
        body_model: A :class:`~semantichuman_hd.body.body_model.BodyModel` (the open body or SMPL).
        sdf_prior: The canonical body SDF prior, used to pick among solutions and to cull.
        cull_distance: Posed points farther than this from the body are culled.
        voxel_size: Spacing of the skinning grid.
    """

    def __init__(self, body_model, sdf_prior: BodySDFPrior, cull_distance: float = CULL_DISTANCE, voxel_size: float = SKINNING_VOXEL_SIZE):
        super().__init__()
        if not cull_distance > 0:
            raise ValueError(f"`cull_distance` must be positive, got {cull_distance!r}.")
        self.body_model = body_model
        self.sdf_prior = sdf_prior
        self.cull_distance = float(cull_distance)
        self._compiled_update = None  # see compile_solver

        canonical = body_model.canonical_vertices().detach().double()
        weights = body_model.lbs_weights.detach().double()
        shape_directions = self._canonical_shape_directions(body_model)
        grids = cached_voxel_grids(
            user_cache_dir() / "skinning",
            "skinning",
            (canonical.numpy(), weights.numpy(), shape_directions.numpy()),
            f"{_SKINNING_CACHE_VERSION}:{voxel_size}:{SKINNING_PADDING}:{NUM_SKINNING_NEIGHBOURS}",
            lambda: dict(zip(("weights", "shape"), self._build_skinning_grids(canonical, weights, shape_directions, voxel_size))),
        )
        self.weights_grid, self.shape_grid = grids["weights"], grids["shape"]

        parents = [int(p) for p in body_model.parents.tolist()]
        starts, ends, owners = _bone_segments(parents)
        self.register_buffer("segment_start_joint", torch.tensor(starts))
        self.register_buffer("segment_end_joint", torch.tensor(ends))
        self.register_buffer("segment_owner", torch.tensor(owners))
        self.register_buffer("joint_parent", torch.tensor([max(p, 0) for p in parents]))
        # Each vertex belongs to the nearest capsule among those of the bones that skin it most.
        canonical_joints = body_model.canonical_joints().detach().float()
        start, end = self._segments(canonical_joints.unsqueeze(0))
        count = canonical.shape[0]
        distance = _segment_distance(canonical.float(), start.expand(count, -1, -1), end.expand(count, -1, -1))
        owner_weight = weights.float()[:, self.segment_owner]
        strong = owner_weight >= owner_weight.amax(1, keepdim=True) * 0.5
        self.register_buffer("vertex_segment", torch.where(strong, distance, torch.full_like(distance, float("inf"))).argmin(1))

    @classmethod
    def from_body_model(cls, body_model, cull_distance: float = CULL_DISTANCE) -> "InverseLBSDeformer":
        """The deformer of ``body_model`` with its SDF prior (computed once per body model and cached)."""
        prior = BodySDFPrior.cached(body_model.canonical_vertices().detach().numpy(), body_model.faces.cpu().numpy())
        return cls(body_model, prior, cull_distance=cull_distance)

    @staticmethod
    @torch.no_grad()
    def _canonical_shape_directions(body_model) -> torch.Tensor:
        """``(V, 3, 10)`` change of canonical-pose vertices per unit of each beta (exactly linear)."""
        basis = torch.cat([torch.zeros(1, NUM_BETAS), torch.eye(NUM_BETAS)]).to(body_model.lbs_weights)
        pose = body_model.canonical_body_pose(NUM_BETAS + 1).to(basis)
        vertices = body_model(betas=basis, body_pose=pose).vertices.double()
        return (vertices[1:] - vertices[:1]).permute(1, 2, 0)

    @staticmethod
    def _build_skinning_grids(canonical, weights, shape_directions, voxel_size) -> tuple[VoxelGrid, VoxelGrid]:
        """Skinning weights (24 channels) and shape directions (3·10 channels, xyz-major) on grids,
        inverse-distance weighted from the nearest canonical vertices."""
        from scipy.spatial import cKDTree

        vertices = canonical.numpy()
        box_min = vertices.min(0) - SKINNING_PADDING
        box_max = vertices.max(0) + SKINNING_PADDING
        resolution = grid_resolution(box_min, box_max, voxel_size)
        nodes = grid_nodes(box_min, box_max, resolution).reshape(-1, 3)
        distance, index = cKDTree(vertices).query(nodes, k=NUM_SKINNING_NEIGHBOURS)
        inverse = 1.0 / np.maximum(distance, 1e-6)
        inverse /= inverse.sum(1, keepdims=True)

        def grid(values: np.ndarray) -> VoxelGrid:
            blended = np.einsum("nk,nkc->nc", inverse, values[index])
            blended = blended.reshape(resolution[2], resolution[1], resolution[0], -1).transpose(3, 0, 1, 2)
            return VoxelGrid(torch.from_numpy(np.ascontiguousarray(blended)).float(), box_min, box_max)

        return grid(weights.numpy()), grid(shape_directions.reshape(-1, 3 * NUM_BETAS).numpy())

    def _segments(self, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Capsule axes ``(B, S, 3)`` from joints ``(B, 24, 3)``."""
        start = joints[:, self.segment_start_joint]
        leaf = self.segment_end_joint < 0
        parent = joints[:, self.joint_parent[self.segment_start_joint]]
        extension = start + (start - parent) * LEAF_EXTENSION
        end = torch.where(leaf.view(1, -1, 1), extension, joints[:, self.segment_end_joint.clamp_min(0)])
        return start, end

    @full_precision
    def pose(self, betas=None, body_pose=None, global_orient=None, transl=None) -> PosedBody:
        """Pose the body model; arguments as :meth:`BodyModel.forward` (validated there)."""
        posed = self.body_model(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)
        batch = posed.vertices.shape[0]
        betas_used = (betas if betas is not None else posed.vertices.new_zeros(batch, NUM_BETAS)).to(posed.vertices)
        canonical = self.body_model(betas=betas_used, body_pose=self.body_model.canonical_body_pose(batch).to(posed.vertices))
        transforms = posed.bone_transforms @ torch.linalg.inv(canonical.bone_transforms)
        start, end = self._segments(posed.joints)
        distance = _segment_distance(
            posed.vertices.reshape(-1, 3),
            start[:, self.vertex_segment].reshape(-1, 1, 3),
            end[:, self.vertex_segment].reshape(-1, 1, 3),
        ).reshape(batch, -1)
        radius = distance.new_zeros(batch, start.shape[1]).scatter_reduce(
            1, self.vertex_segment.expand(batch, -1), distance, reduce="amax", include_self=True
        )
        return PosedBody(transforms, betas_used, posed.vertices, start, end, radius, self._skinning_table(transforms, betas_used))

    def _skinning_table(self, transforms: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """``(B, D·H·W, 15)`` node tables: the bones' transforms blended by each node's weights, and
        the node's shape offset (see :data:`SKINNING_CHANNELS`)."""
        batch = transforms.shape[0]
        bones = torch.cat([transforms[:, :, :3, :3].flatten(2), transforms[:, :, :3, 3]], dim=-1)  # (B, 24, 12)
        weights = self.weights_grid.node_table().to(bones)  # (N, 24)
        blended = (weights @ bones.permute(1, 0, 2).reshape(NUM_SMPL_JOINTS, -1)).unflatten(-1, (batch, 12))
        directions = self.shape_grid.node_table().to(bones).unflatten(-1, (3, NUM_BETAS))  # (N, 3, 10)
        offsets = torch.einsum("ncj,bj->bnc", directions, betas.to(bones))
        return torch.cat([blended.transpose(0, 1), offsets], dim=-1).contiguous()

    @full_precision
    def canonical_to_posed(self, canonical: torch.Tensor, posed: PosedBody) -> torch.Tensor:
        """Forward skinning of canonical points ``(B, N, 3)`` → posed points ``(B, N, 3)``."""
        batch_index = torch.arange(canonical.shape[0], device=canonical.device).repeat_interleave(canonical.shape[1])
        return self._skin(canonical.reshape(-1, 3), batch_index, posed.skinning)[0].reshape(canonical.shape)

    def _skin(self, canonical: torch.Tensor, batch_index: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward skinning of flat points ``(M, 3)`` of bodies ``batch_index (M,)`` by the bodies' node
        tables ``(B, D·H·W, 15)`` (:attr:`PosedBody.skinning`), and its exact Jacobian ``∂x_p/∂x_c
        (M, 3, 3)`` (differentiable in ``canonical`` through the value only)."""
        index, weights, gradients = self.weights_grid.corners(canonical.detach())
        table = table.to(canonical.dtype)
        flat = (index + (batch_index * table.shape[1]).unsqueeze(1)).reshape(-1)
        rows = table.reshape(-1, SKINNING_CHANNELS).index_select(0, flat).reshape(-1, 8, SKINNING_CHANNELS)
        # Value and its derivatives along x, y, z of every channel in one weighted sum: (M, 4, 15).
        blend = torch.cat([weights.unsqueeze(-1), gradients], dim=-1).transpose(1, 2)  # (M, 4, 8)
        sampled = blend @ rows
        values, slopes = sampled[:, 0], sampled[:, 1:]
        if canonical.requires_grad:  # the value's dependence on the point, through the corner weights
            values = values + (slopes @ canonical.unsqueeze(-1)).squeeze(-1) - (slopes @ canonical.detach().unsqueeze(-1)).squeeze(-1)
        rotation, translation, offset = values[:, :9].unflatten(-1, (3, 3)), values[:, 9:12], values[:, 12:]
        shaped = canonical + offset
        posed_points = (rotation @ shaped.unsqueeze(-1)).squeeze(-1) + translation
        # ∂x_p/∂x_j = A (e_j + ∂s/∂x_j) + (∂A/∂x_j) shaped + ∂t/∂x_j
        rotation_slope = slopes[:, :, :9].unflatten(-1, (3, 3)).detach()  # (M, j, 3, 3)
        shaped_slope = torch.eye(3, dtype=canonical.dtype, device=canonical.device) + slopes[:, :, 12:].detach()  # (M, j, 3)
        jacobian = (rotation.detach().unsqueeze(1) @ shaped_slope.unsqueeze(-1)).squeeze(-1)
        jacobian = jacobian + (rotation_slope @ shaped.detach().unsqueeze(1).unsqueeze(-1)).squeeze(-1) + slopes[:, :, 9:12].detach()
        return posed_points, jacobian.transpose(1, 2)

    @full_precision
    def posed_to_canonical(
        self,
        points: torch.Tensor,
        posed: PosedBody,
        chunk_size: int = DEFORM_CHUNK_SIZE,
        num_inits: int = NUM_ROOT_INITS,
        mask: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> DeformerOutput:
        """Inverse skinning of posed ``points (B, N, 3)`` (see the module docstring), ``chunk_size``
        points at a time to bound memory, from ``num_inits`` solver starts per point (the nearest bones).
        With ``mask (B, N)`` bool only those points are solved; the others come back as culled. With
        ``starts (B, N, 3)`` each point is solved from that one canonical start instead (an earlier
        solution of the same point: the solve then stops at its first iteration, with the same result)."""
        if isinstance(num_inits, bool) or not isinstance(num_inits, int) or not 1 <= num_inits <= NUM_SMPL_JOINTS:
            raise ValueError(f"`num_inits` must be an integer in [1, {NUM_SMPL_JOINTS}], got {num_inits!r}.")
        if points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != posed.batch_size:
            raise ValueError(f"`points` must have shape ({posed.batch_size}, N, 3), got {tuple(points.shape)}.")
        batch, count = points.shape[:2]
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (batch, count)):
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"`mask` must be a bool tensor of shape ({batch}, {count}), got {got}.")
        if starts is not None and (not isinstance(starts, torch.Tensor) or starts.shape != points.shape):
            got = tuple(starts.shape) if isinstance(starts, torch.Tensor) else type(starts).__name__
            raise ValueError(f"`starts` must be a tensor of the shape of `points` {tuple(points.shape)}, got {got}.")
        flat = points.reshape(-1, 3)
        flat_starts = None if starts is None else starts.detach().reshape(-1, 3).to(flat.dtype)
        batch_index = torch.arange(batch, device=points.device).repeat_interleave(count)
        selected = None
        if mask is not None and not bool(mask.all()):
            selected = mask.reshape(-1).nonzero().squeeze(1)
            flat, batch_index = flat[selected], batch_index[selected]
            flat_starts = None if flat_starts is None else flat_starts[selected]
        solved = [
            self._solve(
                flat[begin : begin + chunk_size], batch_index[begin : begin + chunk_size], posed, num_inits,
                None if flat_starts is None else flat_starts[begin : begin + chunk_size],
            )
            for begin in range(0, flat.shape[0], chunk_size)
        ]
        if not solved:
            return DeformerOutput(points.clone(), points.new_zeros(points.shape[:2], dtype=torch.bool))
        canonical = torch.cat([chunk for chunk, _ in solved])
        valid = torch.cat([chunk for _, chunk in solved])
        if selected is not None:  # the points not asked for come back as culled ones: unmoved, invalid
            canonical = points.reshape(-1, 3).index_put((selected,), canonical)
            valid = points.new_zeros(batch * count, dtype=torch.bool).index_put((selected,), valid)
        return DeformerOutput(canonical.reshape(points.shape), valid.reshape(batch, count))

    def compile_solver(self, enabled: bool = True) -> bool:
        """Run the Newton iterations of :meth:`posed_to_canonical` through ``torch.compile`` (an optional
        fast path: one fused kernel per iteration instead of some fifty small operations, about 2× faster
        on a CPU; the first call compiles, which takes seconds and a C++ compiler on a CPU). The results
        equal the eager solver's up to rounding. If compiling fails, a warning says why and the solver
        stays eager. Returns whether the compiled solver is on."""
        self._compiled_update = torch.compile(self._newton_update, dynamic=True) if enabled else None
        return self._compiled_update is not None

    def _newton_update(
        self, x: torch.Tensor, target: torch.Tensor, batch_index: torch.Tensor, table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One damped Newton iteration of flat points ``x (M, 3)``: the residuals ``forward(x) − target``
        ``(M, 3)``, the Jacobians ``(M, 3, 3)`` and the steps ``(M, 3)``."""
        mapped, jacobian = self._skin(x, batch_index, table)
        residual = mapped - target
        step = -_solve_3x3(jacobian, residual)
        step = step * (MAX_SOLVER_STEP / step.norm(dim=-1, keepdim=True).clamp_min(MAX_SOLVER_STEP))
        return residual, jacobian, step

    def _update(self, x, target, batch_index, table):
        """:meth:`_newton_update`, compiled when :meth:`compile_solver` is on and the set is large."""
        compiled = self._compiled_update
        if compiled is not None and x.shape[0] >= COMPILE_MIN_POINTS and not torch.is_grad_enabled():
            try:
                return compiled(x, target, batch_index, table)
            except Exception as error:  # no C++ compiler, an unsupported platform…: stay eager
                warnings.warn(f"The compiled inverse-skinning solver failed ({type(error).__name__}: {error}); solving eagerly.")
                self._compiled_update = None
        return self._newton_update(x, target, batch_index, table)

    def _newton(self, x: torch.Tensor, target: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Solve ``forward(x) = target`` for flat starts ``x (M, 3)`` by damped Newton iterations with the
        exact skinning Jacobian; points leave the active set once converged.

        Returns the solutions, their residuals ``forward(x) − target (M, 3)`` and the Jacobians there
        ``(M, 3, 3)``."""
        residuals = x.new_zeros(x.shape[0], 3)
        jacobians = x.new_zeros(x.shape[0], 3, 3)
        active = torch.arange(x.shape[0], device=x.device)
        for iteration in range(SOLVER_ITERATIONS + 1):
            residual, jacobian, step = self._update(x[active], target[active], batch_index[active], posed.skinning)
            residuals[active] = residual
            jacobians[active] = jacobian
            still = residual.norm(dim=-1) >= SOLVER_TOLERANCE
            if iteration == SOLVER_ITERATIONS or not still.any():
                break
            active, step = active[still], step[still]
            x = x.index_put((active,), x[active] + step)
        return x, residuals, jacobians

    def _solve(
        self, flat: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody, num_inits: int = NUM_ROOT_INITS,
        given_starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse skinning of flat posed points ``(M, 3)`` of bodies ``batch_index (M,)``, from the
        nearest bones or from ``given_starts (M, 3)``."""
        canonical = flat.clone()
        valid = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        num_bones = NUM_SMPL_JOINTS

        # 1. Cheap cull by bone capsules grown by the cull distance; rank bones by capsule distance.
        with torch.no_grad():
            capsule = _capsule_distance(flat.detach(), batch_index, posed)
            near = capsule.amin(1) <= self.cull_distance
        keep = near.nonzero().squeeze(1)
        if keep.numel() == 0:
            return canonical, valid
        target = flat[keep]
        kept_batch = batch_index[keep]
        num_inits = min(num_inits, num_bones) if given_starts is None else 1

        with torch.no_grad():
            if given_starts is None:
                bone_distance = capsule.new_full((keep.numel(), num_bones), float("inf")).scatter_reduce(
                    1, self.segment_owner.expand(keep.numel(), -1), capsule[keep], reduce="amin"
                )
                bones = bone_distance.topk(num_inits, dim=1, largest=False).indices  # (M, C) distinct bones
                inverse = torch.linalg.inv(posed.transforms)[kept_batch.unsqueeze(1), bones]  # (M, C, 4, 4)
                starts = torch.einsum("mcrk,mk->mcr", inverse[..., :3, :3], target.detach()) + inverse[..., :3, 3]
            else:
                starts = given_starts[keep]
            x, residuals, jacobians = self._newton(
                starts.reshape(-1, 3),
                target.detach().repeat_interleave(num_inits, 0),
                kept_batch.repeat_interleave(num_inits),
                posed,
            )
            x = x.reshape(-1, num_inits, 3)
            # 2. Among converged starts, the solution nearest the canonical body surface wins.
            shell = self.sdf_prior(x).abs()
            error = residuals.norm(dim=-1).reshape(-1, num_inits)
            score = torch.where(error < SOLVER_TOLERANCE, shell, torch.full_like(shell, float("inf")))
            pick = torch.arange(x.shape[0], device=x.device) * num_inits + score.argmin(1)
            chosen = x.reshape(-1, 3)[pick]
            jacobian, residual = jacobians[pick], residuals[pick]
            ok = score.amin(1) <= self.cull_distance

        # 3. One differentiable Newton step with the exact skinning Jacobian at the solution (its
        #    residual is the solver's last one, re-attached to the posed points): ∂x_c/∂x_p is then the
        #    inverse skinning Jacobian.
        chosen = chosen - _solve_3x3(jacobian, residual + target.detach() - target)
        return canonical.index_put((keep,), chosen), valid.index_put((keep,), ok)
