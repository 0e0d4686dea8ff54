"""Posed → canonical deformation by inverse linear blend skinning (docs/method.md §2), in pure PyTorch.

Forward skinning of a canonical point ``x_c`` (canonical pose, betas 0)::

    x_shaped = x_c + D(x_c) · betas                      # shape offset in the canonical pose
    x_p      = Σ_i w_i(x_c) · T_i · x_shaped,           T_i = G_i(θ, β) · G_i(θ_canonical, β)⁻¹

with fixed skinning weights ``w`` and canonical-pose shape directions ``D`` stored on a voxel grid
around the canonical body (filled by inverse-distance weighting of the nearest body vertices, as the
reference does), and ``G_i`` the body model's bone transforms. The inverse map solves
``forward(x_c) = x_p`` by Broyden's method (as the reference, but batched PyTorch), started from the
inverse transforms of the few bones nearest to ``x_p``, with the blended skinning rotation as the first
Jacobian. Several
starts may converge to different canonical points; the one nearest the canonical body surface wins,
because every part lives in a thin shell around the body. Points farther than ``cull_distance`` from
the posed body are culled: first cheaply by per-bone capsules, then by the canonical SDF prior of the
solution (skinning is nearly isometric close to the surface).

The result is differentiable with respect to the posed points: one Newton step is re-applied with
gradients, so ``∂x_c/∂x_p`` is the inverse skinning Jacobian and SDF gradients carry from canonical to
posed space (normals).
"""

from __future__ import annotations

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
"""Maximum Broyden iterations of the inverse skinning solve."""

SOLVER_TOLERANCE: float = 1e-5
"""A start converged when ``|forward(x_c) − x_p|`` is below this (metres)."""

MAX_SOLVER_STEP: float = 0.1
"""Largest canonical step of one solver iteration, in metres (damps early overshoot)."""

JACOBIAN_STEP: float = 1e-3
"""Central-difference step (metres) of the skinning Jacobian used for gradients (well below a voxel)."""

DEFORM_CHUNK_SIZE: int = 1 << 16
"""Posed points solved at a time (bounds the memory of the capsule test and the Newton solve)."""

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
        shape_offsets: canonical-pose shape offset ``D(x)·betas`` of each body, a :class:`VoxelGrid`
            with ``3·B`` channels (body ``b`` in channels ``3b..3b+2``).
    """

    transforms: torch.Tensor
    betas: torch.Tensor
    vertices: torch.Tensor
    segment_start: torch.Tensor
    segment_end: torch.Tensor
    segment_radius: torch.Tensor
    shape_offsets: VoxelGrid

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
        directions = self.shape_grid.values.unflatten(0, (3, NUM_BETAS))
        offsets = torch.einsum("cjzyx,bj->bczyx", directions, betas_used.to(directions)).flatten(0, 1)
        shape_offsets = VoxelGrid(offsets, self.shape_grid.box_min, self.shape_grid.box_max)
        return PosedBody(transforms, betas_used, posed.vertices, start, end, radius, shape_offsets)

    @full_precision
    def canonical_to_posed(self, canonical: torch.Tensor, posed: PosedBody) -> torch.Tensor:
        """Forward skinning of canonical points ``(B, N, 3)`` → posed points ``(B, N, 3)``."""
        batch_index = torch.arange(canonical.shape[0], device=canonical.device).repeat_interleave(canonical.shape[1])
        return self._forward_flat(canonical.reshape(-1, 3), batch_index, posed)[0].reshape(canonical.shape)

    def _forward_flat(self, canonical: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward skinning of flat points ``(M, 3)``; also returns the blended 3×3 linear part ``(M, 3, 3)``."""
        weights = self.weights_grid(canonical)
        offsets = posed.shape_offsets(canonical).unflatten(-1, (posed.batch_size, 3))
        shaped = canonical + offsets[torch.arange(canonical.shape[0], device=canonical.device), batch_index]
        # Blend the 4×4 transforms of every body, then keep each point's own body: (M, B, 12) → (M, 12).
        per_body = weights @ posed.transforms[:, :, :3, :].permute(1, 0, 2, 3).reshape(NUM_SMPL_JOINTS, -1)
        blended = per_body.unflatten(-1, (posed.batch_size, 3, 4))[torch.arange(canonical.shape[0], device=canonical.device), batch_index]
        posed_points = torch.einsum("mrc,mc->mr", blended[:, :, :3], shaped) + blended[:, :, 3]
        return posed_points, blended[:, :, :3]

    @full_precision
    def posed_to_canonical(
        self, points: torch.Tensor, posed: PosedBody, chunk_size: int = DEFORM_CHUNK_SIZE, num_inits: int = NUM_ROOT_INITS
    ) -> DeformerOutput:
        """Inverse skinning of posed ``points (B, N, 3)`` (see the module docstring), ``chunk_size``
        points at a time to bound memory, from ``num_inits`` solver starts per point (the nearest bones)."""
        if isinstance(num_inits, bool) or not isinstance(num_inits, int) or not 1 <= num_inits <= NUM_SMPL_JOINTS:
            raise ValueError(f"`num_inits` must be an integer in [1, {NUM_SMPL_JOINTS}], got {num_inits!r}.")
        if points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != posed.batch_size:
            raise ValueError(f"`points` must have shape ({posed.batch_size}, N, 3), got {tuple(points.shape)}.")
        batch, count = points.shape[:2]
        flat = points.reshape(-1, 3)
        batch_index = torch.arange(batch, device=points.device).repeat_interleave(count)
        canonical, valid = [], []
        for begin in range(0, flat.shape[0], chunk_size):
            chunk_canonical, chunk_valid = self._solve(flat[begin : begin + chunk_size], batch_index[begin : begin + chunk_size], posed, num_inits)
            canonical.append(chunk_canonical)
            valid.append(chunk_valid)
        if not canonical:
            return DeformerOutput(points.clone(), points.new_zeros(points.shape[:2], dtype=torch.bool))
        return DeformerOutput(torch.cat(canonical).reshape(points.shape), torch.cat(valid).reshape(batch, count))

    def _broyden(self, x: torch.Tensor, target: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve ``forward(x) = target`` for flat starts ``x (M, 3)``; returns solutions and residual norms.

        "Good" Broyden updates of the inverse Jacobian, starting from the inverse blended rotation;
        points leave the active set once converged."""
        residual_norm = torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
        mapped, jacobian = self._forward_flat(x, batch_index, posed)
        residual = mapped - target
        inverse_jacobian = torch.linalg.inv(jacobian)
        active = torch.arange(x.shape[0], device=x.device)
        for _ in range(SOLVER_ITERATIONS):
            norm = residual.norm(dim=-1)
            residual_norm[active] = norm
            still = norm >= SOLVER_TOLERANCE
            if not still.any():
                break
            active, residual, inverse_jacobian = active[still], residual[still], inverse_jacobian[still]
            step = -(inverse_jacobian @ residual.unsqueeze(-1)).squeeze(-1)
            step_norm = step.norm(dim=-1, keepdim=True)
            step = step * (MAX_SOLVER_STEP / step_norm.clamp_min(MAX_SOLVER_STEP))
            x_new = x[active] + step
            mapped, _ = self._forward_flat(x_new, batch_index[active], posed)
            residual_new = mapped - target[active]
            delta_residual = residual_new - residual
            # J⁻¹ += (Δx − J⁻¹Δr) Δxᵀ J⁻¹ / (Δxᵀ J⁻¹ Δr)
            inverse_delta = (inverse_jacobian @ delta_residual.unsqueeze(-1)).squeeze(-1)
            row = (step.unsqueeze(-2) @ inverse_jacobian).squeeze(-2)
            denominator = (step * inverse_delta).sum(-1, keepdim=True)
            denominator = torch.where(denominator.abs() < 1e-12, torch.full_like(denominator, 1e-12), denominator)
            inverse_jacobian = inverse_jacobian + (step - inverse_delta).unsqueeze(-1) * row.unsqueeze(-2) / denominator.unsqueeze(-1)
            x = x.index_put((active,), x_new)
            residual = residual_new
        else:
            residual_norm[active] = residual.norm(dim=-1)
        return x, residual_norm

    def _solve(
        self, flat: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody, num_inits: int = NUM_ROOT_INITS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse skinning of flat posed points ``(M, 3)`` of bodies ``batch_index (M,)``."""
        canonical = flat.clone()
        valid = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        num_bones = NUM_SMPL_JOINTS

        # 1. Cheap cull by bone capsules grown by the cull distance; rank bones by capsule distance.
        with torch.no_grad():
            capsule = _segment_distance(flat, posed.segment_start[batch_index], posed.segment_end[batch_index])
            capsule = capsule - posed.segment_radius[batch_index]
            near = capsule.amin(1) <= self.cull_distance
        keep = near.nonzero().squeeze(1)
        if keep.numel() == 0:
            return canonical, valid
        target = flat[keep]
        kept_batch = batch_index[keep]
        num_inits = min(num_inits, num_bones)

        with torch.no_grad():
            bone_distance = capsule.new_full((keep.numel(), num_bones), float("inf")).scatter_reduce(
                1, self.segment_owner.expand(keep.numel(), -1), capsule[keep], reduce="amin"
            )
            bones = bone_distance.topk(num_inits, dim=1, largest=False).indices  # (M, C) distinct bones
            inverse = torch.linalg.inv(posed.transforms)[kept_batch.unsqueeze(1), bones]  # (M, C, 4, 4)
            starts = torch.einsum("mcrk,mk->mcr", inverse[..., :3, :3], target.detach()) + inverse[..., :3, 3]
            x, error = self._broyden(
                starts.reshape(-1, 3),
                target.detach().repeat_interleave(num_inits, 0),
                kept_batch.repeat_interleave(num_inits),
                posed,
            )
            x = x.reshape(-1, num_inits, 3)
            # 2. Among converged starts, the solution nearest the canonical body surface wins.
            shell = self.sdf_prior(x).abs()
            score = torch.where(error.reshape(-1, num_inits) < SOLVER_TOLERANCE, shell, torch.full_like(shell, float("inf")))
            chosen = x[torch.arange(x.shape[0], device=x.device), score.argmin(1)]
            ok = score.amin(1) <= self.cull_distance

        # 3. One differentiable Newton step with the full skinning Jacobian (weights vary in space, so
        #    it is taken by central differences): ∂x_c/∂x_p is then the exact inverse Jacobian.
        jacobian = self._jacobian(chosen, kept_batch, posed)
        mapped, _ = self._forward_flat(chosen, kept_batch, posed)
        chosen = chosen - torch.linalg.solve(jacobian, (mapped.detach() - target).unsqueeze(-1)).squeeze(-1)
        return canonical.index_put((keep,), chosen), valid.index_put((keep,), ok)

    @torch.no_grad()
    def _jacobian(self, canonical: torch.Tensor, batch_index: torch.Tensor, posed: PosedBody) -> torch.Tensor:
        """``(M, 3, 3)`` Jacobian of forward skinning at flat canonical points, by central differences."""
        columns = []
        for axis in range(3):
            shift = torch.zeros(3, dtype=canonical.dtype, device=canonical.device)
            shift[axis] = JACOBIAN_STEP
            plus, _ = self._forward_flat(canonical + shift, batch_index, posed)
            minus, _ = self._forward_flat(canonical - shift, batch_index, posed)
            columns.append((plus - minus) / (2 * JACOBIAN_STEP))
        return torch.stack(columns, dim=-1)
