"""The 3D-aware super-resolution module's networks: high-resolution tri-planes and decoders (docs/method.md §5).

(The depth- and semantics-guided sampling of stage 2 is in
:mod:`semantichuman_hd.rendering.guided_sampling`; the rendering in the volume renderer.)
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..parts import NUM_PARTS
from ..checks import check_choice, check_positive_int
from .local_generators import BETA_INIT, DEFAULT_BOX_CENTER, DEFAULT_BOX_WARP, DEFAULT_DECODER_HIDDEN, LocalGenerators
from .stylegan2 import NOISE_MODES, UPSAMPLE_FACTOR, PairSelection, SynthesisBlock, block_channels
from .synthesis import TriplaneOutput, check_ws, run_blocks, synthesis_resolutions
from .triplane import NUM_PLANES, PartDecoders, TriplaneDecoding, check_triplane_config, texel_major

SR_SCALE: int = 4
"""Resolution factor of the high-resolution tri-planes over the low-resolution ones (256² → 1024²)."""

SR_NUM_BLOCKS: int = int(math.log2(SR_SCALE) // math.log2(UPSAMPLE_FACTOR))
"""StyleGAN2 blocks per part in the super-resolution module (each doubles the resolution)."""


class SuperResolution3D(TriplaneDecoding, ModelMixin, ConfigMixin):
    r"""High-resolution tri-planes and decoders of the K parts (stage 2).

    Per part, :data:`SR_NUM_BLOCKS` more StyleGAN2 "skip" blocks continue the part's synthesis network: they
    take its last low-resolution feature map and its low-resolution tri-plane (the skip branch, upsampled
    and added to) to :data:`SR_SCALE` × the resolution (3 × ``plane_channels`` = 48 channels per part at
    1024² in the paper). All blocks run batched over parts. Every layer is modulated by the part's LAST
    low-resolution code ``ws[:, :, -1]`` (as EG3D's super-resolution does).

    The high-resolution decoders have the architecture of the low-resolution ones and are initialised from
    them, and β from the stage-1 β, by :meth:`init_from_local_generators`. The blocks' output layers start
    at zero, so that a fresh module's HR tri-plane is exactly the LR one upsampled (bilinearly) and stage 2
    starts by rendering the stage-1 person; the blocks then learn the high-frequency residual.

    Parameters:
        w_dim (`int`): Size of the codes.
        num_parts (`int`): K.
        lr_resolution (`int`): Side of the low-resolution planes (a power of 2).
        lr_feature_channels (`int`, *optional*): Channels of the low-resolution generators' last feature map
            (default: ``min(channel_base // lr_resolution, channel_max)``, as :class:`LocalGenerators` makes).
        plane_channels (`int`): Channels per plane (the same as the low-resolution planes).
        channel_base (`int`), channel_max (`int`): Block channels ``min(channel_base // r, channel_max)``.
        decoder_hidden (`list[int]`): Hidden widths of each decoder (the same as the low-resolution ones).
        box_warp (`float`), box_center (`tuple`): The canonical box (the same as the low-resolution one).
        beta_init (`float`): Initial β (overwritten by :meth:`init_from_local_generators`).
    """

    @register_to_config
    def __init__(
        self,
        w_dim: int = 512,
        num_parts: int = NUM_PARTS,
        lr_resolution: int = 256,
        lr_feature_channels: Optional[int] = None,
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
        synthesis_resolutions(lr_resolution)  # validates: a power of 2
        if lr_feature_channels is None:
            lr_feature_channels = block_channels(lr_resolution, channel_base, channel_max)
        check_positive_int(lr_feature_channels, "lr_feature_channels")

        self.lr_feature_channels = lr_feature_channels
        blocks = []
        in_channels, resolution = lr_feature_channels, lr_resolution
        for _ in range(SR_NUM_BLOCKS):
            resolution *= UPSAMPLE_FACTOR
            out_channels = block_channels(resolution, channel_base, channel_max)
            blocks.append(SynthesisBlock(num_parts, in_channels, out_channels, w_dim, resolution, NUM_PLANES * plane_channels))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        with torch.no_grad():
            for block in self.blocks:
                block.to_planes.conv.weight.zero_()  # start as the upsampled LR tri-plane (see the class docstring)
        self.decoders = PartDecoders(num_parts, plane_channels, hidden)
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))

    @property
    def hr_resolution(self) -> int:
        """Side of the high-resolution planes: ``SR_SCALE · lr_resolution``."""
        return SR_SCALE * self.config.lr_resolution

    @property
    def num_ws(self) -> int:
        """Codes the blocks consume (all set to the part's last low-resolution code)."""
        return sum(block.num_conv for block in self.blocks) + self.blocks[-1].num_toplanes

    def synthesize(
        self,
        lr: TriplaneOutput,
        ws: torch.Tensor,
        noise_mode: str = "const",
        generator: Optional[torch.Generator] = None,
        parts: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        r"""High-resolution tri-planes.

        Parameters:
            lr ([`TriplaneOutput`]): The low-resolution planes ``(B, K, 3, C, H, W)`` and last feature map
                ``(B, K, Cf, H, W)`` from :meth:`LocalGenerators.synthesize`.
            ws (`torch.Tensor`): ``(B, K, num_ws, w_dim)`` the mapper's codes (the last one per part is used).
            noise_mode (`str`): ``"const"`` (default), ``"random"`` or ``"none"``.
            generator (`torch.Generator`, *optional*): For ``noise_mode="random"``.
            parts (`torch.Tensor`, *optional*): ``(B, K)`` bool: synthesise only these (person, part) planes
                and leave the others zero. The K networks never mix parts, so the True ones equal those of the
                whole synthesis (the random noise too), and a render that reads only them is unchanged
                (:class:`~semantichuman_hd.models.stylegan2.PairSelection`).

        Returns:
            ``(B, K, 3, C, SR_SCALE·H, SR_SCALE·W)`` tri-planes.
        """
        config = self.config
        planes, features = getattr(lr, "planes", None), getattr(lr, "features", None)
        size = config.lr_resolution
        expected_planes = (config.num_parts, NUM_PLANES, config.plane_channels, size, size)
        expected_features = (config.num_parts, self.lr_feature_channels, size, size)
        if not isinstance(planes, torch.Tensor) or planes.ndim != 6 or tuple(planes.shape[1:]) != expected_planes:
            got = tuple(planes.shape) if isinstance(planes, torch.Tensor) else type(planes).__name__
            raise ValueError(f"`lr.planes` must have shape (B, {', '.join(map(str, expected_planes))}), got {got}.")
        if not isinstance(features, torch.Tensor) or tuple(features.shape) != (planes.shape[0], *expected_features):
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(
                f"`lr.features` must have shape ({planes.shape[0]}, {', '.join(map(str, expected_features))}), got {got}."
            )
        check_ws(ws, config.num_parts, config.w_dim)
        if ws.shape[0] != planes.shape[0]:
            raise ValueError(f"`ws` has batch size {ws.shape[0]} but `lr` has {planes.shape[0]}.")
        check_choice(noise_mode, NOISE_MODES, "noise_mode")
        batch, num_parts = planes.shape[:2]
        if parts is not None and (
            not isinstance(parts, torch.Tensor) or parts.dtype != torch.bool or tuple(parts.shape) != (batch, num_parts)
        ):
            got = (tuple(parts.shape), parts.dtype) if isinstance(parts, torch.Tensor) else type(parts).__name__
            raise ValueError(f"`parts` must be a bool tensor of shape ({batch}, {num_parts}) (B, K), got {got}.")
        codes = ws[:, :, -1:].expand(-1, -1, self.num_ws, -1).to(self.beta.dtype)
        skip = planes.reshape(batch, num_parts, NUM_PLANES * config.plane_channels, size, size).to(self.beta.dtype)
        features = features.to(self.beta.dtype)
        pairs = PairSelection.every(batch, num_parts, planes.device) if parts is None else PairSelection.from_mask(parts.to(planes.device))
        if pairs.batch_index.numel() == 0:  # nothing asked for: no network run, every plane zero
            img = skip.new_empty(1, 0, skip.shape[2], self.hr_resolution, self.hr_resolution)
        else:
            _, img = run_blocks(self.blocks, pairs.gather(features), pairs.gather(skip), pairs.gather(codes), noise_mode, generator, pairs)
        img = pairs.scatter(img)
        return texel_major(img.reshape(batch, num_parts, NUM_PLANES, config.plane_channels, *img.shape[-2:]))

    def forward(
        self,
        lr: TriplaneOutput,
        ws: torch.Tensor,
        points_canonical: torch.Tensor,
        part_mask: Optional[torch.Tensor] = None,
        noise_mode: str = "const",
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``synthesize`` then ``decode``: ``(delta_sdf (B, N, K), rgb_logits (B, N, K, 3))``."""
        return self.decode(self.synthesize(lr, ws, noise_mode, generator), points_canonical, part_mask)

    @torch.no_grad()
    def init_from_local_generators(self, local_generators: LocalGenerators) -> None:
        """Copy the low-resolution decoders' weights and β into the high-resolution ones (docs/method.md §5).

        Raises:
            ValueError: If the two models' decoders or boxes differ in configuration.
        """
        if not isinstance(local_generators, LocalGenerators):
            raise ValueError(f"`local_generators` must be a LocalGenerators, got {type(local_generators).__name__}.")
        ours, theirs = self.config, local_generators.config
        for name in ("num_parts", "plane_channels", "decoder_hidden", "box_warp", "box_center", "w_dim"):
            a, b = getattr(ours, name), getattr(theirs, name)
            if isinstance(a, (list, tuple)):
                a, b = [float(v) for v in a], [float(v) for v in b]
            if a != b:
                raise ValueError(f"`local_generators` has {name}={getattr(theirs, name)!r} but this module has {getattr(ours, name)!r}.")
        if theirs.plane_resolution != ours.lr_resolution or local_generators.feature_channels != self.lr_feature_channels:
            raise ValueError(
                f"`local_generators` makes planes of {theirs.plane_resolution}² with {local_generators.feature_channels} "
                f"feature channels; this module expects {ours.lr_resolution}² and {self.lr_feature_channels}."
            )
        self.decoders.load_state_dict(local_generators.decoders.state_dict())
        self.beta.copy_(local_generators.beta)
