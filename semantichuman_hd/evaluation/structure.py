"""What the paper claims but does not measure: how disentangled the parts are, how consistent the
super-resolution is with the low-resolution render, and how faithful guided sampling is to a brute-force
render of the same high-resolution fields.

All three generate through the pipeline (``pipe(...)``, ``swap_parts``, and ``render_high(...,
guided=False)`` for the brute-force reference) without gradients.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch

from ..parts import PARTS
from ..rendering.compositor import COMPOSITIONS, DEPTH_ALPHA_THRESHOLD
from .pictures import downsample, psnr

MASK_THRESHOLD: float = 0.01
"""A pixel belongs to part k's mask where the part's rendered weight is at least this (1 % of the pixel)."""

SWAP_QUANTITIES: tuple[str, ...] = ("image", "depth", "normals")
"""Maps whose change the disentanglement score measures."""

PEOPLE_STREAM: int = 0
"""Stream of the people a metric draws (see :func:`person_seed`)."""

PARTNER_STREAM: int = 1
"""Stream of the swap partners of the disentanglement score."""


def person_seed(seed: int, index: int, stream: int = PEOPLE_STREAM) -> int:
    """The 32-bit seed of person ``index`` of ``stream`` in a run seeded ``seed``:
    ``numpy.random.SeedSequence([seed, stream, index]).generate_state(1)[0]`` (torch's CPU generator keeps
    only 32 bits of a seed, so seeds are mixed rather than offset)."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def person_latents(pipe, seed: int, indices: Sequence[int] | range, stream: int = PEOPLE_STREAM) -> torch.Tensor:
    """``(len(indices), K, z_dim)`` latents, person ``i`` drawn by ``pipe.sample_latents`` from
    ``torch.Generator().manual_seed(person_seed(seed, i, stream))``, so results do not depend on the batch size."""
    return torch.cat([pipe.sample_latents(1, torch.Generator().manual_seed(person_seed(seed, int(i), stream))) for i in indices])


@contextmanager
def composition(pipe, name: str):
    """Render with the pipeline's ``composition`` set to ``name`` inside the block, restored after."""
    if name not in COMPOSITIONS:
        raise ValueError(f"`composition` must be one of {list(COMPOSITIONS)}, got {name!r}.")
    previous = pipe.config.composition
    pipe.register_to_config(composition=name)
    try:
        yield
    finally:
        pipe.register_to_config(composition=previous)


def _pose_kwargs(conditions, start: int, stop: int) -> dict:
    if conditions is None:
        return {}
    return {"betas": conditions.betas[start:stop], "body_pose": conditions.body_pose[start:stop], "global_orient": conditions.global_orient[start:stop]}


def _render(pipe, latents: torch.Tensor, resolution: str, poses: dict):
    return pipe(latents=latents, resolution=resolution, output_type="pt", **poses)


class _Accumulator:
    """Sum, count and maximum of absolute changes over selected pixels."""

    def __init__(self):
        self.total, self.count, self.peak = 0.0, 0, 0.0

    def add(self, change: torch.Tensor, where: torch.Tensor) -> None:
        values = change[where]
        if values.numel():
            self.total += float(values.double().sum())
            self.count += values.numel()
            self.peak = max(self.peak, float(values.max()))

    def merge(self, other: "_Accumulator") -> None:
        self.total, self.count, self.peak = self.total + other.total, self.count + other.count, max(self.peak, other.peak)

    def result(self) -> dict:
        return {"mean": self.total / self.count if self.count else None, "max": self.peak if self.count else None, "pixels": self.count}


def _changes(first, second) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{quantity: (change, measured)}``: the ``(B, H, W)`` absolute change of each map between two
    renders and where it is measured (depth only where both cover the pixel at least
    :data:`DEPTH_ALPHA_THRESHOLD`)."""
    everywhere = torch.ones_like(first.alpha, dtype=torch.bool)
    covered = (first.alpha >= DEPTH_ALPHA_THRESHOLD) & (second.alpha >= DEPTH_ALPHA_THRESHOLD)
    return {
        "image": ((first.images - second.images).abs().amax(1), everywhere),
        "depth": ((first.depth - second.depth).abs(), covered),
        "normals": ((first.normals - second.normals).abs().amax(1), everywhere),
    }


def disentanglement(
    pipe,
    num_pairs: int,
    seed: int = 0,
    compositions: Sequence[str] = COMPOSITIONS,
    parts: Sequence[str] = PARTS,
    conditions=None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Disentanglement score: for ``num_pairs`` random pairs of people (a, b) and each part k, a is rendered
    with part k's latent swapped for b's; the absolute change of the image (max over RGB), depth (metres)
    and normal picture is measured outside part k's masks (pixels where the part's weight is below
    :data:`MASK_THRESHOLD` before and after the swap) and inside them. Depth is compared only where both
    renders cover the pixel at least :data:`DEPTH_ALPHA_THRESHOLD` (it is a mean over the pixel's alpha,
    meaningless where that vanishes). Low resolution.

    Outside its masks a part can still move a pixel a little: by about its weight there (its colour, and
    the light it takes from what lies behind), and through the importance samples, which follow every
    part's density, so a swap re-places the samples of the other parts' surfaces. The mean change outside
    is what measures disentanglement; the maximum shows these few pixels.

    A perfectly disentangled model changes nothing outside the part. Each composition in
    ``compositions`` is measured (``"sum_density"``, the paper's, and the ``"sum_sdf"`` ablation), the
    pipeline's own setting restored afterwards.

    Parameters:
        pipe: A ``SemanticHumanPipeline``.
        num_pairs: Pairs of people.
        seed: Seed of the latents (see :func:`person_seed`).
        compositions, parts: What to measure.
        conditions: Optional :class:`~semantichuman_hd.evaluation.reference.Conditions` (at least
            ``num_pairs``): poses of the people; default the pipeline's default pose.
        batch_size: People rendered together.
        progress: Called with the number of renders done.

    Returns:
        ``{composition: {"parts": {part: {"outside": {q: {"mean", "max", "pixels"}}, "inside": {…}}},
        "overall": {"outside": {…}, "inside": {…}}}}`` for the quantities of :data:`SWAP_QUANTITIES`.
    """
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs <= 0:
        raise ValueError(f"`num_pairs` must be a positive integer, got {num_pairs!r}.")
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise ValueError(f"`parts` must be a non-empty list of {list(PARTS)}, got {list(parts)!r}.")
    people = person_latents(pipe, seed, range(num_pairs))
    partners = person_latents(pipe, seed, range(num_pairs), stream=PARTNER_STREAM)
    results = {}
    for name in compositions:
        stats = {part: {side: {q: _Accumulator() for q in SWAP_QUANTITIES} for side in ("outside", "inside")} for part in parts}
        with composition(pipe, name):
            for start in range(0, num_pairs, batch_size):
                stop = min(start + batch_size, num_pairs)
                poses = _pose_kwargs(conditions, start, stop)
                before = _render(pipe, people[start:stop], "low", poses)
                if progress is not None:
                    progress(stop - start)
                for part in parts:
                    k = PARTS.index(part)
                    after = _render(pipe, pipe.swap_parts(people[start:stop], partners[start:stop], part), "low", poses)
                    if progress is not None:
                        progress(stop - start)
                    inside = (before.semantic_masks[:, k] >= MASK_THRESHOLD) | (after.semantic_masks[:, k] >= MASK_THRESHOLD)
                    for quantity, (change, measured) in _changes(before, after).items():
                        stats[part]["outside"][quantity].add(change, ~inside & measured)
                        stats[part]["inside"][quantity].add(change, inside & measured)
        overall = {side: {q: _Accumulator() for q in SWAP_QUANTITIES} for side in ("outside", "inside")}
        for part in parts:
            for side in overall:
                for quantity in SWAP_QUANTITIES:
                    overall[side][quantity].merge(stats[part][side][quantity])
        results[name] = {
            "parts": {part: {side: {q: acc.result() for q, acc in sides.items()} for side, sides in stats[part].items()} for part in parts},
            "overall": {side: {q: acc.result() for q, acc in sides.items()} for side, sides in overall.items()},
        }
    return results


def sr_consistency(pipe, num: int, seed: int = 0, conditions=None, batch_size: int = 4, progress: Callable[[int], None] | None = None) -> dict:
    """PSNR (dB) and L1 between the high-resolution output down-sampled to the low resolution (antialiased
    bilinear, as the upsampling loss) and the low-resolution output of the same people, for the image,
    the K part masks and the normal picture.

    Returns:
        ``{"image" | "masks" | "normals": {"psnr_db", "l1"}, "num": num}``.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise ValueError(f"`num` must be a positive integer, got {num!r}.")
    people = person_latents(pipe, seed, range(num))
    size = pipe.config.low_resolution
    pairs: dict[str, tuple[list, list]] = {"image": ([], []), "masks": ([], []), "normals": ([], [])}
    for start in range(0, num, batch_size):
        stop = min(start + batch_size, num)
        poses = _pose_kwargs(conditions, start, stop)
        low = _render(pipe, people[start:stop], "low", poses)
        high = _render(pipe, people[start:stop], "high", poses)
        for key, attribute in (("image", "images"), ("masks", "semantic_masks"), ("normals", "normals")):
            pairs[key][0].append(getattr(low, attribute).float())
            pairs[key][1].append(downsample(getattr(high, attribute), size))
        if progress is not None:
            progress(stop - start)
    result = {}
    for key, (lows, highs) in pairs.items():
        low, high = torch.cat(lows), torch.cat(highs)
        result[key] = {"psnr_db": psnr(high, low), "l1": float((high - low).abs().mean())}
    result["num"] = num
    return result


def _stage_inputs(pipe, latents: torch.Tensor, poses: dict):
    """Codes and posed bodies of ``latents`` as ``__call__`` makes them (truncation from the config)."""
    posed = pipe._pose_bodies(latents.shape[0], poses.get("betas"), poses.get("body_pose"), poses.get("global_orient"), 0.0)
    ws = pipe.mapper(pipe.check_latents(latents), truncation_psi=pipe.config.truncation_psi)
    return ws, posed


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


@torch.no_grad()
def guided_sampling_fidelity(pipe, num: int, seed: int = 0, conditions=None, progress: Callable[[int], None] | None = None) -> dict:
    """The guided high-resolution render (11 depth- and semantics-guided samples per pixel) against the
    brute-force render of the same high-resolution fields (``render_high(..., guided=False)``: the
    stage-1 sampler at the high resolution, every part decoded), one person at a time.

    Returns:
        ``{"psnr_db"`` (RGB, whole picture), ``"depth_abs_error_m"`` (mean over pixels both cover at
        least :data:`DEPTH_ALPHA_THRESHOLD`), ``"alpha_l1"``, ``"guided_seconds"``, ``"stage1_seconds"``,
        ``"brute_force_seconds"``, ``"speed_ratio"`` (brute force / guided), ``"speed_ratio_with_stage1"``
        (brute force / (guided + stage 1)), ``"num"}``.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise ValueError(f"`num` must be a positive integer, got {num!r}.")
    people = person_latents(pipe, seed, range(num))
    size = pipe.config.high_resolution
    squared_error, pixels, depth_error, depth_pixels, alpha_error = 0.0, 0, 0.0, 0, 0.0
    guided_s = stage1_s = brute_s = 0.0
    for i in range(num):
        ws, posed = _stage_inputs(pipe, people[i : i + 1], _pose_kwargs(conditions, i, i + 1))
        (low, lr), seconds = _timed(lambda: pipe.render_low(ws, posed))
        stage1_s += seconds
        guided, seconds = _timed(lambda: pipe.render_high(ws, posed, lr, low))
        guided_s += seconds
        brute, seconds = _timed(lambda: pipe.render_high(ws, posed, lr, None, guided=False))
        brute_s += seconds
        a, b = guided.to_images(size, size), brute.to_images(size, size)
        squared_error += float(((a.rgb.clamp(0, 1) - b.rgb.clamp(0, 1)).double() ** 2).sum())
        pixels += a.rgb.numel()
        both = (a.alpha[:, 0] >= DEPTH_ALPHA_THRESHOLD) & (b.alpha[:, 0] >= DEPTH_ALPHA_THRESHOLD)
        depth_error += float((a.depth[:, 0] - b.depth[:, 0]).abs()[both].double().sum())
        depth_pixels += int(both.sum())
        alpha_error += float((a.alpha - b.alpha).abs().double().sum())
        if progress is not None:
            progress(1)
    mse = squared_error / pixels
    return {
        "psnr_db": float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item(),
        "depth_abs_error_m": depth_error / depth_pixels if depth_pixels else None,
        "alpha_l1": alpha_error / (pixels / 3),
        "guided_seconds": guided_s,
        "stage1_seconds": stage1_s,
        "brute_force_seconds": brute_s,
        "speed_ratio": brute_s / guided_s,
        "speed_ratio_with_stage1": brute_s / (guided_s + stage1_s),
        "num": num,
    }
