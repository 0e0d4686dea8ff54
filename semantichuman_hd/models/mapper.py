"""The semantic mapper: latents z → K part codes w_k (docs/method.md §3)."""

from __future__ import annotations

from typing import Optional

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..parts import NUM_PARTS
from ..checks import check_finite_number, check_number_in_range, check_positive_int, check_positive_number
from .stylegan2 import FullyConnected, GroupedFullyConnected, normalize_second_moment

MAPPING_LR_MULTIPLIER: float = 0.01
"""StyleGAN2's learning-rate multiplier of the mapping network."""

W_AVG_BETA: float = 0.998
"""Decay of the tracked average code (``w_avg ← lerp(mean w, w_avg, β)`` per training step)."""

DEFAULT_MAPPING_LAYERS: int = 2
"""Layers of the mapping MLP (EG3D's setting; StyleGAN2 used 8)."""


class SemanticMapper(ModelMixin, ConfigMixin):
    r"""Maps one latent per part to that part's codes, ``latents (B, K, z_dim) → ws (B, K, num_ws, w_dim)``.

    A StyleGAN2 mapping MLP: a shared trunk (``num_layers - 1`` equalised-lr layers with leaky ReLU)
    followed by the output layer, which is either

    * one head per part (``part_heads=True``, the default and what every preset uses): exactly "one MLP
      producing K·w_dim outputs, of which part k takes its block from the row of its own latent z_k",
      computing only the needed block. A z shared by all parts makes K *different* part codes;
    * one head shared by all parts (``part_heads=False``, the paper's mapper): ``w_k = MLP(z_k)`` with the
      same MLP for every part, so a z shared by all parts makes ONE code w for all K parts, as the paper
      constrains the K codes to be equal during training (docs/method.md §3).

    In training the caller passes the same z for all parts (``sample_latents(same_for_all_parts=True)``);
    at inference each part's code depends on ``latents[:, k]`` only, so any part can be resampled, swapped
    or interpolated without touching the others. Each part code is repeated for the ``num_ws`` layers of
    that part's synthesis network (an edit swaps a part's whole block of codes).

    A per-part average code ``w_avg (K, w_dim)`` is tracked during training and used for truncation.

    Parameters:
        z_dim (`int`): Size of each latent (512 in the paper).
        w_dim (`int`): Size of each code (512 in the paper).
        num_parts (`int`): K.
        num_ws (`int`): Codes per synthesis network (``LocalGenerators.num_ws``).
        num_layers (`int`): Layers of the MLP (at least 1; the last one is per part).
        lr_multiplier (`float`): Learning-rate multiplier of every layer (0.01).
        w_avg_beta (`float`): Decay of the tracked average code (0.998).
        part_heads (`bool`): One output layer per part (True) or one shared by all parts (False, the paper's).
    """

    @register_to_config
    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        num_parts: int = NUM_PARTS,
        num_ws: int = 14,
        num_layers: int = DEFAULT_MAPPING_LAYERS,
        lr_multiplier: float = MAPPING_LR_MULTIPLIER,
        w_avg_beta: float = W_AVG_BETA,
        part_heads: bool = True,
    ):
        super().__init__()
        for name, value in (("z_dim", z_dim), ("w_dim", w_dim), ("num_parts", num_parts), ("num_ws", num_ws), ("num_layers", num_layers)):
            check_positive_int(value, name)
        check_positive_number(lr_multiplier, "lr_multiplier")
        check_number_in_range(w_avg_beta, "w_avg_beta", 0, 1, include_high=False)
        if not isinstance(part_heads, bool):
            raise ValueError(f"`part_heads` must be True or False, got {part_heads!r}.")
        widths = [z_dim] + [w_dim] * num_layers
        self.trunk = nn.Sequential(
            *[
                FullyConnected(fan_in, fan_out, activation="lrelu", lr_multiplier=lr_multiplier)
                for fan_in, fan_out in zip(widths[:-2], widths[1:-1])
            ]
        )
        if part_heads:
            self.heads = GroupedFullyConnected(num_parts, widths[-2], w_dim, activation="lrelu", lr_multiplier=lr_multiplier)
        else:
            self.heads = FullyConnected(widths[-2], w_dim, activation="lrelu", lr_multiplier=lr_multiplier)
        self.register_buffer("w_avg", torch.zeros(num_parts, w_dim))

    def forward(
        self,
        latents: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        r"""Codes of every part.

        Parameters:
            latents (`torch.Tensor`): ``(B, K, z_dim)``, part k's code comes from ``latents[:, k]`` only.
            truncation_psi (`float`): ``w ← w_avg + ψ (w − w_avg)`` per part (1 = no truncation, 0 = average).
            truncation_cutoff (`int`, *optional*): Truncate only the first ``truncation_cutoff`` of the
                ``num_ws`` codes (default: all).
            update_w_avg (`bool`): Move the tracked ``w_avg`` toward this batch's mean codes (training).

        Returns:
            ``ws (B, K, num_ws, w_dim)``.
        """
        config = self.config
        expected = (config.num_parts, config.z_dim)
        if not isinstance(latents, torch.Tensor) or latents.ndim != 3 or tuple(latents.shape[1:]) != expected:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"`latents` must be a tensor of shape (B, {config.num_parts}, {config.z_dim}), got {shape}.")
        if not torch.isfinite(latents).all():
            raise ValueError("`latents` contains NaN or infinite values.")
        check_finite_number(truncation_psi, "truncation_psi")
        if truncation_cutoff is not None and (
            isinstance(truncation_cutoff, bool) or not isinstance(truncation_cutoff, int) or not 0 <= truncation_cutoff <= config.num_ws
        ):
            raise ValueError(f"`truncation_cutoff` must be None or an integer in [0, {config.num_ws}], got {truncation_cutoff!r}.")

        x = normalize_second_moment(latents.to(self.w_avg.dtype))
        w = self.heads(self.trunk(x))  # (B, K, w_dim)
        if update_w_avg and latents.shape[0] > 0:
            with torch.no_grad():
                self.w_avg.copy_(torch.lerp(w.detach().mean(0), self.w_avg, config.w_avg_beta))
        ws = w.unsqueeze(2).repeat(1, 1, config.num_ws, 1)
        if truncation_psi != 1:
            cutoff = config.num_ws if truncation_cutoff is None else truncation_cutoff
            average = self.w_avg.view(1, config.num_parts, 1, config.w_dim)
            ws[:, :, :cutoff] = torch.lerp(average, ws[:, :, :cutoff], truncation_psi)
        return ws

    def sample_latents(
        self,
        batch_size: int,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
        dtype: Optional[torch.dtype] = None,
        same_for_all_parts: bool = True,
    ) -> torch.Tensor:
        r"""Standard-normal latents ``(B, K, z_dim)``.

        Parameters:
            batch_size (`int`): B.
            generator (`torch.Generator`, *optional*): Source of randomness (drawn on its device).
            device, dtype: Of the result (default: this model's device, float32).
            same_for_all_parts (`bool`): One z shared by all K parts (as in training) or one per part.
        """
        check_positive_int(batch_size, "batch_size")
        config = self.config
        parts = 1 if same_for_all_parts else config.num_parts
        draw_device = generator.device if generator is not None else (device if device is not None else self.device)
        z = torch.randn((batch_size, parts, config.z_dim), generator=generator, device=draw_device)
        z = z.expand(batch_size, config.num_parts, config.z_dim).contiguous()
        return z.to(device=device if device is not None else self.device, dtype=dtype or torch.float32)
