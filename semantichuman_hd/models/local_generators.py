"""The K local generators: one StyleGAN2 tri-plane synthesis network and one decoder per part (docs/method.md §3)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..checks import check_choice
from ..parts import NUM_PARTS
from .stylegan2 import NOISE_MODES, PairSelection, SynthesisBlock, block_channels
from .synthesis import FIRST_BLOCK_RESOLUTION, TriplaneOutput, check_ws, run_blocks, synthesis_resolutions
from .triplane import NUM_PLANES, PartDecoders, TriplaneDecoding, check_triplane_config, texel_major

__all__ = [
    "BETA_INIT",
    "DEFAULT_BOX_CENTER",
    "DEFAULT_BOX_WARP",
    "DEFAULT_DECODER_HIDDEN",
    "FIRST_BLOCK_RESOLUTION",
    "LocalGenerators",
    "TriplaneOutput",
]

BETA_INIT: float = 0.1
"""Initial value of the learnable SDF → density sharpness β (used as ``|β| + 1e-4`` by the renderer)."""

DEFAULT_BOX_WARP: float = 2.0
"""Side of the canonical box covered by the tri-planes, metres (the authors' code: about 1.9; docs/method.md §3)."""

DEFAULT_BOX_CENTER: tuple[float, float, float] = (0.0, -0.3, 0.0)
"""Centre of the canonical box, metres. The canonical SMPL-format body in its T-pose (y up) spans about
x ∈ [-0.9, 0.9], y ∈ [-1.15, 0.6], z ∈ [-0.15, 0.15] (the open body; real SMPL is similar), and the parts
live within 0.1 m of it: a 2 m cube centred here holds all of that."""

DEFAULT_DECODER_HIDDEN: tuple[int, ...] = (16, 32)
"""Hidden widths of each part decoder: features → 16 → 32 → Δsdf + RGB logits (docs/method.md §3)."""


class LocalGenerators(TriplaneDecoding, ModelMixin, ConfigMixin):
    r"""K independent StyleGAN2 tri-plane generators and K decoders, evaluated batched over parts.

    ``synthesize`` maps each part's codes to its tri-plane (3 planes × ``plane_channels`` at
    ``plane_resolution``²) with a "skip" StyleGAN2 synthesis network whose channels at resolution r are
    ``min(channel_base / r, channel_max)`` (paper: 512 up to 64², 256 at 128², 128 at 256²). ``decode``
    reads the mean tri-plane feature at canonical points and maps it with part k's MLP to Δsdf and RGB
    logits. Part k's outputs depend only on part k's codes and weights.

    Parameters:
        w_dim (`int`): Size of the codes.
        num_parts (`int`): K.
        plane_resolution (`int`): Side of the planes, a power of 2 (256 in the paper).
        plane_channels (`int`): Channels per plane (16 in the paper).
        channel_base (`int`), channel_max (`int`): Feature channels ``min(channel_base // r, channel_max)``.
        decoder_hidden (`list[int]`): Hidden widths of each decoder MLP.
        box_warp (`float`): Side of the canonical box the planes cover, metres.
        box_center (`tuple[float, float, float]`): Centre of that box, metres.
        beta_init (`float`): Initial β of the SDF → density conversion.
    """

    @register_to_config
    def __init__(
        self,
        w_dim: int = 512,
        num_parts: int = NUM_PARTS,
        plane_resolution: int = 256,
        plane_channels: int = 16,
        channel_base: int = 32768,
        channel_max: int = 512,
        decoder_hidden: Sequence[int] = DEFAULT_DECODER_HIDDEN,
        box_warp: float = DEFAULT_BOX_WARP,
        box_center: Sequence[float] = DEFAULT_BOX_CENTER,
        beta_init: float = BETA_INIT,
    ):
        super().__init__()
        hidden = check_triplane_config(
            w_dim, num_parts, plane_channels, channel_base, channel_max, decoder_hidden, box_center, box_warp, beta_init
        )
        resolutions = synthesis_resolutions(plane_resolution)

        output_channels = NUM_PLANES * plane_channels
        blocks = []
        in_channels = 0
        for resolution in resolutions:
            out_channels = block_channels(resolution, channel_base, channel_max)
            blocks.append(SynthesisBlock(num_parts, in_channels, out_channels, w_dim, resolution, output_channels))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.feature_channels = in_channels
        self.decoders = PartDecoders(num_parts, plane_channels, hidden)
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))

    @property
    def num_ws(self) -> int:
        """Codes consumed per synthesis network (StyleGAN2's count: ``2·log2(plane_resolution) − 2``)."""
        return sum(block.num_conv for block in self.blocks) + self.blocks[-1].num_toplanes

    def synthesize(
        self, ws: torch.Tensor, noise_mode: str = "const", generator: Optional[torch.Generator] = None
    ) -> TriplaneOutput:
        r"""Tri-planes of the K parts.

        Parameters:
            ws (`torch.Tensor`): ``(B, K, num_ws, w_dim)`` codes from the mapper.
            noise_mode (`str`): ``"const"`` (deterministic, default), ``"random"`` or ``"none"``.
            generator (`torch.Generator`, *optional*): For ``noise_mode="random"``.

        Returns:
            [`TriplaneOutput`]: ``planes (B, K, 3, C, H, W)`` and ``features (B, K, Cf, H, W)``.
        """
        config = self.config
        check_ws(ws, config.num_parts, config.w_dim, self.num_ws)
        check_choice(noise_mode, NOISE_MODES, "noise_mode")
        pairs = PairSelection.every(*ws.shape[:2], device=ws.device)  # one batch element of B·K groups
        x, img = run_blocks(self.blocks, None, None, pairs.gather(ws.to(self.beta.dtype)), noise_mode, generator, pairs)
        features, img = pairs.scatter(x), pairs.scatter(img)  # all pairs: reshapes
        batch, parts, _, height, width = img.shape
        planes = texel_major(img.reshape(batch, parts, NUM_PLANES, config.plane_channels, height, width))
        return TriplaneOutput(planes=planes, features=features)

    def forward(
        self,
        ws: torch.Tensor,
        points_canonical: torch.Tensor,
        part_mask: Optional[torch.Tensor] = None,
        noise_mode: str = "const",
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``synthesize`` then ``decode``: ``(delta_sdf (B, N, K), rgb_logits (B, N, K, 3))``."""
        return self.decode(self.synthesize(ws, noise_mode, generator).planes, points_canonical, part_mask)
