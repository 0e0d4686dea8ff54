"""Conditional StyleGAN2 discriminators for the two training stages.

The generator is judged by several discriminators at once (docs/method.md §6): stage 1 by an image, a
semantic-mask and a normal discriminator on the whole render and by face-image and face-normal
discriminators on crops around the head; stage 2 by the image, normal and face discriminators at the
high resolution. Each is a :class:`ConditionalDiscriminator`; a :class:`DiscriminatorSet` holds the ones
of a stage so that a training step makes one module call (one module for accelerate / DDP to wrap).

The network is StyleGAN2's residual discriminator (Karras et al., 2020) with StyleGAN2-ADA's projection
conditioning (Karras et al., 2020; as in EG3D):

* equalised learning rate everywhere (weights stored at unit scale, multiplied by ``1/sqrt(fan_in)`` at
  run time), leaky ReLU scaled by ``sqrt(2)``;
* a 1×1 "from picture" layer, then one residual block per resolution: two 3×3 convolutions (the second
  after a 2× downsampling) plus a 1×1 skip (after the same downsampling), summed and scaled by
  ``1/sqrt(2)``;
* an epilogue at the lowest resolution: minibatch standard deviation, a 3×3 convolution, a fully connected
  layer and the output layer;
* conditioning by projection: a small mapping MLP turns the conditioning vector ``c`` into ``cmap``, and
  the logit is ``<features, cmap> / sqrt(D)``; without conditioning the output layer gives the logit.

Differences from the original, on purpose (pure PyTorch, CPU friendly): downsampling is a 2×2 average
pool (no FIR blur filter, no custom kernels), and pictures need not be square: the blocks run until the
SHORTER side reaches :data:`EPILOGUE_RESOLUTION`, so a 2:1 portrait render (e.g. 64×32) ends on an 8×4
feature map. The channel count of a level follows its LONGER side.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from semantichuman_hd.checks import check_choice, check_non_negative_int, check_positive_int
from semantichuman_hd.models.stylegan2 import FullyConnected, bias_activation, block_channels, normalize_second_moment
from semantichuman_hd.parts import NUM_PARTS

EPILOGUE_RESOLUTION: int = 4
"""The blocks halve the pictures until their shorter side is this many pixels (StyleGAN2's 4×4)."""

DOWNSAMPLE_FACTOR: int = 2
"""Each residual block halves both sides (2×2 average pooling)."""

RESIDUAL_GAIN: float = math.sqrt(0.5)
"""Scale of the sum of a block's main and skip branches, keeping the activations' variance."""

MBSTD_GROUP_SIZE: int = 4
"""Default group size of the minibatch standard-deviation layer (StyleGAN2)."""

MBSTD_NUM_CHANNELS: int = 1
"""Default number of feature channels the minibatch standard deviation adds (StyleGAN2)."""

MBSTD_EPS: float = 1e-8
"""Added to the variance before its square root in the minibatch standard-deviation layer."""

MAPPING_LR_MULTIPLIER: float = 0.01
"""Learning-rate multiplier of the conditioning MLP's hidden layers (StyleGAN2-ADA)."""

DEFAULT_MAPPING_LAYERS: int = 2
"""Layers of the conditioning MLP after its embedding (StyleGAN2-ADA uses 8; 2 keeps it light)."""

DEFAULT_CHANNEL_BASE: int = 16384
"""Default ``channel_base``: a level whose longer side is ``r`` has ``min(channel_base // r, channel_max)``
channels."""

DEFAULT_CHANNEL_MAX: int = 512
"""Default ``channel_max`` (StyleGAN2). The ``demo`` training uses about 64 and ``tiny`` about 16."""

IMAGE: str = "image"
"""Name of the discriminator on the RGB render."""

SEMANTIC: str = "semantic"
"""Name of the discriminator on the K soft part masks (stage 1 only)."""

NORMAL: str = "normal"
"""Name of the discriminator on the normal map."""

FACE_IMAGE: str = "face_image"
"""Name of the discriminator on square RGB crops around the head."""

FACE_NORMAL: str = "face_normal"
"""Name of the discriminator on square normal-map crops around the head."""

RGB_CHANNELS: int = 3
"""Channels of RGB pictures and of normal maps."""

STAGES: tuple[int, ...] = (1, 2)
"""Training stages: 1 = low-resolution generator, 2 = super-resolution module."""


def _check_power_of_two(value, argument: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value & (value - 1):
        raise ValueError(f"`{argument}` must be a power of 2 of at least {minimum}, got {value!r}.")


def discriminator_inputs(
    stage: int, height: int, width: int, face_size: int, num_parts: int = NUM_PARTS
) -> dict[str, tuple[int, int, int]]:
    """The discriminators of a training stage, as the ``inputs`` of :class:`DiscriminatorSet`.

    Parameters:
        stage (`int`): 1 (image, semantic, normal, face image, face normal) or 2 (image, normal, face image,
            face normal).
        height (`int`), width (`int`): Size of the renders the stage judges (e.g. 64×32 in stage 1 of the
            ``demo`` training, 4× that in stage 2).
        face_size (`int`): Side of the square face crops.
        num_parts (`int`): Channels of the semantic masks (K).

    Returns:
        ``{name: (channels, height, width)}``.
    """
    check_choice(stage, STAGES, "stage")
    check_positive_int(num_parts, "num_parts")
    inputs = {IMAGE: (RGB_CHANNELS, height, width)}
    if stage == 1:
        inputs[SEMANTIC] = (num_parts, height, width)
    inputs[NORMAL] = (RGB_CHANNELS, height, width)
    inputs[FACE_IMAGE] = (RGB_CHANNELS, face_size, face_size)
    inputs[FACE_NORMAL] = (RGB_CHANNELS, face_size, face_size)
    return inputs


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate 2D convolution with optional 2× average-pool downsampling before it.

    ``(B, in_channels, H, W) → (B, out_channels, H', W')`` with ``H' = H / 2`` when ``down`` else ``H``
    ("same" padding).

    Parameters:
        in_channels (`int`), out_channels (`int`): Channels.
        kernel_size (`int`): Odd kernel side.
        bias (`bool`): Learn a bias.
        activation (`str`): ``"linear"`` or ``"lrelu"`` (scaled by ``sqrt(2)``).
        down (`bool`): Halve the resolution first (2×2 average pooling).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: bool = False,
    ):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size}.")
        check_choice(activation, ("linear", "lrelu"), "activation")
        self.activation = activation
        self.down = bool(down)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, DOWNSAMPLE_FACTOR)
        x = F.conv2d(x, self.weight * self.weight_gain, padding=self.padding)
        bias = None if self.bias is None else self.bias.view(1, -1, 1, 1)
        return bias_activation(x, bias, self.activation)

    def extra_repr(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        return f"in={in_channels}, out={out_channels}, kernel={k}, activation={self.activation}, down={self.down}"


class DiscriminatorBlock(nn.Module):
    """StyleGAN2's residual discriminator block, ``(B, C_in, H, W) → (B, C_out, H/2, W/2)``.

    ``out = (conv1(down(conv0(x))) + skip(down(x))) · sqrt(1/2)``, with 3×3 ``conv0``/``conv1`` (leaky ReLU)
    and a bias-free linear 1×1 ``skip``.

    Parameters:
        in_channels (`int`), out_channels (`int`): Channels.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=True)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * RESIDUAL_GAIN


def mbstd_group(batch_size: int, group_size: int) -> int:
    """Group size the minibatch standard deviation uses for a batch: the largest divisor of ``batch_size``
    not above ``min(group_size, batch_size)`` (StyleGAN2 takes ``min(group_size, batch_size)`` and fails when
    it does not divide the batch)."""
    group = max(1, min(group_size, batch_size))
    while batch_size % group:
        group -= 1
    return group


class MinibatchStdLayer(nn.Module):
    """StyleGAN2's minibatch standard deviation, ``(B, C, H, W) → (B, C + num_channels, H, W)``.

    The batch is split into groups of :func:`mbstd_group` samples and the channels into ``num_channels``
    slices; each new channel holds, for every sample of a group, the mean (over the slice's channels and the
    pixels) of the per-feature standard deviation across the group. It lets the discriminator see the
    variety of a batch (a collapsed generator has small deviations).

    Parameters:
        group_size (`int`): Largest group size (4).
        num_channels (`int`): Channels added (1); must divide the input channels.
    """

    def __init__(self, group_size: int = MBSTD_GROUP_SIZE, num_channels: int = MBSTD_NUM_CHANNELS):
        super().__init__()
        check_positive_int(group_size, "mbstd_group_size")
        check_positive_int(num_channels, "mbstd_num_channels")
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = mbstd_group(batch, self.group_size)
        slices = self.num_channels
        y = x.reshape(group, -1, slices, channels // slices, height, width)  # (G, n, F, c, H, W)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over the group: (n, F, c, H, W)
        y = (y + MBSTD_EPS).sqrt().mean(dim=(2, 3, 4))  # (n, F)
        y = y.reshape(-1, slices, 1, 1).repeat(group, 1, height, width)  # (B, F, H, W)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class ConditionalDiscriminator(ModelMixin, ConfigMixin):
    r"""A conditional StyleGAN2 residual discriminator, ``x (B, C, H, W), c (B, c_dim) → logits (B,)``.

    See the module docstring for the architecture. Levels run from ``(H, W)`` down to the size whose shorter
    side is :data:`EPILOGUE_RESOLUTION`; a level whose longer side is ``r`` has
    ``min(channel_base // r, channel_max)`` channels.

    Parameters:
        in_channels (`int`): Channels of the judged pictures (3 for RGB and normals, K for part masks).
        height (`int`), width (`int`): Picture size; powers of 2, each at least :data:`EPILOGUE_RESOLUTION`
            (need not be equal: 64×32 portrait renders and 16×16 face crops both work).
        c_dim (`int`): Size of the conditioning vector (e.g. camera and body parameters); 0 makes the
            discriminator unconditional (``c`` is then ignored and may be None).
        channel_base (`int`), channel_max (`int`): Channel schedule (see above).
        mbstd_group_size (`int`): Group size of the minibatch standard deviation (see :func:`mbstd_group`).
        mbstd_num_channels (`int`): Channels it adds.
        conditioning_dim (`int`, *optional*): ``D``, the size of the projection ``cmap``; defaults to the
            epilogue's channel count. Unused when ``c_dim`` is 0.
        mapping_layers (`int`): Hidden layers of the conditioning MLP after its embedding layer.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = RGB_CHANNELS,
        height: int = 64,
        width: int = 64,
        c_dim: int = 0,
        channel_base: int = DEFAULT_CHANNEL_BASE,
        channel_max: int = DEFAULT_CHANNEL_MAX,
        mbstd_group_size: int = MBSTD_GROUP_SIZE,
        mbstd_num_channels: int = MBSTD_NUM_CHANNELS,
        conditioning_dim: Optional[int] = None,
        mapping_layers: int = DEFAULT_MAPPING_LAYERS,
    ):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        _check_power_of_two(height, "height", EPILOGUE_RESOLUTION)
        _check_power_of_two(width, "width", EPILOGUE_RESOLUTION)
        check_non_negative_int(c_dim, "c_dim")
        check_positive_int(channel_base, "channel_base")
        check_positive_int(channel_max, "channel_max")
        check_positive_int(mbstd_group_size, "mbstd_group_size")
        check_positive_int(mbstd_num_channels, "mbstd_num_channels")
        if conditioning_dim is not None:
            check_positive_int(conditioning_dim, "conditioning_dim")
        check_non_negative_int(mapping_layers, "mapping_layers")

        def channels(h: int, w: int) -> int:
            return block_channels(max(h, w), channel_base, channel_max)

        sizes = [(height, width)]
        while min(sizes[-1]) > EPILOGUE_RESOLUTION:
            h, w = sizes[-1]
            sizes.append((h // DOWNSAMPLE_FACTOR, w // DOWNSAMPLE_FACTOR))
        self.from_picture = Conv2dLayer(in_channels, channels(height, width), 1, activation="lrelu")
        self.blocks = nn.ModuleList(
            [DiscriminatorBlock(channels(*size), channels(*smaller)) for size, smaller in zip(sizes[:-1], sizes[1:])]
        )

        final_h, final_w = sizes[-1]
        final_channels = channels(final_h, final_w)
        if final_channels % mbstd_num_channels:
            raise ValueError(
                f"`mbstd_num_channels` must divide the epilogue's {final_channels} channels, got {mbstd_num_channels}."
            )
        self.cmap_dim = (conditioning_dim or final_channels) if c_dim > 0 else 0
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(final_channels + mbstd_num_channels, final_channels, 3, activation="lrelu")
        self.fc = FullyConnected(final_channels * final_h * final_w, final_channels, activation="lrelu")
        self.out = FullyConnected(final_channels, self.cmap_dim or 1)
        if c_dim > 0:
            self.embed = FullyConnected(c_dim, self.cmap_dim)
            self.mapping = nn.Sequential(
                *[
                    FullyConnected(self.cmap_dim, self.cmap_dim, activation="lrelu", lr_multiplier=MAPPING_LR_MULTIPLIER)
                    for _ in range(mapping_layers)
                ]
            )
        else:
            self.embed = None
            self.mapping = None

    @property
    def feature_sizes(self) -> list[tuple[int, int]]:
        """``(h, w)`` of every level, from the input size down to the epilogue's."""
        size = (self.config.height, self.config.width)
        sizes = [size]
        for _ in self.blocks:
            size = (size[0] // DOWNSAMPLE_FACTOR, size[1] // DOWNSAMPLE_FACTOR)
            sizes.append(size)
        return sizes

    def check_inputs(self, x: torch.Tensor, c: Optional[torch.Tensor], argument: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, height, width)`` and ``c`` is ``(B, c_dim)``
        (or None when ``c_dim`` is 0)."""
        config = self.config
        expected = (config.in_channels, config.height, config.width)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected or x.shape[0] == 0:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"`{argument}` must be a non-empty tensor of shape (B, {', '.join(map(str, expected))}), got {shape}.")
        if config.c_dim > 0:
            if not isinstance(c, torch.Tensor) or tuple(c.shape) != (x.shape[0], config.c_dim):
                shape = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
                raise ValueError(f"`c` must be a tensor of shape ({x.shape[0]}, {config.c_dim}), got {shape}.")

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Logits of a batch of pictures.

        Parameters:
            x (`torch.Tensor`): ``(B, in_channels, height, width)`` pictures (any range; the training loop
                feeds RGB and normal maps in [-1, 1] and part masks in [0, 1]).
            c (`torch.Tensor`, *optional*): ``(B, c_dim)`` conditioning; ignored (may be None) when ``c_dim``
                is 0.

        Returns:
            ``(B,)`` real-vs-fake logits (higher = more real).
        """
        self.check_inputs(x, c)
        dtype = self.from_picture.weight.dtype
        h = self.from_picture(x.to(dtype))
        for block in self.blocks:
            h = block(h)
        h = self.conv(self.mbstd(h))
        h = self.out(self.fc(h.flatten(1)))  # (B, cmap_dim or 1)
        if self.embed is None:
            return h.squeeze(1)
        cmap = self.mapping(normalize_second_moment(self.embed(c.to(dtype))))  # (B, D)
        return (h * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)


class DiscriminatorSet(ModelMixin, ConfigMixin):
    r"""Several named :class:`ConditionalDiscriminator`\ s sharing a conditioning vector and a channel schedule.

    One ``forward`` call runs the discriminators named in its ``inputs``, so a training step wraps and calls
    one module. Under DistributedDataParallel, a call that runs only some discriminators leaves the others'
    parameters without gradients: either pass every discriminator's input in every call that is followed by
    a backward pass, or wrap with ``find_unused_parameters=True`` (accelerate:
    ``DistributedDataParallelKwargs(find_unused_parameters=True)``).

    Parameters:
        inputs (`dict[str, tuple[int, int, int]]`): Name → ``(channels, height, width)`` of each discriminator
            (see :func:`discriminator_inputs` for the names of each stage).
        c_dim (`int`), channel_base (`int`), channel_max (`int`), mbstd_group_size (`int`),
        mbstd_num_channels (`int`), conditioning_dim (`int`, *optional*), mapping_layers (`int`): Shared
            settings of every discriminator (see :class:`ConditionalDiscriminator`).
    """

    @register_to_config
    def __init__(
        self,
        inputs: Mapping[str, tuple[int, int, int]],
        c_dim: int = 0,
        channel_base: int = DEFAULT_CHANNEL_BASE,
        channel_max: int = DEFAULT_CHANNEL_MAX,
        mbstd_group_size: int = MBSTD_GROUP_SIZE,
        mbstd_num_channels: int = MBSTD_NUM_CHANNELS,
        conditioning_dim: Optional[int] = None,
        mapping_layers: int = DEFAULT_MAPPING_LAYERS,
    ):
        super().__init__()
        if not isinstance(inputs, Mapping) or not inputs:
            raise ValueError(f"`inputs` must be a non-empty mapping name → (channels, height, width), got {inputs!r}.")
        discriminators = {}
        for name, shape in inputs.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"`inputs` names must be identifiers, got {name!r}.")
            if not isinstance(shape, (tuple, list)) or len(shape) != 3:
                raise ValueError(f"`inputs[{name!r}]` must be (channels, height, width), got {shape!r}.")
            channels, height, width = shape
            discriminators[name] = ConditionalDiscriminator(
                in_channels=channels,
                height=height,
                width=width,
                c_dim=c_dim,
                channel_base=channel_base,
                channel_max=channel_max,
                mbstd_group_size=mbstd_group_size,
                mbstd_num_channels=mbstd_num_channels,
                conditioning_dim=conditioning_dim,
                mapping_layers=mapping_layers,
            )
        self.discriminators = nn.ModuleDict(discriminators)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the discriminators, in construction order."""
        return tuple(self.discriminators.keys())

    def forward(self, inputs: Mapping[str, torch.Tensor], c: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        r"""Logits of the named discriminators.

        Parameters:
            inputs (`dict[str, torch.Tensor]`): Name → ``(B, channels, height, width)`` pictures; any non-empty
                subset of :attr:`names`.
            c (`torch.Tensor`, *optional*): ``(B, c_dim)`` conditioning shared by all (None when ``c_dim`` is 0).

        Returns:
            ``dict[str, torch.Tensor]``: name → ``(B,)`` logits, for the names of ``inputs``.
        """
        if not isinstance(inputs, Mapping) or not inputs:
            raise ValueError(f"`inputs` must be a non-empty mapping of discriminator name → pictures, got {inputs!r}.")
        unknown = [name for name in inputs if name not in self.discriminators]
        if unknown:
            raise ValueError(f"`inputs` names {unknown} are not discriminators of this set; allowed: {list(self.names)}.")
        logits = {}
        for name, pictures in inputs.items():
            discriminator = self.discriminators[name]
            discriminator.check_inputs(pictures, c, argument=f"inputs[{name!r}]")
            logits[name] = discriminator(pictures, c)
        return logits
