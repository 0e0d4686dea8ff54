"""Guided vs brute-force super-resolution rendering: decoder queries, wall-clock and PSNR (docs/method.md §5).

Renders the same high-resolution field three ways and prints JSON:

* guided, ``"argmax"`` and ``"threshold"`` semantic selection (``SemanticHumanPipeline.render_high``):
  11 depth-guided samples per pixel, only the parts the stage-1 semantics select;
* brute force (``render_high(..., guided=False)``): the stage-1 sampler, 36 + 36 samples per ray,
  every part: 432 decoder queries asked for per ray that meets the body's box.

Keys ``argmax_query_ratio`` / ``threshold_query_ratio`` are decoder queries of the guided render over those
of the brute-force one (both counted after culling, i.e. pairs actually decoded), ``*_time_ratio`` the
wall-clock ratio of the HR renders (``*_time_ratio_with_stage1`` adds the stage-1 render the guided one
needs), ``*_psnr_db`` the RGB PSNR of the guided render against the brute-force one (whole image and,
``*_psnr_foreground_db``, pixels either render covers)::

    python benchmarks/bench_sr.py [--device cpu] [--hr 512] [--poses a-pose walking] [--field regions]

Each guided render is timed ``--repeats`` times (the fastest kept), the brute-force one once (after
``--warmup`` untimed passes of everything, by default one on a GPU).

``--field regions`` (default) renders a fixed canonical field in which each part covers its own body
region (head, torso, arms, legs, feet, hands, by the canonical skinning weights), slightly off the body
surface and striped finer than a stage-1 pixel, so part masks are meaningful and the super-resolution has
detail to find; ``--field model`` renders the pipeline's own tri-planes (``--pretrained`` folder or a
randomly initialised ``--preset``). The brute-force render is by far the slowest step (about a minute
at 512² on a 2-core CPU): ``--brute-force-row-stride N`` renders only every N-th image row by brute force
and scales the full-image figures from those rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import torch

from reporting import machine_report, print_report, synchronize
from semantichuman_hd.body.poses import named_pose
from semantichuman_hd.evaluation.pictures import psnr
from semantichuman_hd.generator import SemanticHumanGenerator
from semantichuman_hd.body.smpl_format import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES
from semantichuman_hd.models.super_resolution import SR_SCALE
from semantichuman_hd.models.triplane import count_decoder_queries
from semantichuman_hd.parts import NUM_PARTS, PART_COLORS, PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline
from semantichuman_hd.rendering.cameras import fixed_camera
from semantichuman_hd.rendering.guided_sampling import SELECTION_MODES, select_parts
from semantichuman_hd.rendering.volume_renderer import NUM_IMPORTANCE_SAMPLES, NUM_STRATIFIED_SAMPLES
from semantichuman_hd.scene import PosedPartField, pose_centred

FIELDS: tuple[str, ...] = ("regions", "model")
"""``--field`` choices."""

PART_JOINTS: dict[str, tuple[str, ...]] = {
    "body": ("neck", "head"),
    "tops": ("spine1", "spine2", "spine3", "left_collar", "right_collar"),
    "outerwear": ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow"),
    "bottoms": ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee"),
    "shoes": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
    "accessories": ("left_wrist", "right_wrist", "left_hand", "right_hand"),
}
"""Body region of each part in the ``regions`` field: the SMPL joints whose skinning weights claim it."""

REGION_OFFSET: float = 0.015
"""Δsdf of a part where its region's skinning weight is at least 1/2 (metres off the body surface)."""

OUTSIDE_DEPTH: float = 0.1
"""Δsdf of a part far from its region (metres under the body surface: no density within the prior's
shell); it falls linearly from :data:`REGION_OFFSET` at weight 1/2 to this at weight 0, so neighbouring
parts meet without a seam and share only a thin band."""

STRIPE_PERIOD: float = 0.03
"""Period of the colour stripes of the ``regions`` field along canonical x + y, metres (about two stage-1
pixels at 128²). They are constant along canonical z, roughly the surface normal seen by the camera, as a
texture is constant through a thin surface."""

STRIPE_AMPLITUDE: float = 1.5
"""Amplitude of the stripes in colour-logit units."""

REGIONS_BETA: float = 0.005
"""β of the ``regions`` field: sharp surfaces, as a trained model's."""

FOREGROUND_ALPHA: float = 0.01
"""Pixels covered more than this by either render count as foreground for ``*_psnr_foreground_db``."""



class RegionField:
    """Canonical field ``(points (B, M, 3), part_mask (B, M, K)) → (Δsdf (B, M, K), logits (B, M, K, 3))``
    in which part ``k`` lies :data:`REGION_OFFSET` outside the body surface within its body region
    (:data:`PART_JOINTS`, by the deformer's canonical skinning weights) and :data:`OUTSIDE_DEPTH` under it
    away from the region, coloured with its semantic colour and diagonal stripes (:data:`STRIPE_PERIOD`).
    Counts the (point, part) pairs it decodes, as the tri-plane decoders do."""

    def __init__(self, deformer):
        self.deformer = deformer
        assignment = torch.zeros(NUM_SMPL_JOINTS, NUM_PARTS)
        for part, joints in PART_JOINTS.items():
            for joint in joints:
                assignment[SMPL_JOINT_NAMES.index(joint), PARTS.index(part)] = 1.0
        if not torch.equal(assignment.sum(1), torch.ones(NUM_SMPL_JOINTS)):
            raise ValueError("`PART_JOINTS` must give every SMPL joint exactly one part.")
        self.assignment = assignment
        colors = torch.tensor(PART_COLORS, dtype=torch.float32) / 255
        self.base_logits = torch.logit(colors.clamp(0.05, 0.95))  # (K, 3)
        self.num_decoded = 0

    def __call__(self, points: torch.Tensor, part_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, count = points.shape[:2]
        weights = self.deformer.weights_grid(points.reshape(-1, 3)).clamp_min(0)  # (B·M, 24)
        region = (weights @ self.assignment.to(weights)).reshape(batch, count, NUM_PARTS)
        region = region / region.sum(-1, keepdim=True).clamp_min(1e-8)
        delta_sdf = REGION_OFFSET - (REGION_OFFSET + OUTSIDE_DEPTH) * (1 - 2 * region).clamp(0, 1)
        phase = 2 * math.pi * points[..., :2].sum(-1, keepdim=True) / STRIPE_PERIOD  # (B, M, 1), constant in z
        stripes = STRIPE_AMPLITUDE * torch.sin(phase).unsqueeze(-1)  # (B, M, 1, 1)
        logits = self.base_logits.to(points).expand(batch, count, NUM_PARTS, 3) + stripes
        if part_mask is None:
            self.num_decoded += batch * count * NUM_PARTS
            return delta_sdf, logits
        self.num_decoded += int(part_mask.sum())
        return delta_sdf.masked_fill(~part_mask, float("-inf")), logits * part_mask.unsqueeze(-1)


class RegionFieldGenerator(SemanticHumanGenerator):
    """The two-stage generator with both stages' tri-plane fields replaced by a :class:`RegionField`."""

    def __init__(self, base: SemanticHumanGenerator, region_field: RegionField):
        super().__init__(base.mapper, base.local_generators, base.super_resolution, base.deformer, base.settings)
        self.region_field = region_field

    def field(self, posed, planes, stage: int = 1) -> PosedPartField:
        return PosedPartField(self.deformer, posed, self.region_field, NUM_PARTS)


def brute_force_rows(generator: SemanticHumanGenerator, ws, posed, lr, rows: torch.Tensor):
    """The brute-force HR render (``render_high(..., guided=False)``) restricted to the image rows
    ``rows``: the same rays, box and sampler, for measuring a fraction of the image."""
    size = generator.settings.high_resolution
    device = ws.device
    field = generator.field(posed, generator.super_resolution.synthesize(lr, ws), stage=2)
    origins, directions = fixed_camera(posed.batch_size, device=device).generate_rays(size, size)
    pick = (rows.to(device).unsqueeze(1) * size + torch.arange(size, device=device)).reshape(-1)
    origins, directions = origins[:, pick], directions[:, pick]
    near, far, hit = generator.ray_bounds(origins, directions, posed, "box")
    return generator.renderer().render(field, origins, directions, near, far, beta=generator.super_resolution.beta, hit=hit)


def build_generator(args, device: torch.device) -> SemanticHumanGenerator:
    """The generator of ``--preset`` (or ``--pretrained``) at ``--hr``; with ``--field regions`` its
    tri-plane fields are replaced by a :class:`RegionField` of β ``--beta``."""
    low = args.hr // SR_SCALE
    settings = dict(low_resolution=low, high_resolution=args.hr, num_stratified=NUM_STRATIFIED_SAMPLES, num_importance=NUM_IMPORTANCE_SAMPLES)
    if args.field == "model" and args.pretrained:
        pipe = SemanticHumanPipeline.from_pretrained(args.pretrained)
        pipe.register_to_config(**settings)
    else:
        pipe = SemanticHumanPipeline.from_preset(args.preset, **settings)
    generator = pipe.to(device).generator_model
    if args.field == "regions":
        generator = RegionFieldGenerator(generator, RegionField(generator.deformer))
        with torch.no_grad():
            generator.local_generators.beta.fill_(args.beta)
            generator.super_resolution.beta.fill_(args.beta)
    return generator


class QueryCounter:
    """Decoder queries of the HR renders: the region field's count, or the HR decoders' queries counted by
    :func:`count_decoder_queries` while attached (``with QueryCounter(generator) as counter``)."""

    def __init__(self, generator: SemanticHumanGenerator):
        self.generator = generator
        self._attachment = count_decoder_queries(generator.super_resolution)
        self._decoder_queries = None

    def __enter__(self) -> "QueryCounter":
        self._decoder_queries = self._attachment.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._attachment.__exit__(*exc_info)

    def reset(self) -> None:
        if isinstance(self.generator, RegionFieldGenerator):
            self.generator.region_field.num_decoded = 0
        self._decoder_queries.total = 0

    def read(self) -> int:
        if isinstance(self.generator, RegionFieldGenerator):
            return self.generator.region_field.num_decoded
        return self._decoder_queries.total


def save_images(folder: str, pictures: dict[str, torch.Tensor]) -> None:
    """Write ``(B, H, W, 3)`` pictures in [0, 1] as ``<name>_<b>.png``."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for name, picture in pictures.items():
        for index, image in enumerate((picture.clamp(0, 1) * 255).round().byte().cpu().numpy()):
            Image.fromarray(image).save(os.path.join(folder, f"{name}_{index}.png"))


def measure(
    generator: SemanticHumanGenerator, poses: list[str], row_stride: int, device: torch.device, repeats: int = 1, image_folder: str | None = None
) -> dict:
    """Render stage 1, each guided mode (``repeats`` times, the fastest kept) and brute force (once)."""
    settings = generator.settings
    size = settings.high_resolution
    batch = len(poses)
    results: dict = {}
    cameras = fixed_camera(batch, device=device)
    with torch.no_grad(), QueryCounter(generator) as counter:
        body_pose = torch.stack([named_pose(name) for name in poses]).to(device)
        posed = pose_centred(generator.deformer, body_pose=body_pose)
        ws = generator.mapping(generator.mapper.sample_latents(batch, torch.Generator().manual_seed(0), device=device))

        synchronize(device)
        start = time.perf_counter()
        lr = generator.local_generators.synthesize(ws)
        low = generator.render_stage1(lr, posed, cameras)
        synchronize(device)
        results["stage1_seconds"] = time.perf_counter() - start

        low_masks = low.masks
        images = {}
        for mode in SELECTION_MODES:
            generator.settings = dataclasses.replace(settings, selection_mode=mode)
            seconds = []
            for _ in range(repeats):
                counter.reset()
                synchronize(device)
                start = time.perf_counter()
                output = generator.render_stage2(lr, ws, posed, cameras, low)
                synchronize(device)
                seconds.append(time.perf_counter() - start)
            images[mode] = output
            selected = select_parts(low_masks, SR_SCALE, mode=mode)  # what render_high selected
            results[mode] = {
                "seconds": min(seconds),
                "seconds_each_repeat": seconds,
                "decoder_queries": counter.read(),
                "guided_pixels": int(selected.any(1).sum()),
                "parts_per_guided_pixel": float(selected.sum() / selected.any(1).sum().clamp_min(1)),
            }
        generator.settings = settings

        rows = torch.arange(0, size, row_stride)
        counter.reset()
        synchronize(device)
        start = time.perf_counter()
        if row_stride == 1:
            hr_planes = generator.super_resolution.synthesize(lr, ws)
            brute = generator.render_stage1(lr, posed, cameras, size=size, stage=2, planes=hr_planes).render
        else:
            brute = brute_force_rows(generator, ws, posed, lr, rows)
        synchronize(device)
        seconds = time.perf_counter() - start
        fraction = rows.numel() / size
        results["brute_force"] = {
            "seconds": seconds,
            "seconds_full_image": seconds / fraction,
            "decoder_queries": counter.read(),
            "decoder_queries_full_image": counter.read() / fraction,
            "requested_queries": brute.num_field_queries,
            "pixels": batch * rows.numel() * size,
        }
        brute_rgb = brute.rgb.reshape(batch, rows.numel(), size, 3)
        brute_alpha = brute.alpha.reshape(batch, rows.numel(), size)

    pictures = {"brute_force": brute_rgb}
    for mode in SELECTION_MODES:
        guided = images[mode]
        rgb = guided.image.permute(0, 2, 3, 1)[:, rows.to(guided.image.device)]
        alpha = guided.alpha[:, 0][:, rows.to(guided.alpha.device)]
        covered = (alpha > FOREGROUND_ALPHA) | (brute_alpha > FOREGROUND_ALPHA)
        entry = results[mode]
        entry["psnr_db"] = psnr(rgb.clamp(0, 1), brute_rgb.clamp(0, 1))
        entry["psnr_foreground_db"] = psnr(rgb[covered].clamp(0, 1), brute_rgb[covered].clamp(0, 1))
        entry["queries_per_guided_pixel"] = entry["decoder_queries"] / max(entry["guided_pixels"], 1)
        pictures[mode] = rgb
    if image_folder:
        pictures["stage1"] = low.image.permute(0, 2, 3, 1)
        save_images(image_folder, pictures)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: cuda if available)")
    parser.add_argument("--hr", type=int, default=512, help=f"high-resolution side, a multiple of {SR_SCALE} (default 512; LR = HR / {SR_SCALE})")
    parser.add_argument("--poses", nargs="+", default=["a-pose"], help="named body poses, rendered as one batch (default: a-pose)")
    parser.add_argument("--field", choices=FIELDS, default="regions", help="regions: fixed part-per-region field; model: the pipeline's tri-planes")
    parser.add_argument("--preset", default="tiny", help="components' preset (default tiny; the regions field ignores their tri-planes)")
    parser.add_argument("--pretrained", default=None, help="pipeline folder or Hub id for --field model")
    parser.add_argument("--beta", type=float, default=REGIONS_BETA, help=f"β of the regions field (default {REGIONS_BETA})")
    parser.add_argument("--brute-force-row-stride", type=int, default=1, help="render only every N-th row by brute force (default 1: all)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 1 on GPU, 0 on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each guided render, the fastest kept (default 2; brute force runs once)")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    parser.add_argument("--save-images", default=None, help="folder for PNGs of the guided and brute-force renders")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.hr % SR_SCALE or args.hr < SR_SCALE:
        parser.error(f"--hr must be a positive multiple of {SR_SCALE}, got {args.hr}")
    stride = args.brute_force_row_stride
    if stride < 1:
        parser.error(f"--brute-force-row-stride must be >= 1, got {stride}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)

    generator = build_generator(args, device)
    for _ in range(warmup):
        measure(generator, args.poses, stride, device)
    results = measure(generator, args.poses, stride, device, args.repeats, args.save_images)

    brute = results["brute_force"]
    report = {
        **machine_report(device),
        "field": args.field,
        "preset": args.pretrained or args.preset,
        "poses": args.poses,
        "hr": args.hr,
        "lr": args.hr // SR_SCALE,
        "beta": args.beta if args.field == "regions" else float(generator.super_resolution.beta),
        "brute_force_samples_per_ray": generator.settings.num_stratified + generator.settings.num_importance,
        "brute_force_row_stride": stride,
        "warmup_runs": warmup,
        "guided_repeats": args.repeats,
        "stage1_seconds": results["stage1_seconds"],
        "brute_force": brute,
    }
    for mode in SELECTION_MODES:
        entry = results[mode]
        report[mode] = entry
        report[f"{mode}_query_ratio"] = entry["decoder_queries"] / brute["decoder_queries_full_image"]
        report[f"{mode}_time_ratio"] = entry["seconds"] / brute["seconds_full_image"]
        report[f"{mode}_time_ratio_with_stage1"] = (entry["seconds"] + results["stage1_seconds"]) / brute["seconds_full_image"]
        report[f"{mode}_psnr_db"] = entry["psnr_db"]
    print_report(report, args.output)


if __name__ == "__main__":
    main()
