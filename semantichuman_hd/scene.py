"""A posed scene: the body (deformer + SDF prior) and canonical part fields, seen as one posed-space
:class:`~semantichuman_hd.rendering.fields.PartField` that the volume renderer queries.

Per part ``k`` at a posed point ``x`` (docs/method.md §2)::

    x_c   = deformer(x)                              # posed → canonical
    sdf_k = SDF_body(x_c) + Δsdf_k(x_c)              # fixed body prior + the part's residual

and a part has no density (``sdf_k = −inf``) where the point was culled or lies outside the shell
``|SDF_body(x_c)| > shell_width``. Only surviving points reach the canonical field, packed per body so
culling saves decoder queries.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .body.deformer import NUM_ROOT_INITS, InverseLBSDeformer, PosedBody
from .body.sdf_prior import PRIOR_SHELL_WIDTH
from .rendering.fields import FieldOutput
from .rendering.volume_renderer import pack_rows

CanonicalField = Callable[[torch.Tensor, Optional[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
"""``(points (B, M, 3) canonical, part_mask (B, M, K) | None) → (Δsdf (B, M, K), rgb_logits (B, M, K, 3))``."""


class PosedPartField:
    """Posed-space field of K parts over a batch of posed bodies.

    Parameters:
        deformer: The inverse-skinning deformer (holds the body model and the SDF prior).
        posed: The posed bodies, from :meth:`InverseLBSDeformer.pose`.
        canonical_field: Evaluates Δsdf and RGB logits of the K parts at canonical points.
        num_parts: K.
        shell_width: Parts have density only where ``|SDF_body| <= shell_width``.
        num_root_inits: Inverse-skinning solver starts per point (the deformer's default: 3).
    """

    def __init__(
        self,
        deformer: InverseLBSDeformer,
        posed: PosedBody,
        canonical_field: CanonicalField,
        num_parts: int,
        shell_width: float = PRIOR_SHELL_WIDTH,
        num_root_inits: int = NUM_ROOT_INITS,
    ):
        self.deformer = deformer
        self.posed = posed
        self.canonical_field = canonical_field
        self.num_parts = num_parts
        self.shell_width = shell_width
        self.num_root_inits = num_root_inits

    def __call__(self, points: torch.Tensor, part_mask: torch.Tensor | None = None, hint: torch.Tensor | None = None) -> FieldOutput:
        """Fields at posed ``points (B, N, 3)``; ``part_mask (B, N, K)`` limits which parts are decoded.

        The output's :attr:`~semantichuman_hd.rendering.fields.FieldOutput.hint` holds the points'
        canonical solutions ``(B, N, 3)``; given back as ``hint`` for the same points, the inverse-skinning
        solve starts there and stops at once (same result, a fraction of the work)."""
        batch, count = points.shape[:2]
        wanted = None if part_mask is None else part_mask.any(-1)  # points no part may use are not deformed
        deformed = self.deformer.posed_to_canonical(points, self.posed, num_inits=self.num_root_inits, mask=wanted, starts=hint)
        # The body prior only where the solve succeeded (most samples of a ray are culled before it).
        solved = deformed.valid.nonzero(as_tuple=True)
        prior = points.new_full((batch, count), float("inf")).index_put(solved, self.deformer.sdf_prior(deformed.canonical[solved]))
        valid = deformed.valid & (prior.abs() <= self.shell_width)
        if wanted is not None:
            valid = valid & wanted

        sdf = points.new_full((batch, count, self.num_parts), float("-inf"))
        logits = points.new_zeros((batch, count, self.num_parts, 3))
        hint = deformed.canonical.detach()
        index, present = pack_rows(valid)
        if index.shape[1] == 0:
            return FieldOutput(sdf=sdf, rgb_logits=logits, valid=valid, hint=hint)
        packed_points = torch.gather(deformed.canonical, 1, index.unsqueeze(-1).expand(-1, -1, 3))
        packed_mask = present.unsqueeze(-1).expand(-1, -1, self.num_parts)
        if part_mask is not None:
            packed_mask = packed_mask & torch.gather(part_mask, 1, index.unsqueeze(-1).expand(-1, -1, self.num_parts))
        # Without a part mask every part is decoded at every packed point: the dense path (one
        # grid_sample per plane for all parts) is cheaper than listing (point, part) pairs.
        delta_sdf, rgb_logits = self.canonical_field(packed_points, None if part_mask is None else packed_mask)
        # Geometry stays in the points' precision; a half-precision field is promoted to it.
        delta_sdf, rgb_logits = delta_sdf.to(sdf.dtype), rgb_logits.to(logits.dtype)
        packed_prior = torch.gather(prior, 1, index)
        packed_sdf = torch.where(packed_mask, packed_prior.unsqueeze(-1) + delta_sdf, torch.full_like(delta_sdf, float("-inf")))
        packed_logits = torch.where(packed_mask.unsqueeze(-1), rgb_logits, torch.zeros_like(rgb_logits))

        # Scatter back; absent slots point at index 0 and are dropped by writing only present ones.
        rows = torch.arange(batch, device=points.device).unsqueeze(1).expand_as(index)[present]
        cols = index[present]
        sdf = sdf.index_put((rows, cols), packed_sdf[present])
        logits = logits.index_put((rows, cols), packed_logits[present])
        return FieldOutput(sdf=sdf, rgb_logits=logits, valid=valid, hint=hint)


def centering_transl(vertices: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` translation that moves posed bodies ``(B, V, 3)`` so their bounding box is centred on
    the origin, where the fixed camera looks."""
    return -(vertices.amin(1) + vertices.amax(1)) / 2


def pose_centred(deformer: InverseLBSDeformer, betas=None, body_pose=None, global_orient=None) -> PosedBody:
    """Pose the bodies (arguments as :meth:`InverseLBSDeformer.pose`) with their bounding boxes centred on
    the origin, where the fixed camera looks."""
    placed = deformer.body_model(betas=betas, body_pose=body_pose, global_orient=global_orient)
    return deformer.pose(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=centering_transl(placed.vertices))


def body_only_field(points: torch.Tensor, part_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-part canonical field that is exactly the body prior (Δsdf = 0) in neutral grey."""
    return points.new_zeros(*points.shape[:-1], 1), points.new_zeros(*points.shape[:-1], 1, 3)


def render_posed_field(renderer, field: PosedPartField, cameras, height: int, width: int, beta, **render_kwargs):
    """Render ``field`` from ``cameras`` at ``height × width``: rays are restricted to the posed bodies'
    bounding boxes grown by the cull distance (rays that miss get no field queries).

    Returns the renderer's :class:`~semantichuman_hd.rendering.volume_renderer.RenderOutput` with one
    entry per pixel (row-major)."""
    from .rendering.ray_sampler import ray_box_intersection

    origins, directions = cameras.generate_rays(height, width)
    box_min, box_max = field.posed.bounds(margin=field.deformer.cull_distance)
    near, far, hit = ray_box_intersection(origins, directions, box_min, box_max)
    return renderer.render(field, origins, directions, near, far, beta=beta, hit=hit, **render_kwargs)
