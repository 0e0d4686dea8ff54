"""The SMPL body model file format: joint names, kinematic tree and array shapes (docs/method.md §2).

Both the open procedural body and a user's licensed SMPL file share these facts, so motion data and
SMPL fits drop in unchanged.
"""

from __future__ import annotations

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
"""The 24 SMPL joints, in SMPL's order."""

NUM_SMPL_JOINTS: int = len(SMPL_JOINT_NAMES)
"""Number of joints (24)."""

SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
"""Parent of each joint in the kinematic tree (−1 for the root)."""

NUM_BETAS: int = 10
"""Number of shape coefficients used throughout the package."""

GLOBAL_ORIENT_DIM: int = 3
"""Axis-angle root orientation."""

BODY_POSE_DIM: int = (NUM_SMPL_JOINTS - 1) * 3
"""Axis-angle rotations of the 23 non-root joints (69)."""

NUM_POSE_BASIS: int = (NUM_SMPL_JOINTS - 1) * 9
"""Columns of ``posedirs``: 23 rotation matrices minus identity, flattened (207)."""

SMPL_NUM_VERTICES: int = 6890
"""Vertex count of the real SMPL model."""

SMPL_NUM_FACES: int = 13776
"""Face count of the real SMPL model."""

SMPL_FILE_KEYS: tuple[str, ...] = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
"""Keys a SMPL model file must hold (what ``smplx.SMPL`` reads)."""


def _mirror_permutation() -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    perm = []
    for name in SMPL_JOINT_NAMES:
        if name.startswith("left_"):
            perm.append(index["right_" + name[len("left_"):]])
        elif name.startswith("right_"):
            perm.append(index["left_" + name[len("right_"):]])
        else:
            perm.append(index[name])
    return tuple(perm)


SMPL_MIRROR_PERMUTATION: tuple[int, ...] = _mirror_permutation()
"""For each joint, the index of its left/right counterpart (itself for centre joints)."""
