"""Tests of the vectorised z-buffer rasterizer."""

import numpy as np
import pytest
import torch

from semantichuman_hd.rendering.cameras import fixed_camera
from semantichuman_hd.rendering.rasterizer import interpolate, rasterize


def _triangles(points, depths):
    """Screen-space triangles given in normalised (u, v) with per-vertex depth, as a (1, N, ·) batch."""
    pixels = torch.tensor(points, dtype=torch.float32).reshape(1, -1, 2)
    depth = torch.tensor(depths, dtype=torch.float32).reshape(1, -1)
    faces = torch.arange(pixels.shape[1]).reshape(-1, 3)
    return pixels, depth, faces


def _brute_force(pixels, depth, faces, height, width):
    """Reference: loop over pixels and triangles, keep the nearest (ties: lower face index)."""
    screen = pixels[0].double().numpy() * np.array([width, height]) - 0.5
    z = depth[0].double().numpy()
    face_map = -np.ones((height, width), dtype=np.int64)
    depth_map = np.full((height, width), np.inf)
    for f, (i, j, k) in enumerate(faces.numpy()):
        a, b, c = screen[i], screen[j], screen[k]
        area = (b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]
        if abs(area) < 1e-12:
            continue
        for row in range(height):
            for col in range(width):
                p = np.array([col, row], dtype=np.float64)
                w1 = ((p - a)[0] * (c - a)[1] - (p - a)[1] * (c - a)[0]) / area
                w2 = ((b - a)[0] * (p - a)[1] - (b - a)[1] * (p - a)[0]) / area
                w = np.array([1 - w1 - w2, w1, w2])
                if (w < -1e-6).any():
                    continue
                d = 1.0 / (w / z[[i, j, k]]).sum()
                if d < depth_map[row, col] - 1e-9:
                    depth_map[row, col], face_map[row, col] = d, f
    return face_map, depth_map


def test_nearer_triangle_wins_whatever_the_order():
    square = [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]
    for near_first in (True, False):
        depths = [2.0] * 3 + [3.0] * 3 if near_first else [3.0] * 3 + [2.0] * 3
        pixels, depth, faces = _triangles(square + square, depths)
        raster = rasterize(pixels, depth, faces, 16, 16)
        covered = raster.mask[0]
        assert covered.sum() > 50
        expected = 0 if near_first else 1
        assert (raster.face_index[0][covered] == expected).all()
        assert torch.allclose(raster.depth[0][covered], torch.tensor(2.0))
        assert torch.isinf(raster.depth[0][~covered]).all()


def test_crossing_triangles_match_brute_force():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(12, 3, 2, generator=generator) * 1.2 - 0.1  # some reach outside the image
    depths = 1.0 + torch.rand(12, 3, generator=generator) * 2.0
    pixels, depth = points.reshape(1, -1, 2), depths.reshape(1, -1)
    faces = torch.arange(36).reshape(-1, 3)
    raster = rasterize(pixels, depth, faces, 20, 24)
    face_map, depth_map = _brute_force(pixels, depth, faces, 20, 24)
    agree = raster.face_index[0].numpy() == face_map
    assert agree.mean() > 0.99  # only exact edge ties may differ
    covered = face_map >= 0
    assert np.allclose(raster.depth[0].numpy()[covered & agree], depth_map[covered & agree], atol=1e-4)


def test_barycentrics_sum_to_one_and_interpolate_positions():
    pixels, depth, faces = _triangles([(0.05, 0.1), (0.95, 0.2), (0.3, 0.95)], [2.0, 4.0, 3.0])
    raster = rasterize(pixels, depth, faces, 32, 32)
    mask = raster.mask[0]
    bary = raster.barycentrics[0][mask]
    assert torch.allclose(bary.sum(-1), torch.ones(len(bary)), atol=1e-5)
    assert (bary >= -1e-6).all()
    # Inside the triangle the pixel-centre depths lie between the corner depths.
    assert (raster.depth[0][mask] >= 2.0 - 1e-5).all() and (raster.depth[0][mask] <= 4.0 + 1e-5).all()


def test_interpolated_world_points_project_to_pixel_centres():
    camera = fixed_camera(1)
    vertices = torch.tensor([[[-0.6, -0.5, 0.2], [0.7, -0.4, -0.3], [0.0, 0.8, 0.1]]])
    pixels, depth = camera.project(vertices)
    faces = torch.tensor([[0, 1, 2]])
    raster = rasterize(pixels, depth, faces, 40, 40)
    points = interpolate(vertices, faces, raster)
    mask = raster.mask[0]
    projected, _ = camera.project(points[0][mask].unsqueeze(0))
    rows, cols = mask.nonzero(as_tuple=True)
    centres = torch.stack([(cols + 0.5) / 40, (rows + 0.5) / 40], -1).float()
    assert torch.allclose(projected[0], centres, atol=1e-4)


def test_cube_silhouette_is_its_front_square():
    corners = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=torch.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = torch.tensor([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))])
    camera = fixed_camera(1)
    pixels, depth = camera.project(corners.unsqueeze(0))
    size = 64
    raster = rasterize(pixels, depth, faces, size, size)
    # The silhouette is the projection of the front face (z = +0.5, nearest the camera at +z).
    front = pixels[0][corners[:, 2] > 0]
    low, high = front.min(0).values * size - 0.5, front.max(0).values * size - 0.5
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    expected = (cols >= low[0]) & (cols <= high[0]) & (rows >= low[1]) & (rows <= high[1])
    assert torch.equal(raster.mask[0], expected)
    # Visible faces are the front ones (vertices with z = +0.5), at depth distance − 0.5.
    front_faces = (corners[faces][..., 2] > 0).all(-1)
    assert front_faces[raster.face_index[0][expected]].all()
    assert torch.allclose(raster.depth[0][expected], torch.tensor(10.5), atol=1e-4)


def test_large_and_batched_triangles():
    pixels, depth, faces = _triangles([(-1.0, -1.0), (3.0, -1.0), (-1.0, 3.0)], [1.0, 1.0, 1.0])
    batch_pixels = torch.cat([pixels, pixels * 0.5])
    batch_depth = torch.cat([depth, depth])
    raster = rasterize(batch_pixels, batch_depth, faces, 50, 70)
    assert raster.face_index.shape == (2, 50, 70)
    assert raster.mask[0].all()  # covers the whole image
    assert 0 < raster.mask[1].sum() < 50 * 70


def test_triangles_behind_the_camera_are_dropped():
    pixels, depth, faces = _triangles([(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)], [-1.0, 2.0, 2.0])
    assert not rasterize(pixels, depth, faces, 8, 8).mask.any()


@pytest.mark.parametrize(
    "kwargs, name",
    [({"height": 0}, "height"), ({"width": -3}, "width"), ({"faces": torch.tensor([[0, 1, 5]])}, "faces"), ({"depth": torch.ones(1, 2)}, "depth")],
)
def test_bad_arguments(kwargs, name):
    pixels, depth, faces = _triangles([(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)], [1.0, 1.0, 1.0])
    arguments = {"pixels": pixels, "depth": depth, "faces": faces, "height": 8, "width": 8}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}`"):
        rasterize(**arguments)
