"""The shared differentiable generator (`semantichuman_hd/generator.py`): capsule ray bounds lose no
point the deformer keeps, the training render (capsule bounds, portrait window) renders the
pipeline's field, stage 2 keeps stage 1 out of the graph and synthesises only the HR planes it reads, and dataset labels place the body where the
dataset's pictures show it."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from semantichuman_hd import SemanticHumanPipeline
from semantichuman_hd.body.poses import NAMED_POSES
from semantichuman_hd.data import SemanticHumanDataset
from semantichuman_hd.generator import capsule_ray_bounds, rectangle_pixels, scene_from_labels
from semantichuman_hd.rendering.cameras import fixed_camera

MIN_PSNR_DB: float = 30.0
"""The training render must match the pipeline's render of the same field at least this well."""


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a - b).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def pipe(open_body):
    pipe = SemanticHumanPipeline.from_preset("tiny", seed=1)
    pipe.set_body_model(open_body)
    return pipe


@pytest.fixture(scope="module")
def posed(pipe):
    pose = torch.stack([torch.as_tensor(NAMED_POSES["a-pose"]), torch.as_tensor(NAMED_POSES["walking"])]).float()
    return pipe._pose_bodies(2, None, pose, None, torch.tensor([0.0, 0.6]))


def test_capsule_bounds_hold_every_point_the_deformer_keeps(pipe, posed):
    generator = pipe.generator_model
    origins, directions = fixed_camera(2).generate_rays(24, 24)
    box_near, box_far, box_hit = generator.ray_bounds(origins, directions, posed, "box")
    near, far, hit = capsule_ray_bounds(origins, directions, posed, pipe.deformer.cull_distance)
    assert hit.float().mean() < box_hit.float().mean()  # background rays are skipped
    t = torch.linspace(0, 1, 64)
    depths = box_near.unsqueeze(-1) + (box_far - box_near).unsqueeze(-1) * t  # (B, R, 64) through the whole box
    points = (origins.unsqueeze(2) + depths.unsqueeze(-1) * directions.unsqueeze(2)).reshape(2, -1, 3)
    with torch.no_grad():
        kept = pipe.deformer.posed_to_canonical(points, posed).valid.reshape(depths.shape) & box_hit.unsqueeze(-1)
    assert kept.any()
    inside = hit.unsqueeze(-1) & (depths >= near.unsqueeze(-1) - 1e-5) & (depths <= far.unsqueeze(-1) + 1e-5)
    assert bool(inside[kept].all())
    assert float((far - near)[hit].mean()) < float((box_far - box_near)[hit].mean())


def test_training_render_matches_the_pipeline_render(pipe, posed):
    """Capsule bounds and a 2:1 window (training) against box bounds over the full frame (pipeline)."""
    generator = pipe.generator_model
    size = pipe.config.low_resolution
    columns = (size // 4, 3 * size // 4)
    with torch.no_grad():
        ws = pipe.mapper(pipe.sample_latents(2, torch.Generator().manual_seed(0)))
        lr = pipe.local_generators.synthesize(ws)
        cameras = fixed_camera(2)
        reference = generator.render_stage1(lr, posed, cameras, ray_bounds="box")
        fast = generator.render_stage1(lr, posed, cameras, ray_bounds="capsules", columns=columns)
    window = slice(*columns)
    assert fast.image.shape == (2, 3, size, size // 2)
    assert psnr(fast.image, reference.image[..., window]) >= MIN_PSNR_DB
    assert psnr(fast.masks, reference.masks[..., window]) >= MIN_PSNR_DB
    assert reference.alpha[..., : columns[0]].max() < 1e-3 and reference.alpha[..., columns[1] :].max() < 1e-3


def test_stage2_trains_only_through_the_super_resolution(pipe, posed):
    generator = pipe.generator_model
    ws = pipe.mapper(pipe.sample_latents(2, torch.Generator().manual_seed(0)))
    output = generator.synthesis(ws, posed, fixed_camera(2), stage=2, ray_bounds="capsules", columns=(8, 24))
    assert output.low is not None and not output.low.image.requires_grad
    assert output.image.requires_grad and output.image.shape[-2:] == (4 * 32, 4 * 16)
    output.image.mean().backward()
    assert all(p.grad is None for p in pipe.local_generators.parameters())  # the LR branch ran without a graph
    assert pipe.super_resolution.beta.grad is not None
    pipe.super_resolution.zero_grad(set_to_none=True)
    pipe.mapper.zero_grad(set_to_none=True)  # the SR blocks' styles come from ws (frozen in stage-2 training)


def test_stage2_patches_render_the_same_pixels_as_the_whole_window(pipe, posed):
    """Training's stage-2 patches (`pixels`) are the whole render's pixels, not an approximation."""
    generator = pipe.generator_model
    columns = (8, 24)
    with torch.no_grad():
        ws = pipe.mapper(pipe.sample_latents(2, torch.Generator().manual_seed(0)))
        whole = generator.synthesis(ws, posed, fixed_camera(2), stage=2, ray_bounds="capsules", columns=columns)
        top_left = torch.tensor([[40, 8], [72, 28]])  # two different patches of the 128×64 HR window
        pixels = rectangle_pixels(top_left, 32, 24, image_width=64)
        patch = generator.synthesis(ws, posed, fixed_camera(2), stage=2, ray_bounds="capsules", columns=columns, pixels=pixels)
    assert patch.image.shape == (2, 3, 1, 32 * 24)
    assert patch.low.render.num_field_queries < whole.low.render.num_field_queries / 2  # only the LR pixels it reads
    for name in ("image", "masks", "normals", "depth", "alpha"):
        full, strip = getattr(whole, name), getattr(patch, name)
        for b, (row, col) in enumerate(top_left.tolist()):
            expected = full[b, :, row : row + 32, col : col + 24].reshape(full.shape[1], -1)
            torch.testing.assert_close(strip[b, :, 0], expected, atol=1e-5, rtol=1e-5)
    assert float(patch.alpha.amin(-1).amax(-1).min()) < 0.01 < 0.5 < float(patch.alpha.amax(-1).amin())  # person and background
    with pytest.raises(ValueError, match="pixels"):
        generator.synthesis(ws, posed, fixed_camera(2), stage=2, columns=columns, pixels=pixels + 128 * 64)
    with pytest.raises(ValueError, match="pixels"):
        generator.synthesis(ws, posed, fixed_camera(2), stage=1, pixels=pixels)


def test_stage2_synthesizes_the_hr_planes_of_the_rendered_parts_only(pipe, posed):
    """A person's part that no rendered pixel selects is never read: its HR tri-plane is not synthesised
    (zero, ``hr_parts`` False) and the render is the one with every part synthesised (``all_hr_parts``)."""
    generator = pipe.generator_model
    columns = (8, 24)
    pixels = rectangle_pixels(torch.tensor([[0, 0], [96, 40]]), 16, 16, image_width=64)  # background; a leg
    with torch.no_grad():
        ws = pipe.mapper(pipe.sample_latents(2, torch.Generator().manual_seed(0)))
        kwargs = dict(stage=2, ray_bounds="capsules", columns=columns, pixels=pixels)
        some = generator.synthesis(ws, posed, fixed_camera(2), **kwargs)
        every = generator.synthesis(ws, posed, fixed_camera(2), all_hr_parts=True, **kwargs)
    assert every.hr_parts.all() and some.hr_parts.any() and not some.hr_parts[0].any()
    assert not some.hr_planes[~some.hr_parts].any()
    torch.testing.assert_close(some.hr_planes[some.hr_parts], every.hr_planes[some.hr_parts], atol=1e-6, rtol=1e-5)
    assert float(some.alpha[0].max()) < 1e-3 < 0.5 < float(some.alpha[1].max())
    for name in ("image", "masks", "normals", "depth", "alpha"):
        torch.testing.assert_close(getattr(some, name), getattr(every, name), atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # background only: no HR plane is synthesised
        corner = rectangle_pixels(torch.tensor([[0, 0], [0, 0]]), 8, 8, image_width=64)
        empty = generator.synthesis(ws, posed, fixed_camera(2), stage=2, ray_bounds="capsules", columns=columns, pixels=corner)
    assert not empty.hr_parts.any() and not empty.hr_planes.any() and float(empty.alpha.max()) == 0.0
    with pytest.raises(ValueError, match="all_hr_parts"):
        generator.synthesis(ws, posed, fixed_camera(2), stage=1, all_hr_parts=True)


def test_field_regularizers_give_per_part_gradients(pipe):
    generator = pipe.generator_model
    ws = pipe.mapper(pipe.sample_latents(1, torch.Generator().manual_seed(0)))
    planes = pipe.local_generators.synthesize(ws).planes
    points = generator.shell_points(1, 8, torch.Generator().manual_seed(0))
    regs = generator.field_regularizers(planes, points)
    assert regs.sdf_gradients.shape == (1, 8, 6, 3) and regs.sdf.shape == regs.sdf_jittered.shape == (1, 8, 6)
    # Part k's gradient is the prior's plus that of part k's own Δsdf: compare the Δsdf term of part 2
    # with a finite difference of the decoder (the prior's trilinear grid is only piecewise smooth).
    prior_points = points.clone().requires_grad_(True)
    (prior_gradient,) = torch.autograd.grad(pipe.deformer.sdf_prior(prior_points).sum(), prior_points)
    step = 1e-4
    offset = torch.tensor([step, 0.0, 0.0])
    with torch.no_grad():
        plus, _ = pipe.local_generators.decode(planes, points + offset)
        minus, _ = pipe.local_generators.decode(planes, points - offset)
    numeric = (plus - minus)[..., 2] / (2 * step)
    analytic = (regs.sdf_gradients[..., 2, 0] - prior_gradient[..., 0]).detach()
    torch.testing.assert_close(analytic, numeric, atol=1e-3, rtol=0.02)
    assert regs.sdf_gradients.requires_grad
    # The values are the prior plus the decoder's Δsdf at the points, as a decode of the points alone gives.
    with torch.no_grad():
        delta, _ = pipe.local_generators.decode(planes, points)
    torch.testing.assert_close(regs.sdf.detach(), pipe.deformer.sdf_prior(points).unsqueeze(-1) + delta, atol=1e-5, rtol=0)


def test_dataset_labels_place_the_body_where_the_pictures_show_it(pipe, tmp_path):
    out = tmp_path / "synth"
    subprocess.run(
        [sys.executable, "-m", "semantichuman_hd", "make-dataset", "synthetic", "--num", "2", "--image-size", "32", "--out", str(out)],
        check=True, capture_output=True,
    )
    dataset = SemanticHumanDataset(out)
    labels = torch.stack([torch.cat([dataset[i]["camera"], dataset[i]["smpl"]]) for i in range(2)])
    cameras, smpl = scene_from_labels(labels)
    generator = pipe.generator_model
    with torch.no_grad():
        ws = pipe.mapper(pipe.sample_latents(2, torch.Generator().manual_seed(0)))
        output = generator.render_stage1(pipe.local_generators.synthesize(ws), generator.pose(**smpl), cameras, ray_bounds="capsules")
    for index in range(2):
        rendered = output.alpha[index, 0].numpy() > 0.5
        body = dataset[index]["segm"].numpy() == 1  # the body part (skin, face, hair) only
        clothed = dataset[index]["segm"].numpy() > 0
        # The untrained parts are the body prior's shell: they cover the visible skin and stay within the
        # clothed silhouette grown by a couple of pixels.
        assert rendered[body].mean() > 0.9
        grown = torch.nn.functional.max_pool2d(torch.from_numpy(clothed).float()[None, None], 5, 1, 2)[0, 0].numpy() > 0
        assert (rendered & ~grown).sum() <= 2
    with pytest.raises(ValueError, match="`labels` must be a tensor of shape"):
        scene_from_labels(torch.zeros(2, 25))
    bad = labels.clone()
    bad[0, 25] = 0
    with pytest.raises(ValueError, match="`scale` must be positive"):
        scene_from_labels(bad)
