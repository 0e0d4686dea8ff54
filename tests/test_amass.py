"""AMASS-style motion loading: pose layouts, the z-up → y-up turn, sub-sampling and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semantichuman_hd.body.amass import (
    SMPLH_POSE_DIM,
    SMPLX_POSE_DIM,
    Motion,
    as_motion,
    load_amass,
    motion_from_arrays,
    motion_from_poses,
)
from semantichuman_hd.body.rotations import axis_angle_to_matrix
from semantichuman_hd.body.smpl_format import BODY_POSE_DIM, SMPL_JOINT_NAMES

FRAMES = 5
STANDING_Z_UP = (math.pi / 2, 0.0, 0.0)
"""AMASS root orientation of a person standing upright in its z-up world (facing −y); in SMPL's y-up frame
the same person needs no root rotation (facing +z)."""


def _amass_arrays(width: int = SMPLH_POSE_DIM, frames: int = FRAMES, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = rng.uniform(-0.3, 0.3, size=(frames, width))
    poses[:, :3] = STANDING_Z_UP
    trans = np.stack([np.zeros(frames), np.linspace(0, 1, frames), np.full(frames, 0.9)], axis=1)  # z-up: 0.9 m high
    return {"poses": poses, "trans": trans, "betas": rng.normal(size=16), "mocap_framerate": np.array(120.0), "gender": np.array("neutral")}


def _write(tmp_path, arrays, name="motion.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_smplh_file_keeps_the_body_joints_zeroes_the_hands_and_stands_upright(tmp_path):
    arrays = _amass_arrays(SMPLH_POSE_DIM)
    motion = load_amass(_write(tmp_path, arrays))
    assert isinstance(motion, Motion) and len(motion) == FRAMES
    assert motion.body_pose.shape == (FRAMES, BODY_POSE_DIM) and motion.global_orient.shape == (FRAMES, 3)
    np.testing.assert_allclose(motion.body_pose[:, :63].numpy(), arrays["poses"][:, 3:66], atol=1e-6)
    hands = [SMPL_JOINT_NAMES.index(name) - 1 for name in ("left_hand", "right_hand")]
    for joint in hands:
        assert torch.all(motion.body_pose[:, joint * 3 : joint * 3 + 3] == 0)
    # A person standing in AMASS's z-up world stands in SMPL's y-up frame with no root rotation.
    assert torch.allclose(motion.global_orient, torch.zeros(FRAMES, 3), atol=1e-5)
    # Translation turned alike: z-up height becomes y; AMASS's +y (forward) becomes SMPL's −z.
    np.testing.assert_allclose(motion.transl[:, 1].numpy(), 0.9, atol=1e-6)
    np.testing.assert_allclose(motion.transl[:, 2].numpy(), -arrays["trans"][:, 1], atol=1e-6)
    assert motion.framerate == 120.0
    np.testing.assert_allclose(motion.betas.numpy(), arrays["betas"][:10], atol=1e-6)


def test_root_orientation_is_the_z_up_root_turned_minus_90_degrees_about_x(tmp_path):
    arrays = _amass_arrays(SMPLH_POSE_DIM)
    arrays["poses"][:, :3] = np.random.default_rng(1).uniform(-1, 1, size=(FRAMES, 3))
    motion = load_amass(_write(tmp_path, arrays))
    fix = axis_angle_to_matrix(torch.tensor([-math.pi / 2, 0.0, 0.0]))
    expected = fix @ axis_angle_to_matrix(torch.from_numpy(arrays["poses"][:, :3]).float())
    assert torch.allclose(axis_angle_to_matrix(motion.global_orient), expected, atol=1e-5)
    kept = motion_from_arrays(arrays, z_up=False)
    assert torch.allclose(kept.global_orient, torch.from_numpy(arrays["poses"][:, :3]).float())


def test_smpl_72_layout_keeps_the_hand_joints(tmp_path):
    arrays = _amass_arrays(72)
    motion = load_amass(_write(tmp_path, arrays))
    np.testing.assert_allclose(motion.body_pose.numpy(), arrays["poses"][:, 3:], atol=1e-6)


@pytest.mark.parametrize("width", [66, SMPLX_POSE_DIM])
def test_root_and_body_only_and_smplx_layouts(width):
    arrays = _amass_arrays(width)
    arrays.pop("mocap_framerate")
    arrays["mocap_frame_rate"] = np.array(60.0)  # the SMPL-X release's spelling
    motion = motion_from_arrays(arrays)
    np.testing.assert_allclose(motion.body_pose[:, :63].numpy(), arrays["poses"][:, 3:66], atol=1e-6)
    assert torch.all(motion.body_pose[:, 63:] == 0)
    assert motion.framerate == 60.0


def test_upright_motion_puts_the_head_above_the_feet(open_body):
    poses = np.zeros((1, SMPLH_POSE_DIM))
    poses[0, :3] = STANDING_Z_UP
    motion = motion_from_poses(poses)
    joints = open_body(body_pose=motion.body_pose[:1], global_orient=motion.global_orient[:1]).joints[0]
    head, foot = joints[SMPL_JOINT_NAMES.index("head")], joints[SMPL_JOINT_NAMES.index("left_ankle")]
    assert head[1] - foot[1] > 1.0  # y up, over a metre apart
    raw = open_body(body_pose=motion.body_pose[:1], global_orient=torch.tensor([STANDING_Z_UP])).joints[0]
    assert abs(raw[SMPL_JOINT_NAMES.index("head"), 1] - raw[SMPL_JOINT_NAMES.index("left_ankle"), 1]) < 0.3  # unturned: lying


def test_subsample_stride_max_frames_and_frame_rate():
    motion = motion_from_arrays(_amass_arrays(frames=10))
    sub = motion.subsample(stride=3, max_frames=3)
    assert len(sub) == 3
    assert torch.equal(sub.body_pose, motion.body_pose[[0, 3, 6]])
    assert torch.equal(sub.transl, motion.transl[[0, 3, 6]])
    assert sub.framerate == pytest.approx(40.0)
    assert len(motion.subsample(stride=4, start=1)) == 3  # frames 1, 5, 9
    for kwargs in ({"stride": 0}, {"max_frames": 0}, {"stride": 1.5}, {"start": 10}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            motion.subsample(**kwargs)


def test_as_motion_accepts_a_path_a_mapping_a_tensor_and_a_motion(tmp_path):
    arrays = _amass_arrays()
    from_path = as_motion(str(_write(tmp_path, arrays)))
    from_mapping = as_motion(arrays)
    from_tensor = as_motion(torch.from_numpy(arrays["poses"]))
    assert torch.allclose(from_path.body_pose, from_mapping.body_pose)
    assert torch.allclose(from_path.global_orient, from_tensor.global_orient)
    assert from_tensor.transl is None and from_tensor.framerate is None
    assert as_motion(from_path) is from_path
    with pytest.raises(ValueError, match="`poses` must be a path"):
        as_motion(3.0)


def _bad(arrays, key, value):
    arrays = dict(arrays)
    if value is None:
        arrays.pop(key)
    else:
        arrays[key] = value
    return arrays


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("poses", None, r"missing the key 'poses'"),
        ("trans", None, r"missing the key 'trans'"),
        ("poses", np.zeros((FRAMES, 70)), r"`poses` must have shape \(T, 66 .*72 SMPL.*156 SMPL-H.*\(5, 70\)"),
        ("poses", np.zeros(156), r"`poses` must have shape .*\(156,\)"),
        ("poses", np.zeros((0, 156)), r"`poses` must have shape .*T >= 1"),
        ("poses", np.full((FRAMES, 156), np.nan), r"`poses` contains NaN .*expected finite values of shape \(T, 66"),
        ("trans", np.zeros((FRAMES - 1, 3)), r"`trans` must have shape \(5, 3\).*\(4, 3\)"),
        ("trans", np.full((FRAMES, 3), np.inf), r"`trans` contains NaN or infinite values .*\(5, 3\)"),
        ("betas", np.zeros((2, 10)), r"`betas` must have shape \(N,\)"),
        ("mocap_framerate", np.array(-30.0), r"`mocap_framerate` must be one positive finite number"),
        ("poses", np.array([["a"] * 156] * FRAMES), r"`poses` must hold numbers"),
    ],
)
def test_bad_amass_files_name_the_key_and_the_expected_shape(tmp_path, key, value, message):
    path = _write(tmp_path, _bad(_amass_arrays(), key, value))
    with pytest.raises(ValueError, match=message):
        load_amass(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_amass(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not a motion")
    with pytest.raises(ValueError, match="not a readable AMASS .npz"):
        load_amass(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((FRAMES, 156)))
    with pytest.raises(ValueError, match="single array"):
        load_amass(single)
    with pytest.raises(ValueError, match="missing the key 'trans'"):
        motion_from_arrays({"poses": np.zeros((FRAMES, 72))})
    with pytest.raises(ValueError, match="expected a mapping"):
        motion_from_arrays(np.zeros((FRAMES, 72)))
