"""Warm start of stage 1: put every part where it belongs before the adversarial game begins
(docs/method.md §6).

A fresh generator decodes Δsdf ≈ 0 for every part, so all six parts cover the whole body at step 0
and the semantic discriminator has to pull them apart from nothing. The warm start regresses each
part's Δsdf, for random latents, at canonical points near the body surface onto a placement prior
read off the body model's skinning weights::

    r_k(x)        = Σ_{j ∈ REGIONS[k]} w_j(x)                      # how much x belongs to part k's bones
    target_k(x)   = r_k(x) · LAYER[k] − (1 − r_k(x)) · ABSENT        # on the body (+ a layer), or absent

so at step 0 tops cover the torso and upper arms, bottoms the hips and legs, shoes the feet, the body
part the head, neck, forearms and hands, and outerwear and accessories are absent (the GAN grows them
where the data has them). The L1 loss weighs each part's region and the rest equally
(:func:`placement_loss`), so the feet and the head are placed as surely as the torso. Only the synthesis
and the decoders' Δsdf move; colours are left to the GAN.
It runs once, before the first training step, and lives in the configs (``warm_start_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES
from semantichuman_hd.generator import SemanticHumanGenerator
from semantichuman_hd.parts import NUM_PARTS, PARTS

REGIONS: dict[str, tuple[str, ...]] = {
    "body": ("neck", "head", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand"),
    "tops": ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder"),
    "outerwear": (),
    "bottoms": ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee"),
    "shoes": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
    "accessories": (),
}
"""The bones (SMPL joints, whose skinning weights cover the bone to their child) each part starts on.
Every joint belongs to exactly one part; outerwear and accessories start nowhere."""

LAYER: dict[str, float] = {"body": 0.0, "tops": 0.008, "outerwear": 0.02, "bottoms": 0.01, "shoes": 0.013, "accessories": 0.01}
"""How far outside the skin (metres) a part's surface starts where it is present."""

ABSENT: float = 0.3
"""Δsdf (metres, inwards) of a part where it is absent: its SDF stays below −0.2 in the whole shell."""

WARM_START_BETAS: tuple[float, float] = (0.9, 0.99)
"""Adam's β1, β2 of the warm start (a plain regression, so with momentum, unlike the GAN's β1 = 0)."""


def region_matrix() -> torch.Tensor:
    """``(24, K)`` 0/1 matrix: joint j starts on part k."""
    matrix = torch.zeros(len(SMPL_JOINT_NAMES), NUM_PARTS)
    for part, joints in REGIONS.items():
        for joint in joints:
            matrix[SMPL_JOINT_NAMES.index(joint), PARTS.index(part)] = 1.0
    return matrix


def part_regions(generator: SemanticHumanGenerator, points: torch.Tensor) -> torch.Tensor:
    """``(B, N, K)`` how much each canonical point ``(B, N, 3)`` belongs to each part's bones, in [0, 1]."""
    weights = generator.deformer.weights_grid(points).clamp(0, 1)  # (B, N, 24)
    return (weights @ region_matrix().to(weights)).clamp(0, 1)


def placement_targets(regions: torch.Tensor) -> torch.Tensor:
    """``(B, N, K)`` target Δsdf for :func:`part_regions` ``regions`` (see the module docstring)."""
    layer = torch.tensor([LAYER[name] for name in PARTS], dtype=regions.dtype, device=regions.device)
    return regions * layer - (1 - regions) * ABSENT


def placement_loss(delta_sdf: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Mean |Δsdf − target| with, for every part, its region (``regions > 0.5``) and the rest weighted
    equally, so that small regions (feet, head) count as much as the large absent remainder."""
    error = (delta_sdf - placement_targets(regions)).abs()
    present = (regions > 0.5).to(error.dtype)
    inside = (error * present).sum((0, 1)) / present.sum((0, 1)).clamp_min(1)
    outside = (error * (1 - present)).sum((0, 1)) / (1 - present).sum((0, 1)).clamp_min(1)
    return ((inside + outside) / 2).mean()


@dataclass
class WarmStartResult:
    """Attributes:
    first_loss, last_loss: :func:`placement_loss` (metres) of the first and the last warm-start step.
    steps: steps run.
    """

    first_loss: float
    last_loss: float
    steps: int


def warm_start(
    generator: SemanticHumanGenerator,
    steps: int,
    batch_size: int,
    num_points: int,
    lr: float,
    generator_rng: torch.Generator,
    device: torch.device,
) -> WarmStartResult:
    """Fit every part's Δsdf to :func:`placement_targets` for random latents: ``steps`` Adam steps on
    the mapper and the local generators (a fresh optimiser, so the training optimiser's state stays
    untouched). Returns the first and last L1 losses."""
    parameters = [p for module in (generator.mapper, generator.local_generators) for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr, betas=WARM_START_BETAS)
    z_dim = generator.mapper.config.z_dim
    first = last = float("nan")
    for step in range(steps):
        z = torch.randn(batch_size, 1, z_dim, generator=generator_rng).expand(-1, NUM_PARTS, -1).to(device)
        planes = generator.local_generators.synthesize(generator.mapping(z), "random", generator_rng).planes
        points = generator.shell_points(batch_size, num_points, generator=generator_rng).to(device)
        delta, _ = generator.local_generators.decode(planes, points, None)
        loss = placement_loss(delta, part_regions(generator, points))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last = loss.item()
        if step == 0:
            first = last
    optimizer.zero_grad(set_to_none=True)
    return WarmStartResult(first_loss=first, last_loss=last, steps=steps)
