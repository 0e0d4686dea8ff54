"""Named example poses in SMPL's 69-value body_pose layout, for previews and demos."""

from __future__ import annotations

import torch

from .smpl_format import BODY_POSE_DIM, SMPL_JOINT_NAMES

ARMS_DOWN_ANGLE: float = 1.2
"""Shoulder rotation (radians, about z) that lowers the T-pose arms into an A-pose."""


def _pose(rotations: dict[str, tuple[float, float, float]]) -> torch.Tensor:
    pose = torch.zeros(BODY_POSE_DIM)
    for name, axis_angle in rotations.items():
        joint = SMPL_JOINT_NAMES.index(name)  # body_pose skips the root (joint 0)
        pose[(joint - 1) * 3 : joint * 3] = torch.tensor(axis_angle)
    return pose


NAMED_POSES: dict[str, torch.Tensor] = {
    "t-pose": _pose({}),
    "a-pose": _pose({"left_shoulder": (0.0, 0.0, -ARMS_DOWN_ANGLE), "right_shoulder": (0.0, 0.0, ARMS_DOWN_ANGLE)}),
    "walking": _pose(
        {
            "left_hip": (-0.45, 0.0, 0.05),
            "right_hip": (0.35, 0.0, -0.05),
            "left_knee": (0.25, 0.0, 0.0),
            "right_knee": (0.7, 0.0, 0.0),
            "left_shoulder": (0.0, 0.3, -1.25),
            "right_shoulder": (0.0, 0.3, 1.25),
            "left_elbow": (0.0, -0.5, 0.0),
            "right_elbow": (0.0, 0.5, 0.0),
        }
    ),
    "arms-up": _pose(
        {
            "left_shoulder": (0.0, 0.0, 0.9),
            "right_shoulder": (0.0, 0.0, -0.9),
            "left_elbow": (0.0, 0.0, 0.4),
            "right_elbow": (0.0, 0.0, -0.4),
            "left_hip": (0.0, 0.0, 0.15),
            "right_hip": (0.0, 0.0, -0.15),
        }
    ),
}
"""Body poses ``(69,)`` by name: rest T-pose, A-pose, a walking step, arms raised."""


def named_pose(name: str) -> torch.Tensor:
    """The body pose ``(69,)`` called ``name``; ValueError lists the names."""
    if name not in NAMED_POSES:
        raise ValueError(f"`pose` must be one of {sorted(NAMED_POSES)}, got {name!r}.")
    return NAMED_POSES[name].clone()
