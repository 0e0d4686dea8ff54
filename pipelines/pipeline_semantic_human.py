"""``SemanticHumanPipeline``: semantic mapper → K local tri-plane generators → volume rendering of the
posed body at low resolution → (optionally) the 3D-aware super-resolution renderer guided by the
low-resolution depth and semantics (docs/method.md §3–§5)."""

from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from semantichuman_hd.body.amass import Motion, as_motion
from semantichuman_hd.body.body_model import BodyModel
from semantichuman_hd.body.deformer import InverseLBSDeformer, PosedBody
from semantichuman_hd.body.poses import NAMED_POSES
from semantichuman_hd.body.rotations import yaw_global_orient
from semantichuman_hd.body.smpl_format import BODY_POSE_DIM, GLOBAL_ORIENT_DIM, NUM_BETAS
from semantichuman_hd.generator import RenderSettings, SemanticHumanGenerator, generator_output
from semantichuman_hd.models.local_generators import LocalGenerators, TriplaneOutput
from semantichuman_hd.models.mapper import SemanticMapper
from semantichuman_hd.models.super_resolution import SuperResolution3D
from semantichuman_hd.parts import BACKGROUND_COLOR, NUM_PARTS, PART_COLORS, PARTS, part_indices
from semantichuman_hd.export import (
    DEFAULT_FRAMES_PER_BATCH,
    DEFAULT_GRID_RESOLUTION,
    DEFAULT_TURNTABLE_FRAMES,
    WHOLE_PERSON,
    CanonicalField,
    MeshExport,
    check_grid_resolution,
    check_mesh_path,
    extract_meshes,
    mesh_paths,
    pose_mesh,
    save_mesh,
)
from semantichuman_hd.checks import (
    check_choice,
    check_finite_number,
    check_finite_tensor,
    check_generator,
    check_non_negative_int,
    check_positive_int,
)
from semantichuman_hd.hub_mixin import SemanticHubMixin
from semantichuman_hd.pipelines.pipeline_output import SemanticHumanPipelineOutput
from semantichuman_hd.presets import get_preset
from semantichuman_hd.rendering.cameras import fixed_camera
from semantichuman_hd.rendering.compositor import COMPOSITIONS
from semantichuman_hd.rendering.guided_sampling import SELECTION_MODES
from semantichuman_hd.rendering.volume_renderer import RenderOutput
from semantichuman_hd.scene import PosedPartField, pose_centred

RESOLUTIONS: tuple[str, ...] = ("low", "high")
"""``resolution`` values of :meth:`SemanticHumanPipeline.__call__`."""

OUTPUT_TYPES: tuple[str, ...] = ("pil", "np", "pt")
"""``output_type`` values of :meth:`SemanticHumanPipeline.__call__`."""

DEFAULT_BODY_POSE: str = "a-pose"
"""Pose of generated people when no ``body_pose`` is given (DeepFashion's people mostly stand so)."""

MAX_ABS_BETAS: float = 10.0
"""Largest ``|betas|`` accepted. Shape coefficients are in standard deviations of the body model's shape
space (the procedural dataset draws them from N(0, 1), clipped): ±10 leaves room for unusual bodies
and refuses values that no longer describe a person."""

MAX_RENDER_RESOLUTION: int = 4096
"""Largest ``low_resolution``/``high_resolution`` a pipeline accepts (the paper renders 256² and 1024²):
one 4096² stage-2 render already holds 16.8 M rays × 11 samples."""


class SemanticHumanPipeline(SemanticHubMixin, DiffusionPipeline):
    r"""Generate semantically disentangled 3D humans.

    Parameters:
        mapper ([`SemanticMapper`]): z → K part codes.
        local_generators ([`LocalGenerators`]): K tri-plane generators, their decoders and β.
        super_resolution ([`SuperResolution3D`]): HR tri-planes, HR decoders and β for stage 2.
        low_resolution (`int`): side of the stage-1 render (256 in the paper).
        high_resolution (`int`): side of the stage-2 render (1024 in the paper); a multiple of
            ``low_resolution`` by the SR scale.
        num_stratified (`int`), num_importance (`int`): stage-1 samples per ray (36 + 36 in the paper).
        truncation_psi (`float`): default truncation toward the tracked average codes.
        selection_mode (`str`): stage-2 semantic-guided sampling, ``"threshold"`` (default) or ``"argmax"``.
        depth_aggregation (`bool`): use the 3×3 neighbourhood's depths as stage-2 candidates (the "w/o DA"
            ablation turns it off).
        composition (`str`): how the parts combine, ``"sum_density"`` (the paper: local densities are
            summed) or ``"sum_sdf"`` (the CNeRF-style ablation that sums the SDFs first and couples the
            parts' geometry).

    The body model is not a component: the open body (or ``$SEMANTICHUMAN_SMPL_PATH``'s SMPL) is built
    on first use; :meth:`set_body_model` chooses another. A checkpoint must be used with the body model
    it was trained with. Load with ``SemanticHumanPipeline.from_pretrained`` (not
    ``DiffusionPipeline.from_pretrained``, which cannot resolve this class).
    """

    model_cpu_offload_seq = "mapper->local_generators->super_resolution"

    def __init__(
        self,
        mapper: SemanticMapper,
        local_generators: LocalGenerators,
        super_resolution: SuperResolution3D,
        low_resolution: int = 256,
        high_resolution: int = 1024,
        num_stratified: int = 36,
        num_importance: int = 36,
        truncation_psi: float = 1.0,
        selection_mode: str = "threshold",
        depth_aggregation: bool = True,
        composition: str = "sum_density",
    ):
        super().__init__()
        check_choice(selection_mode, SELECTION_MODES, "selection_mode")
        check_choice(composition, COMPOSITIONS, "composition")
        for name, value in (("low_resolution", low_resolution), ("high_resolution", high_resolution)):
            if check_positive_int(value, name) > MAX_RENDER_RESOLUTION:
                raise ValueError(f"`{name}` must be at most {MAX_RENDER_RESOLUTION}, got {value!r}.")
        check_positive_int(num_stratified, "num_stratified")
        check_non_negative_int(num_importance, "num_importance")
        check_finite_number(truncation_psi, "truncation_psi")
        if not isinstance(depth_aggregation, bool):
            raise ValueError(f"`depth_aggregation` must be True or False, got {depth_aggregation!r}.")
        if high_resolution % low_resolution:
            raise ValueError(f"`high_resolution` ({high_resolution}) must be a multiple of `low_resolution` ({low_resolution}).")
        self.register_modules(mapper=mapper, local_generators=local_generators, super_resolution=super_resolution)
        self.register_to_config(
            low_resolution=low_resolution,
            high_resolution=high_resolution,
            num_stratified=num_stratified,
            num_importance=num_importance,
            truncation_psi=truncation_psi,
            selection_mode=selection_mode,
            depth_aggregation=depth_aggregation,
            composition=composition,
        )
        self._deformer: InverseLBSDeformer | None = None

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **overrides) -> "SemanticHumanPipeline":
        """Randomly initialised components of a preset (``"tiny"``, ``"demo"``, ``"paper"``), seeded."""
        preset = get_preset(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mapper = SemanticMapper(**preset.mapper)
            local_generators = LocalGenerators(**preset.local_generators)
            super_resolution = SuperResolution3D(**preset.super_resolution)
            super_resolution.init_from_local_generators(local_generators)
        settings = dict(
            low_resolution=preset.low_resolution,
            high_resolution=preset.high_resolution,
            num_stratified=preset.num_stratified,
            num_importance=preset.num_importance,
            truncation_psi=preset.truncation_psi,
        )
        settings.update(overrides)
        return cls(mapper=mapper, local_generators=local_generators, super_resolution=super_resolution, **settings)

    # -- body --------------------------------------------------------------------------------------

    def set_body_model(self, body_model: BodyModel) -> None:
        """Use ``body_model`` (e.g. ``BodyModel.from_smpl_file(path)``) for posing and deformation."""
        self._deformer = InverseLBSDeformer.from_body_model(body_model)

    @property
    def deformer(self) -> InverseLBSDeformer:
        if self._deformer is None:
            self.set_body_model(BodyModel.from_source())
        return self._deformer.to(self.device)

    @property
    def body_model(self) -> BodyModel:
        return self.deformer.body_model

    # -- latents -----------------------------------------------------------------------------------

    @property
    def z_dim(self) -> int:
        return self.mapper.config.z_dim

    def sample_latents(self, num_images: int = 1, generator: torch.Generator | None = None, same_for_all_parts: bool = True) -> torch.Tensor:
        """``(B, K, z_dim)`` standard-normal latents; by default one z shared by all parts (as in training)."""
        check_positive_int(num_images, "num_images")
        check_generator(generator)
        shape = (num_images, 1 if same_for_all_parts else NUM_PARTS, self.z_dim)
        latents = torch.randn(shape, generator=generator, device=generator.device if generator is not None else "cpu")
        return latents.expand(num_images, NUM_PARTS, self.z_dim).clone().to(self.device)

    def check_latents(self, latents: torch.Tensor, argument: str = "latents") -> torch.Tensor:
        """``latents`` as float32 on the pipeline's device, if they are a non-empty finite floating-point
        tensor ``(B, K, z_dim)``; a ``ValueError`` naming ``argument`` otherwise."""
        check_finite_tensor(latents, argument, (None, NUM_PARTS, self.z_dim))
        return latents.to(self.device, torch.float32)

    def check_inputs(
        self,
        num_images: int,
        generator: torch.Generator | None,
        latents: torch.Tensor | None,
        truncation_psi: float | None,
        betas,
        body_pose,
        view_angle,
        global_orient,
        resolution: str,
        output_type: str,
    ) -> None:
        """Check the arguments of :meth:`__call__` before any work, each once, with a ``ValueError`` naming
        the argument, the value and what is allowed (see :mod:`semantichuman_hd.checks`)."""
        check_choice(resolution, RESOLUTIONS, "resolution")
        check_choice(output_type, OUTPUT_TYPES, "output_type")
        check_generator(generator)
        if latents is None:
            check_positive_int(num_images, "num_images")
            batch = num_images
        else:
            check_finite_tensor(latents, "latents", (None, NUM_PARTS, self.z_dim))
            batch = latents.shape[0]
        if truncation_psi is not None:
            check_finite_number(truncation_psi, "truncation_psi")
        _check_body_vector(betas, batch, NUM_BETAS, "betas", max_abs=MAX_ABS_BETAS)
        _check_body_vector(body_pose, batch, BODY_POSE_DIM, "body_pose")
        _check_body_vector(global_orient, batch, GLOBAL_ORIENT_DIM, "global_orient")
        _check_view_angle(view_angle, batch)

    # -- generation --------------------------------------------------------------------------------

    def _pose_bodies(self, batch: int, betas, body_pose, global_orient, view_angle) -> PosedBody:
        """Posed, centred bodies from arguments :meth:`check_inputs` has checked."""
        device = self.device
        betas = _as_batch(betas, batch, NUM_BETAS, device)
        if body_pose is None:
            body_pose = NAMED_POSES[DEFAULT_BODY_POSE]
        body_pose = _as_batch(body_pose, batch, BODY_POSE_DIM, device)
        global_orient = _as_batch(global_orient, batch, GLOBAL_ORIENT_DIM, device)
        if view_angle is not None:
            global_orient = yaw_global_orient(global_orient, torch.as_tensor(view_angle, dtype=torch.float32).to(device))
        return pose_centred(self.deformer, betas=betas, body_pose=body_pose, global_orient=global_orient)

    @property
    def generator_model(self) -> SemanticHumanGenerator:
        """The differentiable two-stage generator over this pipeline's components and body (built once
        per body model; its render settings follow the pipeline's config)."""
        config = self.config
        settings = RenderSettings(
            low_resolution=config.low_resolution,
            high_resolution=config.high_resolution,
            num_stratified=config.num_stratified,
            num_importance=config.num_importance,
            selection_mode=config.selection_mode,
            depth_aggregation=config.depth_aggregation,
            composition=config.composition,
        )
        deformer = self.deformer
        cached = self.__dict__.get("_generator")
        if cached is None or cached.deformer is not deformer:
            cached = SemanticHumanGenerator(self.mapper, self.local_generators, self.super_resolution, deformer, settings)
            self.__dict__["_generator"] = cached
        cached.settings = settings
        return cached

    def low_field(self, posed: PosedBody, planes: torch.Tensor) -> PosedPartField:
        """The stage-1 posed field of the K parts from LR tri-planes ``planes`` (``lr.planes``)."""
        return self.generator_model.field(posed, planes, stage=1)

    def high_field(self, posed: PosedBody, planes: torch.Tensor) -> PosedPartField:
        """The stage-2 posed field of the K parts from HR tri-planes (``super_resolution.synthesize``)."""
        return self.generator_model.field(posed, planes, stage=2)

    def render_low(self, ws: torch.Tensor, posed: PosedBody) -> tuple[RenderOutput, TriplaneOutput]:
        """Stage 1: tri-planes of codes ``ws (B, K, num_ws, w_dim)`` rendered at ``low_resolution`` from
        the fixed camera. Returns the render and the LR tri-planes stage 2 continues."""
        generator = self.generator_model
        lr = self.local_generators.synthesize(ws)
        output = generator.render_stage1(lr, posed, fixed_camera(posed.batch_size, device=self.device))
        return output.render, lr

    def render_high(
        self, ws: torch.Tensor, posed: PosedBody, lr: TriplaneOutput, low: RenderOutput | None, guided: bool = True
    ) -> RenderOutput:
        """Stage 2: HR tri-planes rendered at ``high_resolution`` with 11 depth- and semantics-guided
        samples per pixel (docs/method.md §5); pixels the stage-1 semantics give no part are background
        and cost neither deformation nor decoder queries.

        With ``guided=False`` the HR tri-planes are rendered by brute force instead, as stage 1 renders:
        ``num_stratified + num_importance`` samples per ray, every part decoded (432 decoder queries per
        ray in the paper's size), and ``low`` is not used. That is the reference the guided sampling is
        measured against (``benchmarks/bench_sr.py``)."""
        generator = self.generator_model
        cameras = fixed_camera(posed.batch_size, device=self.device)
        if not guided:
            hr_planes = self.super_resolution.synthesize(lr, ws)
            high = self.config.high_resolution
            return generator.render_stage1(lr, posed, cameras, size=high, stage=2, planes=hr_planes).render
        if not isinstance(low, RenderOutput):
            raise ValueError(f"`low` must be the stage-1 RenderOutput when `guided` is True, got {type(low).__name__}.")
        size = self.config.low_resolution
        return generator.render_stage2(lr, ws, posed, cameras, generator_output(low, size, size, lr)).render

    @torch.no_grad()
    def __call__(
        self,
        num_images: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        truncation_psi: float | None = None,
        betas: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        view_angle: float | torch.Tensor = 0.0,
        global_orient: torch.Tensor | None = None,
        resolution: str = "low",
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> SemanticHumanPipelineOutput | tuple:
        r"""Generate people.

        Parameters:
            num_images (`int`): B, when ``latents`` is not given (ignored otherwise: B is the latents').
            generator (`torch.Generator`, *optional*): for the latents.
            latents (`torch.Tensor`, *optional*): ``(B, K, z_dim)``, one z per part (see :meth:`swap_parts`).
            truncation_psi (`float`, *optional*): toward the average codes; default from the config.
            betas (`(B, 10)` or `(10,)`), body_pose (`(B, 69)` or `(69,)`): SMPL shape and pose; default
                the mean shape in an A-pose.
            view_angle (`float` or `(B,)`): turn the people about the vertical axis (radians; 0 = front).
            global_orient (`(B, 3)`, *optional*): SMPL root orientation, turned by ``view_angle``.
            resolution (`str`): ``"low"`` (stage 1) or ``"high"`` (stage 2, guided super-resolution).
            output_type (`str`): ``"pil"``, ``"np"`` or ``"pt"``.
            return_dict (`bool`): a :class:`SemanticHumanPipelineOutput` or a tuple.
        """
        self.check_inputs(num_images, generator, latents, truncation_psi, betas, body_pose, view_angle, global_orient, resolution, output_type)
        if latents is None:
            latents = self.sample_latents(num_images, generator)
        else:
            latents = latents.to(self.device, torch.float32)
        psi = self.config.truncation_psi if truncation_psi is None else truncation_psi
        batch = latents.shape[0]

        stages = 3 if resolution == "low" else 4  # each step counted once it is done, named while it runs
        with self.progress_bar(total=stages) as progress:
            progress.set_postfix_str("posing the bodies")
            posed = self._pose_bodies(batch, betas, body_pose, global_orient, view_angle)
            progress.update()
            progress.set_postfix_str("mapping the latents")
            ws = self.mapper(latents, truncation_psi=psi)
            progress.update()
            progress.set_postfix_str(f"stage 1 render, {self.config.low_resolution}²")
            low, lr = self.render_low(ws, posed)
            progress.update()
            output, size = low, self.config.low_resolution
            if resolution == "high":
                progress.set_postfix_str(f"stage 2 super-resolution, {self.config.high_resolution}²")
                output, size = self.render_high(ws, posed, lr, low), self.config.high_resolution
                progress.update()
        result = self._postprocess(output, size, latents, output_type)
        return result if return_dict else tuple(result.values())

    def _postprocess(self, output: RenderOutput, size: int, latents: torch.Tensor, output_type: str) -> SemanticHumanPipelineOutput:
        images = output.to_images(size, size)
        rgb = images.rgb.clamp(0, 1).float()  # (B, 3, H, W), white background
        alpha = images.alpha[:, 0].float()
        masks = images.part_masks.float()
        depth = torch.where(alpha > 0, images.depth[:, 0].float(), torch.zeros_like(alpha))
        normals = images.normals.float()
        normal_picture = ((normals + 1) / 2 * alpha.unsqueeze(1) + (1 - alpha.unsqueeze(1))).clamp(0, 1)
        semantic = semantic_picture(masks)
        if output_type == "pt":
            return SemanticHumanPipelineOutput(rgb.cpu(), masks.cpu(), semantic.cpu(), depth.cpu(), normal_picture.cpu(), alpha.cpu(), latents.cpu())
        to_np = lambda t: t.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
        rgb_np, semantic_np, normals_np = to_np(rgb), to_np(semantic), to_np(normal_picture)
        if output_type == "pil":
            rgb_np, semantic_np, normals_np = (self.numpy_to_pil(a) for a in (rgb_np, semantic_np, normals_np))
        return SemanticHumanPipelineOutput(rgb_np, masks.cpu().numpy(), semantic_np, depth.cpu().numpy(), normals_np, alpha.cpu().numpy(), latents.cpu())

    # -- editing helpers -----------------------------------------------------------------------------

    def swap_parts(self, latents_a: torch.Tensor, latents_b: torch.Tensor, parts: str | Iterable[str]) -> torch.Tensor:
        """Virtual try-on: ``latents_a`` with the latents of ``parts`` taken from ``latents_b``."""
        latents_a = self.check_latents(latents_a, "latents_a")
        latents_b = self.check_latents(latents_b, "latents_b")
        if latents_a.shape != latents_b.shape:
            raise ValueError(f"`latents_a` and `latents_b` must have the same shape, got {tuple(latents_a.shape)} and {tuple(latents_b.shape)}.")
        swapped = latents_a.clone()
        index = part_indices(parts, "parts")
        swapped[:, index] = latents_b[:, index]
        return swapped

    def interpolate_part(self, latents_a: torch.Tensor, latents_b: torch.Tensor, part: str, weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """``(len(weights)·B, K, z_dim)``: ``latents_a`` with ``part``'s latent moved toward ``latents_b``'s
        by each weight (0 = a, 1 = b); other parts stay ``latents_a``'s. Interpolates linearly in z."""
        latents_a = self.check_latents(latents_a, "latents_a")
        latents_b = self.check_latents(latents_b, "latents_b")
        if latents_a.shape != latents_b.shape:
            raise ValueError(f"`latents_a` and `latents_b` must have the same shape, got {tuple(latents_a.shape)} and {tuple(latents_b.shape)}.")
        if not isinstance(part, str):
            raise ValueError(f"`part` must be one part name of {list(PARTS)}, got {part!r}.")
        (index,) = part_indices(part, "part")
        weights = torch.as_tensor(weights, dtype=latents_a.dtype, device=latents_a.device).reshape(-1)
        if weights.numel() == 0 or not torch.isfinite(weights).all():
            raise ValueError(f"`weights` must be a non-empty sequence of finite numbers, got {weights.tolist()!r}.")
        frames = latents_a.unsqueeze(0).repeat(weights.numel(), 1, 1, 1)
        frames[:, :, index] = torch.lerp(latents_a[:, index].unsqueeze(0), latents_b[:, index].unsqueeze(0), weights.view(-1, 1, 1))
        return frames.flatten(0, 1)

    # -- meshes, turntables, animation ---------------------------------------------------------------

    def _one_person(self, latents: torch.Tensor, argument: str = "latents") -> torch.Tensor:
        """``latents`` of one person as ``(1, K, z_dim)`` (``(K, z_dim)`` is accepted)."""
        if isinstance(latents, torch.Tensor) and latents.ndim == 2:
            latents = latents.unsqueeze(0)
        latents = self.check_latents(latents, argument)
        if latents.shape[0] != 1:
            raise ValueError(f"`{argument}` must hold one person, shape (1, {NUM_PARTS}, {self.z_dim}), got {latents.shape[0]}; pass `latents[i : i + 1]`.")
        return latents

    @torch.no_grad()
    def canonical_field(self, latents: torch.Tensor, truncation_psi: float | None = None, resolution: str = "low") -> CanonicalField:
        """The canonical part field of people ``latents (B, K, z_dim)``, evaluated without gradients:
        ``(points (B, N, 3), part_mask (B, N, K) | None) → (Δsdf (B, N, K), rgb_logits (B, N, K, 3))``
        from the stage-1 tri-planes (``resolution="low"``) or the super-resolved ones (``"high"``)."""
        check_choice(resolution, RESOLUTIONS, "resolution")
        latents = self.check_latents(latents)
        psi = self.config.truncation_psi if truncation_psi is None else check_finite_number(truncation_psi, "truncation_psi")
        ws = self.mapper(latents, truncation_psi=psi)
        lr = self.local_generators.synthesize(ws)
        if resolution == "low":
            planes, decode = lr.planes, self.local_generators.decode
        else:
            planes, decode = self.super_resolution.synthesize(lr, ws), self.super_resolution.decode

        def field(points: torch.Tensor, part_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                return decode(planes, points, part_mask)

        return field

    @torch.no_grad()
    def export_mesh(
        self,
        latents: torch.Tensor,
        path: str | os.PathLike | None = None,
        part: str | Sequence[str] | None = None,
        resolution: str = "low",
        grid_resolution: int = DEFAULT_GRID_RESOLUTION,
        truncation_psi: float | None = None,
        betas: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
    ) -> MeshExport:
        r"""Meshes of one person by marching cubes on the canonical part fields, with vertex colours from
        the colour field (see :mod:`semantichuman_hd.export`).

        Parameters:
            latents (`torch.Tensor`): ``(1, K, z_dim)`` (or ``(K, z_dim)``), one person.
            path (`str` or `os.PathLike`, *optional*): ``.glb``, ``.obj`` or ``.ply`` file to write (the
                format follows the suffix); with several parts each goes to ``{stem}_{part}{suffix}``.
                None writes nothing.
            part (`str` or list of `str`, *optional*): None for the whole person (one mesh, the union of
                all parts, coloured by the part each vertex lies on); a part name (``"tops"``) for that
                part; a list of names for one mesh each. Parts without a surface are skipped and listed
                in ``empty_parts``.
            resolution (`str`): ``"low"`` (stage-1 tri-planes) or ``"high"`` (super-resolved tri-planes).
            grid_resolution (`int`): grid nodes along the longest side of the canonical body's box.
            truncation_psi (`float`, *optional*): as in :meth:`__call__`.
            betas (`(10,)`), body_pose (`(69,)`), global_orient (`(3,)`), *optional*: when any is given the
                meshes are posed by the body's linear blend skinning (a missing ``body_pose`` is the
                canonical pose, so ``betas`` alone reshapes); otherwise they stay in the canonical
                Da-pose. Meshes are in the body model's frame (metres, y up), not centred.

        Returns:
            [`~semantichuman_hd.export.MeshExport`]: the ``trimesh.Trimesh`` meshes by name (a part, or
            ``"person"``), the written paths, the empty parts and the latents.
        """
        if path is not None:
            check_mesh_path(path)
        check_choice(resolution, RESOLUTIONS, "resolution")
        check_grid_resolution(grid_resolution)
        _check_body_vector(betas, 1, NUM_BETAS, "betas", max_abs=MAX_ABS_BETAS)
        _check_body_vector(body_pose, 1, BODY_POSE_DIM, "body_pose")
        _check_body_vector(global_orient, 1, GLOBAL_ORIENT_DIM, "global_orient")
        latents = self._one_person(latents)
        names = None if part is None else [PARTS[k] for k in part_indices(part, "part")]
        if names is not None and len(set(names)) != len(names):
            raise ValueError(f"`part` must not name a part twice, got {list(part)!r}.")
        posed = None
        deformer = self.deformer
        if betas is not None or body_pose is not None or global_orient is not None:
            if body_pose is None:
                body_pose = self.body_model.canonical_body_pose(1)
            posed = deformer.pose(
                betas=_as_batch(betas, 1, NUM_BETAS, self.device),
                body_pose=_as_batch(body_pose, 1, BODY_POSE_DIM, self.device),
                global_orient=_as_batch(global_orient, 1, GLOBAL_ORIENT_DIM, self.device),
            )

        result = extract_meshes(
            self.canonical_field(latents, truncation_psi, resolution),
            deformer.sdf_prior,
            self.body_model.canonical_vertices(),
            parts=None if names is None else [PARTS.index(name) for name in names],
            grid_resolution=grid_resolution,
            num_parts=NUM_PARTS,
            part_names=PARTS,
            device=self.device,
        )
        if posed is not None:
            result.meshes = {name: pose_mesh(mesh, deformer, posed) for name, mesh in result.meshes.items()}
        result.latents = latents.cpu()
        if path is not None:
            targets = mesh_paths(path, names or [WHOLE_PERSON])
            result.paths = {name: save_mesh(mesh, targets[name]) for name, mesh in result.meshes.items()}
        return result

    def _render_frames(self, latents: torch.Tensor, num_frames: int, frames_per_batch: int, per_frame, **kwargs) -> list[PIL.Image.Image]:
        """Render one person ``num_frames`` times through :meth:`__call__`, ``frames_per_batch`` at a
        time; ``per_frame(slice)`` gives the per-frame arguments of a batch."""
        check_positive_int(frames_per_batch, "frames_per_batch")
        frames: list[PIL.Image.Image] = []
        for start in range(0, num_frames, frames_per_batch):
            frame_slice = slice(start, min(start + frames_per_batch, num_frames))
            count = frame_slice.stop - frame_slice.start
            output = self(latents=latents.expand(count, -1, -1), output_type="pil", **per_frame(frame_slice), **kwargs)
            frames.extend(output.images)
        return frames

    def render_turntable(
        self,
        latents: torch.Tensor,
        num_frames: int = DEFAULT_TURNTABLE_FRAMES,
        resolution: str = "low",
        truncation_psi: float | None = None,
        betas: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        start_angle: float = 0.0,
        frames_per_batch: int = DEFAULT_FRAMES_PER_BATCH,
    ) -> list[PIL.Image.Image]:
        r"""One person turning once about the vertical axis: ``num_frames`` renders at view angles
        ``start_angle + 2π·i / num_frames`` (the body turns, as for every novel view).

        Parameters:
            latents (`torch.Tensor`): ``(1, K, z_dim)`` (or ``(K, z_dim)``), one person.
            num_frames (`int`): frames of the full turn.
            resolution, truncation_psi, betas, body_pose: as in :meth:`__call__` (one shape and pose).
            start_angle (`float`): view angle of the first frame, radians.
            frames_per_batch (`int`): frames rendered together (memory grows with it).

        Returns:
            `list` of `PIL.Image.Image`: the frames (write them with
            :func:`semantichuman_hd.export.save_video`).
        """
        latents = self._one_person(latents)
        check_positive_int(num_frames, "num_frames")
        check_finite_number(start_angle, "start_angle", unit="radians")
        angles = start_angle + 2 * math.pi * torch.arange(num_frames, dtype=torch.float32) / num_frames
        return self._render_frames(
            latents,
            num_frames,
            frames_per_batch,
            lambda frame_slice: {"view_angle": angles[frame_slice]},
            resolution=resolution,
            truncation_psi=truncation_psi,
            betas=betas,
            body_pose=body_pose,
        )

    def animate(
        self,
        poses: str | os.PathLike | Motion | dict | torch.Tensor,
        latents: torch.Tensor,
        stride: int = 1,
        max_frames: int | None = None,
        resolution: str = "low",
        truncation_psi: float | None = None,
        betas: torch.Tensor | None = None,
        view_angle: float = 0.0,
        z_up: bool = True,
        frames_per_batch: int = DEFAULT_FRAMES_PER_BATCH,
    ) -> list[PIL.Image.Image]:
        r"""One person following a motion: one render per (kept) frame of ``poses``.

        Parameters:
            poses: a path to an AMASS-style ``.npz`` (``poses`` ``(T, 156)`` SMPL-H or ``(T, 72)`` SMPL,
                ``trans``, optional ``betas`` and ``mocap_framerate``), a mapping of such arrays, a bare
                ``(T, W)`` pose tensor, or a :class:`~semantichuman_hd.body.amass.Motion` (used as is).
            latents (`torch.Tensor`): ``(1, K, z_dim)`` (or ``(K, z_dim)``), one person.
            stride (`int`), max_frames (`int`, *optional*): keep every ``stride``-th frame, at most
                ``max_frames`` of them (the frame rate of the result is the motion's divided by
                ``stride``).
            resolution, truncation_psi: as in :meth:`__call__`.
            betas (`(10,)`, *optional*): the person's shape; default the mean shape (a motion's own
                betas belong to the body model it was captured with: pass ``motion.betas`` to use them).
            view_angle (`float`): turn the whole motion about the vertical axis, radians.
            z_up (`bool`): the motion's world is z-up (AMASS); ignored for a ``Motion``.
            frames_per_batch (`int`): frames rendered together.

        Every frame is centred in front of the fixed camera, so the root translation is not shown.

        Returns:
            `list` of `PIL.Image.Image`: the frames.
        """
        motion = as_motion(poses, z_up=z_up).subsample(stride, max_frames)
        latents = self._one_person(latents)
        return self._render_frames(
            latents,
            len(motion),
            frames_per_batch,
            lambda frame_slice: {"body_pose": motion.body_pose[frame_slice], "global_orient": motion.global_orient[frame_slice]},
            resolution=resolution,
            truncation_psi=truncation_psi,
            betas=betas,
            view_angle=view_angle,
        )


def semantic_picture(masks: torch.Tensor) -> torch.Tensor:
    """Colour-coded parts ``(B, 3, H, W)`` in [0, 1] from masks ``(B, K, H, W)`` (white background)."""
    colors = torch.tensor(PART_COLORS, dtype=masks.dtype, device=masks.device) / 255  # (K, 3)
    background = torch.tensor(BACKGROUND_COLOR, dtype=masks.dtype, device=masks.device).view(1, 3, 1, 1) / 255
    coloured = torch.einsum("bkhw,kc->bchw", masks, colors)
    return coloured + (1 - masks.sum(1, keepdim=True)).clamp(0, 1) * background


def _check_body_vector(value, batch: int, dim: int, argument: str, max_abs: float | None = None) -> None:
    """``value`` must be None or a ``(batch, dim)``, ``(1, dim)`` or ``(dim,)`` array of finite numbers (each
    of magnitude at most ``max_abs`` when given)."""
    if value is None:
        return
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"`{argument}` must be a ({batch}, {dim}) or ({dim},) tensor of numbers, got {type(value).__name__}.") from error
    shape = tuple(tensor.shape)
    if not (shape == (dim,) or (len(shape) == 2 and shape[1] == dim and shape[0] in (1, batch))):
        raise ValueError(f"`{argument}` must have shape ({batch}, {dim}) or ({dim},), got {shape}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"`{argument}` contains NaN or infinite values.")
    if max_abs is not None and tensor.abs().max() > max_abs:
        raise ValueError(f"`{argument}` must lie in [-{max_abs:g}, {max_abs:g}], got a value of magnitude {tensor.abs().max().item():g}.")


def _check_view_angle(view_angle, batch: int) -> None:
    """``view_angle`` must be None, a finite number, or a tensor of ``batch`` (or one) finite angles."""
    if view_angle is None:
        return
    if isinstance(view_angle, bool) or not isinstance(view_angle, (int, float, torch.Tensor, list, tuple)):
        raise ValueError(f"`view_angle` must be a number or a (B,) tensor of radians, got {view_angle!r}.")
    try:
        angle = torch.as_tensor(view_angle, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"`view_angle` must be a number or a (B,) tensor of radians, got {view_angle!r}.") from error
    if angle.ndim > 1 or angle.numel() not in (1, batch):
        raise ValueError(f"`view_angle` must be a scalar or have one value per body ({batch}), got shape {tuple(angle.shape)}.")
    if not torch.isfinite(angle).all():
        raise ValueError(f"`view_angle` must be finite, got {view_angle!r}.")


def _as_batch(value, batch: int, dim: int, device) -> torch.Tensor:
    """A checked ``value`` as a ``(batch, dim)`` float tensor: None → zeros; ``(dim,)`` and ``(1, dim)`` broadcast."""
    if value is None:
        return torch.zeros(batch, dim, device=device)
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    return tensor.reshape(-1, dim).expand(batch, dim).contiguous()
