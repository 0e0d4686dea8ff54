"""Motion sequences in the AMASS layout (docs/method.md §2), turned into SMPL body poses for animation.

An AMASS ``.npz`` holds:

=====================  ====================  ====================================================
key                    shape                 meaning
=====================  ====================  ====================================================
``poses``              ``(T, 156)``          SMPL-H axis-angle: root 3, 21 body joints 63, hands 90
``trans``              ``(T, 3)``            root translation, metres, z up
``betas``              ``(16,)``             SMPL-H shape (optional here)
``mocap_framerate``    scalar                frames per second (``mocap_frame_rate`` in the SMPL-X
                                             release; optional here)
=====================  ====================  ====================================================

``poses`` may also be SMPL's ``(T, 72)`` (24 joints), the bare root + body ``(T, 66)`` or SMPL-X's
``(T, 165)``; all start with the root and the 21 body joints SMPL shares with SMPL-H. SMPL's two hand
joints (``left_hand``, ``right_hand``) are taken from a 72-value pose and set to zero otherwise.
AMASS's world is z-up: the root orientation is turned by −90° about x
(:func:`~semantichuman_hd.body.rotations.amass_root_to_smpl`) so people stand upright in SMPL's y-up
frame, and the translation is turned alike.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..checks import check_positive_int, check_positive_number
from .rotations import amass_root_to_smpl, axis_angle_to_matrix
from .smpl_format import BODY_POSE_DIM, GLOBAL_ORIENT_DIM, NUM_BETAS, NUM_SMPL_JOINTS

SMPL_POSE_DIM: int = NUM_SMPL_JOINTS * 3
"""Width of a full SMPL pose: root and 23 joints (72)."""

NUM_SHARED_BODY_JOINTS: int = 21
"""Body joints (after the root) that SMPL, SMPL-H and SMPL-X share, in the same order."""

SHARED_POSE_DIM: int = GLOBAL_ORIENT_DIM + NUM_SHARED_BODY_JOINTS * 3
"""Root and shared body joints (66): the first values of every accepted pose layout."""

SMPLH_POSE_DIM: int = SHARED_POSE_DIM + 2 * 15 * 3
"""SMPL-H: root, 21 body joints, 2 hands × 15 finger joints (156)."""

SMPLX_POSE_DIM: int = SHARED_POSE_DIM + 3 * 3 + 2 * 15 * 3
"""SMPL-X: root, 21 body joints, jaw and two eyes, 2 hands × 15 finger joints (165)."""

POSE_LAYOUTS: dict[int, str] = {
    SHARED_POSE_DIM: "root + 21 body joints",
    SMPL_POSE_DIM: "SMPL",
    SMPLH_POSE_DIM: "SMPL-H",
    SMPLX_POSE_DIM: "SMPL-X",
}
"""Accepted widths of ``poses`` and their layouts."""

FRAMERATE_KEYS: tuple[str, ...] = ("mocap_framerate", "mocap_frame_rate")
"""Keys of the frame rate (the SMPL-H and SMPL-X releases of AMASS spell it differently)."""

REQUIRED_KEYS: tuple[str, ...] = ("poses", "trans")
"""Keys an AMASS-style file or mapping must hold."""

_POSES_SHAPE = "(T, " + " | ".join(f"{width} {name}" for width, name in sorted(POSE_LAYOUTS.items(), key=lambda kv: kv[0])) + ")"


@dataclass
class Motion:
    """A sequence of SMPL poses in SMPL's y-up frame.

    Attributes:
        global_orient: ``(T, 3)`` root orientations (axis-angle).
        body_pose: ``(T, 69)`` rotations of the 23 other joints.
        transl: ``(T, 3)`` root translations (metres), or None. Turned into the y-up frame about the
            world origin; exact for the root joint's path only up to the body's pelvis offset, which
            renders ignore (every frame is centred in front of the fixed camera).
        betas: ``(10,)`` shape coefficients of the capture's body model, or None. They mean the same
            shape only with the model the capture was fitted with (AMASS: SMPL-H).
        framerate: Frames per second, or None when unknown.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    transl: torch.Tensor | None = None
    betas: torch.Tensor | None = None
    framerate: float | None = None

    def __len__(self) -> int:
        return self.global_orient.shape[0]

    @property
    def num_frames(self) -> int:
        return len(self)

    def subsample(self, stride: int = 1, max_frames: int | None = None, start: int = 0) -> "Motion":
        """Every ``stride``-th frame from ``start``, at most ``max_frames`` of them; the frame rate is
        divided by ``stride``."""
        check_positive_int(stride, "stride")
        if max_frames is not None:
            check_positive_int(max_frames, "max_frames")
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < len(self):
            raise ValueError(f"`start` must be an integer in [0, {len(self) - 1}], got {start!r}.")
        index = torch.arange(start, len(self), stride)
        if max_frames is not None:
            index = index[:max_frames]
        return replace(
            self,
            global_orient=self.global_orient[index],
            body_pose=self.body_pose[index],
            transl=None if self.transl is None else self.transl[index],
            framerate=None if self.framerate is None else self.framerate / stride,
        )


def _as_array(value: Any, key: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)
    except Exception as error:  # object arrays, ragged lists
        raise ValueError(f"{source}: `{key}` is not a numeric array ({error}).") from error
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{source}: `{key}` must hold numbers, got dtype {array.dtype}.")
    return array.astype(np.float64)


def _check_finite(array: np.ndarray, key: str, expected: str, source: str) -> None:
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: `{key}` contains NaN or infinite values (expected finite values of shape {expected}).")


def _split_poses(poses: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(T, W)`` poses of an accepted layout → root ``(T, 3)`` and SMPL body pose ``(T, 69)``."""
    if poses.ndim != 2 or poses.shape[1] not in POSE_LAYOUTS or poses.shape[0] == 0:
        raise ValueError(f"{source}: `poses` must have shape {_POSES_SHAPE} with T >= 1, got {poses.shape}.")
    _check_finite(poses, "poses", _POSES_SHAPE, source)
    root = poses[:, :GLOBAL_ORIENT_DIM]
    if poses.shape[1] == SMPL_POSE_DIM:
        return root, poses[:, GLOBAL_ORIENT_DIM:]
    body = np.zeros((poses.shape[0], BODY_POSE_DIM))
    body[:, : SHARED_POSE_DIM - GLOBAL_ORIENT_DIM] = poses[:, GLOBAL_ORIENT_DIM:SHARED_POSE_DIM]  # hand joints stay 0
    return root, body


def motion_from_poses(poses: Any, z_up: bool = True, framerate: float | None = None, source: str = "poses") -> Motion:
    """A :class:`Motion` from a bare ``(T, W)`` pose array of an accepted layout (see the module docstring).

    Parameters:
        poses: Array or tensor ``(T, 66 | 72 | 156 | 165)``.
        z_up: The poses' world is z-up (AMASS): turn them upright into SMPL's y-up frame.
        framerate: Frames per second, if known.
        source: Names the data in error messages.
    """
    return motion_from_arrays({"poses": poses}, z_up=z_up, source=source, required=("poses",), framerate=framerate)


def motion_from_arrays(
    arrays: Mapping[str, Any],
    z_up: bool = True,
    source: str = "motion",
    required: tuple[str, ...] = REQUIRED_KEYS,
    framerate: float | None = None,
) -> Motion:
    """A :class:`Motion` from AMASS-style arrays (a mapping with the keys of the module docstring).

    Parameters:
        arrays: ``poses`` and ``trans`` (required), ``betas`` and ``mocap_framerate`` (optional).
        z_up: The data's world is z-up (AMASS): turn it upright into SMPL's y-up frame.
        source: Names the data in error messages (e.g. the file path).
        required: Keys that must be present.
        framerate: Frames per second, used when the arrays hold none.

    Raises:
        ValueError: Naming the key and the expected shape, for a missing key, a wrong shape or dtype,
            NaN or infinite values, or a non-positive frame rate.
    """
    if not isinstance(arrays, Mapping):
        raise ValueError(f"{source}: expected a mapping of AMASS arrays, got {type(arrays).__name__}.")
    for key in required:
        if key not in arrays:
            raise ValueError(f"{source}: missing the key {key!r} (has {sorted(map(str, arrays))}); AMASS data holds `poses` {_POSES_SHAPE} and `trans` (T, 3).")
    if "poses" not in arrays:
        raise ValueError(f"{source}: missing the key 'poses' of shape {_POSES_SHAPE}.")
    root, body = _split_poses(_as_array(arrays["poses"], "poses", source), source)
    frames = root.shape[0]

    transl = None
    if "trans" in arrays:
        transl = _as_array(arrays["trans"], "trans", source)
        if transl.shape != (frames, 3):
            raise ValueError(f"{source}: `trans` must have shape ({frames}, 3), one translation per pose, got {transl.shape}.")
        _check_finite(transl, "trans", f"({frames}, 3)", source)

    betas = None
    if "betas" in arrays:
        raw = _as_array(arrays["betas"], "betas", source)
        if raw.ndim != 1 or raw.shape[0] == 0:
            raise ValueError(f"{source}: `betas` must have shape (N,) with N >= 1 (the first {NUM_BETAS} are used), got {raw.shape}.")
        _check_finite(raw, "betas", "(N,)", source)
        betas = np.zeros(NUM_BETAS)
        count = min(NUM_BETAS, raw.shape[0])
        betas[:count] = raw[:count]

    rate = framerate
    for key in FRAMERATE_KEYS:
        if key in arrays:
            value = _as_array(arrays[key], key, source)
            if value.size != 1 or not math.isfinite(float(value.reshape(-1)[0])) or float(value.reshape(-1)[0]) <= 0:
                raise ValueError(f"{source}: `{key}` must be one positive finite number (frames per second), got {value.tolist()!r}.")
            rate = float(value.reshape(-1)[0])
            break
    if rate is not None:
        check_positive_number(rate, "framerate", unit="frames per second")

    global_orient = torch.from_numpy(root).float()
    transl_tensor = None if transl is None else torch.from_numpy(transl).float()
    if z_up:
        global_orient = amass_root_to_smpl(global_orient)
        if transl_tensor is not None:
            fix = axis_angle_to_matrix(torch.tensor([-math.pi / 2, 0.0, 0.0]))
            transl_tensor = transl_tensor @ fix.T
    return Motion(
        global_orient=global_orient,
        body_pose=torch.from_numpy(body).float(),
        transl=transl_tensor,
        betas=None if betas is None else torch.from_numpy(betas).float(),
        framerate=None if rate is None else float(rate),
    )


BUNDLED_MOTIONS: dict[str, str] = {"walk": "walk.npz"}
"""Motions shipped with the package (in ``semantichuman_hd/body/data``), by name: ``walk`` is a
procedural walk cycle (:mod:`semantichuman_hd.body.walk_cycle`), written by this project."""

MOTION_DATA_DIR: Path = Path(__file__).resolve().parent / "data"
"""Folder of the bundled motions."""

_EXPECTED_NPZ = (
    f"an AMASS-style .npz (a numpy zip of named arrays, as numpy.savez writes it) holding `poses` {_POSES_SHAPE}, "
    "`trans` (T, 3) and optionally `betas` and `mocap_framerate`"
)


def resolve_motion(poses: str | os.PathLike) -> Path:
    """``poses`` as a motion file: an existing path as is, else the bundled motion of that name
    (:data:`BUNDLED_MOTIONS`), else the path itself (which :func:`load_amass` reports missing)."""
    path = Path(poses)
    if not path.exists() and str(poses) in BUNDLED_MOTIONS:
        return MOTION_DATA_DIR / BUNDLED_MOTIONS[str(poses)]
    return path


def load_amass(path: str | os.PathLike, z_up: bool = True, argument: str = "poses") -> Motion:
    """Read an AMASS-style ``.npz`` (see the module docstring) into a :class:`Motion`.

    Parameters:
        path: the ``.npz`` file.
        z_up: the motion's world is z-up (AMASS).
        argument: how errors name the file's argument (``"--poses"`` on the command line).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not a readable ``.npz`` or its arrays are malformed (the message names the
            key and the expected shape). Nothing is ever unpickled.
    """
    path = Path(path)
    if not path.is_file():
        bundled = f" (or name a bundled motion: {', '.join(BUNDLED_MOTIONS)})" if argument.startswith("--") else ""
        raise FileNotFoundError(f"`{argument}` file {str(path)!r} does not exist{bundled}.")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        # numpy's own message for bytes it cannot read talks about pickled data: not what the user needs.
        raise ValueError(f"`{argument}` file {str(path)!r} is not a readable AMASS .npz: it should be {_EXPECTED_NPZ}.") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"`{argument}` file {str(path)!r} holds a single array, not the named arrays of an AMASS .npz: it should be {_EXPECTED_NPZ}.")
    with data:
        files = list(data.files)
        try:
            arrays = {key: data[key] for key in files if key in (*REQUIRED_KEYS, "betas", *FRAMERATE_KEYS)}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            raise ValueError(
                f"`{argument}` file {str(path)!r} is not a readable AMASS .npz (an array in it cannot be read without unpickling, "
                f"which is never done): it should be {_EXPECTED_NPZ}."
            ) from None
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise ValueError(f"`{argument}` file {str(path)!r}: missing the key {key!r} (has {sorted(files)}); it should be {_EXPECTED_NPZ}.")
    return motion_from_arrays(arrays, z_up=z_up, source=f"`{argument}` file {str(path)!r}")


def as_motion(poses: Any, z_up: bool = True) -> Motion:
    """A :class:`Motion` from any accepted form: a :class:`Motion` (returned as is), a path to an AMASS
    ``.npz``, a mapping of AMASS arrays, or a bare ``(T, W)`` pose array or tensor."""
    if isinstance(poses, Motion):
        return poses
    if isinstance(poses, (str, os.PathLike)):
        return load_amass(poses, z_up=z_up)
    if isinstance(poses, Mapping):
        return motion_from_arrays(poses, z_up=z_up)
    if isinstance(poses, (torch.Tensor, np.ndarray, list, tuple)):
        return motion_from_poses(poses, z_up=z_up)
    raise ValueError(
        f"`poses` must be a path to an AMASS .npz, a mapping of AMASS arrays, a (T, W) pose array or a Motion, got {type(poses).__name__}."
    )
