import numpy as np
import pytest
import torch
import trimesh

from semantichuman_hd.body.sdf_prior import BodySDFPrior
from semantichuman_hd.body.voxel_grid import VoxelGrid

RADIUS = 0.5
VOXEL = 0.02


@pytest.fixture(scope="module")
def sphere_prior(tmp_path_factory):
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=RADIUS)
    return BodySDFPrior.cached(mesh.vertices, mesh.faces, voxel_size=VOXEL, cache_dir=tmp_path_factory.mktemp("cache"))


def analytic(points):
    return RADIUS - points.norm(dim=-1)


def test_matches_sphere_distance_in_shell(sphere_prior):
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(5000, 3, generator=generator)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    radii = RADIUS + (torch.rand(5000, 1, generator=generator) - 0.5) * 0.3
    points = directions * radii
    error = (sphere_prior(points) - analytic(points)).abs()
    # tessellation (sagitta 1.4e-4) + trilinear interpolation on a 2 cm grid
    assert error.max() < 1e-3


def test_positive_inside_negative_outside_and_beyond_grid(sphere_prior):
    assert sphere_prior(torch.zeros(1, 3)).item() == pytest.approx(RADIUS, abs=0.03)
    far = torch.tensor([[3.0, 0.0, 0.0], [0.0, -5.0, 2.0]])
    values = sphere_prior(far)
    assert torch.all(values < 0)
    # continues to decrease away from the grid
    assert sphere_prior(torch.tensor([[4.0, 0.0, 0.0]])).item() < values[0].item()


def test_cache_is_reused(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=RADIUS)
    first = BodySDFPrior.cached(mesh.vertices, mesh.faces, voxel_size=0.05, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    second = BodySDFPrior.cached(mesh.vertices, mesh.faces, voxel_size=0.05, cache_dir=tmp_path)
    assert torch.equal(first.grid.values, second.grid.values)
    # a corrupted cache file is recomputed, not trusted
    files[0].write_bytes(b"not a safetensors file")
    third = BodySDFPrior.cached(mesh.vertices, mesh.faces, voxel_size=0.05, cache_dir=tmp_path)
    assert torch.equal(first.grid.values, third.grid.values)


def test_gradient_points_inward(sphere_prior):
    points = torch.tensor([[0.45, 0.0, 0.0], [0.0, 0.0, -0.52]], requires_grad=True)
    (grad,) = torch.autograd.grad(sphere_prior(points).sum(), points)
    expected = -points.detach() / points.detach().norm(dim=-1, keepdim=True)
    cosine = torch.nn.functional.cosine_similarity(grad, expected, dim=-1)
    assert torch.all(cosine > 0.999)


def test_bad_inputs():
    with pytest.raises(ValueError, match="vertices"):
        BodySDFPrior.from_mesh(np.zeros((4, 2)), np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="voxel_size"):
        mesh = trimesh.creation.icosphere(subdivisions=1)
        BodySDFPrior.from_mesh(mesh.vertices, mesh.faces, voxel_size=0)
    grid = VoxelGrid(torch.zeros(1, 2, 2, 2), [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="points"):
        grid(torch.zeros(4, 2))


def test_voxel_grid_corners_give_the_trilinear_sample_and_its_derivative():
    generator = torch.Generator().manual_seed(0)
    grid = VoxelGrid(torch.randn(5, 4, 6, 7, generator=generator), [-1.0, -2.0, -0.5], [1.0, 1.0, 0.5])
    # Points inside the box and beyond it on every side (border values repeat there).
    points = torch.rand(500, 3, generator=generator) * torch.tensor([2.6, 3.6, 1.4]) + torch.tensor([-1.3, -2.3, -0.7])
    index, weights, gradients = grid.corners(points)
    rows = grid.node_table()[index]  # (M, 8, C)
    assert torch.allclose((weights.unsqueeze(1) @ rows).squeeze(1), grid(points), atol=1e-5)
    slopes = gradients.transpose(1, 2) @ rows  # (M, 3, C)
    inside = grid.inside(points)
    eps = 1e-3
    for axis in range(3):
        shift = torch.zeros(3)
        shift[axis] = eps
        finite = (grid(points + shift) - grid(points - shift)) / (2 * eps)
        # Away from cell faces the central difference is the exact trilinear derivative.
        cell = (points - grid.box_min) / (grid.box_max - grid.box_min) * (torch.tensor([7, 6, 4]) - 1)
        smooth = inside & ((cell[:, axis] - cell[:, axis].round()).abs() > 0.01)
        assert torch.allclose(slopes[smooth, axis], finite[smooth], atol=5e-3)
    outside_x = points[:, 0] > 1.0
    assert torch.all(slopes[outside_x, 0] == 0)  # clamped: constant along x beyond the box
