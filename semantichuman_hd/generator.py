"""The two-stage generator as one differentiable function, shared by the pipeline, the benchmarks and
training (docs/method.md §3–§6), in the manner of EG3D's ``TriPlaneGenerator.synthesis(ws, c)``::

    ws            = mapper(z)                                      # (B, K, num_ws, w_dim)
    lr            = local_generators.synthesize(ws)                # K tri-planes
    stage 1       = volume render of the posed K-part field        # image, K masks, depth, normals, alpha
    stage 2       = super_resolution.synthesize(lr, ws), rendered with the depth- and semantics-guided
                    samples of the stage-1 render (the stage-1 branch runs without gradients)

Everything is posed and rendered in the *body frame* (the body model's output without translation or
scale); a dataset label's ``scale · (SMPL + transl)`` placement is folded into its camera by
:func:`scene_from_labels`. Rays are bounded either by the posed body's box (``ray_bounds="box"``, the
pipeline's reference) or by the union of the posed bone capsules grown by the cull distance
(``"capsules"``): both contain every point the deformer keeps, so they render the same field; the
capsules skip the background rays and most of the empty depth range (training's fast path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from diffusers.utils import BaseOutput
from torch import nn

from .body.deformer import NUM_ROOT_INITS, InverseLBSDeformer, PosedBody
from .checks import check_choice, check_non_negative_int, check_number_in_range, check_positive_int
from .data.format import LABEL_DIM, LABEL_SLICES
from .models.local_generators import LocalGenerators, TriplaneOutput
from .models.mapper import SemanticMapper
from .models.super_resolution import SuperResolution3D
from .models.triplane import TexelTables
from .parts import NUM_PARTS
from .rendering.cameras import Cameras
from .rendering.compositor import COMPOSITIONS
from .rendering.guided_sampling import SELECTION_MODES, aggregate_depths, guided_support, select_parts, upsample_depth_candidates
from .rendering.ray_sampler import ray_box_intersection
from .rendering.volume_renderer import DEFAULT_CHUNK_SIZE, RenderOutput, VolumeRenderer
from .scene import PosedPartField

RAY_BOUNDS: tuple[str, ...] = ("box", "capsules")
"""How rays are bounded: the posed body's box grown by the cull distance, or the posed bone capsules
grown by it (see the module docstring)."""

LAST_INTERVALS: tuple[str, ...] = ("gap", "exit")
"""``RenderSettings.guided_last_interval`` values."""

STAGES: tuple[int, ...] = (1, 2)
"""Stage 1 renders the low-resolution tri-planes; stage 2 the super-resolved ones, guided by stage 1."""

CAPSULE_CHUNK_RAYS: int = 1 << 15
"""Rays tested against the capsules at a time (bounds the ``rays × capsules`` memory)."""

SHELL_POINT_NOISE: float = 0.05
"""Regulariser points are canonical body vertices moved by Gaussian noise of this deviation (metres):
they cover the shell where the parts have density."""

DENSITY_TV_OFFSET: float = 0.004
"""Jitter (metres) between the two points of each density-TV pair."""


@dataclass
class RenderSettings:
    """How the generator renders (the pipeline's config holds the same values)."""

    low_resolution: int
    """Side of the stage-1 image, pixels."""
    high_resolution: int
    """Side of the stage-2 image, pixels (a multiple of ``low_resolution``)."""
    num_stratified: int
    """Stratified samples per ray in stage 1."""
    num_importance: int
    """Importance samples per ray in stage 1."""
    selection_mode: str = "threshold"
    """Stage-2 semantic-guided sampling (``"threshold"`` or ``"argmax"``)."""
    depth_aggregation: bool = True
    """Stage-2 candidates from the 3×3 neighbourhood's depths (off: the "w/o DA" ablation)."""
    composition: str = "sum_density"
    """How parts combine (``"sum_density"``, the paper, or the ``"sum_sdf"`` ablation)."""
    num_root_inits: int = NUM_ROOT_INITS
    """Inverse-skinning solver starts per sample (the nearest bones); training may use fewer."""
    coarse_gradients: bool = True
    """Stage 1: gradients flow through the stratified samples too (False, a training shortcut: they
    enter the composite as constants, so the render is unchanged and only its gradients differ)."""
    skip_empty_rays: bool = False
    """Stage 1: no importance samples on rays whose stratified samples found no density (a training
    shortcut, :class:`~semantichuman_hd.rendering.volume_renderer.VolumeRenderer`'s ``skip_empty_rays``)."""
    normal_min_weight: float = 0.0
    """Both stages: normals only on the rays of alpha above this ``t``, at their heaviest samples holding
    ``1 − t`` of the ray's weight (a training shortcut,
    :class:`~semantichuman_hd.rendering.volume_renderer.VolumeRenderer`'s ``normal_min_weight``; 0: at
    every sample)."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Rays rendered at once (over the batch). Training's stage-2 patches fit one chunk: every chunk's
    texel gathers give the 6 HR tri-planes a full-size gradient to zero-fill and add up."""
    guided_last_interval: str = "gap"
    """Stage 2: the last guided sample's interval is as long as the gap before it (``"gap"``) or ends
    where the ray leaves the body's bounds (``"exit"``). Measured against the brute-force render
    (``benchmarks/bench_sr.py --hr 512``): 34.5 / 36.9 dB (argmax / threshold) with ``"gap"``, 28.7 /
    29.1 dB with ``"exit"``, whose long last interval turns the faint density just outside a surface
    into a halo."""

    def __post_init__(self):
        for name in ("low_resolution", "high_resolution", "num_stratified", "num_root_inits", "chunk_size"):
            check_positive_int(getattr(self, name), name)
        check_non_negative_int(self.num_importance, "num_importance")
        if self.high_resolution % self.low_resolution:
            raise ValueError(f"`high_resolution` ({self.high_resolution}) must be a multiple of `low_resolution` ({self.low_resolution}).")
        check_choice(self.selection_mode, SELECTION_MODES, "selection_mode")
        check_choice(self.composition, COMPOSITIONS, "composition")
        check_number_in_range(self.normal_min_weight, "normal_min_weight", 0.0, 1.0, include_high=False)
        check_choice(self.guided_last_interval, LAST_INTERVALS, "guided_last_interval")

    @property
    def scale(self) -> int:
        """Stage-2 upsampling factor."""
        return self.high_resolution // self.low_resolution


@dataclass
class GeneratorOutput(BaseOutput):
    """What :meth:`SemanticHumanGenerator.synthesis` renders.

    Attributes:
        image: ``(B, 3, H, W)`` colour in [0, 1], white background.
        masks: ``(B, K, H, W)`` part masks (they sum to ``alpha``).
        depth: ``(B, 1, H, W)`` distance along the ray (0 on the background).
        normals: ``(B, 3, H, W)`` unit world-frame normals (≈ 0 on the background).
        alpha: ``(B, 1, H, W)`` coverage.
        render: the per-ray :class:`~semantichuman_hd.rendering.volume_renderer.RenderOutput`.
        triplanes: the stage-1 tri-planes (:class:`~semantichuman_hd.models.local_generators.TriplaneOutput`).
        hr_planes: stage 2's tri-planes ``(B, K, 3, C, sH, sW)``, or None in stage 1; zero for the parts
            ``hr_parts`` leaves out.
        hr_parts: stage 2's ``(B, K)`` bool: the (person, part) HR tri-planes synthesised (every part
            with ``all_hr_parts``, else those the rendered pixels read); None in stage 1.
        low: stage 2's stage-1 render (a ``GeneratorOutput`` without gradients), or None in stage 1.

    Every field after the first defaults to None, as in diffusers' and transformers' outputs: Accelerate's
    mixed-precision wrapper rebuilds a model's output from a mapping of its fields (``type(out)(dict)``).
    """

    image: torch.Tensor
    masks: Optional[torch.Tensor] = None
    depth: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None
    alpha: Optional[torch.Tensor] = None
    render: Optional[RenderOutput] = None
    triplanes: Optional[TriplaneOutput] = None
    hr_planes: Optional[torch.Tensor] = None
    hr_parts: Optional[torch.Tensor] = None
    low: Optional["GeneratorOutput"] = None


@dataclass
class FieldRegularizers(BaseOutput):
    """Field values at canonical shell points, for the eikonal and density-TV losses.

    Attributes:
        sdf_gradients: ``(B, N, K, 3)`` ∇ of each part's full SDF (prior + Δsdf); differentiable in the
            generator's parameters.
        sdf: ``(B, N, K)`` each part's SDF at the points.
        sdf_jittered: ``(B, N, K)`` the same at points moved by :data:`DENSITY_TV_OFFSET`.
    """

    sdf_gradients: torch.Tensor
    sdf: torch.Tensor
    sdf_jittered: torch.Tensor


def scene_from_labels(labels: torch.Tensor) -> tuple[Cameras, dict[str, torch.Tensor]]:
    """Cameras in the body frame and SMPL arguments from flat dataset label vectors ``(B, 111)``
    (``docs/dataset_format.md``; the layout is ``semantichuman_hd.data.format.LABEL_SLICES``).

    The posed body is ``scale · (SMPL + transl)`` in the world; in the body frame (SMPL's own output)
    a world point is ``x / scale − transl``, so the camera centre moves there (rotation and intrinsics
    stay), and rendered depths are world depths divided by ``scale``.

    Returns:
        ``(cameras, smpl)`` with ``smpl = {"betas", "body_pose", "global_orient"}``.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 2 or labels.shape[1] != LABEL_DIM:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"`labels` must be a tensor of shape (B, {LABEL_DIM}) (dataset label vectors), got {shape}.")
    if not torch.isfinite(labels).all():
        raise ValueError("`labels` contains NaN or infinite values.")
    labels = labels.float()
    field = lambda name: labels[:, LABEL_SLICES[name]]  # noqa: E731
    cam2world = field("cam2world").reshape(-1, 4, 4).clone()
    intrinsics = field("intrinsics").reshape(-1, 3, 3)
    scale = field("scale")
    if not bool((scale > 0).all()):
        raise ValueError(f"the labels' `scale` must be positive, got {scale.flatten().tolist()}.")
    cam2world[:, :3, 3] = cam2world[:, :3, 3] / scale - field("transl")
    smpl = {name: field(name) for name in ("global_orient", "body_pose", "betas")}
    return Cameras(cam2world, intrinsics), smpl


def capsule_ray_bounds(
    origins: torch.Tensor, directions: torch.Tensor, posed: PosedBody, margin: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip rays to the posed bone capsules grown by ``margin``.

    A ray hits when its line passes within ``radius + margin`` of a capsule's axis segment; its interval
    is the union over the hit capsules of ``[min(t_a, t_b) − ρ, max(t_a, t_b) + ρ]`` (``t_a``, ``t_b`` the
    ray parameters of the segment's ends, ``ρ = radius + margin``), which holds every point within ``ρ``
    of the segment. The deformer culls exactly the points outside every grown capsule, so nothing it
    keeps lies outside these bounds.

    Parameters:
        origins, directions: ``(B, R, 3)`` rays, unit directions.
        posed: the posed bodies (their ``segment_start``, ``segment_end``, ``segment_radius``).
        margin: growth of every capsule (the deformer's cull distance).

    Returns:
        near, far, hit: ``(B, R)``, as :func:`~semantichuman_hd.rendering.ray_sampler.ray_box_intersection`.
    """
    start, end = posed.segment_start.unsqueeze(1), posed.segment_end.unsqueeze(1)  # (B, 1, S, 3)
    reach = (posed.segment_radius + margin).unsqueeze(1)  # (B, 1, S)
    nears, fars, hits = [], [], []
    for begin in range(0, origins.shape[1], CAPSULE_CHUNK_RAYS):
        o = origins[:, begin : begin + CAPSULE_CHUNK_RAYS].unsqueeze(2)  # (B, r, 1, 3)
        d = directions[:, begin : begin + CAPSULE_CHUNK_RAYS].unsqueeze(2)
        to_start, axis = start - o, end - start  # (B, r, S, 3), (B, 1, S, 3)

        def perpendicular(v: torch.Tensor) -> torch.Tensor:
            return v - (v * d).sum(-1, keepdim=True) * d

        w, e = perpendicular(to_start), perpendicular(axis.expand_as(to_start))
        u = (-(w * e).sum(-1) / e.square().sum(-1).clamp_min(1e-12)).clamp(0, 1)
        distance = (w + u.unsqueeze(-1) * e).norm(dim=-1)  # (B, r, S) ray-line to segment
        t_start = (to_start * d).sum(-1)
        t_end = ((end - o) * d).sum(-1)
        inside = distance <= reach
        low = torch.where(inside, torch.minimum(t_start, t_end) - reach, torch.full_like(t_start, math.inf))
        high = torch.where(inside, torch.maximum(t_start, t_end) + reach, torch.full_like(t_start, -math.inf))
        hit = inside.any(-1)
        near = low.amin(-1).clamp_min(0)
        far = high.amax(-1)
        hit = hit & (far > near)
        nears.append(torch.where(hit, near, torch.zeros_like(near)))
        fars.append(torch.where(hit, far, torch.zeros_like(far)))
        hits.append(hit)
    return torch.cat(nears, 1), torch.cat(fars, 1), torch.cat(hits, 1)


def check_window_pixels(pixels, batch: int, height: int, width: int) -> None:
    """Raise unless ``pixels`` is a ``(batch, R)`` integer tensor of flat indices into a ``height × width`` window."""
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] != batch or pixels.dtype.is_floating_point:
        shape = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"`pixels` must be a ({batch}, R) integer tensor of HR window pixel indices, got {shape}.")
    if pixels.numel() and not bool(((pixels >= 0) & (pixels < height * width)).all()):
        raise ValueError(f"`pixels` must lie in [0, {height * width}) (the {height}×{width} HR window).")


def column_window(height: int, width: int, columns: Optional[tuple[int, int]]) -> torch.Tensor | None:
    """Flat row-major pixel indices of the columns ``[c0, c1)`` of a ``height × width`` image (None: all)."""
    if columns is None:
        return None
    c0, c1 = columns
    if not (isinstance(c0, int) and isinstance(c1, int) and 0 <= c0 < c1 <= width):
        raise ValueError(f"`columns` must be (c0, c1) with 0 <= c0 < c1 <= {width}, got {columns!r}.")
    rows = torch.arange(height).unsqueeze(1) * width
    return (rows + torch.arange(c0, c1).unsqueeze(0)).reshape(-1)


def rectangle_pixels(top_left: torch.Tensor, height: int, width: int, image_width: int) -> torch.Tensor:
    """Flat row-major indices ``(B, height·width)`` of the ``height × width`` rectangle of each picture
    whose top-left pixel is ``top_left (B, 2)`` (row, column), in pictures ``image_width`` pixels wide."""
    if not isinstance(top_left, torch.Tensor) or top_left.ndim != 2 or top_left.shape[1] != 2:
        shape = tuple(top_left.shape) if isinstance(top_left, torch.Tensor) else type(top_left).__name__
        raise ValueError(f"`top_left` must be a (B, 2) tensor of (row, column) pixels, got {shape}.")
    rows = torch.arange(height, device=top_left.device).unsqueeze(1)
    cols = torch.arange(width, device=top_left.device).unsqueeze(0)
    offsets = (rows * image_width + cols).reshape(1, -1)
    return (top_left[:, :1].long() * image_width + top_left[:, 1:].long()) + offsets


def generator_output(output: RenderOutput, height: int, width: int, triplanes: TriplaneOutput, **extra) -> GeneratorOutput:
    """A :class:`GeneratorOutput` of the per-ray render ``output`` of a ``height × width`` window."""
    images = output.to_images(height, width)
    normals = images.normals if images.normals is not None else torch.zeros_like(images.rgb)
    return GeneratorOutput(
        image=images.rgb, masks=images.part_masks, depth=images.depth, normals=normals, alpha=images.alpha,
        render=output, triplanes=triplanes, **extra,
    )


class SemanticHumanGenerator(nn.Module):
    r"""Mapper → K local generators → posed compositional volume rendering → guided 3D-aware
    super-resolution, as one differentiable module (docs/method.md §3–§5).

    The three components are registered as submodules (so one ``accelerate.prepare`` / DDP wrap covers
    them); the deformer is not (it holds no trainable state).

    Parameters:
        mapper ([`SemanticMapper`]), local_generators ([`LocalGenerators`]),
        super_resolution ([`SuperResolution3D`]): the pipeline's components.
        deformer ([`InverseLBSDeformer`]): the body model's inverse-skinning deformer.
        settings ([`RenderSettings`]): render sizes, samples and switches.
    """

    def __init__(
        self,
        mapper: SemanticMapper,
        local_generators: LocalGenerators,
        super_resolution: SuperResolution3D,
        deformer: InverseLBSDeformer,
        settings: RenderSettings,
    ):
        super().__init__()
        if not isinstance(settings, RenderSettings):
            raise ValueError(f"`settings` must be a RenderSettings, got {type(settings).__name__}.")
        self.mapper = mapper
        self.local_generators = local_generators
        self.super_resolution = super_resolution
        self.settings = settings
        self.__dict__["deformer"] = deformer  # not a submodule: no parameters, never synchronised

    # -- pieces ------------------------------------------------------------------------------------

    def pose(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor, transl: torch.Tensor | None = None) -> PosedBody:
        """Pose the bodies ``(B, 10)``, ``(B, 69)``, ``(B, 3)`` (optional ``transl (B, 3)``) in the body frame."""
        return self.deformer.pose(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)

    def field(self, posed: PosedBody, planes: torch.Tensor, stage: int = 1) -> PosedPartField:
        """The posed K-part field of tri-planes ``planes`` (stage 1: LR decoders, stage 2: HR decoders); its
        queries share the planes' texel tables (:class:`~semantichuman_hd.models.triplane.TexelTables`)."""
        decode = (self.local_generators if stage == 1 else self.super_resolution).decode
        tables = TexelTables(planes)
        return PosedPartField(
            self.deformer, posed, lambda points, mask: decode(planes, points, mask, tables=tables), NUM_PARTS,
            num_root_inits=self.settings.num_root_inits,
        )

    def rays(self, cameras: Cameras, size: int, columns: Optional[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Rays ``(B, R, 3)`` of the ``size²`` image, restricted to ``columns``, and the window width."""
        origins, directions = cameras.generate_rays(size, size)
        window = column_window(size, size, columns)
        if window is None:
            return origins, directions, size
        window = window.to(origins.device)
        return origins[:, window], directions[:, window], columns[1] - columns[0]

    def ray_bounds(self, origins, directions, posed: PosedBody, mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``near, far, hit (B, R)`` of the rays for the bounds ``mode`` (:data:`RAY_BOUNDS`)."""
        margin = self.deformer.cull_distance
        if mode == "box":
            box_min, box_max = posed.bounds(margin=margin)
            return ray_box_intersection(origins, directions, box_min, box_max)
        return capsule_ray_bounds(origins, directions, posed, margin)

    def renderer(self, num_stratified: int | None = None, num_importance: int | None = None) -> VolumeRenderer:
        settings = self.settings
        return VolumeRenderer(
            num_stratified=settings.num_stratified if num_stratified is None else num_stratified,
            num_importance=settings.num_importance if num_importance is None else num_importance,
            composition=settings.composition,
            coarse_gradients=settings.coarse_gradients,
            skip_empty_rays=settings.skip_empty_rays,
            normal_min_weight=settings.normal_min_weight,
            chunk_size=settings.chunk_size,
        )

    # -- stages ------------------------------------------------------------------------------------

    def render_stage1(
        self,
        triplanes: TriplaneOutput,
        posed: PosedBody,
        cameras: Cameras,
        size: int | None = None,
        beta: torch.Tensor | None = None,
        stage: int = 1,
        planes: torch.Tensor | None = None,
        columns: Optional[tuple[int, int]] = None,
        ray_bounds: str = "box",
        perturb: bool = False,
        generator: Optional[torch.Generator] = None,
        create_graph: bool = False,
        pixel_mask: Optional[torch.Tensor] = None,
    ) -> GeneratorOutput:
        """Stratified + importance render of tri-planes (``planes``, default the LR ones) at ``size²``
        (default the LR size) from ``cameras``; ``stage=2`` decodes with the HR decoders and β (the
        brute-force reference of the guided render). With ``pixel_mask`` (``(B, R)`` bool over the window's
        row-major pixels) only those pixels are rendered; the others are background and cost nothing."""
        size = self.settings.low_resolution if size is None else size
        planes = triplanes.planes if planes is None else planes
        if beta is None:
            beta = (self.local_generators if stage == 1 else self.super_resolution).beta
        origins, directions, width = self.rays(cameras, size, columns)
        near, far, hit = self.ray_bounds(origins, directions, posed, ray_bounds)
        if pixel_mask is not None:
            if not isinstance(pixel_mask, torch.Tensor) or pixel_mask.dtype != torch.bool or pixel_mask.shape != hit.shape:
                got = (tuple(pixel_mask.shape), pixel_mask.dtype) if isinstance(pixel_mask, torch.Tensor) else type(pixel_mask).__name__
                raise ValueError(f"`pixel_mask` must be a bool tensor of shape {tuple(hit.shape)} (B, window pixels), got {got}.")
            hit = hit & pixel_mask.to(hit.device)
        output = self.renderer().render(
            self.field(posed, planes, stage), origins, directions, near, far,
            beta=beta, hit=hit, perturb=perturb, generator=generator, create_graph=create_graph,
        )
        return generator_output(output, size, width, triplanes)

    def render_stage2(
        self,
        triplanes: TriplaneOutput,
        ws: torch.Tensor,
        posed: PosedBody,
        cameras: Cameras,
        low: GeneratorOutput,
        columns: Optional[tuple[int, int]] = None,
        ray_bounds: str = "box",
        noise_mode: str = "const",
        generator: Optional[torch.Generator] = None,
        create_graph: bool = False,
        pixels: Optional[torch.Tensor] = None,
        all_hr_parts: bool = False,
    ) -> GeneratorOutput:
        """Stage 2: HR tri-planes rendered with 11 depth- and semantics-guided samples per pixel
        (docs/method.md §5), from the stage-1 render ``low`` of the same ``columns`` (LR pixels).
        Pixels that stage 1 gives no part are background and cost nothing; the last sample's interval
        follows ``settings.guided_last_interval``. With ``pixels (B, R)`` (flat row-major indices into the
        HR window, e.g. :func:`rectangle_pixels`) only those pixels are rendered, each exactly as in the
        whole render, and the pictures are ``(B, C, 1, R)`` strips in the order of ``pixels``.

        A person's part that no rendered pixel selects is never read, so its HR tri-plane is not
        synthesised (it stays zero; ``hr_parts`` says which were) unless ``all_hr_parts`` asks for every
        part (e.g. for :meth:`field_regularizers`). The render is the same either way."""
        settings = self.settings
        scale = settings.scale
        low_width = low.image.shape[-1]
        candidates = aggregate_depths(low.depth[:, 0], low.alpha[:, 0], use_neighbourhood=settings.depth_aggregation)
        candidates = upsample_depth_candidates(candidates, scale)  # (B, 11, sH, sW)
        parts = select_parts(low.masks, scale, mode=settings.selection_mode)  # (B, K, sH, sW)
        depths = candidates.flatten(2).transpose(1, 2)  # (B, R, 11)
        ray_parts = parts.flatten(2).transpose(1, 2)  # (B, R, K)
        high_columns = None if columns is None else (columns[0] * scale, columns[1] * scale)
        origins, directions, width = self.rays(cameras, settings.high_resolution, high_columns)
        if width != low_width * scale:
            raise ValueError(f"`low` is {low_width} pixels wide; stage 2 of `columns` {columns!r} needs {width // scale}.")
        height = settings.high_resolution
        if pixels is not None:
            check_window_pixels(pixels, depths.shape[0], height, width)
            pixels = pixels.to(depths.device)
            depths, ray_parts, origins, directions = (
                torch.gather(values, 1, pixels.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
                for values in (depths, ray_parts, origins, directions)
            )
            height, width = 1, pixels.shape[1]
        hr_parts = ray_parts.new_ones(ray_parts.shape[0], ray_parts.shape[2]) if all_hr_parts else ray_parts.any(1)  # (B, K)
        hr_planes = self.super_resolution.synthesize(triplanes, ws, noise_mode, generator, parts=hr_parts)
        far = None
        if settings.guided_last_interval == "exit":
            _, far, hit = self.ray_bounds(origins, directions, posed, ray_bounds)
            far = torch.where(hit, torch.maximum(far, depths.amax(-1)), depths.amax(-1))
        renderer = VolumeRenderer(
            composition=settings.composition, chunk_size=settings.chunk_size, normal_min_weight=settings.normal_min_weight
        )
        output = renderer.render_depths(
            self.field(posed, hr_planes, stage=2), origins, directions, depths,
            beta=self.super_resolution.beta, far=far, ray_part_mask=ray_parts, create_graph=create_graph,
        )
        return generator_output(output, height, width, triplanes, hr_planes=hr_planes, hr_parts=hr_parts, low=low)

    def synthesis(
        self,
        ws: torch.Tensor,
        posed: PosedBody,
        cameras: Cameras,
        stage: int = 1,
        columns: Optional[tuple[int, int]] = None,
        ray_bounds: str = "box",
        perturb: bool = False,
        noise_mode: str = "const",
        generator: Optional[torch.Generator] = None,
        create_graph: bool = False,
        pixels: Optional[torch.Tensor] = None,
        all_hr_parts: bool = False,
    ) -> GeneratorOutput:
        r"""Render people from codes.

        Parameters:
            ws (`torch.Tensor`): ``(B, K, num_ws, w_dim)`` codes from :meth:`mapping`.
            posed ([`PosedBody`]): the posed bodies (:meth:`pose`), in the body frame of ``cameras``.
            cameras ([`Cameras`]): one camera per person (e.g. :func:`scene_from_labels`).
            stage (`int`): 1 (low resolution) or 2 (guided super-resolution; stage 1 then runs without
                gradients and is returned as ``low``).
            columns (`tuple[int, int]`, *optional*): render only the LR pixel columns ``[c0, c1)`` (stage 2:
                the same columns scaled), e.g. a 2:1 portrait crop.
            ray_bounds (`str`): ``"box"`` or ``"capsules"`` (:data:`RAY_BOUNDS`).
            perturb (`bool`): jitter the stage-1 samples (training).
            noise_mode (`str`): the synthesis networks' noise (``"const"``, ``"random"``, ``"none"``).
            generator (`torch.Generator`, *optional*): for the jitter and random noise.
            create_graph (`bool`): make the normals differentiable (normal-map losses).
            pixels (`torch.Tensor`, *optional*): stage 2 only: ``(B, R)`` flat indices of the HR window's
                pixels to render (:meth:`render_stage2`), e.g. training's patches. Stage 1 then renders only
                the LR pixels their guided samples read (:func:`guided_support`), the rest as background.
            all_hr_parts (`bool`): stage 2 only: synthesise every part's HR tri-plane, also those no rendered
                pixel reads (:meth:`render_stage2`), e.g. for :meth:`field_regularizers` on ``hr_planes``.

        Returns:
            [`GeneratorOutput`].
        """
        check_choice(stage, STAGES, "stage")
        check_choice(ray_bounds, RAY_BOUNDS, "ray_bounds")
        if stage == 1 and pixels is not None:
            raise ValueError("`pixels` selects stage-2 pixels; stage 1 renders its whole window.")
        if stage == 1 and all_hr_parts:
            raise ValueError("`all_hr_parts` asks for stage 2's HR tri-planes; stage 1 has none.")
        if stage == 1:
            triplanes = self.local_generators.synthesize(ws, noise_mode, generator)
            return self.render_stage1(
                triplanes, posed, cameras, columns=columns, ray_bounds=ray_bounds, perturb=perturb,
                generator=generator, create_graph=create_graph,
            )
        low_mask = None if pixels is None else self._low_pixel_mask(pixels, ws.shape[0], columns, ws.device)
        with torch.no_grad():
            triplanes = self.local_generators.synthesize(ws, noise_mode, generator)
            low = self.render_stage1(
                triplanes, posed, cameras, columns=columns, ray_bounds=ray_bounds, perturb=perturb, generator=generator,
                pixel_mask=low_mask,
            )
        return self.render_stage2(
            triplanes, ws, posed, cameras, low, columns=columns, ray_bounds=ray_bounds,
            noise_mode=noise_mode, generator=generator, create_graph=create_graph, pixels=pixels, all_hr_parts=all_hr_parts,
        )

    def _low_pixel_mask(self, pixels: torch.Tensor, batch: int, columns: Optional[tuple[int, int]], device) -> torch.Tensor:
        """``(B, H·W)`` bool over the LR window: the pixels the guided samples of HR window ``pixels (B, R)``
        read (:func:`guided_support`)."""
        settings = self.settings
        low_size = settings.low_resolution
        column_window(low_size, low_size, columns)  # checks `columns`
        width = (low_size if columns is None else columns[1] - columns[0]) * settings.scale
        height = settings.high_resolution
        check_window_pixels(pixels, batch, height, width)
        high_mask = torch.zeros(batch, height * width, dtype=torch.bool, device=device)
        high_mask.scatter_(1, pixels.to(device).long(), True)
        return guided_support(high_mask.view(-1, height, width), settings.scale).flatten(1)

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> torch.Tensor:
        """``z (B, K, z_dim)`` → ``ws (B, K, num_ws, w_dim)`` (the mapper's forward)."""
        return self.mapper(z, truncation_psi=truncation_psi, update_w_avg=update_w_avg)

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor,
        stage: int = 1,
        truncation_psi: float = 1.0,
        update_w_avg: bool = False,
        **synthesis_kwargs,
    ) -> GeneratorOutput:
        """People of latents ``z (B, K, z_dim)`` posed and seen as dataset ``labels (B, 111)`` say
        (:func:`scene_from_labels`); other keyword arguments go to :meth:`synthesis`."""
        cameras, smpl = scene_from_labels(labels.to(z.device))
        posed = self.pose(**smpl)
        ws = self.mapping(z, truncation_psi=truncation_psi, update_w_avg=update_w_avg)
        return self.synthesis(ws, posed, cameras, stage=stage, **synthesis_kwargs)

    # -- regularisers --------------------------------------------------------------------------------

    def shell_points(self, batch_size: int, num_points: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(B, N, 3)`` canonical points near the body surface (random vertices + Gaussian noise)."""
        vertices = self.deformer.body_model.canonical_vertices().detach().to(self.local_generators.beta.device)
        index = torch.randint(0, vertices.shape[0], (batch_size, num_points), generator=generator, device=vertices.device)
        noise = torch.randn(batch_size, num_points, 3, generator=generator, device=vertices.device)
        return vertices[index] + SHELL_POINT_NOISE * noise

    def field_regularizers(
        self, planes: torch.Tensor, points: torch.Tensor, stage: int = 1, generator: Optional[torch.Generator] = None
    ) -> FieldRegularizers:
        """SDF values and gradients of every part at canonical ``points (B, N, 3)`` (eikonal, density TV).

        The body prior is fixed, so its gradient enters as a constant and only Δsdf's gradient keeps a
        graph (``create_graph``), which is all the parameters' gradients need. Δsdf's gradients are
        separated per part by repeating each point once per part and decoding part k's copy for part k
        only; those copies, the points and their jittered twins go through one ``decode`` call, so the
        planes are read by one gather and receive one plane-sized gradient (three calls cost three, which
        at stage 2's 256² planes is most of a regularisation step)."""
        decode = (self.local_generators if stage == 1 else self.super_resolution).decode
        prior = self.deformer.sdf_prior
        points = points.detach()
        batch, count = points.shape[:2]
        parts = planes.shape[1]
        with torch.enable_grad():
            prior_points = points.clone().requires_grad_(True)
            prior_values = prior(prior_points)
            (prior_gradient,) = torch.autograd.grad(prior_values.sum(), prior_points)
        jittered = points + torch.randn(points.shape, generator=generator, device=points.device) * DENSITY_TV_OFFSET
        copies = count * parts  # point n's copy for part k is row n·K + k
        one_part = torch.eye(parts, dtype=torch.bool, device=points.device).repeat(count, 1)
        every_part = torch.ones(2 * count, parts, dtype=torch.bool, device=points.device)
        mask = torch.cat([one_part, every_part]).unsqueeze(0).expand(batch, -1, -1)
        with torch.enable_grad():
            repeated = points.unsqueeze(2).expand(batch, count, parts, 3).reshape(batch, copies, 3)
            queries = torch.cat([repeated, points, jittered], 1).requires_grad_(True)
            delta, _ = decode(planes, queries, mask)
            picked = delta[:, :copies].reshape(batch, count, parts, parts).diagonal(dim1=2, dim2=3)  # (B, N, K)
            (gradient,) = torch.autograd.grad(picked.sum(), queries, create_graph=True)
        gradients = gradient[:, :copies].reshape(batch, count, parts, 3) + prior_gradient.unsqueeze(2)
        return FieldRegularizers(
            sdf_gradients=gradients,
            sdf=prior_values.detach().unsqueeze(-1) + delta[:, copies : copies + count],
            sdf_jittered=prior(jittered).detach().unsqueeze(-1) + delta[:, copies + count :],
        )
