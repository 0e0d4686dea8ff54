"""Volume rendering of a K-part field along rays (docs/method.md §4 and §5).

Stage 1 (:meth:`VolumeRenderer.render`): 36 stratified depths in each ray's ``[near, far]`` (the body's
box), 36 importance depths drawn from the stratified pass's weights, and the composite over the union
of the 72 samples (every sample's field is evaluated once). Stage 2 (:meth:`VolumeRenderer.render_depths`):
the composite at given depths only (the 11 depth-guided samples), decoding only the parts that
``ray_part_mask`` allows (semantic-guided sampling).

Rays that miss (``hit`` False), or whose ``ray_part_mask`` allows no part, are background and cost no
field query. Rays are rendered in chunks of ``chunk_size`` to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..checks import check_number_in_range
from ..precision import full_precision
from .compositor import (
    COMPOSITIONS,
    WHITE_BACKGROUND,
    alpha_composite,
    PartComposition,
    compose_parts,
    gradient_to_normal,
    integrate_alpha,
    integrate_depth,
    integrate_normals,
    integrate_part_masks,
    integrate_rgb,
    normals_to_picture,
)
from .fields import FieldOutput, PartField
from .ray_sampler import importance_depths, merge_depths, stratified_depths

NUM_STRATIFIED_SAMPLES: int = 36
"""Stratified samples per ray in stage 1 (docs/method.md §4)."""

NUM_IMPORTANCE_SAMPLES: int = 36
"""Importance samples per ray in stage 1 (docs/method.md §4); 72 samples per ray in all."""

DEFAULT_CHUNK_SIZE: int = 16384
"""Rays rendered at once (over the whole batch) by default."""


@dataclass
class RenderImages:
    """Rendered maps as images.

    Attributes:
        rgb: ``(B, 3, H, W)`` in [0, 1], white background.
        depth: ``(B, 1, H, W)`` distance along the ray from the camera centre; 0 on background.
        alpha: ``(B, 1, H, W)`` opacity in [0, 1].
        part_masks: ``(B, K, H, W)`` semantic masks, each in [0, 1], summing to ``alpha``.
        normals: ``(B, 3, H, W)`` world-frame unit normals (≈ 0 on background), or None.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    part_masks: torch.Tensor
    normals: Optional[torch.Tensor] = None

    @property
    def normal_picture(self) -> Optional[torch.Tensor]:
        """``(B, 3, H, W)`` normal map in [0, 1]: ``(n + 1)/2`` over a white background."""
        if self.normals is None:
            return None
        return normals_to_picture(self.normals, self.alpha, dim=1)


@dataclass
class RenderOutput:
    """Per-ray results of the volume renderer.

    Attributes:
        rgb: ``(B, R, 3)`` colour over a white background.
        depth: ``(B, R)`` weighted mean sample depth normalised by alpha (distance along the unit ray
            from its origin); 0 on background.
        alpha: ``(B, R)`` opacity ``Σ_s W_s``.
        part_masks: ``(B, R, K)`` semantic masks ``Σ_s W_s w_{k,s}``, summing to ``alpha``.
        normals: ``(B, R, 3)`` world-frame unit normals (≈ 0 on background), or None when not computed.
        sample_depths: ``(B, R, S)`` the sorted depths of the final composite (0 for background rays).
        sample_weights: ``(B, R, S)`` their compositing weights ``W_s`` (0 for background rays).
        num_field_queries: Part evaluations requested from the field (points × parts), over all passes.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    part_masks: torch.Tensor
    normals: Optional[torch.Tensor]
    sample_depths: torch.Tensor
    sample_weights: torch.Tensor
    num_field_queries: int

    def to_images(self, height: int, width: int) -> RenderImages:
        """The maps as ``(B, C, H, W)`` images, for rays generated row-major over ``height × width``."""
        batch, rays = self.alpha.shape
        if height * width != rays:
            raise ValueError(f"`height` × `width` must equal the number of rays {rays}, got {height} × {width}.")

        def image(values: torch.Tensor) -> torch.Tensor:
            return values.reshape(batch, height, width, -1).permute(0, 3, 1, 2)

        return RenderImages(
            rgb=image(self.rgb),
            depth=image(self.depth),
            alpha=image(self.alpha),
            part_masks=image(self.part_masks),
            normals=None if self.normals is None else image(self.normals),
        )


@dataclass
class _Samples:
    """Composed per-sample quantities of packed rays ``(B, M, S, ...)``, and the field's hints
    (:attr:`~semantichuman_hd.rendering.fields.FieldOutput.hint`) at the samples, if it gave any."""

    depths: torch.Tensor
    density: torch.Tensor
    part_weights: torch.Tensor
    rgb: torch.Tensor
    normals: Optional[torch.Tensor]
    hints: Optional[torch.Tensor] = None

    def merged(self, other: "_Samples", depths: torch.Tensor, order: torch.Tensor) -> "_Samples":
        """Both sample sets on their sorted union (``order`` from :func:`merge_depths`)."""

        def merge(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            if a is None or b is None:
                return None
            both = torch.cat([a, b], dim=2)
            index = order.reshape(*order.shape, *([1] * (both.ndim - 3))).expand(*order.shape, *both.shape[3:])
            return torch.gather(both, 2, index)

        return _Samples(
            depths=depths,
            density=merge(self.density, other.density),
            part_weights=merge(self.part_weights, other.part_weights),
            rgb=merge(self.rgb, other.rgb),
            normals=merge(self.normals, other.normals),
            hints=merge(self.hints, other.hints),
        )


def pack_rows(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices that gather the True entries of ``valid (B, N)`` to the front of each row (rays here,
    field points in :mod:`semantichuman_hd.scene`).

    Returns ``index (B, M)`` (M = the largest count in a row) and ``present (B, M)`` telling which packed
    slots hold a real entry (the others repeat index 0 and must be ignored).
    """
    counts = valid.sum(1)
    width = int(counts.max().item()) if valid.numel() else 0
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :width]
    present = torch.arange(width, device=valid.device).unsqueeze(0) < counts.unsqueeze(1)
    return order, present


def _gather_rays(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values (B, R, ...)`` at ray indices ``index (B, M)`` → ``(B, M, ...)``."""
    expanded = index.reshape(*index.shape, *([1] * (values.ndim - 2))).expand(*index.shape, *values.shape[2:])
    return torch.gather(values, 1, expanded)


class VolumeRenderer(nn.Module):
    """Composites a K-part field along rays (no parameters).

    Parameters:
        num_stratified: Stratified samples per ray in :meth:`render` (36 in the paper).
        num_importance: Importance samples per ray in :meth:`render` (36 in the paper; 0 disables the
            importance pass).
        composition: How parts combine, one of :data:`~semantichuman_hd.rendering.compositor.COMPOSITIONS`
            (``"sum_density"``, the paper; ``"sum_sdf"``, the CNeRF-style ablation).
        compute_normals: Whether to render normals (one extra backward pass through the field).
        chunk_size: Rays rendered at once, counted over the whole batch.
        coarse_gradients: Whether gradients flow through the stratified samples too. False (a training
            shortcut) evaluates them without a graph: they still enter the composite, so every output
            value is unchanged, but the parameters' gradients come from the importance samples only.
        skip_empty_rays: Evaluate no importance samples on rays whose stratified samples all have zero
            density (a training shortcut: such rays missed the body shell, and their importance samples,
            spread evenly over the same interval, almost always do too; they render as empty).
        normal_min_weight: Take normals only on the rays whose coverage (alpha) exceeds this ``t``, at
            their heaviest samples that together hold ``1 − t`` of the ray's compositing weight (a training
            shortcut; 0, the default: at every sample). After the composite, those samples are queried
            again with gradients and their normals integrated; the others count as zero. The normal map
            ``normalize(Σ W_s n_s)`` then misses only a share ``t`` of each ray's weight and the faint rays,
            while the normals' gradient and double backward run over one to three samples per ray of a
            sharp surface instead of all of them (more on a soft one, whose weight is spread).

    Normals are ``normalize(−∇_x sdf)`` per sample, with ``∇_x sdf = Σ_k c_k ∇_x sdf_k`` (``c_k`` the
    semantic weights for ``"sum_density"``, 1 per present part for ``"sum_sdf"``), taken by autograd
    with respect to the world points the field was queried at (also under ``torch.no_grad()``). With
    ``create_graph=True`` the normals are differentiable through each part's SDF gradient; the mixing
    coefficients ``c_k`` enter them as constants (they still receive gradients through colour and masks).
    """

    def __init__(
        self,
        num_stratified: int = NUM_STRATIFIED_SAMPLES,
        num_importance: int = NUM_IMPORTANCE_SAMPLES,
        composition: str = "sum_density",
        compute_normals: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        coarse_gradients: bool = True,
        skip_empty_rays: bool = False,
        normal_min_weight: float = 0.0,
    ):
        super().__init__()
        for name, value, minimum in (
            ("num_stratified", num_stratified, 1),
            ("num_importance", num_importance, 0),
            ("chunk_size", chunk_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if num_importance > 0 and num_stratified < 2:
            raise ValueError(f"`num_stratified` must be >= 2 for an importance pass, got {num_stratified}.")
        if composition not in COMPOSITIONS:
            raise ValueError(f"`composition` must be one of {list(COMPOSITIONS)}, got {composition!r}.")
        self.num_stratified = num_stratified
        self.num_importance = num_importance
        self.composition = composition
        self.compute_normals = bool(compute_normals)
        self.chunk_size = chunk_size
        if not isinstance(coarse_gradients, bool):
            raise ValueError(f"`coarse_gradients` must be True or False, got {coarse_gradients!r}.")
        self.coarse_gradients = coarse_gradients
        if not isinstance(skip_empty_rays, bool):
            raise ValueError(f"`skip_empty_rays` must be True or False, got {skip_empty_rays!r}.")
        self.skip_empty_rays = skip_empty_rays
        self.normal_min_weight = check_number_in_range(normal_min_weight, "normal_min_weight", 0.0, 1.0, include_high=False)

    @property
    def _normals_after_composite(self) -> bool:
        """Whether normals are taken after the composite, at the heaviest samples (``normal_min_weight``)."""
        return self.compute_normals and self.normal_min_weight > 0

    def extra_repr(self) -> str:
        return (
            f"num_stratified={self.num_stratified}, num_importance={self.num_importance}, "
            f"composition={self.composition!r}, compute_normals={self.compute_normals}, chunk_size={self.chunk_size}, "
            f"coarse_gradients={self.coarse_gradients}, skip_empty_rays={self.skip_empty_rays}, "
            f"normal_min_weight={self.normal_min_weight}"
        )

    @property
    def samples_per_ray(self) -> int:
        """Samples per ray of :meth:`render` (field evaluations per ray and part)."""
        return self.num_stratified + self.num_importance

    # ------------------------------------------------------------------ public API

    @full_precision
    def render(
        self,
        field: PartField,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor,
        far: torch.Tensor,
        beta: float | torch.Tensor,
        hit: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        perturb: bool = False,
        ray_part_mask: torch.Tensor | None = None,
        create_graph: bool = False,
    ) -> RenderOutput:
        """Stratified pass, importance pass, composite over the union of both sample sets.

        Parameters:
            field: The K-part field (:class:`~semantichuman_hd.rendering.fields.PartField`).
            origins, directions: ``(B, R, 3)`` rays; directions unit length.
            near, far: ``(B, R)`` each ray's sampling interval (e.g. from
                :func:`~semantichuman_hd.rendering.ray_sampler.ray_box_intersection`).
            beta: The SDF-to-density sharpness β: a number, a 0-dim tensor or a ``(B,)`` tensor.
            hit: Optional ``(B, R)`` bool; rays with False are background and query nothing.
            generator: Random generator for the sample jitter (``perturb=True``).
            perturb: Jitter the stratified and importance samples (training) or not (deterministic).
            ray_part_mask: Optional ``(B, R, K)`` bool: which parts may be evaluated along each ray.
            create_graph: Make the normals differentiable (for losses on normal maps); otherwise they
                are values without gradient (everything else stays differentiable).

        Returns:
            A :class:`RenderOutput`; ``sample_depths``/``sample_weights`` hold the union of the
            ``num_stratified + num_importance`` samples of each ray.
        """
        batch, rays = self._check_rays(origins, directions)
        near = self._check_ray_values("near", near, batch, rays)
        far = self._check_ray_values("far", far, batch, rays)
        hit = self._check_hit(hit, batch, rays, origins.device)
        ray_part_mask = self._check_ray_part_mask(ray_part_mask, batch, rays)

        def render_chunk(field, beta_t, num_parts, origins, directions, ray_mask, near, far):
            coarse_depths = stratified_depths(near, far, self.num_stratified, generator=generator, perturb=perturb)
            with torch.set_grad_enabled(torch.is_grad_enabled() and (self.coarse_gradients or self.num_importance == 0)):
                samples, queries = self._evaluate(field, origins, directions, coarse_depths, ray_mask, beta_t, num_parts, create_graph)
            if self.num_importance > 0:
                coarse_weights, _ = alpha_composite(samples.density, coarse_depths, far=far)
                fine_depths = importance_depths(
                    coarse_depths, coarse_weights, self.num_importance, generator=generator, perturb=perturb
                )
                fine_mask = ray_mask
                if self.skip_empty_rays:
                    fine_mask = ray_mask & (coarse_weights.detach().sum(-1) > 0).unsqueeze(-1)
                fine, fine_queries = self._evaluate(
                    field, origins, directions, fine_depths, fine_mask, beta_t, num_parts, create_graph
                )
                depths, order = merge_depths(coarse_depths, fine_depths)
                samples = samples.merged(fine, depths, order)
                queries += fine_queries
            return samples, far, queries

        return self._render_rays(
            field, origins, directions, beta, hit, ray_part_mask, render_chunk, (near, far), self.samples_per_ray, create_graph
        )

    @full_precision
    def render_depths(
        self,
        field: PartField,
        origins: torch.Tensor,
        directions: torch.Tensor,
        depths: torch.Tensor,
        beta: float | torch.Tensor,
        far: torch.Tensor | None = None,
        hit: torch.Tensor | None = None,
        ray_part_mask: torch.Tensor | None = None,
        create_graph: bool = False,
    ) -> RenderOutput:
        """Composite at the given sample depths only (stage 2: no importance pass).

        Parameters:
            field, origins, directions, beta, hit, ray_part_mask, create_graph: As in :meth:`render`.
            depths: ``(B, R, S)`` sample depths per ray (sorted here if they are not).
            far: Optional ``(B, R)`` end of the last sample's interval; by default the last interval is
                as long as the one before it.
        """
        batch, rays = self._check_rays(origins, directions)
        if depths.ndim != 3 or depths.shape[:2] != (batch, rays) or depths.shape[2] == 0:
            raise ValueError(f"`depths` must have shape ({batch}, {rays}, S) with S >= 1, got {tuple(depths.shape)}.")
        if far is None and depths.shape[2] < 2:
            raise ValueError("`far` is needed when `depths` holds a single sample per ray.")
        depths = torch.sort(depths, dim=-1).values
        if far is not None:
            far = self._check_ray_values("far", far, batch, rays)
        hit = self._check_hit(hit, batch, rays, origins.device)
        ray_part_mask = self._check_ray_part_mask(ray_part_mask, batch, rays)
        num_samples = depths.shape[2]

        def render_chunk(field, beta_t, num_parts, origins, directions, ray_mask, depths, *rest):
            far = rest[0] if rest else None
            samples, queries = self._evaluate(field, origins, directions, depths, ray_mask, beta_t, num_parts, create_graph)
            return samples, far, queries

        ray_values = (depths,) if far is None else (depths, far)
        return self._render_rays(
            field, origins, directions, beta, hit, ray_part_mask, render_chunk, ray_values, num_samples, create_graph
        )

    # ------------------------------------------------------------------ internals

    def _render_rays(self, field, origins, directions, beta, hit, ray_part_mask, render_chunk, ray_values, num_samples, create_graph):
        """Pack the active rays of each chunk, render them with ``render_chunk`` and scatter the results
        into background-filled per-ray outputs."""
        if self.compute_normals and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "Normals are taken by autograd, which torch.inference_mode() disables: render under "
                "torch.no_grad() instead, or build the renderer with compute_normals=False."
            )
        batch, rays = origins.shape[:2]
        beta_t = self._check_beta(beta, batch, origins)
        num_parts = self._num_parts(field, ray_part_mask, origins)
        active = hit if ray_part_mask is None else hit & ray_part_mask.any(-1)
        chunk = max(1, self.chunk_size // batch)
        total_queries = 0
        pieces: dict[str, list[torch.Tensor]] = {name: [] for name in RenderOutput.__dataclass_fields__}

        for start in range(0, rays, chunk):
            span = slice(start, min(start + chunk, rays))
            width = span.stop - span.start
            index, present = pack_rows(active[:, span])
            outputs = self._background(batch, width, num_parts, num_samples, origins)
            if index.shape[1] > 0:
                ray_mask = present.unsqueeze(-1).expand(-1, -1, num_parts)
                if ray_part_mask is not None:
                    ray_mask = ray_mask & _gather_rays(ray_part_mask[:, span], index)
                gathered = [_gather_rays(values[:, span], index) for values in (origins, directions, *ray_values)]
                samples, far, queries = render_chunk(field, beta_t, num_parts, gathered[0], gathered[1], ray_mask, *gathered[2:])
                weights, _ = alpha_composite(samples.density, samples.depths, far=far)
                if self._normals_after_composite:
                    samples.normals, normal_queries = self._weighty_sample_normals(
                        field, gathered[0], gathered[1], samples, weights, ray_mask, beta_t, num_parts, create_graph
                    )
                    queries += normal_queries
                total_queries += queries
                per_ray = self._composite(samples, weights)
                rows = torch.arange(batch, device=index.device).unsqueeze(1).expand_as(index)[present]
                cols = index[present]
                for name, values in per_ray.items():
                    outputs[name] = outputs[name].index_put((rows, cols), values[present])
            for name, values in outputs.items():
                pieces[name].append(values)

        results = {name: torch.cat(values, dim=1) for name, values in pieces.items() if values}
        return RenderOutput(
            rgb=results["rgb"],
            depth=results["depth"],
            alpha=results["alpha"],
            part_masks=results["part_masks"],
            normals=results.get("normals"),
            sample_depths=results["sample_depths"],
            sample_weights=results["sample_weights"],
            num_field_queries=total_queries,
        )

    def _background(self, batch: int, width: int, num_parts: int, num_samples: int, like: torch.Tensor) -> dict:
        """Per-ray outputs of ``width`` background rays."""
        zeros = lambda *shape: like.new_zeros(batch, width, *shape)  # noqa: E731
        outputs = {
            "rgb": like.new_full((batch, width, 3), WHITE_BACKGROUND),
            "depth": zeros(),
            "alpha": zeros(),
            "part_masks": zeros(num_parts),
            "sample_depths": zeros(num_samples),
            "sample_weights": zeros(num_samples),
        }
        if self.compute_normals:
            outputs["normals"] = zeros(3)
        return outputs

    def _composite(self, samples: _Samples, weights: torch.Tensor) -> dict:
        """Per-ray maps ``(B, M, ...)`` of composed samples with compositing ``weights (B, M, S)``."""
        outputs = {
            "rgb": integrate_rgb(weights, samples.rgb),
            "depth": integrate_depth(weights, samples.depths),
            "alpha": integrate_alpha(weights),
            "part_masks": integrate_part_masks(weights, samples.part_weights),
            "sample_depths": samples.depths,
            "sample_weights": weights,
        }
        if samples.normals is not None:
            outputs["normals"] = integrate_normals(weights, samples.normals)
        return outputs

    def _evaluate(
        self,
        field: PartField,
        origins: torch.Tensor,
        directions: torch.Tensor,
        depths: torch.Tensor,
        ray_mask: torch.Tensor,
        beta: torch.Tensor,
        num_parts: int,
        create_graph: bool,
    ) -> tuple[_Samples, int]:
        """Query the field at ``depths (B, M, S)`` along packed rays and compose the parts.

        ``ray_mask (B, M, K)`` says which parts each ray may evaluate. Returns the composed samples and
        the number of part evaluations requested."""
        batch, rays, count = depths.shape
        points = (origins.unsqueeze(2) + depths.unsqueeze(-1) * directions.unsqueeze(2)).reshape(batch, rays * count, 3)
        part_mask = ray_mask.unsqueeze(2).expand(batch, rays, count, num_parts).reshape(batch, rays * count, num_parts)
        queries = int(part_mask.sum().item())
        if bool(part_mask.all()):
            part_mask = None

        sdf_gradient = None
        if self.compute_normals and not self._normals_after_composite:
            composition, sdf_gradient, hint = self._query_with_gradient(field, points, part_mask, beta, batch, num_parts, create_graph)
        else:
            sdf, logits, hint = self._query(field, points, part_mask, batch, num_parts)
            composition = compose_parts(sdf, logits, beta, self.composition)

        def per_sample(values: torch.Tensor) -> torch.Tensor:
            return values.reshape(batch, rays, count, *values.shape[2:])

        normals = None if sdf_gradient is None else per_sample(gradient_to_normal(sdf_gradient))
        samples = _Samples(
            depths=depths,
            density=per_sample(composition.density),
            part_weights=per_sample(composition.part_weights),
            rgb=per_sample(composition.rgb),
            normals=normals,
            hints=None if hint is None or not self._normals_after_composite else per_sample(hint),  # kept for the re-query
        )
        return samples, queries

    def _query_with_gradient(self, field, points, part_mask, beta, batch: int, num_parts: int, create_graph: bool, hint=None):
        """The composed field at ``points (B, N, 3)``, ``∇_x sdf (B, N, 3)`` (zero where no part is
        present), by autograd also under ``torch.no_grad()``, differentiable with ``create_graph``; and the
        field's hints (see :meth:`_query`)."""
        grad_enabled = torch.is_grad_enabled()
        sdf_gradient = None
        with torch.enable_grad():
            query_points = points if points.requires_grad else points.detach().requires_grad_(True)
            sdf, logits, hint = self._query(field, query_points, part_mask, batch, num_parts, hint)
            composition = compose_parts(sdf, logits, beta, self.composition)
            present = sdf != float("-inf")
            target = (composition.sdf_gradient_weights.detach() * torch.where(present, sdf, torch.zeros_like(sdf))).sum()
            if target.requires_grad:
                (sdf_gradient,) = torch.autograd.grad(
                    target,
                    query_points,
                    create_graph=create_graph and grad_enabled,
                    retain_graph=grad_enabled,
                    allow_unused=True,
                )
            elif bool(present.any()):
                raise RuntimeError(
                    "Normals need the field's `sdf` to be differentiable with respect to the query points; "
                    "the field returned an sdf without gradient. Use compute_normals=False or fix the field."
                )
        if sdf_gradient is None:
            sdf_gradient = torch.zeros_like(points)
        if not grad_enabled:
            composition = _detached(composition)
        return composition, sdf_gradient, hint

    def _weighty_sample_normals(self, field, origins, directions, samples: _Samples, weights, ray_mask, beta, num_parts: int, create_graph: bool):
        """Sample normals ``(B, M, S, 3)`` of packed rays, on the rays of alpha above ``t = normal_min_weight``, at
        their heaviest samples holding ``1 − t`` of the ray's weight (queried again, with gradients, and with
        the field's hints there), zero at the others; and the number of part evaluations made."""
        depths = samples.depths
        batch, rays, count = depths.shape
        weights, threshold = weights.detach(), self.normal_min_weight
        alpha = weights.sum(-1, keepdim=True)
        heaviest, order = weights.sort(-1, descending=True)
        # In order of weight, a sample is kept while the heavier ones hold less than 1 − t of the weight.
        keep = (heaviest.cumsum(-1) - heaviest < (1 - threshold) * alpha) & (heaviest > 0)
        chosen = (torch.zeros_like(keep).scatter(-1, order, keep) & (alpha > threshold)).reshape(batch, rays * count)
        normals = depths.new_zeros(batch, rays * count, 3)
        index, present = pack_rows(chosen)
        if index.shape[1] == 0:
            return normals.reshape(batch, rays, count, 3), 0
        ray_index = index // count
        sample_depths = torch.gather(depths.reshape(batch, rays * count), 1, index)
        points = _gather_rays(origins, ray_index) + sample_depths.unsqueeze(-1) * _gather_rays(directions, ray_index)
        part_mask = _gather_rays(ray_mask, ray_index) & present.unsqueeze(-1)
        hint = None if samples.hints is None else _gather_rays(samples.hints.flatten(1, 2), index)
        _, sdf_gradient, _ = self._query_with_gradient(field, points, part_mask, beta, batch, num_parts, create_graph, hint)
        rows = torch.arange(batch, device=index.device).unsqueeze(1).expand_as(index)[present]
        normals = normals.index_put((rows, index[present]), gradient_to_normal(sdf_gradient)[present])
        return normals.reshape(batch, rays, count, 3), int(part_mask.sum().item())

    @staticmethod
    def _query(field: PartField, points: torch.Tensor, part_mask, batch: int, num_parts: int, hint=None):
        """Field sdf ``(B, N, K)`` with ``-inf`` wherever a part has no density, logits ``(B, N, K, 3)``
        zeroed there, and the field's hints ``(B, N, D)`` or None. ``hint``: the field's hints of an earlier
        query at these points, handed back."""
        output = field(points, part_mask) if hint is None else field(points, part_mask, hint=hint)
        if not isinstance(output, FieldOutput):
            raise TypeError(f"The field must return a FieldOutput, got {type(output).__name__}.")
        output.check(batch, points.shape[1], num_parts)
        sdf = output.masked_sdf(part_mask)
        present = (sdf != float("-inf")).unsqueeze(-1)
        logits = torch.where(present, output.rgb_logits, torch.zeros_like(output.rgb_logits))
        return sdf, logits, None if output.hint is None else output.hint.detach()

    # ------------------------------------------------------------------ argument checks

    @staticmethod
    def _check_rays(origins: torch.Tensor, directions: torch.Tensor) -> tuple[int, int]:
        if not isinstance(origins, torch.Tensor) or origins.ndim != 3 or origins.shape[-1] != 3 or origins.shape[0] == 0:
            shape = tuple(origins.shape) if isinstance(origins, torch.Tensor) else type(origins).__name__
            raise ValueError(f"`origins` must be a tensor of shape (B, R, 3) with B >= 1, got {shape}.")
        if not isinstance(directions, torch.Tensor) or directions.shape != origins.shape:
            shape = tuple(directions.shape) if isinstance(directions, torch.Tensor) else type(directions).__name__
            raise ValueError(f"`directions` must have the shape of `origins` {tuple(origins.shape)}, got {shape}.")
        return origins.shape[0], origins.shape[1]

    @staticmethod
    def _check_ray_values(name: str, values, batch: int, rays: int) -> torch.Tensor:
        if not isinstance(values, torch.Tensor) or values.shape != (batch, rays):
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"`{name}` must be a tensor of shape ({batch}, {rays}), got {shape}.")
        return values

    @staticmethod
    def _check_hit(hit, batch: int, rays: int, device) -> torch.Tensor:
        if hit is None:
            return torch.ones(batch, rays, dtype=torch.bool, device=device)
        if not isinstance(hit, torch.Tensor) or hit.dtype != torch.bool or hit.shape != (batch, rays):
            desc = (tuple(hit.shape), hit.dtype) if isinstance(hit, torch.Tensor) else type(hit).__name__
            raise ValueError(f"`hit` must be a bool tensor of shape ({batch}, {rays}), got {desc}.")
        return hit

    @staticmethod
    def _check_ray_part_mask(mask, batch: int, rays: int):
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 3 or mask.shape[:2] != (batch, rays):
            desc = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"`ray_part_mask` must be a bool tensor of shape ({batch}, {rays}, K), got {desc}.")
        return mask

    @staticmethod
    def _check_beta(beta, batch: int, like: torch.Tensor) -> torch.Tensor:
        """β as a 0-dim tensor or a ``(B, 1)`` tensor that broadcasts against ``(B, N)``."""
        beta_t = torch.as_tensor(beta, device=like.device, dtype=like.dtype) if not isinstance(beta, torch.Tensor) else beta
        if beta_t.ndim == 0:
            return beta_t
        if beta_t.shape == (batch,):
            return beta_t.unsqueeze(-1)
        raise ValueError(f"`beta` must be a number, a 0-dim tensor or a tensor of shape ({batch},), got {tuple(beta_t.shape)}.")

    @staticmethod
    def _num_parts(field: PartField, ray_part_mask, like: torch.Tensor) -> int:
        """K from ``ray_part_mask``, else ``field.num_parts``, else a query of zero points."""
        if ray_part_mask is not None:
            return ray_part_mask.shape[-1]
        num_parts = getattr(field, "num_parts", None)
        if isinstance(num_parts, int) and num_parts > 0:
            return num_parts
        with torch.no_grad():
            probe = field(like.new_zeros(like.shape[0], 0, 3), None)
        if not isinstance(probe, FieldOutput) or probe.sdf.ndim != 3:
            raise TypeError("The field must return a FieldOutput with `sdf` of shape (B, N, K).")
        return probe.sdf.shape[-1]


def _detached(composition: PartComposition) -> PartComposition:
    """The composition with every tensor detached (inference: drop the graph kept for the normals)."""
    return PartComposition(
        density=composition.density.detach(),
        part_weights=composition.part_weights.detach(),
        rgb=composition.rgb.detach(),
        sdf_gradient_weights=composition.sdf_gradient_weights.detach(),
    )
