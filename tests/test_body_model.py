"""The body model: the open procedural body in SMPL format, posing through smplx, input checks."""

from __future__ import annotations

import os
import pickle
from unittest import mock

import numpy as np
import pytest
import smplx
import torch
import trimesh

from semantichuman_hd.body import procedural
from semantichuman_hd.body.body_model import (
    CANONICAL_BODY_POSE,
    OPEN_BODY_FILE_NAME,
    BodyModel,
    _pose_limits,
    canonical_body_pose,
    random_plausible_pose,
    write_open_body_model,
)
from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES, SMPL_NUM_VERTICES
from semantichuman_hd.body.smpl_loading import SMPL_PATH_ENV_VAR, load_smpl_file
from semantichuman_hd.paths import CACHE_ENV_VAR

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    with mock.patch.dict(os.environ, {CACHE_ENV_VAR: str(path)}):
        yield path


@pytest.fixture(scope="module")
def body(cache_dir) -> BodyModel:
    with mock.patch.dict(os.environ, {CACHE_ENV_VAR: str(cache_dir)}):
        return BodyModel.open()


@pytest.fixture(scope="module")
def rest_mesh(body) -> trimesh.Trimesh:
    return trimesh.Trimesh(body.smpl.v_template.double().numpy(), body.faces.numpy(), process=False)


def test_open_body_loads_through_smplx(body, cache_dir):
    assert isinstance(body.smpl, smplx.SMPL)
    assert body.source == "open"
    assert (cache_dir / "body" / OPEN_BODY_FILE_NAME).is_file()
    assert body.faces.dtype == torch.long and body.faces.shape[1] == 3
    assert body.parents.tolist()[:3] == [-1, 0, 0] and body.parents.shape == (24,)
    assert body.lbs_weights.shape == (body.num_vertices, 24)
    assert 5000 <= body.num_vertices <= 15000
    # smplx's own forward works with our landmark keypoints (24 joints + 21 landmarks).
    out = body.smpl(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
    assert out.joints.shape == (1, 45, 3)


def test_cached_file_is_reused_and_rebuilt_when_corrupt(body, cache_dir):
    with mock.patch.dict(os.environ, {CACHE_ENV_VAR: str(cache_dir)}):
        assert BodyModel.open().fingerprint == body.fingerprint
        path = cache_dir / "body" / OPEN_BODY_FILE_NAME
        path.write_bytes(b"garbage")
        assert BodyModel.open().fingerprint == body.fingerprint
        assert load_smpl_file(path)["v_template"].shape == (body.num_vertices, 3)


def test_mesh_is_closed_manifold_and_outward(rest_mesh):
    assert rest_mesh.is_watertight
    assert rest_mesh.is_winding_consistent
    assert rest_mesh.volume > 0.04  # m³, a slim adult is about 0.06
    assert rest_mesh.area_faces.min() > 1e-8
    assert len(rest_mesh.split(only_watertight=False)) == 1


def test_proportions_in_rest_pose(body):
    vertices = body.smpl.v_template.numpy()
    joints = body(betas=None).rest_joints[0].numpy()
    height = vertices[:, 1].max() - vertices[:, 1].min()
    assert 1.5 < height < 1.9
    assert -1.3 < vertices[:, 1].min() < -1.0 and 0.4 < vertices[:, 1].max() < 0.7  # like SMPL's template
    assert np.linalg.norm(joints[J["pelvis"]]) < 0.3
    y = {name: joints[J[name], 1] for name in ("head", "left_shoulder", "right_shoulder", "left_hip", "left_ankle", "left_foot")}
    assert y["head"] > y["left_shoulder"] > y["left_hip"] > y["left_ankle"]
    assert vertices[:, 1].max() > y["head"] and abs(y["left_shoulder"] - y["right_shoulder"]) < 1e-6
    # T-pose: the hands are the x extremes, the person's left at +x; feet point +z.
    assert joints[J["left_hand"], 0] > 0.6 and joints[J["right_hand"], 0] < -0.6
    assert vertices[:, 0].argmax() in np.flatnonzero(body.lbs_weights[:, J["left_hand"]].numpy() > 0.5)
    assert vertices[:, 0].argmin() in np.flatnonzero(body.lbs_weights[:, J["right_hand"]].numpy() > 0.5)
    assert joints[J["left_foot"], 2] > joints[J["left_ankle"], 2]


def test_regressed_joints_match_designed_joints(body):
    regressed = body(betas=torch.zeros(1, 10)).rest_joints[0].double().numpy()
    assert np.abs(regressed - procedural.REST_JOINTS).max() < 0.01
    regressor = body.smpl.J_regressor
    assert torch.all(regressor >= 0) and torch.allclose(regressor.sum(1), torch.ones(24), atol=1e-5)
    weights = body.lbs_weights
    assert torch.all(weights >= 0) and torch.allclose(weights.sum(1), torch.ones(body.num_vertices), atol=1e-5)


def test_landmarks_sit_where_named(body):
    vertices = body.smpl.v_template.numpy()
    ids = body.smpl.vertex_joint_selector.extra_joints_idxs.numpy()
    nose, reye, leye, rear, lear = vertices[ids[:5]]
    assert nose[2] > leye[2] > lear[2] and leye[0] > 0 > reye[0] and lear[0] > 0 > rear[0]
    left_big_toe, _, left_heel, right_big_toe = vertices[ids[5:9]]
    assert left_big_toe[2] > left_heel[2] and left_big_toe[0] > 0 > right_big_toe[0]
    left_tips, right_tips = vertices[ids[11:16]], vertices[ids[16:21]]
    assert np.all(left_tips[:, 0] > 0.7) and np.all(right_tips[:, 0] < -0.7)


def test_forward_matches_smplx_and_bone_transforms(body):
    generator = torch.Generator().manual_seed(0)
    betas = torch.randn(3, 10, generator=generator)
    body_pose = random_plausible_pose(3, generator)
    global_orient = 0.5 * torch.randn(3, 3, generator=generator)
    transl = torch.randn(3, 3, generator=generator)
    ours = body(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)
    reference = body.smpl(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)
    assert ours.vertices.shape == (3, body.num_vertices, 3) and ours.bone_transforms.shape == (3, 24, 4, 4)
    torch.testing.assert_close(ours.vertices, reference.vertices, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.joints, reference.joints[:, :24], atol=1e-5, rtol=1e-5)
    # The transforms take rest-pose points (shaped, plus pose correctives) to posed space.
    smpl = body.smpl
    v_shaped = smpl.v_template + torch.einsum("bl,vcl->bvc", betas, smpl.shapedirs)
    rotations = smplx.lbs.batch_rodrigues(torch.cat([global_orient, body_pose], 1).reshape(-1, 3)).reshape(3, 24, 3, 3)
    offsets = ((rotations[:, 1:] - torch.eye(3)).reshape(3, -1) @ smpl.posedirs).reshape(3, -1, 3)
    rest = torch.cat([v_shaped + offsets, torch.ones(3, body.num_vertices, 1)], -1)
    skinned = torch.einsum("vj,bjrc,bvc->bvr", smpl.lbs_weights, ours.bone_transforms, rest)[..., :3]
    torch.testing.assert_close(skinned, ours.vertices, atol=1e-5, rtol=1e-5)
    # Each joint's transform maps its rest joint to its posed joint.
    rest_joints = torch.cat([ours.rest_joints, torch.ones(3, 24, 1)], -1)
    torch.testing.assert_close(torch.einsum("bjrc,bjc->bjr", ours.bone_transforms, rest_joints)[..., :3], ours.joints, atol=1e-5, rtol=1e-5)


def test_defaults_infer_batch(body):
    out = body(transl=torch.zeros(4, 3))
    assert out.vertices.shape[0] == 4 and out.rest_joints.shape == (4, 24, 3)
    assert body().vertices.shape[0] == 1


def test_random_poses_do_not_tear(body, rest_mesh):
    generator = torch.Generator().manual_seed(1)
    poses = random_plausible_pose(20, generator)
    low, high = _pose_limits()
    assert torch.all(poses >= low - 1e-6) and torch.all(poses <= high + 1e-6)
    out = body(body_pose=poses)
    assert torch.isfinite(out.vertices).all()
    diagonal = np.linalg.norm(rest_mesh.bounds[1] - rest_mesh.bounds[0])
    root = out.joints[:, :1]
    assert (out.vertices - root).norm(dim=-1).max() < 1.2 * diagonal
    edges = torch.as_tensor(np.array(rest_mesh.edges_unique))
    rest_length = (body.smpl.v_template[edges[:, 0]] - body.smpl.v_template[edges[:, 1]]).norm(dim=-1)
    posed_length = (out.vertices[:, edges[:, 0]] - out.vertices[:, edges[:, 1]]).norm(dim=-1)
    assert (posed_length / rest_length).max() < 3.0
    # The pose correctives keep the body's volume (plain skinning loses a few percent).
    faces = body.faces.numpy()
    for vertices in out.vertices[:5].double().numpy():
        assert abs(trimesh.Trimesh(vertices, faces, process=False).volume / rest_mesh.volume - 1.0) < 0.03


def test_random_poses_are_reproducible():
    a = random_plausible_pose(5, torch.Generator().manual_seed(7))
    b = random_plausible_pose(5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (5, 69)
    with pytest.raises(ValueError, match="num"):
        random_plausible_pose(0)


def test_stature_component_changes_height_monotonically(body):
    betas = torch.zeros(7, 10)
    betas[:, 0] = torch.linspace(-3, 3, 7)
    vertices = body(betas=betas).vertices
    heights = vertices[..., 1].amax(1) - vertices[..., 1].amin(1)
    assert torch.all(heights[1:] > heights[:-1])
    assert 0.06 < float(heights[5] - heights[3]) < 0.14  # betas +2 → about +10 cm
    # Every component changes the body, and plausible shapes stay sane.
    for k in range(10):
        b = torch.zeros(2, 10)
        b[:, k] = torch.tensor([-3.0, 3.0])
        shaped = body(betas=b).vertices
        assert (shaped[0] - shaped[1]).norm(dim=-1).max() > 0.01
        extent = shaped[..., 1].amax(1) - shaped[..., 1].amin(1)
        assert torch.all((extent > 1.3) & (extent < 2.1))


def test_canonical_pose_spreads_the_legs(body):
    assert canonical_body_pose(2).shape == (2, 69) and torch.equal(canonical_body_pose(1)[0], CANONICAL_BODY_POSE)
    joints = body.canonical_joints()
    rest = body().joints[0]
    assert joints[J["left_ankle"], 0] > rest[J["left_ankle"], 0] + 0.1
    assert joints[J["right_ankle"], 0] < rest[J["right_ankle"], 0] - 0.1
    assert torch.allclose(joints[J["left_wrist"]], rest[J["left_wrist"]], atol=1e-6)
    assert body.canonical_vertices().shape == (body.num_vertices, 3)


@pytest.mark.parametrize(
    "kwargs,name,shape",
    [
        ({"betas": torch.zeros(1, 9)}, "betas", "(1, 9)"),
        ({"body_pose": torch.zeros(2, 72)}, "body_pose", "(2, 72)"),
        ({"global_orient": torch.zeros(3)}, "global_orient", "(3,)"),
        ({"transl": torch.zeros(1, 2)}, "transl", "(1, 2)"),
    ],
)
def test_bad_shapes_name_the_argument(body, kwargs, name, shape):
    with pytest.raises(ValueError, match=name) as info:
        body(**kwargs)
    assert shape in str(info.value)


def test_bad_values_and_batches_name_the_argument(body):
    with pytest.raises(ValueError, match="transl"):
        body(betas=torch.zeros(2, 10), transl=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="body_pose"):
        body(body_pose=torch.full((1, 69), float("nan")))
    with pytest.raises(ValueError, match="betas"):
        body(betas=torch.full((1, 10), float("inf")))


def test_build_is_deterministic(body):
    first, second = procedural.build_open_body_model(), procedural.build_open_body_model()
    for key, value in first.items():
        if isinstance(value, dict):
            assert value == second[key]
        else:
            assert np.array_equal(value, second[key]), key
    assert BodyModel(first, source="open").fingerprint == body.fingerprint


def test_write_open_body_model_is_smplx_readable(tmp_path):
    path = write_open_body_model(tmp_path / "open_body.pkl")
    model = smplx.SMPL(str(path))  # smplx's own reader, plain numpy arrays only
    assert model.v_template.shape[1] == 3


def test_from_source_prefers_env_var_and_validates(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache_dir))
    monkeypatch.setenv(SMPL_PATH_ENV_VAR, str(tmp_path / "missing.pkl"))
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        BodyModel.from_source()
    small = procedural.build_open_body_model()
    keep = np.arange(100)
    small = {
        "v_template": small["v_template"][keep],
        "shapedirs": small["shapedirs"][keep],
        "posedirs": small["posedirs"][keep],
        "J_regressor": np.full((24, 100), 0.01),
        "weights": small["weights"][keep],
        "kintree_table": small["kintree_table"],
        "f": np.array([[0, 1, 2]]),
    }
    path = tmp_path / "small.pkl"
    path.write_bytes(pickle.dumps(small))
    monkeypatch.setenv(SMPL_PATH_ENV_VAR, str(path))
    with pytest.raises(ValueError, match=str(SMPL_NUM_VERTICES)):
        BodyModel.from_source()
    with pytest.raises(ValueError, match=str(SMPL_NUM_VERTICES)):
        BodyModel.from_source(smpl_path=path)
    monkeypatch.delenv(SMPL_PATH_ENV_VAR)
    assert BodyModel.from_source().source == "open"
