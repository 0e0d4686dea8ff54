"""StyleGAN2 building blocks, re-implemented in plain PyTorch, with a GROUP axis of K independent networks.

SemanticHuman-HD runs K = 6 independent StyleGAN2 synthesis networks, one per semantic part (docs/method.md §3).
Every layer here holds the weights of all K networks stacked on a leading group axis and evaluates them
together, so the K generators cost one grouped convolution per layer and never a Python loop over parts.
Activations carry the group axis explicitly: feature maps are ``(B, K, C, H, W)`` and codes ``(B, K, w_dim)``.
Group ``k`` of an output depends only on group ``k`` of the inputs and on network ``k``'s weights, so
a network can run its ``B·K`` (batch element, group) pairs, or any subset of them, as one batch element of
``P`` groups (:class:`PairSelection`): each group's styles and demodulation are then folded into its own
weights, as StyleGAN2's grouped-convolution trick does, instead of scaling the feature maps twice. The
synthesis networks of :mod:`~semantichuman_hd.models.local_generators` and
:mod:`~semantichuman_hd.models.super_resolution` run so.

What is StyleGAN2 here (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020):

* equalised learning rate: parameters are stored at unit scale and multiplied by ``1/sqrt(fan_in)`` (times a
  learning-rate multiplier) at run time;
* modulated convolutions with weight demodulation: the style ``s = A(w)`` scales the input channels of the
  weight, and each output channel is renormalised to unit expected variance;
* per-layer noise inputs with a learned strength, bias and leaky ReLU scaled by ``sqrt(2)``;
* a "skip" output branch: each block adds its own (un-demodulated, 1×1) output layer to the upsampled output
  of the previous block (here the output is a tri-plane, so the layer is called :class:`ToPlanes`).

What differs from the original, on purpose, to stay pure PyTorch and CPU friendly: upsampling (of feature
maps before a convolution and of the skip output) is bilinear interpolation (``align_corners=False``)
instead of transposed convolutions with a 4-tap FIR low-pass filter; no custom CUDA kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_positive_int, check_positive_number

LRELU_SLOPE: float = 0.2
"""Negative slope of StyleGAN2's leaky ReLU."""

LRELU_GAIN: float = math.sqrt(2.0)
"""Gain after the leaky ReLU that keeps activations at unit variance."""

ACTIVATIONS: tuple[str, ...] = ("linear", "lrelu")
"""``activation`` values of :class:`FullyConnected` and :class:`GroupedFullyConnected`."""

DEMODULATION_EPS: float = 1e-8
"""Added to the squared weight norm before the reciprocal square root of weight demodulation."""

NOISE_MODES: tuple[str, ...] = ("const", "random", "none")
"""``noise_mode`` values: a fixed per-layer noise image saved with the weights (deterministic), fresh
Gaussian noise (from ``generator`` if given), or no noise."""

UPSAMPLE_FACTOR: int = 2
"""Each synthesis block doubles the resolution."""

UPSAMPLE_MODE: str = "bilinear"
"""Interpolation used for every upsampling (see the module docstring)."""

CHANNELS_LAST_DEVICES: tuple[str, ...] = ("cpu",)
"""Device types whose synthesis features are stored channels last (:class:`GroupedModulatedConv2d`): on a
2-core CPU the grouped 3×3 convolutions and the bilinear upsampling, backward included, are faster so (the
``demo`` 256² super-resolution network's forward and backward: 2.71 → 2.47 s at batch 4). Elsewhere the
layout is left as it comes (unmeasured)."""

STYLE_BIAS_INIT: float = 1.0
"""Initial bias of the style affines, so that styles start around 1 (identity modulation)."""


def bias_activation(x: torch.Tensor, bias: Optional[torch.Tensor], activation: str) -> torch.Tensor:
    """``act(x + bias)``; the leaky ReLU is scaled by :data:`LRELU_GAIN`. ``bias`` broadcasts against ``x``."""
    if bias is not None:
        x = x + bias
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
    return x


def group_image(x: torch.Tensor) -> torch.Tensor:
    """``x (B, K, C, H, W)`` whose K and C are adjacent in memory as one ``(B, K·C, H, W)`` image, a view.

    Channels-last features, ``(B, H, W, K·C)`` in memory, come out with the strides of a channels-last image
    also at ``B = 1`` (a plain ``flatten`` gives the size-1 batch axis a stride that convolutions and
    interpolation do not recognise as channels last, and they then copy or answer channels first)."""
    batch, groups, channels, height, width = x.shape
    if x.stride(2) == 1 and x.stride(1) == channels:
        return x.permute(0, 3, 4, 1, 2).reshape(batch, height, width, groups * channels).permute(0, 3, 1, 2)
    return x.reshape(batch, groups * channels, height, width)


def upsample(x: torch.Tensor, factor: int = UPSAMPLE_FACTOR) -> torch.Tensor:
    """Bilinear upsampling of ``x (B, K, C, H, W)`` to ``(B, K, C, factor·H, factor·W)``, in ``x``'s memory layout.

    Channels-last features (:data:`CHANNELS_LAST_DEVICES`) are upsampled as one ``(B, K·C, H, W)``
    channels-last image (:func:`group_image`), other tensors with ``B·K`` folded into the batch (the output
    layers' planes, stored ``(B, K, H, W, C)``, are then channels last too): either way a view, no copy."""
    batch, groups, channels, height, width = x.shape
    if x.stride(1) == channels * x.stride(2):  # K and C adjacent in memory: fold K into the channels
        y = F.interpolate(group_image(x), scale_factor=factor, mode=UPSAMPLE_MODE, align_corners=False)
    else:
        y = F.interpolate(x.reshape(-1, channels, height, width), scale_factor=factor, mode=UPSAMPLE_MODE, align_corners=False)
    return y.view(batch, groups, channels, *y.shape[-2:])


@dataclass(frozen=True)
class PairSelection:
    """A subset of the ``B·K`` (batch element, group) pairs of a grouped network, run as one batch element
    of ``P`` groups: pair ``p`` is group ``p`` of a ``(1, P, ...)`` activation and runs network
    ``group_index[p]`` (each layer picks its networks' weights with :meth:`params`). Since groups never mix,
    a pair's output equals that pair of the whole run, and the pairs left out cost nothing.

    Attributes:
        batch_index: ``(P,)`` long, the batch element of each pair.
        group_index: ``(P,)`` long, the group (network) of each pair.
        batch_size: ``B`` of the whole run (the random noise is drawn for all ``B·K`` pairs, then picked,
            so that the selected pairs receive the whole run's noise).
        num_groups: ``K``.
    """

    batch_index: torch.Tensor
    group_index: torch.Tensor
    batch_size: int
    num_groups: int

    @classmethod
    def every(cls, batch_size: int, num_groups: int, device=None) -> "PairSelection":
        """All ``B·K`` pairs (a whole run)."""
        return cls.from_mask(torch.ones(batch_size, num_groups, dtype=torch.bool, device=device))

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "PairSelection":
        """The True pairs of ``mask (B, K)`` bool, in row-major order."""
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"`mask` must be a (B, K) bool tensor of the pairs to run, got {got}.")
        batch_index, group_index = mask.nonzero(as_tuple=True)
        return cls(batch_index, group_index, mask.shape[0], mask.shape[1])

    def params(self, parameter: torch.Tensor) -> torch.Tensor:
        """``parameter (K, ...)`` → ``(P, ...)``: each pair's network's."""
        return parameter.index_select(0, self.group_index.to(parameter.device))

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, K, ...)`` → ``(1, P, ...)``, the selected pairs. Channels-last feature maps ``(B, K, C, H, W)``
        come out as one channels-last image of ``P·C`` channels, ``(1, H, W, P, C)`` in memory: the layout
        of the whole run's features (:data:`CHANNELS_LAST_DEVICES`), which the layers then keep."""
        batch_index, group_index = self.batch_index.to(x.device), self.group_index.to(x.device)
        if x.ndim == 5 and x.stride(2) == 1:
            return x.permute(3, 4, 0, 1, 2)[:, :, batch_index, group_index].unsqueeze(0).permute(0, 3, 4, 1, 2)
        return x[batch_index, group_index].unsqueeze(0)

    def scatter(self, y: torch.Tensor) -> torch.Tensor:
        """``y (1, P, C, H, W)`` → ``(B, K, C, H, W)``, zero at the pairs left out, stored channels last
        ``(B, K, H, W, C)`` (the output layers' layout); its backward reads the pairs' gradients only. All
        ``B·K`` pairs (in :meth:`from_mask`'s row-major order) are ``y`` itself, reshaped."""
        if self.batch_index.numel() == self.batch_size * self.num_groups:
            return y.reshape(self.batch_size, self.num_groups, *y.shape[2:])
        return _ScatterPairs.apply(y, self.batch_index.to(y.device), self.group_index.to(y.device), self.batch_size, self.num_groups)


class _ScatterPairs(torch.autograd.Function):
    """:meth:`PairSelection.scatter`, with a backward that gathers the pairs' gradients (an in-place
    ``index_put_`` on zeros would copy the whole gradient)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, batch_index: torch.Tensor, group_index: torch.Tensor, batch_size: int, num_groups: int):
        ctx.save_for_backward(batch_index, group_index)
        _, _, channels, height, width = y.shape
        out = y.new_zeros(batch_size, num_groups, height, width, channels)
        out[batch_index, group_index] = y[0].permute(0, 2, 3, 1)
        return out.permute(0, 1, 4, 2, 3)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        batch_index, group_index = ctx.saved_tensors
        picked = grad.permute(0, 1, 3, 4, 2)[batch_index, group_index]  # (P, H, W, C)
        return picked.permute(0, 3, 1, 2).unsqueeze(0), None, None, None, None


def _selected(parameter: Optional[torch.Tensor], pairs: Optional[PairSelection]) -> Optional[torch.Tensor]:
    """A per-group ``parameter (K, ...)`` for the groups of a run: all K, or the pairs' (:class:`PairSelection`)."""
    return parameter if pairs is None or parameter is None else pairs.params(parameter)


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer ``(..., in) → (..., out)``.

    Parameters:
        in_features (`int`), out_features (`int`): Sizes.
        bias (`bool`): Learn a bias.
        activation (`str`): ``"linear"`` or ``"lrelu"``.
        lr_multiplier (`float`): Scales the effective learning rate of this layer (StyleGAN2's mapping network
            uses 0.01): parameters are stored divided by it and multiplied back at run time.
        bias_init (`float`): Initial (effective) bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        check_choice(activation, ACTIVATIONS, "activation")
        check_positive_number(lr_multiplier, "lr_multiplier")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.bias_gain
        return bias_activation(F.linear(x, self.weight * self.weight_gain), bias, self.activation)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, activation={self.activation}"


class GroupedFullyConnected(nn.Module):
    """K independent equalised-learning-rate linear layers ``(..., K, in) → (..., K, out)``.

    Weights are ``(K, out, in)``; group ``k`` of the input goes through layer ``k`` only.

    Parameters:
        num_groups (`int`): K.
        in_features (`int`), out_features (`int`), bias (`bool`), activation (`str`), lr_multiplier (`float`),
        bias_init (`float`): As in :class:`FullyConnected`.
    """

    def __init__(
        self,
        num_groups: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        check_positive_int(num_groups, "num_groups")
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        check_choice(activation, ACTIVATIONS, "activation")
        check_positive_number(lr_multiplier, "lr_multiplier")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(num_groups, out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((num_groups, out_features), float(bias_init) / lr_multiplier)) if bias else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor, pairs: Optional[PairSelection] = None) -> torch.Tensor:
        """``x (..., K, in)`` → ``(..., K, out)`` (with ``pairs``: ``(1, P, in)`` → ``(1, P, out)``)."""
        y = torch.einsum("...ki,koi->...ko", x, _selected(self.weight, pairs) * self.weight_gain)
        bias = None if self.bias is None else _selected(self.bias, pairs) * self.bias_gain
        return bias_activation(y, bias, self.activation)

    def extra_repr(self) -> str:
        k, out_features, in_features = self.weight.shape
        return f"groups={k}, in={in_features}, out={out_features}, activation={self.activation}"


def normalize_second_moment(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x², dim))``: StyleGAN2's normalisation of the input latent."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class GroupedModulatedConv2d(nn.Module):
    """K independent modulated convolutions (StyleGAN2), with optional demodulation and 2× upsampling.

    For group ``k`` with weight ``W_k (Cout, Cin, k, k)`` and style ``s = A_k(w) (Cin,)``::

        W'_k[o, i] = W_k[o, i] · s[i] · gain,      gain = 1 / sqrt(Cin · k²)
        W''_k[o]   = W'_k[o] / sqrt(Σ_{i,kh,kw} W'_k[o, i]² + ε)          (if demodulate)

    Evaluated without building per-sample weights: the input is scaled by the styles, convolved with the
    shared weights of the K groups as ONE convolution with ``groups=K`` over the batch ``B`` (input
    ``(B, K·Cin, H, W)``), and the output scaled by the per-sample demodulation coefficients, which equals
    convolving with ``W''`` exactly (up to rounding). A batch of one (one person, or a
    :class:`PairSelection`'s pairs) is convolved with its ``W''`` instead, built per group: the feature maps
    are then not scaled twice, forward and backward (a 16-pair ``demo`` HR synthesis: 13 % faster).

    Parameters:
        num_groups (`int`): K.
        in_channels (`int`), out_channels (`int`): Cin, Cout.
        w_dim (`int`): Size of the codes ``w``.
        kernel_size (`int`): Odd kernel size (padding keeps the resolution).
        demodulate (`bool`): Weight demodulation (off for the output layers).
        upsample (`bool`): Upsample the input 2× (bilinear) before the convolution.
    """

    def __init__(
        self,
        num_groups: int,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 3,
        demodulate: bool = True,
        upsample: bool = False,
    ):
        super().__init__()
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size!r}.")
        self.num_groups = num_groups
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.affine = GroupedFullyConnected(num_groups, w_dim, in_channels, bias_init=STYLE_BIAS_INIT)
        self.weight = nn.Parameter(torch.randn(num_groups, out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        bias: Optional[torch.Tensor] = None,
        residual: Optional[torch.Tensor] = None,
        pairs: Optional[PairSelection] = None,
    ) -> torch.Tensor:
        """``x (B, K, Cin, H, W)``, ``w (B, K, w_dim)`` → ``(B, K, Cout, H', W')`` (H' = 2H if upsampling),
        plus ``bias (K, Cout)`` if given (after the demodulation), plus ``residual (B, K, Cout, H', W')`` if
        given (1×1 convolutions without demodulation only, as the output layers: added inside the matrix
        product, best stored channels last). With ``pairs``, ``B, K`` are ``1, P`` and ``bias`` is the
        pairs' ``(P, Cout)``."""
        if residual is not None and (self.kernel_size != 1 or self.demodulate):
            raise ValueError(
                "`residual` is fused into 1×1 convolutions without demodulation only; this one is "
                f"{self.kernel_size}×{self.kernel_size} with demodulate={self.demodulate}."
            )
        batch, groups = x.shape[:2]
        kernel = _selected(self.weight, pairs)  # (K, Cout, Cin, k, k)
        styles = self.affine(w, pairs) * self.weight_gain  # (B, K, Cin)
        if batch == 1 and self.kernel_size > 1:
            modulated = kernel * styles[0, :, None, :, None, None]  # W' (K, Cout, Cin, k, k)
            if self.demodulate:
                modulated = modulated * (modulated.square().sum((2, 3, 4), keepdim=True) + DEMODULATION_EPS).rsqrt()
            y = self._grouped_conv(upsample(x) if self.upsample else x, modulated)
            return y if bias is None else y + bias[..., None, None]
        if self.kernel_size > 1:
            x = x * styles[..., None, None]
        if self.upsample:
            x = upsample(x)
        height, width = x.shape[-2:]
        if self.kernel_size == 1:
            # A 1×1 convolution is a matrix product per group. Written as one, its backward is two more
            # (the grouped-convolution backward was 13× slower than its forward on a CPU), and its output
            # comes channels last, ``(B, K, H, W, Cout)`` seen as ``(B, K, Cout, H, W)``: the texel-major
            # layout that tri-plane sampling reads without a copy (``triplane.texel_major``). The styles scale
            # the small per-(b, k) matrices instead of the pixels.
            pixels = x.reshape(batch, groups, self.in_channels, height * width).transpose(-1, -2)  # (B, K, HW, Cin)
            weight = kernel.reshape(groups, self.out_channels, self.in_channels).transpose(-1, -2)  # (K, Cin, Cout)
            weight = styles.unsqueeze(-1) * weight  # (B, K, Cin, Cout)
            fused = residual is not None and not torch.is_autocast_enabled(x.device.type)
            if fused:
                # residual + pixels · W as one batched product: the plane-sized sum is written once, channels
                # last, instead of a product, then a sum read back and written again.
                base = residual.permute(0, 1, 3, 4, 2).reshape(batch * groups, height * width, self.out_channels)
                y = torch.baddbmm(
                    base, pixels.reshape(batch * groups, height * width, self.in_channels),
                    weight.reshape(batch * groups, self.in_channels, self.out_channels),
                ).view(batch, groups, height * width, self.out_channels)
            else:
                y = torch.matmul(pixels, weight)
            if bias is not None and not self.demodulate:
                # Added in this layout, expanded over the batch, so that its gradient is a sum over the
                # pixels, then over B (one sum over (B, H·W) of the channels-last planes is 8× slower). Not
                # in place: under autocast the product is bfloat16 and the float32 bias promotes it.
                y = y + bias.unsqueeze(1).expand(batch, -1, -1, -1)
                bias = None
            y = y.unflatten(2, (height, width)).permute(0, 1, 4, 2, 3)  # (B, K, Cout, H, W), channels last
            if residual is not None and not fused:  # autocast: the product in low precision, the sum in the residual's
                y = residual + y
        else:
            y = self._grouped_conv(x, kernel)
        if self.demodulate:
            # Σ_{i,kh,kw} (W[o,i,kh,kw] s[i])² = Σ_i (Σ_{kh,kw} W[o,i,kh,kw]²) s[i]²
            energy = torch.einsum("koi,bki->bko", _selected(self.weight.square().sum((3, 4)), pairs), styles.square())
            y = y * (energy + DEMODULATION_EPS).rsqrt()[..., None, None]
        if bias is not None:
            y = y + bias.expand(batch, -1, -1)[..., None, None]
        return y

    def _grouped_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x (B, K, Cin, H, W)`` convolved with group k's ``weight[k] (Cout, Cin, k, k)`` → ``(B, K, Cout, H, W)``."""
        batch, groups, _, height, width = x.shape
        x = group_image(x)
        if x.device.type in CHANNELS_LAST_DEVICES:  # (B, H, W, K·Cin) in memory; after the first layer a
            x = x.contiguous(memory_format=torch.channels_last)  # no-op: elementwise operations keep it
        weight = weight.reshape(groups * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        y = F.conv2d(x, weight, padding=self.kernel_size // 2, groups=groups)
        return y.reshape(batch, groups, self.out_channels, height, width)

    def extra_repr(self) -> str:
        return (
            f"groups={self.num_groups}, in={self.in_channels}, out={self.out_channels}, "
            f"kernel={self.kernel_size}, demodulate={self.demodulate}, upsample={self.upsample}"
        )


class NoiseInput(nn.Module):
    """Per-pixel noise with a learned strength per group (initially 0).

    Parameters:
        num_groups (`int`): K.
        resolution (`int`): Side of the feature maps it is added to.
    """

    def __init__(self, num_groups: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.strength = nn.Parameter(torch.zeros(num_groups))
        # One fixed noise image per group, saved with the weights: "const" noise is reproducible.
        self.register_buffer("noise_const", torch.randn(num_groups, 1, resolution, resolution))

    def forward(
        self,
        x: torch.Tensor,
        noise_mode: str = "const",
        generator: torch.Generator | None = None,
        pairs: Optional[PairSelection] = None,
    ) -> torch.Tensor:
        """Add noise to ``x (B, K, C, H, W)`` (with ``pairs``: ``(1, P, C, H, W)``, the pairs' noise of the whole run)."""
        if noise_mode == "none":
            return x
        if noise_mode == "const":
            noise = _selected(self.noise_const, pairs).unsqueeze(0)  # (1, K, 1, H, W)
        else:
            batch, groups = x.shape[:2] if pairs is None else (pairs.batch_size, pairs.num_groups)
            device = generator.device if generator is not None else x.device
            noise = torch.randn(
                (batch, groups, 1, self.resolution, self.resolution), generator=generator, device=device, dtype=x.dtype
            ).to(x.device)
            if pairs is not None:
                noise = pairs.gather(noise)
        return x + noise * _selected(self.strength, pairs).view(1, -1, 1, 1, 1)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (optionally upsampling) + noise + bias + leaky ReLU, for K groups.

    Parameters:
        num_groups (`int`), in_channels (`int`), out_channels (`int`), w_dim (`int`): As in
            :class:`GroupedModulatedConv2d`.
        resolution (`int`): Output side.
        upsample (`bool`): Double the resolution.
    """

    def __init__(self, num_groups: int, in_channels: int, out_channels: int, w_dim: int, resolution: int, upsample: bool = False):
        super().__init__()
        self.conv = GroupedModulatedConv2d(num_groups, in_channels, out_channels, w_dim, kernel_size=3, upsample=upsample)
        self.noise = NoiseInput(num_groups, resolution)
        self.bias = nn.Parameter(torch.zeros(num_groups, out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", generator=None, pairs: Optional[PairSelection] = None
    ) -> torch.Tensor:
        """``x (B, K, Cin, H, W)``, ``w (B, K, w_dim)`` → ``(B, K, Cout, H', W')`` (``B, K`` = ``1, P`` with ``pairs``)."""
        x = self.noise(self.conv(x, w, pairs=pairs), noise_mode, generator, pairs)
        return bias_activation(x, _selected(self.bias, pairs)[..., None, None], "lrelu")


class ToPlanes(nn.Module):
    """StyleGAN2's ToRGB for tri-planes: a modulated 1×1 convolution without demodulation, plus a bias.

    Parameters:
        num_groups (`int`), in_channels (`int`), w_dim (`int`): As in :class:`GroupedModulatedConv2d`.
        out_channels (`int`): Output channels (3 planes × plane channels).
    """

    def __init__(self, num_groups: int, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.conv = GroupedModulatedConv2d(num_groups, in_channels, out_channels, w_dim, kernel_size=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(num_groups, out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, skip: Optional[torch.Tensor] = None, pairs: Optional[PairSelection] = None
    ) -> torch.Tensor:
        """``x (B, K, Cin, H, W)``, ``w (B, K, w_dim)`` → ``(B, K, Cout, H, W)`` channels last; with the previous
        block's output ``skip (B, K, Cout, H/2, W/2)``, plus ``upsample(skip)`` (``B, K`` = ``1, P`` with ``pairs``).

        The bias is added to ``skip`` before the upsampling (bilinear weights sum to 1, so that equals adding
        it after), and the upsampled skip is fused into the 1×1 convolution's product: the output-sized
        tensors are written once (at stage 2's 256² tri-planes, about 300 MB per pass)."""
        bias = _selected(self.bias, pairs)
        if skip is None:
            return self.conv(x, w, bias=bias, pairs=pairs)
        skip = skip + bias[..., None, None]
        skip = skip.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # channels last: the fast upsampling
        return self.conv(x, w, residual=upsample(skip), pairs=pairs)


class SynthesisBlock(nn.Module):
    """One resolution of a StyleGAN2 "skip" synthesis network, for K groups.

    The first block (``in_channels == 0``) starts from a learned constant at ``resolution``; later blocks
    upsample their input 2×. Each block runs two synthesis layers (one for the first block) and adds its
    :class:`ToPlanes` output to the upsampled output of the previous block.

    It consumes ``num_conv + num_toplanes`` codes; the next block starts ``num_conv`` codes later (the
    output layer shares its code with the next block's first layer, as in StyleGAN2).

    Parameters:
        num_groups (`int`): K.
        in_channels (`int`): Channels of the previous block's features, 0 for the first block.
        out_channels (`int`): Feature channels of this block.
        w_dim (`int`): Size of the codes.
        resolution (`int`): Output side of this block.
        output_channels (`int`): Channels of the skip output (3 × plane channels).
    """

    def __init__(self, num_groups: int, in_channels: int, out_channels: int, w_dim: int, resolution: int, output_channels: int):
        super().__init__()
        self.resolution = resolution
        self.is_first = in_channels == 0
        if self.is_first:
            self.const = nn.Parameter(torch.randn(num_groups, out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(num_groups, in_channels, out_channels, w_dim, resolution, upsample=True)
        self.conv1 = SynthesisLayer(num_groups, out_channels, out_channels, w_dim, resolution)
        self.to_planes = ToPlanes(num_groups, out_channels, output_channels, w_dim)
        self.num_conv = 1 if self.is_first else 2
        self.num_toplanes = 1

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        noise_mode: str = "const",
        generator: torch.Generator | None = None,
        pairs: Optional[PairSelection] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``x (B, K, Cin, H/2, W/2)`` (None for the first block), skip output ``img`` (None for the
        first block) and codes ``ws (B, K, num_conv + num_toplanes, w_dim)`` → ``(x, img)`` at ``resolution``
        (``B, K`` = ``1, P`` with ``pairs``)."""
        if self.is_first:
            const = _selected(self.const, pairs)
            x = const.unsqueeze(0).expand(ws.shape[0], *const.shape)
            x = self.conv1(x, ws[:, :, 0], noise_mode, generator, pairs)
        else:
            x = self.conv0(x, ws[:, :, 0], noise_mode, generator, pairs)
            x = self.conv1(x, ws[:, :, 1], noise_mode, generator, pairs)
        return x, self.to_planes(x, ws[:, :, self.num_conv], skip=img, pairs=pairs)


def block_channels(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN2's feature channels at a resolution: ``min(channel_base // resolution, channel_max)``."""
    return max(1, min(channel_base // resolution, channel_max))
