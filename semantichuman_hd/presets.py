"""Model sizes and render settings by name: ``"tiny"`` (tests), ``"demo"`` (CPU training), ``"paper"``.

A :class:`PresetConfig` holds the keyword arguments of the three components and the render settings of
the pipeline, consistent with each other (the mapper's ``num_ws`` matches the generators', the
super-resolution module continues the generators' planes, the HR render is ``SR_SCALE`` × the LR one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .models.local_generators import DEFAULT_BOX_CENTER, DEFAULT_BOX_WARP, FIRST_BLOCK_RESOLUTION
from .models.super_resolution import SR_SCALE
from .parts import NUM_PARTS


@dataclass(frozen=True)
class PresetConfig:
    """Sizes of the three components and the pipeline's render settings."""

    mapper: Mapping[str, Any]
    """Keyword arguments of :class:`~semantichuman_hd.models.SemanticMapper`."""

    local_generators: Mapping[str, Any]
    """Keyword arguments of :class:`~semantichuman_hd.models.LocalGenerators`."""

    super_resolution: Mapping[str, Any]
    """Keyword arguments of :class:`~semantichuman_hd.models.SuperResolution3D`."""

    low_resolution: int
    """Side of the stage-1 render, pixels."""

    high_resolution: int
    """Side of the stage-2 render, pixels (``SR_SCALE × low_resolution``)."""

    num_stratified: int
    """Stratified samples per ray in stage 1."""

    num_importance: int
    """Importance samples per ray in stage 1."""

    truncation_psi: float = 1.0
    """Default truncation toward the average codes (1 = none; the paper evaluates at 1)."""


def _preset(
    *,
    z_dim: int,
    w_dim: int,
    mapping_layers: int,
    plane_resolution: int,
    plane_channels: int,
    channel_base: int,
    channel_max: int,
    decoder_hidden: tuple[int, ...],
    low_resolution: int,
    num_stratified: int,
    num_importance: int,
    truncation_psi: float = 1.0,
) -> PresetConfig:
    """A consistent :class:`PresetConfig` from the few numbers that define a size."""
    num_ws = 2 * int(math.log2(plane_resolution)) - int(math.log2(FIRST_BLOCK_RESOLUTION))  # StyleGAN2's count
    shared = dict(
        w_dim=w_dim,
        num_parts=NUM_PARTS,
        plane_channels=plane_channels,
        channel_base=channel_base,
        channel_max=channel_max,
        decoder_hidden=list(decoder_hidden),
        box_warp=DEFAULT_BOX_WARP,
        box_center=list(DEFAULT_BOX_CENTER),
    )
    return PresetConfig(
        mapper=MappingProxyType(dict(z_dim=z_dim, w_dim=w_dim, num_parts=NUM_PARTS, num_ws=num_ws, num_layers=mapping_layers)),
        local_generators=MappingProxyType(dict(shared, plane_resolution=plane_resolution)),
        super_resolution=MappingProxyType(dict(shared, lr_resolution=plane_resolution)),
        low_resolution=low_resolution,
        high_resolution=SR_SCALE * low_resolution,
        num_stratified=num_stratified,
        num_importance=num_importance,
        truncation_psi=truncation_psi,
    )


PRESETS: dict[str, PresetConfig] = {
    # Seconds on a CPU: tests and CI.
    "tiny": _preset(
        z_dim=32,
        w_dim=32,
        mapping_layers=2,
        plane_resolution=32,
        plane_channels=8,
        channel_base=512,
        channel_max=32,
        decoder_hidden=(16, 16),
        low_resolution=32,
        num_stratified=12,
        num_importance=12,
    ),
    # Trainable on a 2-core CPU: 1.16 M parameters in all (2.3 MB in fp16).
    "demo": _preset(
        z_dim=128,
        w_dim=128,
        mapping_layers=2,
        plane_resolution=64,
        plane_channels=16,
        channel_base=2048,
        channel_max=32,
        decoder_hidden=(16, 32),
        low_resolution=64,
        num_stratified=24,
        num_importance=24,
    ),
    # docs/method.md §3 and §5: z = w = 512, 256² planes of 3 × 16 channels (512 channels up to 64², 256 at 128²,
    # 128 at 256²), 1024² HR planes, renders at 256² and 1024², 36 + 36 samples per ray.
    "paper": _preset(
        z_dim=512,
        w_dim=512,
        mapping_layers=2,
        plane_resolution=256,
        plane_channels=16,
        channel_base=32768,
        channel_max=512,
        decoder_hidden=(16, 32),
        low_resolution=256,
        num_stratified=36,
        num_importance=36,
    ),
}
"""The named presets."""


def get_preset(name: str) -> PresetConfig:
    """The preset called ``name``.

    Raises:
        ValueError: If ``name`` is not one of :data:`PRESETS`.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"`name` must be one of {sorted(PRESETS)}, got {name!r}.")
    return PRESETS[name]
