"""Mesh export (analytic fields and the pipeline), turntables, animation, video files and the
``export-mesh`` / ``turntable`` / ``animate`` commands."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy.spatial import cKDTree

from semantichuman_hd import export as export_module
from semantichuman_hd.body.poses import NAMED_POSES
from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES
from semantichuman_hd.body.sdf_prior import PRIOR_SHELL_WIDTH
from semantichuman_hd.cli import main
from semantichuman_hd.cli._common import load_latents
from semantichuman_hd.export import (
    MESH_SUFFIXES,
    WHOLE_PERSON,
    extract_meshes,
    grid_layout,
    marching_cubes,
    save_video,
)
from semantichuman_hd.parts import NUM_PARTS, PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline

GRID = 40
"""Grid resolution of the pipeline exports (enough for a closed body at the tiny preset)."""

RENDER_SIZE = 16
"""Side of the pipeline tests' renders (smaller than the tiny preset's, for speed)."""

LOWER_LEFT_ARM = SMPL_JOINT_NAMES.index("left_shoulder") * 3 + 2
"""Index, in a full pose (root first), of the left shoulder's rotation about z (negative lowers the arm)."""

# ----------------------------------------------------------------------------------------------------
# Analytic fields: a ball-shaped "body" prior and parts offset from it
# ----------------------------------------------------------------------------------------------------

BODY_RADIUS = 0.5
BALL_BOX = torch.tensor([[-BODY_RADIUS] * 3, [BODY_RADIUS] * 3])  # the "canonical vertices" bounding the body


def ball_prior(points: torch.Tensor) -> torch.Tensor:
    return BODY_RADIUS - points.norm(dim=-1)


def logits_at(points: torch.Tensor) -> torch.Tensor:
    """``(..., K, 3)`` colour logits that vary in space and by part."""
    k = torch.arange(NUM_PARTS, dtype=points.dtype)
    red = 3 * points[..., :1] + 0.1 * k  # (..., K)
    return torch.stack([red, -red, torch.zeros_like(red) + 0.5 * k - 1], dim=-1)


def offset_field(offsets):
    """Δsdf_k = offsets[k] everywhere: part k is the ball of radius BODY_RADIUS + offsets[k] (cut at the shell)."""
    offsets = torch.tensor(offsets, dtype=torch.float32)

    def field(points, part_mask):
        delta = offsets.expand(*points.shape[:-1], NUM_PARTS).clone()
        if part_mask is not None:
            delta = torch.where(part_mask, delta, torch.full_like(delta, float("-inf")))
        return delta, logits_at(points)

    return field


def test_part_meshes_lie_on_the_level_set_closed_coloured_and_cut_at_the_shell():
    # body: the ball itself; tops: 0.2 inside; outerwear: would reach 0.8 but is cut at the shell (0.6);
    # bottoms: nowhere (skipped).
    field = offset_field([0.0, -0.2, 0.3, -1.0, 0.0, 0.0])
    result = extract_meshes(field, ball_prior, BALL_BOX, parts=[0, 1, 2, 3], grid_resolution=48)
    assert result.empty_parts == ["bottoms"]
    assert set(result.meshes) == {"body", "tops", "outerwear"}
    for name, radius in (("body", 0.5), ("tops", 0.3), ("outerwear", BODY_RADIUS + PRIOR_SHELL_WIDTH)):
        mesh = result.meshes[name]
        distance = np.linalg.norm(mesh.vertices, axis=1)
        np.testing.assert_allclose(distance, radius, atol=2e-3)  # vertices on the zero level set
        assert mesh.is_watertight and mesh.is_winding_consistent
        assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.03)  # positive: outward faces
        k = PARTS.index(name)
        expected = torch.sigmoid(logits_at(torch.from_numpy(mesh.vertices).float())[:, k]).numpy() * 255
        np.testing.assert_allclose(mesh.visual.vertex_colors[:, :3], expected, atol=1.0)
        assert (mesh.visual.vertex_colors[:, 3] == 255).all()


def test_whole_person_is_the_union_coloured_by_the_part_on_the_surface():
    centres = torch.tensor([[-0.15, 0.0, 0.0], [0.15, 0.0, 0.0]])
    radius = 0.2

    def two_balls(points, part_mask):
        # sdf_0 / sdf_1 are balls left and right of the centre; the other parts are nowhere.
        delta = torch.full((*points.shape[:-1], NUM_PARTS), -1.0)
        for k in range(2):
            delta[..., k] = radius - (points - centres[k]).norm(dim=-1) - ball_prior(points)
        if part_mask is not None:
            delta = torch.where(part_mask, delta, torch.full_like(delta, float("-inf")))
        return delta, logits_at(points)

    result = extract_meshes(two_balls, ball_prior, BALL_BOX, parts=None, grid_resolution=64)
    assert list(result.meshes) == [WHOLE_PERSON] and result.empty_parts == []
    mesh = result.meshes[WHOLE_PERSON]
    vertices = torch.from_numpy(mesh.vertices).float()
    to_centres = torch.cdist(vertices, centres)
    assert torch.allclose(to_centres.min(1).values, torch.tensor(radius), atol=2e-3)  # on the union's surface
    assert mesh.is_watertight
    owner = to_centres.argmin(1)
    expected = torch.sigmoid(logits_at(vertices)[torch.arange(len(vertices)), owner]).numpy() * 255
    np.testing.assert_allclose(mesh.visual.vertex_colors[:, :3], expected, atol=1.0)


def test_grid_layout_and_marching_cubes_edge_cases():
    counts, spacing = grid_layout(np.zeros(3), np.array([2.0, 1.0, 0.5]), 21)
    assert spacing == pytest.approx(0.1) and counts == (21, 11, 6)
    for bad in (2, 4096, 32.0, True):
        with pytest.raises(ValueError, match="grid_resolution"):
            grid_layout(np.zeros(3), np.ones(3), bad)
    assert marching_cubes(-np.ones((4, 4, 4)), np.zeros(3), 0.1) is None
    # A field positive up to the grid's edge still gives a closed surface (the padding closes it).
    vertices, faces = marching_cubes(np.ones((4, 4, 4)), np.zeros(3), 0.1)
    assert trimesh.Trimesh(vertices, faces).is_watertight
    with pytest.raises(ValueError, match="NaN"):
        marching_cubes(np.full((4, 4, 4), np.nan), np.zeros(3), 0.1)


# ----------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe(open_body):
    pipe = SemanticHumanPipeline.from_preset("tiny", low_resolution=RENDER_SIZE, num_stratified=8, num_importance=8)
    pipe.set_body_model(open_body)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def latents(pipe):
    return pipe.sample_latents(1, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("suffix", MESH_SUFFIXES)
def test_pipeline_exports_whole_and_per_part_meshes_with_colours(pipe, latents, tmp_path, suffix):
    single = "tops" if suffix == ".ply" else None
    part = single or (["body", "shoes"] if suffix == ".obj" else None)
    result = pipe.export_mesh(latents, tmp_path / f"person{suffix}", part=part, grid_resolution=GRID)
    expected = {".glb": [WHOLE_PERSON], ".obj": ["body", "shoes"], ".ply": ["tops"]}[suffix]
    assert list(result.paths) == expected and result.empty_parts == []
    assert torch.equal(result.latents, latents.cpu())
    if len(expected) > 1:
        assert [path.name for path in result.paths.values()] == [f"person_{name}{suffix}" for name in expected]
    for name, path in result.paths.items():
        loaded = trimesh.load(path, force="mesh", process=False)
        assert len(loaded.faces) > 100 and loaded.visual.kind == "vertex"
        colours = np.asarray(loaded.visual.vertex_colors)[:, :3].astype(float)
        assert colours.std(0).max() > 0.5  # the colour field varies over the surface
        np.testing.assert_allclose(loaded.vertices, result.meshes[name].vertices, atol=1e-5)
        assert result.meshes[name].is_watertight
        lo, hi = loaded.bounds  # a canonical (Da-pose) person: arms spread wider than tall
        assert hi[0] - lo[0] > 1.2 and hi[1] - lo[1] > 1.2 and hi[2] - lo[2] < 0.6


def test_posed_export_moves_the_vertices_as_the_body_skinning_says(pipe, latents, tmp_path):
    pose = NAMED_POSES["walking"]
    canonical = pipe.export_mesh(latents, part="body", grid_resolution=GRID).meshes["body"]
    posed = pipe.export_mesh(latents, tmp_path / "walking.ply", part="body", grid_resolution=GRID, body_pose=pose).meshes["body"]
    assert np.array_equal(canonical.faces, posed.faces)
    moved = np.linalg.norm(posed.vertices - canonical.vertices, axis=1)
    assert moved.max() > 0.2  # the legs and arms swing
    # Each vertex keeps its offset from its nearest body-model vertex, carried by that vertex's bones:
    # compare against the body model's own forward pass (independent of the deformer's skinning grid).
    body = pipe.body_model
    rest = body.canonical_vertices().numpy()
    walked = body(body_pose=pose.unsqueeze(0)).vertices[0].numpy()
    _, nearest = cKDTree(rest).query(canonical.vertices)
    error = np.linalg.norm((posed.vertices - walked[nearest]) - (canonical.vertices - rest[nearest]), axis=1)
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.04
    with pytest.raises(ValueError, match="body_pose"):
        pipe.export_mesh(latents, part="body", grid_resolution=GRID, body_pose=torch.zeros(5))


def test_export_mesh_bad_inputs(pipe, latents, tmp_path):
    with pytest.raises(ValueError, match=r"`path` must end in one of \['.glb', '.obj', '.ply'\].*person.stl"):
        pipe.export_mesh(latents, tmp_path / "person.stl")
    with pytest.raises(ValueError, match="`part` must be one of"):
        pipe.export_mesh(latents, part="hat")
    with pytest.raises(ValueError, match="one person"):
        pipe.export_mesh(latents.expand(2, -1, -1))
    with pytest.raises(ValueError, match="grid_resolution"):
        pipe.export_mesh(latents, grid_resolution=3)
    with pytest.raises(ValueError, match="resolution"):
        pipe.export_mesh(latents, resolution="medium")
    assert not list(tmp_path.iterdir())


def test_high_resolution_field_exports_too(pipe, latents):
    result = pipe.export_mesh(latents, part="body", resolution="high", grid_resolution=24)
    assert len(result.meshes["body"].faces) > 100


def test_turntable_frames_turn_the_person(pipe, latents):
    frames = pipe.render_turntable(latents, num_frames=3, frames_per_batch=2)
    assert len(frames) == 3 and all(frame.size == (RENDER_SIZE, RENDER_SIZE) for frame in frames)
    arrays = [np.asarray(frame, dtype=float) for frame in frames]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(arrays[a] - arrays[b]).mean() > 1.0
    front = np.asarray(pipe(latents=latents, view_angle=0.0).images[0], dtype=float)
    assert np.abs(front - arrays[0]).max() <= 1.0  # frame 0 is the front view
    with pytest.raises(ValueError, match="num_frames"):
        pipe.render_turntable(latents, num_frames=0)


def test_animate_follows_the_motion(pipe, latents):
    poses = np.zeros((3, 72))
    poses[:, 0] = math.pi / 2  # standing in AMASS's z-up world
    poses[1, LOWER_LEFT_ARM] = -1.2  # frame 1 lowers the left arm
    poses[2] = poses[0]
    frames = pipe.animate({"poses": poses, "trans": np.zeros((3, 3))}, latents, frames_per_batch=2)
    assert len(frames) == 3
    arrays = [np.asarray(frame, dtype=float) for frame in frames]
    assert np.abs(arrays[0] - arrays[1]).mean() > 1.0
    assert np.abs(arrays[0] - arrays[2]).max() <= 1.0  # the same pose renders the same
    assert len(pipe.animate({"poses": poses, "trans": np.zeros((3, 3))}, latents, stride=2, max_frames=1)) == 1


# ----------------------------------------------------------------------------------------------------
# Video files
# ----------------------------------------------------------------------------------------------------


def _frames(count=3, size=(24, 16)):
    return [Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)) for i in range(count)]


def test_save_video_writes_a_looping_gif(tmp_path):
    path = save_video(_frames(), tmp_path / "clip.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (24, 16) and gif.info["loop"] == 0
        assert gif.info["duration"] == 100
    with pytest.raises(ValueError, match=r"`path` must end in one of \['.gif', '.mp4'\].*clip.avi"):
        save_video(_frames(), tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="fps"):
        save_video(_frames(), tmp_path / "clip.gif", fps=0)
    with pytest.raises(ValueError, match="at least one frame"):
        save_video([], tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="one size"):
        save_video(_frames(2) + _frames(1, size=(8, 8)), tmp_path / "mixed.gif")


def test_mp4_without_imageio_ffmpeg_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "mp4_available", lambda: False)
    with pytest.raises(ImportError, match=r"imageio-ffmpeg.*pip install imageio-ffmpeg.*\.gif"):
        save_video(_frames(), tmp_path / "clip.mp4")
    assert main(["turntable", "--preset", "tiny", "--out", str(tmp_path / "clip.mp4")]) == 2


def test_mp4_when_imageio_ffmpeg_is_installed(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio

    path = save_video(_frames(size=(32, 16)), tmp_path / "clip.mp4", fps=8)
    assert iio.imread(path, index=None, plugin="FFMPEG").shape[:3] == (3, 16, 32)


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def test_export_mesh_command_writes_every_part_and_the_latents(tmp_path, capsys):
    out = tmp_path / "mesh" / "person"
    code = main(["export-mesh", "--preset", "tiny", "--seed", "4", "--out", str(out), "--format", "obj", "--part", "all", "--grid-resolution", "24"])
    assert code == 0
    printed = capsys.readouterr()
    written = sorted(path.name for path in out.parent.glob("*.obj"))
    assert written and all(f"person_{name}.obj" in written or f"note: {name}" in printed.err for name in PARTS)
    assert all(name in printed.out for name in written)
    latents = load_latents(out.parent / "person_latents.safetensors")
    assert latents.shape == (1, NUM_PARTS, 32)
    assert {path.name for path in out.parent.glob("person_*_000.png")} == {f"person_{p}_000.png" for p in ("image", "semantic", "depth", "depth_vis", "normals")}
    mesh = trimesh.load(out.parent / written[0], force="mesh", process=False)
    assert len(mesh.faces) > 50 and mesh.visual.kind == "vertex"


def test_turntable_and_animate_commands(tmp_path):
    turntable = tmp_path / "turn.gif"
    assert main(["turntable", "--preset", "tiny", "--frames", "2", "--out", str(turntable)]) == 0
    with Image.open(turntable) as gif:
        assert gif.n_frames == 2 and gif.size == (32, 32)
    latents = tmp_path / "turn_latents.safetensors"
    assert load_latents(latents).shape == (1, NUM_PARTS, 32)
    for picture in ("image", "semantic", "depth", "normals"):
        with Image.open(tmp_path / f"turn_{picture}_000.png") as image:
            assert image.size == (32, 32), picture

    poses = np.zeros((3, 156))
    poses[:, 0] = math.pi / 2
    poses[2, LOWER_LEFT_ARM] = -1.2
    motion = tmp_path / "walk.npz"
    np.savez(motion, poses=poses, trans=np.zeros((3, 3)), mocap_framerate=np.array(30.0))
    animation = tmp_path / "walk.gif"
    assert main(["animate", "--preset", "tiny", "--latents", str(latents), "--poses", str(motion), "--stride", "2", "--out", str(animation)]) == 0
    with Image.open(animation) as gif:
        assert gif.n_frames == 2 and gif.info["duration"] == pytest.approx(1000 / 15, abs=10)  # 30 fps / stride 2
    assert torch.equal(load_latents(tmp_path / "walk_latents.safetensors"), load_latents(latents))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export-mesh", "--out", "{tmp}/x.stl"], r"`--out` must end in one of \['.glb', '.obj', '.ply'\]"),
        (["export-mesh", "--out", "{tmp}/x.ply", "--format", "glb"], r"`--format` is 'glb' but `--out`"),
        (["export-mesh", "--out", "{tmp}/x.ply", "--part", "tops,hat"], r"`--part` must be one of"),
        (["export-mesh", "--out", "{tmp}/x.ply", "--grid-resolution", "2"], r"`--grid-resolution` must be an integer"),
        (["export-mesh", "--out", "{tmp}/x.ply", "--pose", "dab"], r"`--pose` must be one of"),
        (["export-mesh", "--out", "{tmp}/x.ply", "--latents", "{tmp}/none.safetensors"], r"`--latents` file .* does not exist"),
        (["turntable", "--out", "{tmp}/x.avi"], r"`--out` must end in one of \['.gif', '.mp4'\]"),
        (["turntable", "--out", "{tmp}/x.gif", "--frames", "0"], r"`--frames` must be a positive integer"),
        (["animate", "--poses", "{tmp}/none.npz", "--out", "{tmp}/x.gif"], r"`--poses` file .* does not exist"),
        (["animate", "--poses", "{tmp}/bad.npz", "--out", "{tmp}/x.gif"], r"missing the key 'trans'"),
        (["animate", "--poses", "{tmp}/bad.npz", "--out", "{tmp}/x.gif", "--stride", "0"], r"`--stride` must be a positive integer"),
    ],
)
def test_commands_reject_bad_input_with_exit_code_2(tmp_path, capsys, argv, message):
    np.savez(tmp_path / "bad.npz", poses=np.zeros((3, 156)))
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main([*argv, "--preset", "tiny"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"semantichuman-hd {argv[0]}: error:")
    assert re.search(message, error)
