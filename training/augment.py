"""Differentiable picture operations applied to discriminator inputs (real and generated alike).

* :func:`blur` and :func:`blur_sigma`: EG3D's fade-in blur; early in training both real and generated
  pictures are blurred with a Gaussian whose width shrinks linearly to 0, so the discriminator first
  judges coarse shapes.
* :func:`face_crops`: square crops around the projected head joint for the face discriminators.
* :func:`translate_augment`: a small random integer translation applied identically to all the pictures
  of a sample (image, part masks, normals), filling the uncovered border with each picture's background.

Pictures are ``(B, C, H, W)``; pixel ``(row i, column j)`` has its centre at ``(x, y) = (j + 0.5, i + 0.5)``
in pixel units (the image spans ``[0, W] × [0, H]``), the convention of ``semantichuman_hd.rendering.cameras``
scaled by the picture size.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

BLUR_RADIUS_SIGMAS: float = 3.0
"""The Gaussian kernel extends ``ceil(3σ)`` pixels on each side of its centre."""

WHITE: float = 1.0
"""Background of RGB pictures and normal maps (white, in [0, 1] as in [-1, 1])."""

EMPTY: float = 0.0
"""Background of the part masks (no part)."""

DEFAULT_FILL: dict[str, float] = {
    "image": WHITE,
    "normal": WHITE,
    "semantic": EMPTY,
    "face_image": WHITE,
    "face_normal": WHITE,
}
"""Background value of each picture name the training loop uses (see :func:`translate_augment`)."""

IMAGES_PER_KIMG: int = 1000
"""Images in one "kimg", the unit of the blur schedule."""


def _check_pictures(pictures, argument: str) -> None:
    if not isinstance(pictures, torch.Tensor) or pictures.ndim != 4 or pictures.shape[0] == 0:
        shape = tuple(pictures.shape) if isinstance(pictures, torch.Tensor) else type(pictures).__name__
        raise ValueError(f"`{argument}` must be a non-empty tensor of shape (B, C, H, W), got {shape}.")


def _check_number(value, argument: str, minimum: float = 0.0, strict: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    if not bad:
        bad = value <= minimum if strict else value < minimum
    if bad:
        relation = ">" if strict else "≥"
        raise ValueError(f"`{argument}` must be a finite number {relation} {minimum}, got {value!r}.")
    return float(value)


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalised 1D Gaussian ``exp(−x² / 2σ²)`` over ``x = −r … r`` with ``r = ceil(3σ)``; ``(2r + 1,)``."""
    sigma = _check_number(sigma, "sigma", strict=True)
    radius = math.ceil(BLUR_RADIUS_SIGMAS * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""Gaussian blur of ``images (B, C, H, W)`` → ``(B, C, H, W)``, separable, radius ``ceil(3σ)``.

    Borders are extended by replicating the edge pixels, so a constant picture (e.g. a white background)
    stays constant; away from the borders the kernel sums to 1 and the picture's total is kept. ``σ = 0``
    returns the pictures unchanged.

    Parameters:
        images (`torch.Tensor`): ``(B, C, H, W)`` pictures.
        sigma (`float`): Standard deviation in pixels, ``≥ 0``.
    """
    _check_pictures(images, "images")
    sigma = _check_number(sigma, "sigma")
    if sigma == 0:
        return images
    batch, channels, height, width = images.shape
    kernel = gaussian_kernel(sigma, images.dtype, images.device)
    radius = kernel.numel() // 2
    x = images.reshape(batch * channels, 1, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(batch, channels, height, width)


def blur_sigma(images_seen: int, fade_kimg: float, sigma_init: float) -> float:
    r"""EG3D's blur schedule, ``σ = max(1 − images_seen / (fade_kimg · 1000), 0) · σ_0`` (0 when ``fade_kimg`` is 0).

    Parameters:
        images_seen (`int`): Images the training has shown so far.
        fade_kimg (`float`): Thousands of images over which the blur fades out (EG3D: ``batch · 200 / 32``).
        sigma_init (`float`): ``σ_0``, the initial standard deviation in pixels. EG3D starts at 10 at 64²
            with the kernel ``2^(−x²/σ²)``, a Gaussian of standard deviation ``σ / sqrt(2 ln 2) ≈ 0.85 σ``:
            its 10 is about 8.5 for :func:`blur`.
    """
    if isinstance(images_seen, bool) or not isinstance(images_seen, int) or images_seen < 0:
        raise ValueError(f"`images_seen` must be a non-negative integer, got {images_seen!r}.")
    fade_kimg = _check_number(fade_kimg, "fade_kimg")
    sigma_init = _check_number(sigma_init, "sigma_init")
    if fade_kimg == 0:
        return 0.0
    return max(1.0 - images_seen / (fade_kimg * IMAGES_PER_KIMG), 0.0) * sigma_init


def face_crops(
    pictures: torch.Tensor,
    centres_px: torch.Tensor,
    crop_size: Union[float, torch.Tensor],
    out_size: int,
    fill: Union[float, Sequence[float], torch.Tensor] = WHITE,
) -> torch.Tensor:
    r"""Differentiable square crops ``(B, C, out_size, out_size)`` centred on given pixel positions.

    Crop ``b`` covers ``[x_b − s/2, x_b + s/2] × [y_b − s/2, y_b + s/2]`` of picture ``b`` (pixel units, see
    the module docstring) and is resampled bilinearly to ``out_size²`` (``affine_grid`` + ``grid_sample``).
    Parts of the crop outside the picture take the value ``fill``. Gradients flow to ``pictures`` (and to
    ``centres_px`` and ``crop_size`` when they require them). There is no low-pass filter: keep
    ``crop_size`` at most about twice ``out_size`` (the stage crops are 1:1 or upsampled), or blur first.

    Parameters:
        pictures (`torch.Tensor`): ``(B, C, H, W)``.
        centres_px (`torch.Tensor`): ``(B, 2)`` crop centres ``(x, y)`` in pixels (e.g. the head joint
            projected with each sample's camera).
        crop_size (`float` or `torch.Tensor`): Side ``s`` of the crop in pixels, one for all or ``(B,)``.
        out_size (`int`): Side of the output crops in pixels.
        fill (`float`, sequence or `torch.Tensor`): Value outside the picture, one for all channels or ``(C,)``
            (white, 1, for RGB and normal maps; 0 for part masks).
    """
    _check_pictures(pictures, "pictures")
    batch, channels, height, width = pictures.shape
    if not isinstance(centres_px, torch.Tensor) or tuple(centres_px.shape) != (batch, 2):
        shape = tuple(centres_px.shape) if isinstance(centres_px, torch.Tensor) else type(centres_px).__name__
        raise ValueError(f"`centres_px` must be a tensor of shape ({batch}, 2), got {shape}.")
    if not torch.isfinite(centres_px).all():
        raise ValueError("`centres_px` contains NaN or infinite values.")
    if isinstance(crop_size, torch.Tensor):
        if crop_size.shape not in ((), (batch,)) or not torch.isfinite(crop_size).all() or not (crop_size > 0).all():
            raise ValueError(f"`crop_size` must be a positive number or a ({batch},) tensor of positive numbers, got shape {tuple(crop_size.shape)}.")
        size = crop_size.to(pictures.dtype).expand(batch)
    else:
        size = pictures.new_full((batch,), _check_number(crop_size, "crop_size", strict=True))
    if isinstance(out_size, bool) or not isinstance(out_size, int) or out_size <= 0:
        raise ValueError(f"`out_size` must be a positive integer, got {out_size!r}.")
    fill_values = torch.as_tensor(fill, dtype=pictures.dtype, device=pictures.device)
    if fill_values.ndim > 1 or fill_values.numel() not in (1, channels) or not torch.isfinite(fill_values).all():
        raise ValueError(f"`fill` must be a finite number or {channels} finite numbers, got {fill!r}.")
    fill_values = fill_values.reshape(1, -1, 1, 1)

    centres = centres_px.to(pictures.dtype)
    # Normalised coordinates (align_corners=False): x_n = 2 x / W − 1; the crop's [−1, 1] maps to its span.
    theta = pictures.new_zeros(batch, 2, 3)
    theta[:, 0, 0] = size / width
    theta[:, 1, 1] = size / height
    theta[:, 0, 2] = 2.0 * centres[:, 0] / width - 1.0
    theta[:, 1, 2] = 2.0 * centres[:, 1] / height - 1.0
    grid = F.affine_grid(theta, [batch, channels, out_size, out_size], align_corners=False)
    # Sampling (pictures − fill) with zero padding and adding fill back gives exactly `fill` outside.
    crops = F.grid_sample(pictures - fill_values, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops + fill_values


def translate_augment(
    images: Mapping[str, torch.Tensor],
    max_shift_px: int,
    generator: Optional[torch.Generator] = None,
    probability: float = 1.0,
    fill: Optional[Mapping[str, float]] = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    r"""Random integer translation, the same for every picture of a sample.

    Each sample is shifted, with probability ``probability``, by ``(dx, dy)`` drawn uniformly from
    ``{−max_shift_px, …, max_shift_px}²`` (otherwise by 0): output pixel ``(i, j)`` takes input pixel
    ``(i − dy, j − dx)``, and pixels shifted in from outside take the picture's background value. All
    pictures of ``images`` must share the batch and the size, so the image, the part masks and the normal
    map of a sample stay aligned. Differentiable with respect to the pictures.

    Parameters:
        images (`dict[str, torch.Tensor]`): Name → ``(B, C, H, W)`` pictures of the same ``B, H, W``.
        max_shift_px (`int`): Largest shift in pixels (0: no translation).
        generator (`torch.Generator`, *optional*): Source of the random shifts (on the pictures' device).
        probability (`float`): Probability, per sample, of being shifted.
        fill (`dict[str, float]`, *optional*): Background per name; names missing here use
            :data:`DEFAULT_FILL` (white 1 for RGB and normals, 0 for part masks). A name in neither raises.

    Returns:
        ``(translated, shifts_px)``: the translated pictures under the same names, and the ``(B, 2)`` integer
        shifts ``(dx, dy)`` applied (add them to pixel positions computed before the translation, e.g. the
        face-crop centres).
    """
    if not isinstance(images, Mapping) or not images:
        raise ValueError(f"`images` must be a non-empty mapping name → pictures, got {type(images).__name__}.")
    shape = None
    for name, pictures in images.items():
        _check_pictures(pictures, f"images[{name!r}]")
        if shape is None:
            shape = (pictures.shape[0], *pictures.shape[2:])
            device = pictures.device
        elif (pictures.shape[0], *pictures.shape[2:]) != shape:
            raise ValueError(
                f"`images[{name!r}]` has batch and size {(pictures.shape[0], *pictures.shape[2:])}, the other pictures {shape}; "
                "all must match."
            )
    if isinstance(max_shift_px, bool) or not isinstance(max_shift_px, int) or max_shift_px < 0:
        raise ValueError(f"`max_shift_px` must be a non-negative integer, got {max_shift_px!r}.")
    probability = _check_number(probability, "probability")
    if probability > 1:
        raise ValueError(f"`probability` must be in [0, 1], got {probability!r}.")
    if fill is not None and not isinstance(fill, Mapping):
        raise ValueError(f"`fill` must be None or a mapping name → number, got {type(fill).__name__}.")
    fills = {**DEFAULT_FILL, **(fill or {})}
    missing = [name for name in images if name not in fills]
    if missing:
        raise ValueError(f"`fill` has no background value for {missing}; pass `fill={{name: value}}`.")
    for name in images:
        _check_number(fills[name], f"fill[{name!r}]", minimum=-math.inf)

    batch, height, width = shape
    shifts = torch.randint(-max_shift_px, max_shift_px + 1, (batch, 2), generator=generator, device=device)
    applied = torch.rand(batch, generator=generator, device=device) < probability
    shifts = shifts * applied.unsqueeze(1)
    if max_shift_px == 0 or not applied.any():
        return dict(images), shifts

    rows = torch.arange(height, device=device).view(1, height) - shifts[:, 1:2]  # (B, H) source rows
    cols = torch.arange(width, device=device).view(1, width) - shifts[:, 0:1]  # (B, W) source columns
    inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1)  # (B, H, W)
    rows = rows.clamp(0, height - 1)
    cols = cols.clamp(0, width - 1)
    samples = torch.arange(batch, device=device).view(batch, 1, 1)
    translated = {}
    for name, pictures in images.items():
        moved = pictures.permute(0, 2, 3, 1)[samples, rows.unsqueeze(2), cols.unsqueeze(1)]  # (B, H, W, C)
        moved = torch.where(inside.unsqueeze(-1), moved, moved.new_tensor(fills[name]))
        translated[name] = moved.permute(0, 3, 1, 2)
    return translated, shifts
