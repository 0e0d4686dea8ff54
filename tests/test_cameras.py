"""Cameras: conventions of the fixed camera, look-at and orbit cameras, rays, projection, validation."""

from __future__ import annotations

import math

import pytest
import torch

from semantichuman_hd.rendering.cameras import (
    FIXED_CAMERA_DISTANCE,
    FIXED_CAMERA_FOCAL,
    Cameras,
    fixed_camera,
    normalized_intrinsics,
    orbit_camera,
    perspective_camera,
)


def test_fixed_camera_orientation_and_framing():
    cameras = fixed_camera(batch_size=2)
    assert cameras.batch_size == 2
    points = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.3, 0.0], [1.1, 0.0, 0.0], [0.0, -1.1, 0.0]])
    pixels, depth = cameras.project(points.expand(2, -1, -1))
    origin, right, up, frame_right, frame_bottom = pixels[0]
    assert torch.allclose(origin, torch.tensor([0.5, 0.5]))
    assert right[0] > 0.5 and abs(right[1] - 0.5) < 1e-6  # world +x is image right
    assert up[1] < 0.5 and abs(up[0] - 0.5) < 1e-6  # world +y is image up (v grows downward)
    # The frame spans ±1.1 m at the origin plane: x = 1.1 lands on the right edge, y = -1.1 on the bottom.
    assert abs(frame_right[0].item() - 1.0) < 1e-6 and abs(frame_bottom[1].item() - 1.0) < 1e-6
    assert torch.allclose(depth[0, 0], torch.tensor(FIXED_CAMERA_DISTANCE))
    # The camera sits on +z and looks toward -z: it sees the front of a body facing +z.
    assert torch.allclose(cameras.positions[0], torch.tensor([0.0, 0.0, FIXED_CAMERA_DISTANCE]))
    assert torch.allclose(cameras.cam2world[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(cameras.intrinsics[0, 0, 0], torch.tensor(FIXED_CAMERA_FOCAL))


def test_rays_are_unit_and_project_back_to_their_pixel_centres():
    cameras = perspective_camera(torch.tensor([[0.4, 0.7, 2.5], [-1.0, 0.2, -2.0]]), look_at=(0.1, 0.0, 0.0), focal=1.3)
    height, width = 5, 7
    origins, directions = cameras.generate_rays(height, width)
    assert origins.shape == directions.shape == (2, height * width, 3)
    assert torch.allclose(directions.norm(dim=-1), torch.ones(2, height * width), atol=1e-6)
    pixels, depth = cameras.project(origins + 1.7 * directions)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    expected = torch.stack([(cols.reshape(-1) + 0.5) / width, (rows.reshape(-1) + 0.5) / height], dim=-1)
    assert torch.allclose(pixels, expected.expand(2, -1, -1), atol=1e-5)
    assert bool((depth > 0).all())


def test_fixed_camera_centre_ray_and_look_at_target():
    origins, directions = fixed_camera().generate_rays(3, 3)
    assert torch.allclose(directions[0, 4], torch.tensor([0.0, 0.0, -1.0]), atol=1e-7)
    assert directions[0, 5, 0] > 0  # column to the right: +x
    assert directions[0, 1, 1] > 0  # row above: +y
    cameras = perspective_camera((2.0, 1.0, 3.0), look_at=(0.2, 0.3, -0.1))
    pixels, _ = cameras.project(torch.tensor([[[0.2, 0.3, -0.1]]]))
    assert torch.allclose(pixels, torch.tensor([[[0.5, 0.5]]]), atol=1e-6)


def test_orbit_camera_front_view_is_the_fixed_camera():
    front = orbit_camera(0.0)
    fixed = fixed_camera()
    assert torch.allclose(front.cam2world, fixed.cam2world, atol=1e-6)
    assert torch.allclose(front.intrinsics, fixed.intrinsics)
    side = orbit_camera(torch.tensor([math.pi / 2, 0.0]), elevation=torch.tensor([0.0, 0.3]), distance=4.0)
    assert torch.allclose(side.positions[0], torch.tensor([4.0, 0.0, 0.0]), atol=1e-5)
    assert side.positions[1, 1] > 0
    pixels, _ = side.project(torch.zeros(2, 1, 3))
    assert torch.allclose(pixels, torch.full((2, 1, 2), 0.5), atol=1e-6)


def test_skewed_intrinsics_roundtrip():
    cameras = fixed_camera()
    intrinsics = cameras.intrinsics.clone()
    intrinsics[:, 0, 1] = 0.3
    intrinsics[:, 1, 1] = 4.0
    skewed = Cameras(cameras.cam2world, intrinsics)
    origins, directions = skewed.generate_rays(4, 6)
    pixels, _ = skewed.project(origins + 10.0 * directions)
    assert torch.allclose(pixels[0, 0], torch.tensor([0.5 / 6, 0.5 / 4]), atol=1e-5)


def test_to_and_dtype():
    cameras = fixed_camera(dtype=torch.float64)
    assert cameras.cam2world.dtype == torch.float64
    assert cameras.to(dtype=torch.float32).intrinsics.dtype == torch.float32


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: fixed_camera().generate_rays(0, 4), "height"),
        (lambda: fixed_camera().generate_rays(4, 2.5), "width"),
        (lambda: fixed_camera(batch_size=0), "batch_size"),
        (lambda: Cameras(torch.eye(4), torch.eye(3).unsqueeze(0)), "cam2world"),
        (lambda: Cameras(torch.eye(4).unsqueeze(0), torch.eye(3)), "intrinsics"),
        (lambda: Cameras(torch.eye(4).unsqueeze(0), torch.zeros(1, 3, 3)), "intrinsics"),
        (lambda: normalized_intrinsics(-1.0), "focal"),
        (lambda: perspective_camera((0.0, 2.0, 0.0)), "up"),
        (lambda: perspective_camera((0.0, 0.0, 0.0)), "cam_position"),
        (lambda: perspective_camera(torch.zeros(2, 4)), "cam_position"),
        (lambda: orbit_camera(0.0, elevation=math.pi / 2), "elevation"),
        (lambda: orbit_camera(0.0, distance=0.0), "distance"),
        (lambda: fixed_camera().project(torch.zeros(2, 5, 3)), "points"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
