"""Losses, regularisers and optimiser bookkeeping of the two-stage GAN training (docs/method.md §6).

Every loss takes logits or tensors and returns a scalar tensor. Several discriminators judge each
generated person, so the adversarial losses take ``{name: logits (B,)}`` dictionaries (the output of
:class:`training.discriminators.DiscriminatorSet`) and sum over them, with optional per-discriminator
weights (default 1).

Conventions follow StyleGAN2 / EG3D: the non-saturating logistic loss, the lazy R1 penalty with
learning-rate and momentum correction, and an exponential moving average of the generator whose half-life
is given in thousands of images.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLING_LOSS_WEIGHT: float = 100.0
"""Weight of each term of the stage-2 upsampling consistency loss (the paper's 100)."""

UPSAMPLING_KEYS: tuple[str, ...] = ("image", "semantic", "normal")
"""Pictures the upsampling consistency loss may compare (any subset present in both inputs)."""

EMA_MIN_IMAGES: float = 1e-8
"""Lower bound of the EMA half-life in images (avoids a division by zero at the start of the ramp-up)."""

IMAGES_PER_KIMG: int = 1000
"""Images in one "kimg", the unit of StyleGAN2's schedules."""

Logits = Union[torch.Tensor, Mapping[str, torch.Tensor]]
"""``(B,)`` logits of one discriminator, or ``{name: (B,) logits}`` of several."""


def _as_dict(logits: Logits, argument: str) -> dict[str, torch.Tensor]:
    if isinstance(logits, torch.Tensor):
        logits = {"logits": logits}
    if not isinstance(logits, Mapping) or not logits:
        raise ValueError(f"`{argument}` must be a tensor or a non-empty mapping name → tensor, got {type(logits).__name__}.")
    for name, value in logits.items():
        if not isinstance(value, torch.Tensor) or value.numel() == 0:
            raise ValueError(f"`{argument}[{name!r}]` must be a non-empty tensor, got {type(value).__name__}.")
    return dict(logits)


def _weight(weights: Optional[Mapping[str, float]], name: str) -> float:
    if weights is None or name not in weights:
        return 1.0
    value = weights[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"`weights[{name!r}]` must be a non-negative finite number, got {value!r}.")
    return float(value)


def _check_weights(weights: Optional[Mapping[str, float]], names) -> None:
    if weights is None:
        return
    if not isinstance(weights, Mapping):
        raise ValueError(f"`weights` must be None or a mapping name → number, got {type(weights).__name__}.")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"`weights` names {unknown} have no logits; allowed: {sorted(names)}.")
    for name in weights:
        _weight(weights, name)


def generator_loss(fake_logits: Logits, weights: Optional[Mapping[str, float]] = None) -> torch.Tensor:
    r"""Non-saturating generator loss, ``Σ_d w_d · mean_b softplus(−l_d,b)``.

    Parameters:
        fake_logits (`torch.Tensor` or `dict[str, torch.Tensor]`): ``(B,)`` logits of generated pictures, per
            discriminator.
        weights (`dict[str, float]`, *optional*): ``w_d`` per discriminator name (missing names: 1).

    Returns:
        Scalar loss.
    """
    fake = _as_dict(fake_logits, "fake_logits")
    _check_weights(weights, fake)
    return sum(_weight(weights, name) * F.softplus(-logits).mean() for name, logits in fake.items())


def discriminator_loss(
    real_logits: Optional[Logits], fake_logits: Optional[Logits], weights: Optional[Mapping[str, float]] = None
) -> torch.Tensor:
    r"""Logistic discriminator loss, ``Σ_d w_d · (mean_b softplus(l^fake_d,b) + mean_b softplus(−l^real_d,b))``.

    Either side may be None to get only the other term (StyleGAN2's loop back-propagates the fake and the
    real halves separately); when both are given they must name the same discriminators.

    Parameters:
        real_logits (`torch.Tensor` or `dict[str, torch.Tensor]`, *optional*): ``(B,)`` logits of real pictures.
        fake_logits (`torch.Tensor` or `dict[str, torch.Tensor]`, *optional*): ``(B,)`` logits of generated
            pictures.
        weights (`dict[str, float]`, *optional*): ``w_d`` per discriminator name (missing names: 1).

    Returns:
        Scalar loss.
    """
    if real_logits is None and fake_logits is None:
        raise ValueError("`real_logits` and `fake_logits` cannot both be None.")
    real = None if real_logits is None else _as_dict(real_logits, "real_logits")
    fake = None if fake_logits is None else _as_dict(fake_logits, "fake_logits")
    if real is not None and fake is not None and set(real) != set(fake):
        raise ValueError(f"`real_logits` names {sorted(real)} differ from `fake_logits` names {sorted(fake)}.")
    names = real if real is not None else fake
    _check_weights(weights, names)
    total = 0.0
    for name in names:
        term = 0.0
        if fake is not None:
            term = term + F.softplus(fake[name]).mean()
        if real is not None:
            term = term + F.softplus(-real[name]).mean()
        total = total + _weight(weights, name) * term
    return total


def r1_penalty(
    real_logits: Logits, real_inputs: Union[torch.Tensor, Sequence[torch.Tensor], Mapping[str, torch.Tensor]]
) -> torch.Tensor:
    r"""R1 gradient penalty, ``mean_b Σ_x ‖∂(Σ_d Σ_b' l_d,b') / ∂x_b‖²`` (Mescheder et al., 2018).

    The squared gradient norm of the summed logits with respect to each sample's real inputs, summed over the
    inputs and averaged over the batch. The inputs must require gradients and must be what the logits were
    computed from (e.g. every discriminator's real pictures, or the full-size real pictures that the face
    crops were cut from). The graph is kept (``create_graph=True``) so the penalty can be back-propagated.
    Multiply by ``γ / 2`` (and by the lazy-regularisation interval) in the training loop, as StyleGAN2.

    Parameters:
        real_logits (`torch.Tensor` or `dict[str, torch.Tensor]`): ``(B,)`` logits of the real inputs.
        real_inputs (`torch.Tensor`, sequence or `dict[str, torch.Tensor]`): ``(B, ...)`` tensors with
            ``requires_grad=True``.

    Returns:
        Scalar penalty.
    """
    logits = _as_dict(real_logits, "real_logits")
    if isinstance(real_inputs, torch.Tensor):
        inputs = {"real_inputs": real_inputs}
    elif isinstance(real_inputs, Mapping):
        inputs = dict(real_inputs)
    elif isinstance(real_inputs, Sequence):
        inputs = {f"real_inputs[{index}]": value for index, value in enumerate(real_inputs)}
    else:
        raise ValueError(f"`real_inputs` must be a tensor, a sequence or a mapping of tensors, got {type(real_inputs).__name__}.")
    if not inputs:
        raise ValueError("`real_inputs` must not be empty.")
    for name, value in inputs.items():
        if not isinstance(value, torch.Tensor) or not value.requires_grad or value.ndim == 0:
            raise ValueError(f"`real_inputs` entry {name!r} must be a batched tensor with requires_grad=True.")
    total = sum(value.sum() for value in logits.values())
    gradients = torch.autograd.grad(total, list(inputs.values()), create_graph=True, allow_unused=True)
    penalty = 0.0
    for name, gradient in zip(inputs, gradients):
        if gradient is None:
            raise ValueError(f"`real_inputs` entry {name!r} does not reach `real_logits` (no gradient path).")
        penalty = penalty + gradient.square().flatten(1).sum(dim=1).mean()
    return penalty


def eikonal_loss(gradients: torch.Tensor) -> torch.Tensor:
    r"""Eikonal regulariser of a signed distance field, ``mean_p (‖∇f(p)‖ − 1)²``.

    Points whose gradient has a non-finite component are ignored; with no finite point the loss is 0.

    Parameters:
        gradients (`torch.Tensor`): ``(..., 3)`` spatial gradients of the SDF (or of the residual SDF) at the
            sampled points.

    Returns:
        Scalar loss.
    """
    if not isinstance(gradients, torch.Tensor) or gradients.ndim == 0 or gradients.shape[-1] != 3:
        shape = tuple(gradients.shape) if isinstance(gradients, torch.Tensor) else type(gradients).__name__
        raise ValueError(f"`gradients` must be a tensor of shape (..., 3), got {shape}.")
    gradients = gradients.reshape(-1, 3)
    finite = torch.isfinite(gradients).all(dim=-1)
    if not finite.any():
        return gradients.new_zeros(())
    return (gradients[finite].norm(dim=-1) - 1.0).square().mean()


def density_tv_loss(values: torch.Tensor, jittered_values: torch.Tensor) -> torch.Tensor:
    r"""Density (or SDF) smoothness regulariser, ``mean_p |f(p) − f(p + δ)|`` (EG3D's density regulariser).

    Entries where either value is non-finite are ignored; with no finite pair the loss is 0.

    Parameters:
        values (`torch.Tensor`): Field values (density or SDF) at sampled points, any shape.
        jittered_values (`torch.Tensor`): The same field at slightly perturbed points, same shape.

    Returns:
        Scalar loss.
    """
    for name, value in (("values", values), ("jittered_values", jittered_values)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"`{name}` must be a tensor, got {type(value).__name__}.")
    if values.shape != jittered_values.shape:
        raise ValueError(f"`jittered_values` must have the shape of `values` {tuple(values.shape)}, got {tuple(jittered_values.shape)}.")
    difference = (values - jittered_values).abs()
    finite = torch.isfinite(difference)
    if not finite.any():
        return difference.new_zeros(())
    return difference[finite].mean()


def upsampling_loss(
    lr: Mapping[str, torch.Tensor],
    hr: Mapping[str, torch.Tensor],
    weight: Union[float, Mapping[str, float]] = UPSAMPLING_LOSS_WEIGHT,
) -> torch.Tensor:
    r"""Stage-2 upsampling consistency loss, ``Σ_x w_x · mean |LR_x − down(HR_x)|`` (docs/method.md §6).

    ``down`` is antialiased bilinear down-sampling of the high-resolution picture to the low-resolution size;
    the low-resolution pictures are detached (they are targets: the stage-1 generator is frozen).

    Parameters:
        lr (`dict[str, torch.Tensor]`): ``(B, C, h, w)`` low-resolution pictures, keys among
            :data:`UPSAMPLING_KEYS` (image, semantic, normal).
        hr (`dict[str, torch.Tensor]`): ``(B, C, H, W)`` high-resolution pictures with the same keys,
            ``H ≥ h`` and ``W ≥ w``.
        weight (`float` or `dict[str, float]`): ``w_x``, one number for all or per key (default 100).

    Returns:
        Scalar loss.
    """
    for name, value in (("lr", lr), ("hr", hr)):
        if not isinstance(value, Mapping) or not value:
            raise ValueError(f"`{name}` must be a non-empty mapping name → picture, got {type(value).__name__}.")
        unknown = sorted(set(value) - set(UPSAMPLING_KEYS))
        if unknown:
            raise ValueError(f"`{name}` keys {unknown} are not allowed; allowed: {list(UPSAMPLING_KEYS)}.")
    if set(lr) != set(hr):
        raise ValueError(f"`lr` keys {sorted(lr)} differ from `hr` keys {sorted(hr)}.")
    if isinstance(weight, Mapping):
        _check_weights(weight, lr)
    elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"`weight` must be a non-negative number or a mapping name → number, got {weight!r}.")
    total = 0.0
    for name in lr:
        low, high = lr[name], hr[name]
        if not isinstance(low, torch.Tensor) or low.ndim != 4:
            raise ValueError(f"`lr[{name!r}]` must be a (B, C, h, w) tensor.")
        if not isinstance(high, torch.Tensor) or high.ndim != 4 or high.shape[:2] != low.shape[:2]:
            raise ValueError(f"`hr[{name!r}]` must be a (B, C, H, W) tensor with the batch and channels of `lr[{name!r}]` {tuple(low.shape[:2])}.")
        if high.shape[2] < low.shape[2] or high.shape[3] < low.shape[3]:
            raise ValueError(f"`hr[{name!r}]` size {tuple(high.shape[2:])} must be at least `lr[{name!r}]` size {tuple(low.shape[2:])}.")
        down = F.interpolate(high, size=tuple(low.shape[2:]), mode="bilinear", align_corners=False, antialias=True)
        term_weight = _weight(weight, name) if isinstance(weight, Mapping) else float(weight)
        total = total + term_weight * (low.detach().to(down.dtype) - down).abs().mean()
    return total


COVERAGE_EPS: float = 1e-3
"""Added to a part's real share before dividing by it in :func:`coverage_floor_loss` (a share of the window)."""


def coverage_floor_loss(fake_masks: torch.Tensor, real_masks: torch.Tensor, fraction: float) -> torch.Tensor:
    r"""How far each part's generated share of the picture falls below ``fraction`` of its real share,
    relative to that floor, averaged over the parts (docs/method.md §6)::

        c_k = mean(fake_masks[:, k]),  r_k = mean(real_masks[:, k])
        loss = mean_k relu(f·r_k − c_k) / (f·r_k + ε)

    It is zero while every part the real batch shows covers at least ``fraction`` of its real share in the
    generated batch, so it leaves the adversarial game alone until a part is about to vanish: a part that
    sinks into the body loses its density and with it every adversarial gradient, and would not come back.

    Parameters:
        fake_masks (`torch.Tensor`): ``(B, K, H, W)`` generated part masks (differentiable).
        real_masks (`torch.Tensor`): ``(B', K, H, W)`` real part masks of the same window.
        fraction (`float`): ``f`` in [0, 1], the floor as a share of the real share.

    Returns:
        Scalar loss in [0, 1].
    """
    for name, value in (("fake_masks", fake_masks), ("real_masks", real_masks)):
        if not isinstance(value, torch.Tensor) or value.ndim != 4:
            raise ValueError(f"`{name}` must be a (B, K, H, W) tensor, got {getattr(value, 'shape', type(value).__name__)}.")
    if fake_masks.shape[1:] != real_masks.shape[1:]:
        raise ValueError(f"`real_masks` parts and size {tuple(real_masks.shape[1:])} must match `fake_masks` {tuple(fake_masks.shape[1:])}.")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"`fraction` must be a number in [0, 1], got {fraction!r}.")
    floor = fraction * real_masks.detach().to(fake_masks.dtype).mean(dim=(0, 2, 3))  # (K,)
    generated = fake_masks.mean(dim=(0, 2, 3))
    return (F.relu(floor - generated) / (floor + COVERAGE_EPS)).mean()


def lazy_adam_hyperparameters(lr: float, betas: Sequence[float], interval: Optional[int]) -> tuple[float, tuple[float, ...]]:
    r"""Adam settings corrected for lazy regularisation (StyleGAN2).

    When a regulariser runs only every ``interval`` steps on the same optimiser, the optimiser takes
    ``interval + 1`` steps where it would have taken ``interval``; with ``k = interval / (interval + 1)``
    StyleGAN2 uses ``lr · k`` and ``β_i ** k``. ``interval`` None (or 0) means no lazy regularisation:
    the settings are returned unchanged.

    Parameters:
        lr (`float`): Learning rate.
        betas (sequence of `float`): Adam's ``(β1, β2)``, each in [0, 1).
        interval (`int`, *optional*): Regularisation interval in steps.

    Returns:
        ``(lr, betas)``.
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"`lr` must be a positive number, got {lr!r}.")
    if not isinstance(betas, Sequence) or not betas or any(
        isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1 for b in betas
    ):
        raise ValueError(f"`betas` must be a sequence of numbers in [0, 1), got {betas!r}.")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 0):
        raise ValueError(f"`interval` must be None or a non-negative integer, got {interval!r}.")
    if not interval:
        return float(lr), tuple(float(b) for b in betas)
    ratio = interval / (interval + 1)
    return lr * ratio, tuple(b**ratio for b in betas)


def ema_beta(batch_size: int, ema_kimg: float, ema_rampup: Optional[float], images_seen: int) -> float:
    r"""Decay of the generator's exponential moving average for one step (StyleGAN2 / EG3D).

    The average's half-life is ``ema_nimg = ema_kimg · 1000`` images, shortened during the ramp-up to
    ``min(ema_nimg, images_seen · ema_rampup)``; the step's decay is
    ``β = 0.5 ** (batch_size / max(ema_nimg, 1e-8))``.

    Parameters:
        batch_size (`int`): Images per step (over all processes).
        ema_kimg (`float`): Half-life in thousands of images (EG3D: ``batch · 10 / 32``).
        ema_rampup (`float`, *optional*): Ramp-up ratio (EG3D: 0.05); None disables the ramp-up.
        images_seen (`int`): Images the training has shown so far.

    Returns:
        ``β`` in [0, 1).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if isinstance(ema_kimg, bool) or not isinstance(ema_kimg, (int, float)) or not math.isfinite(ema_kimg) or ema_kimg < 0:
        raise ValueError(f"`ema_kimg` must be a non-negative number, got {ema_kimg!r}.")
    if ema_rampup is not None and (
        isinstance(ema_rampup, bool) or not isinstance(ema_rampup, (int, float)) or not math.isfinite(ema_rampup) or ema_rampup <= 0
    ):
        raise ValueError(f"`ema_rampup` must be None or a positive number, got {ema_rampup!r}.")
    if isinstance(images_seen, bool) or not isinstance(images_seen, int) or images_seen < 0:
        raise ValueError(f"`images_seen` must be a non-negative integer, got {images_seen!r}.")
    ema_nimg = ema_kimg * IMAGES_PER_KIMG
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, EMA_MIN_IMAGES))


@torch.no_grad()
def update_ema(ema_module: nn.Module, module: nn.Module, beta: float) -> None:
    r"""Move ``ema_module`` toward ``module``: parameters ``p_ema ← p + β (p_ema − p)``, buffers copied.

    Both modules must have the same parameter and buffer names and shapes (pass the unwrapped module,
    e.g. ``accelerator.unwrap_model(generator)``).

    Parameters:
        ema_module (`torch.nn.Module`): The average, updated in place.
        module (`torch.nn.Module`): The trained module.
        beta (`float`): Decay in [0, 1] (:func:`ema_beta`); 0 copies ``module``, 1 keeps ``ema_module``.
    """
    if not isinstance(ema_module, nn.Module) or not isinstance(module, nn.Module):
        raise ValueError("`ema_module` and `module` must be torch.nn.Module instances.")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= 1:
        raise ValueError(f"`beta` must be a number in [0, 1], got {beta!r}.")
    for kind, ema_items, items in (
        ("parameters", dict(ema_module.named_parameters()), dict(module.named_parameters())),
        ("buffers", dict(ema_module.named_buffers()), dict(module.named_buffers())),
    ):
        if ema_items.keys() != items.keys():
            missing = sorted(set(ema_items) ^ set(items))[:5]
            raise ValueError(f"`ema_module` and `module` have different {kind} (e.g. {missing}); pass the unwrapped module.")
        for name, value in items.items():
            target = ema_items[name]
            if target.shape != value.shape:
                raise ValueError(f"`ema_module` {kind[:-1]} {name!r} has shape {tuple(target.shape)}, `module` {tuple(value.shape)}.")
            if kind == "parameters":
                target.copy_(value.detach().to(target.dtype).lerp(target, beta))
            else:
                target.copy_(value)
