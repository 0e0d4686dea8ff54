"""The contract of ``SemanticHumanPipeline.__call__`` and its latent helpers, on the ``tiny`` preset:
output containers and shapes at both resolutions, what the pictures and maps hold, reproducibility,
and a clear ``ValueError`` for every bad input."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import PIL.Image
import pytest
import torch

from semantichuman_hd.parts import NUM_PARTS, PART_COLORS, PARTS
from semantichuman_hd.presets import get_preset
from semantichuman_hd.pipelines.pipeline_semantic_human import (
    OUTPUT_TYPES,
    RESOLUTIONS,
    SemanticHumanPipeline,
    SemanticHumanPipelineOutput,
    semantic_picture,
)

LOW_BATCH = 2
"""People per low-resolution render."""

HIGH_BATCH = 1
"""People per high-resolution render (slower)."""

SEED = 3
Z = get_preset("tiny").mapper["z_dim"]
SHAPE = rf"\(B, {NUM_PARTS}, {Z}\)"
MASK_SUM_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def pipe():
    pipe = SemanticHumanPipeline.from_preset("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def render(pipe):
    """``render(resolution, output_type)``: one cached call per combination, same seeded latents."""

    @lru_cache(maxsize=None)
    def run(resolution: str, output_type: str) -> SemanticHumanPipelineOutput:
        batch = LOW_BATCH if resolution == "low" else HIGH_BATCH
        return pipe(num_images=batch, generator=torch.Generator().manual_seed(SEED), resolution=resolution, output_type=output_type)

    return run


def _size(pipe, resolution: str) -> int:
    return pipe.config.low_resolution if resolution == "low" else pipe.config.high_resolution


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("output_type", OUTPUT_TYPES)
def test_output_containers_and_shapes(pipe, render, resolution, output_type):
    output = render(resolution, output_type)
    size = _size(pipe, resolution)
    batch = LOW_BATCH if resolution == "low" else HIGH_BATCH
    assert isinstance(output, SemanticHumanPipelineOutput)
    pictures = (output.images, output.semantic_images, output.normals)
    maps = {"semantic_masks": (batch, NUM_PARTS, size, size), "depth": (batch, size, size), "alpha": (batch, size, size)}
    if output_type == "pil":
        for picture_list in pictures:
            assert isinstance(picture_list, list) and len(picture_list) == batch
            assert all(isinstance(p, PIL.Image.Image) and p.size == (size, size) and p.mode == "RGB" for p in picture_list)
    elif output_type == "np":
        for array in pictures:
            assert isinstance(array, np.ndarray) and array.shape == (batch, size, size, 3) and array.dtype == np.float32
    else:
        for tensor in pictures:
            assert isinstance(tensor, torch.Tensor) and tensor.shape == (batch, 3, size, size) and tensor.dtype == torch.float32
    array_type = torch.Tensor if output_type == "pt" else np.ndarray
    for name, shape in maps.items():
        value = getattr(output, name)
        assert isinstance(value, array_type) and tuple(value.shape) == shape, name
    assert isinstance(output.latents, torch.Tensor) and output.latents.shape == (batch, NUM_PARTS, pipe.z_dim)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_output_types_hold_the_same_result(render, resolution):
    pt, np_, pil = (render(resolution, kind) for kind in ("pt", "np", "pil"))
    assert np.array_equal(pt.images.permute(0, 2, 3, 1).numpy(), np_.images)
    assert np.array_equal(pt.depth.numpy(), np_.depth) and np.array_equal(pt.semantic_masks.numpy(), np_.semantic_masks)
    for pictures, floats in ((pil.images, np_.images), (pil.semantic_images, np_.semantic_images), (pil.normals, np_.normals)):
        bytes_ = np.stack([np.asarray(p) for p in pictures])
        assert np.array_equal(bytes_, (floats * 255).round().astype(np.uint8))


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_maps_are_consistent(render, resolution):
    output = render(resolution, "pt")
    masks, alpha, depth = output.semantic_masks, output.alpha, output.depth
    assert 0 <= alpha.min() and alpha.max() <= 1
    assert 0 <= masks.min() and masks.max() <= 1
    assert torch.allclose(masks.sum(1), alpha, atol=MASK_SUM_TOLERANCE)
    background, foreground = alpha == 0, alpha > 0.5
    assert background.any() and foreground.any()  # a person in the middle of an empty frame
    assert (depth[background] == 0).all() and (depth[foreground] > 0).all()
    for pictures in (output.images, output.normals, output.semantic_images):
        assert 0 <= pictures.min() and pictures.max() <= 1
        assert (pictures.permute(0, 2, 3, 1)[background] == 1).all()  # white background


def test_semantic_picture_colours():
    size = 4
    masks = torch.zeros(1, NUM_PARTS, size, size)
    for k in range(NUM_PARTS):
        masks[0, k, k // size, k % size] = 1.0
    masks[0, 0, 3, 3] = 0.5  # half skin over the white background
    picture = semantic_picture(masks)
    assert picture.shape == (1, 3, size, size)
    for k, colour in enumerate(PART_COLORS):
        assert torch.allclose(picture[0, :, k // size, k % size], torch.tensor(colour) / 255)
    assert torch.allclose(picture[0, :, 3, 3], (torch.tensor(PART_COLORS[0]) / 255 + 1) / 2)
    assert (picture[0, :, 2, 2] == 1).all()  # background is white


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_semantic_images_colour_the_masks(render, resolution):
    output = render(resolution, "pt")
    assert torch.allclose(output.semantic_images, semantic_picture(output.semantic_masks), atol=1e-6)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_bf16_autocast_runs_synthesis_in_low_precision_and_geometry_in_full(pipe, render, resolution):
    """Under ``torch.autocast`` only the networks drop precision: rays, skinning, root finding and
    compositing stay float32, so the pictures stay close to the float32 ones."""
    batch = LOW_BATCH if resolution == "low" else HIGH_BATCH
    reference = render(resolution, "pt")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = pipe(num_images=batch, generator=torch.Generator().manual_seed(SEED), resolution=resolution, output_type="pt")
    assert output.images.dtype == torch.float32
    assert (output.images - reference.images).abs().mean() < 5e-3
    covered = (reference.alpha > 0.5) & (output.alpha > 0.5)
    assert (output.depth - reference.depth)[covered].abs().max() < 0.05


def test_latents_returned_are_the_ones_passed(pipe):
    latents = torch.randn(1, NUM_PARTS, pipe.z_dim, generator=torch.Generator().manual_seed(11))
    output = pipe(latents=latents, output_type="pt")
    assert torch.equal(output.latents, latents)


def test_seeded_generator_reproduces(pipe, render):
    first, again = render("low", "np"), render("low", "pt")  # two calls with generators of the same seed
    assert torch.equal(first.latents, again.latents)
    for name in ("images", "semantic_images"):
        assert np.array_equal(getattr(first, name), getattr(again, name).permute(0, 2, 3, 1).numpy()), name
    # Normals come from autograd reductions whose order may vary with several threads (one float step).
    np.testing.assert_allclose(first.normals, again.normals.permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-6)
    for name in ("depth", "alpha", "semantic_masks"):
        assert np.array_equal(getattr(first, name), getattr(again, name).numpy()), name
    other = pipe.sample_latents(LOW_BATCH, torch.Generator().manual_seed(SEED + 1))
    assert not torch.equal(first.latents, other)
    images = pipe(latents=first.latents, output_type="np", return_dict=False)[0]  # the tuple form, images first
    assert np.array_equal(images, first.images)


def test_sample_latents_same_for_all_parts(pipe, render):
    shared = pipe.sample_latents(3, torch.Generator().manual_seed(SEED))
    assert shared.shape == (3, NUM_PARTS, pipe.z_dim)
    assert torch.equal(shared, shared[:, :1].expand_as(shared))
    assert not torch.equal(shared[0], shared[1])
    separate = pipe.sample_latents(3, torch.Generator().manual_seed(SEED), same_for_all_parts=False)
    assert all(not torch.equal(separate[:, 0], separate[:, k]) for k in range(1, NUM_PARTS))
    assert torch.equal(separate, pipe.sample_latents(3, torch.Generator().manual_seed(SEED), same_for_all_parts=False))
    drawn = render("low", "pt").latents  # __call__ draws one z per person, shared by the parts
    assert torch.equal(drawn, drawn[:, :1].expand_as(drawn))


@pytest.fixture(scope="module")
def two_people(pipe):
    a = pipe.sample_latents(2, torch.Generator().manual_seed(21), same_for_all_parts=False)
    b = pipe.sample_latents(2, torch.Generator().manual_seed(22), same_for_all_parts=False)
    return a, b


def test_swap_parts(pipe, two_people):
    a, b = two_people
    swapped = pipe.swap_parts(a, b, ["tops", "shoes"])
    for k, name in enumerate(PARTS):
        assert torch.equal(swapped[:, k], (b if name in ("tops", "shoes") else a)[:, k]), name
    assert torch.equal(pipe.swap_parts(a, b, "bottoms")[:, PARTS.index("bottoms")], b[:, PARTS.index("bottoms")])
    assert torch.equal(pipe.swap_parts(a, b, list(PARTS)), b)
    assert torch.equal(a, two_people[0])  # inputs untouched


def test_interpolate_part(pipe, two_people):
    a, b = two_people
    part = PARTS.index("outerwear")
    others = [k for k in range(NUM_PARTS) if k != part]
    frames = pipe.interpolate_part(a, b, "outerwear", [0.0, 0.25, 1.0]).view(3, 2, NUM_PARTS, pipe.z_dim)
    assert torch.equal(frames[0], a)
    assert torch.equal(frames[2][:, part], b[:, part]) and torch.equal(frames[2][:, others], a[:, others])
    assert torch.allclose(frames[1][:, part], a[:, part] + 0.25 * (b[:, part] - a[:, part]), atol=1e-6)
    assert torch.equal(frames[1][:, others], a[:, others])
    assert torch.equal(frames[2], pipe.swap_parts(a, b, "outerwear"))


def test_progress_bar(pipe, capsys):
    capsys.readouterr()
    try:
        pipe.set_progress_bar_config()
        pipe(output_type="np")
        shown = capsys.readouterr().err
        assert "3/3" in shown
        pipe.set_progress_bar_config(disable=True)
        pipe(output_type="np")
        assert capsys.readouterr().err == ""
    finally:
        pipe.set_progress_bar_config(disable=True)


def _latents(shape=None, fill=None):
    tensor = torch.zeros(shape or (1, NUM_PARTS, Z))
    if fill is not None:
        tensor[0, 0, 0] = fill
    return tensor


CALL_ERRORS = {
    "latents z_dim": (dict(latents=_latents((1, NUM_PARTS, Z - 1))), rf"`latents` must be a tensor of shape {SHAPE}, got \(1, {NUM_PARTS}, {Z - 1}\)"),
    "latents parts": (dict(latents=_latents((1, NUM_PARTS + 1, Z))), rf"`latents` must be a tensor of shape {SHAPE}"),
    "latents 2-d": (dict(latents=_latents((NUM_PARTS, Z))), rf"`latents` must be a tensor of shape {SHAPE}, got \({NUM_PARTS}, {Z}\)"),
    "latents numpy": (dict(latents=np.zeros((1, NUM_PARTS, Z), np.float32)), r"`latents` must be a tensor.*ndarray"),
    "latents NaN": (dict(latents=_latents(fill=math.nan)), r"`latents` contains NaN"),
    "latents inf": (dict(latents=_latents(fill=math.inf)), r"`latents` contains NaN or infinite"),
    "num_images 0": (dict(num_images=0), r"`num_images` must be a positive integer, got 0"),
    "num_images negative": (dict(num_images=-2), r"`num_images` must be a positive integer, got -2"),
    "num_images float": (dict(num_images=1.5), r"`num_images` must be a positive integer, got 1.5"),
    "num_images bool": (dict(num_images=True), r"`num_images` must be a positive integer, got True"),
    "num_images string": (dict(num_images="2"), r"`num_images` must be a positive integer, got '2'"),
    "resolution": (dict(resolution="medium"), r"`resolution` must be one of \['low', 'high'\], got 'medium'"),
    "output_type": (dict(output_type="latent"), r"`output_type` must be one of \['pil', 'np', 'pt'\], got 'latent'"),
    "betas length": (dict(betas=torch.zeros(3)), r"`betas` must have shape \(1, 10\) or \(10,\), got \(3,\)"),
    "betas batch": (dict(betas=torch.zeros(2, 10)), r"`betas` must have shape \(1, 10\)"),
    "betas inf": (dict(betas=torch.full((10,), math.inf)), r"`betas` contains NaN or infinite"),
    "body_pose length": (dict(body_pose=torch.zeros(68)), r"`body_pose` must have shape \(1, 69\) or \(69,\), got \(68,\)"),
    "body_pose 3-d": (dict(body_pose=torch.zeros(1, 23, 3)), r"`body_pose` must have shape"),
    "body_pose NaN": (dict(body_pose=torch.full((69,), math.nan)), r"`body_pose` contains NaN"),
    "global_orient": (dict(global_orient=torch.zeros(4)), r"`global_orient` must have shape"),
    "view_angle NaN": (dict(view_angle=math.nan), r"`view_angle` must be finite"),
    "view_angle inf": (dict(view_angle=torch.tensor([math.inf])), r"`view_angle` must be finite"),
    "view_angle text": (dict(view_angle="front"), r"`view_angle` must be a number or a \(B,\) tensor of radians, got 'front'"),
    "view_angle count": (dict(view_angle=[0.0, 1.0, 2.0]), r"`view_angle` must be a scalar or have one value per body"),
    "truncation_psi NaN": (dict(truncation_psi=math.nan), r"`truncation_psi` must be a finite number, got nan"),
    "truncation_psi inf": (dict(truncation_psi=-math.inf), r"`truncation_psi` must be a finite number"),
    "truncation_psi string": (dict(truncation_psi="0.7"), r"`truncation_psi` must be a finite number, got '0.7'"),
}


@pytest.mark.parametrize("case", sorted(CALL_ERRORS))
def test_call_rejects_bad_input(pipe, case):
    kwargs, message = CALL_ERRORS[case]
    with pytest.raises(ValueError, match=message):
        pipe(**{"output_type": "np", **kwargs})


def test_sample_latents_rejects_bad_num_images(pipe):
    for bad in (0, -1, 2.0, None):
        with pytest.raises(ValueError, match=r"`num_images` must be a positive integer"):
            pipe.sample_latents(bad)


def test_helpers_reject_bad_input(pipe, two_people):
    a, b = two_people
    with pytest.raises(ValueError, match=r"`parts` must be one of \[.*'accessories'\], got 'hat'"):
        pipe.swap_parts(a, b, ["tops", "hat"])
    with pytest.raises(ValueError, match=r"`parts` must name at least one of"):
        pipe.swap_parts(a, b, [])
    with pytest.raises(ValueError, match=r"`latents_a` and `latents_b` must have the same shape"):
        pipe.swap_parts(a[:1], b, "tops")
    with pytest.raises(ValueError, match=rf"`latents_b` must be a tensor of shape {SHAPE}"):
        pipe.swap_parts(a, b[:, :3], "tops")
    with pytest.raises(ValueError, match=r"`latents_a` contains NaN"):
        pipe.swap_parts(torch.full_like(a, math.nan), b, "tops")
    with pytest.raises(ValueError, match=r"`part` must be one of \[.*\], got 'hat'"):
        pipe.interpolate_part(a, b, "hat", [0.5])
    with pytest.raises(ValueError, match=r"`part` must be one part name"):
        pipe.interpolate_part(a, b, ["tops", "shoes"], [0.5])
    with pytest.raises(ValueError, match=r"`weights` must be a non-empty sequence of finite numbers"):
        pipe.interpolate_part(a, b, "tops", [0.0, math.nan])
    with pytest.raises(ValueError, match=r"`weights` must be a non-empty sequence"):
        pipe.interpolate_part(a, b, "tops", [])
    with pytest.raises(ValueError, match=r"`latents_a` and `latents_b` must have the same shape"):
        pipe.interpolate_part(a[:1], b, "tops", [0.5])
