"""A procedural walk cycle in the AMASS layout: the motion shipped as ``semantichuman_hd/body/data/walk.npz``.

Written by this project (no motion-capture data): sinusoidal hip, knee, shoulder and elbow angles in
SMPL's joint frames (the signs of the ``walking`` pose of :mod:`semantichuman_hd.body.poses`: a negative
rotation about x swings a thigh forward, a positive one bends a knee), arms swinging against the legs,
a slight bob of the pelvis, walking forward (along −y in AMASS's z-up world). Regenerate the file
with ``python -m semantichuman_hd.body.walk_cycle``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..checks import check_positive_int, check_positive_number
from .smpl_format import SMPL_JOINT_NAMES

WALK_FRAMERATE: float = 30.0
"""Frames per second of the bundled walk."""

WALK_FRAMES: int = 60
"""Frames of the bundled walk: two steps per second, two strides."""

STRIDE_SECONDS: float = 1.0
"""Duration of one stride (a left and a right step)."""

HIP_SWING: float = 0.45
"""Amplitude of the thighs' forward and backward swing, radians."""

KNEE_BEND: float = 0.9
"""Largest knee bend, radians, while a leg swings forward."""

KNEE_REST: float = 0.08
"""Knee bend of the standing leg, radians."""

SHOULDER_LOWER: float = 1.2
"""Shoulder rotation about z that lowers the T-pose arms (as the ``a-pose``), radians."""

ARM_SWING: float = 0.35
"""Amplitude of the arms' swing, radians."""

ELBOW_BEND: float = 0.3
"""Mean elbow bend, radians."""

PELVIS_HEIGHT: float = 0.93
"""Height of the root above the ground, metres."""

BOB: float = 0.015
"""Up-and-down motion of the root, metres (twice per stride)."""

WALK_SPEED: float = 1.2
"""Forward speed, metres per second."""

SMPLH_POSE_WIDTH: int = 156
"""Root, 21 body joints and two hands of 15 joints, 3 values each."""

SMPLH_NUM_BETAS: int = 16
"""Shape coefficients of an AMASS SMPL-H file."""

AMASS_UPRIGHT_ROOT: tuple[float, float, float] = (math.pi / 2, 0.0, 0.0)
"""Root orientation of a person standing upright in AMASS's z-up world: SMPL's rest frame (y up, facing
+z) turned +90° about x, so the person faces −y."""


def _set(poses: np.ndarray, joint: str, axis_angle: np.ndarray) -> None:
    index = SMPL_JOINT_NAMES.index(joint)
    poses[:, 3 * index : 3 * index + 3] = axis_angle


def walk_cycle(num_frames: int = WALK_FRAMES, framerate: float = WALK_FRAMERATE) -> dict[str, np.ndarray]:
    """The walk as AMASS arrays: ``poses (T, 156)``, ``trans (T, 3)``, ``betas (16,)`` and
    ``mocap_framerate`` (a 0-d array), all float64.

    Parameters:
        num_frames: T, at least 1.
        framerate: frames per second, positive.
    """
    check_positive_int(num_frames, "num_frames")
    check_positive_number(framerate, "framerate", unit="frames per second")
    time = np.arange(num_frames) / framerate
    phase = 2 * math.pi * time / STRIDE_SECONDS  # sin(phase) > 0: the left leg is in front
    swing = np.sin(phase)
    zeros = np.zeros(num_frames)
    poses = np.zeros((num_frames, SMPLH_POSE_WIDTH))
    poses[:, 0:3] = AMASS_UPRIGHT_ROOT
    _set(poses, "left_hip", np.stack([-HIP_SWING * swing, zeros, zeros], 1))
    _set(poses, "right_hip", np.stack([HIP_SWING * swing, zeros, zeros], 1))
    # A knee bends while its leg swings forward (its hip angle decreasing).
    _set(poses, "left_knee", np.stack([KNEE_REST + KNEE_BEND * np.clip(np.cos(phase), 0, None), zeros, zeros], 1))
    _set(poses, "right_knee", np.stack([KNEE_REST + KNEE_BEND * np.clip(-np.cos(phase), 0, None), zeros, zeros], 1))
    # Arms hang (as in the A-pose) and swing against the legs: the right arm forward with the left leg.
    _set(poses, "left_shoulder", np.stack([zeros, ARM_SWING * swing, np.full(num_frames, -SHOULDER_LOWER)], 1))
    _set(poses, "right_shoulder", np.stack([zeros, ARM_SWING * swing, np.full(num_frames, SHOULDER_LOWER)], 1))
    _set(poses, "left_elbow", np.stack([zeros, -(ELBOW_BEND + 0.5 * ELBOW_BEND * np.clip(-swing, 0, None)), zeros], 1))
    _set(poses, "right_elbow", np.stack([zeros, ELBOW_BEND + 0.5 * ELBOW_BEND * np.clip(swing, 0, None), zeros], 1))
    trans = np.stack([zeros, -WALK_SPEED * time, PELVIS_HEIGHT + BOB * np.cos(2 * phase)], 1)
    return {
        "poses": poses,
        "trans": trans,
        "betas": np.zeros(SMPLH_NUM_BETAS),
        "mocap_framerate": np.array(float(framerate)),
    }


def write_walk_cycle(path: str | os.PathLike, num_frames: int = WALK_FRAMES, framerate: float = WALK_FRAMERATE) -> Path:
    """Write :func:`walk_cycle` as an uncompressed AMASS ``.npz`` (no pickles) at ``path``; returns it."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"`path` must end in .npz, got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **walk_cycle(num_frames, framerate))
    return path


if __name__ == "__main__":
    from .amass import BUNDLED_MOTIONS, MOTION_DATA_DIR

    print(write_walk_cycle(MOTION_DATA_DIR / BUNDLED_MOTIONS["walk"]))
