"""What the renderer asks of a scene: a K-part field evaluated at world (posed) points.

Rendering never imports the models or the body code; a scene (tri-plane decoders behind an inverse-skinning
deformer, or an analytic test shape) is any callable that follows :class:`PartField`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import torch


@dataclass
class FieldOutput:
    """The K parts' fields at N points.

    Attributes:
        sdf: ``(B, N, K)`` the FULL signed distance of each part, positive inside (the body prior plus
            the part's residual). ``-inf`` means the part has no density at that point (culled, outside
            its shell, or not requested); such entries must carry no meaning otherwise.
        rgb_logits: ``(B, N, K, 3)`` colour logits of each part (colour = sigmoid of the blend).
        valid: Optional ``(B, N)`` bool; False for points the field culled: every part has exactly zero
            density there, whatever ``sdf`` says.
        hint: Optional ``(B, N, D)`` per-point values the renderer hands back, row for row, when it queries
            some of the same points again (``field(points, part_mask, hint=...)``, the normals' re-query):
            whatever saves the field work there (the posed scene's canonical solutions, where its
            inverse-skinning solve then starts). A field that returns none is never handed one.
    """

    sdf: torch.Tensor
    rgb_logits: torch.Tensor
    valid: Optional[torch.Tensor] = None
    hint: Optional[torch.Tensor] = None

    @property
    def num_parts(self) -> int:
        """K."""
        return self.sdf.shape[-1]

    def check(self, batch_size: int, num_points: int, num_parts: int | None = None) -> None:
        """Raise ``ValueError`` unless the shapes are ``(B, N, K)``, ``(B, N, K, 3)`` and ``(B, N)``."""
        expected_k = self.sdf.shape[-1] if num_parts is None else num_parts
        if self.sdf.shape != (batch_size, num_points, expected_k):
            raise ValueError(
                f"The field returned `sdf` of shape {tuple(self.sdf.shape)}; expected "
                f"({batch_size}, {num_points}, K = {expected_k})."
            )
        if self.rgb_logits.shape != (batch_size, num_points, expected_k, 3):
            raise ValueError(
                f"The field returned `rgb_logits` of shape {tuple(self.rgb_logits.shape)}; expected "
                f"({batch_size}, {num_points}, {expected_k}, 3)."
            )
        if self.valid is not None and self.valid.shape != (batch_size, num_points):
            raise ValueError(
                f"The field returned `valid` of shape {tuple(self.valid.shape)}; expected ({batch_size}, {num_points})."
            )
        if self.hint is not None and (self.hint.ndim != 3 or self.hint.shape[:2] != (batch_size, num_points)):
            raise ValueError(
                f"The field returned `hint` of shape {tuple(self.hint.shape)}; expected ({batch_size}, {num_points}, D)."
            )

    def masked_sdf(self, part_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, K)`` sdf with ``-inf`` wherever the point is invalid or ``part_mask (B, N, K)`` is
        False: every entry that must have zero density is ``-inf``."""
        sdf = self.sdf
        keep = None
        if self.valid is not None:
            keep = self.valid.unsqueeze(-1)
        if part_mask is not None:
            keep = part_mask if keep is None else keep & part_mask
        if keep is None:
            return sdf
        return torch.where(keep, sdf, torch.full_like(sdf, float("-inf")))


@runtime_checkable
class PartField(Protocol):
    """A K-part field in world (posed) space.

    ``field(points, part_mask=None) -> FieldOutput``

    * ``points``: ``(B, N, 3)`` world-space points; batch element ``b`` is evaluated with the scene
      (latent codes, pose) of batch element ``b``.
    * ``part_mask``: optional ``(B, N, K)`` bool; False means "do not evaluate this part here": the field
      should skip the work and return ``sdf = -inf`` there (the renderer enforces the ``-inf`` anyway).
      Stage 2's semantic-guided sampling and the renderer's padding of ragged batches use it.

    Requirements the renderer relies on:

    * Pointwise: the outputs at a point depend only on that point (and its batch element), so that the
      SDF gradient of each point can be taken with one backward pass over all points.
    * For normals, ``sdf`` must be differentiable with respect to ``points`` (a deformer in the field
      carries the gradient from canonical to posed space).
    * Optionally a ``num_parts`` attribute (K); otherwise the renderer learns K from a query of zero
      points.
    * A field that returns :attr:`FieldOutput.hint` must accept it back as a keyword, ``hint (B, N, D)``
      (the hint rows of the points queried again), and return the same outputs as without it.
    """

    def __call__(self, points: torch.Tensor, part_mask: Optional[torch.Tensor] = None) -> FieldOutput: ...
