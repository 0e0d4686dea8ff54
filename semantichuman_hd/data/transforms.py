"""Picture and label operations of the data pipeline: white padding to square, resizing (label maps
nearest-neighbour only, docs/method.md §1), normal-map decoding, and the horizontal mirror of a sample with
its camera and SMPL fit.

Pictures are torch tensors in channel-first layout: images ``(3, H, W)``, label maps ``(H, W)`` long,
normals ``(3, H, W)`` in [−1, 1] with background exactly ``(1, 1, 1)`` (white). Label vectors follow
the AG3D layout of :mod:`semantichuman_hd.data.format` (``(…, 111)``, camera ``(…, 25)``, SMPL
``(…, 86)``).

The mirror reflects the world about the plane x = 0 (``M = diag(−1, 1, 1)``) and the image about its
vertical centre line (``u → 1 − u``):

* camera: ``cam2world' = D · cam2world · D`` with ``D = diag(−1, 1, 1, 1)``; a world point ``X`` seen
  by the camera at camera coordinates ``(x, y, z)`` becomes ``M·X``, seen at ``(−x, y, z)``. The
  rotation ``M·R·F`` stays right-handed (``det = (−1)(1)(−1) = 1``). Normalised intrinsics map
  ``cx → 1 − cx`` and skew ``s → −s`` so that ``u' = 1 − u`` exactly.
* SMPL: every joint's rotation ``R`` becomes ``M·R·M``, whose axis-angle is ``(a_x, −a_y, −a_z)``;
  left and right joints swap (:data:`~semantichuman_hd.body.smpl_format.SMPL_MIRROR_PERMUTATION`);
  ``transl_x → −transl_x``; ``scale`` and ``betas`` are unchanged. This reproduces the mirrored body
  exactly when the rest-pose body is left-right symmetric with its pelvis joint on x = 0 (true of the
  open body; the real SMPL pelvis sits a few millimetres off the plane).
* normals: flipped with the pictures and their x component negated (world or camera frame alike, since
  both mirrors negate x); background stays white.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..body.smpl_format import NUM_SMPL_JOINTS, SMPL_MIRROR_PERMUTATION
from .format import CAM2WORLD_DIM, CAMERA_LABEL_DIM, LABEL_DIM, LABEL_SLICES, SMPL_LABEL_DIM, WHITE

NORMAL_EPS: float = 1e-6
"""Below this length a resized normal is considered undefined (no foreground contributed)."""

AXIS_ANGLE_MIRROR_SIGNS: tuple[float, float, float] = (1.0, -1.0, -1.0)
"""Sign applied to each axis-angle component by the mirror about x = 0 (``M·R·M`` for ``M = diag(−1, 1, 1)``)."""

WORLD_MIRROR: tuple[float, float, float, float] = (-1.0, 1.0, 1.0, 1.0)
"""Diagonal of ``D``, the homogeneous reflection about x = 0 (also the camera's image-x flip)."""


# ---- Padding and resizing ---------------------------------------------------------------------


def square_padding(width: int, height: int) -> tuple[int, int, int]:
    """``(size, left, top)``: the square side ``max(W, H)`` and the offsets of the centred picture
    (the extra pixel of an odd difference goes to the right / bottom)."""
    size = max(width, height)
    return size, (size - width) // 2, (size - height) // 2


def pad_to_square(array: np.ndarray, fill: int) -> np.ndarray:
    """Centre an ``(H, W)`` or ``(H, W, C)`` picture on a square of ``fill`` values (white 255 for
    images and normal maps, 0 = background for label maps)."""
    height, width = array.shape[:2]
    if height == width:
        return array
    size, left, top = square_padding(width, height)
    out = np.full((size, size) + array.shape[2:], fill, dtype=array.dtype)
    out[top : top + height, left : left + width] = array
    return out


def padded_intrinsics(intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised intrinsics ``(3, 3)`` of a ``W × H`` picture re-expressed for the same picture
    centred on its white square (:func:`pad_to_square`): pixel ``u·W`` becomes ``u·W + left`` of a
    ``size``-wide square, so ``fx' = fx·W/size``, ``cx' = (cx·W + left)/size``, ``s' = s·W/size``, and
    likewise for y with H and ``top``."""
    size, left, top = square_padding(width, height)
    out = np.array(intrinsics, dtype=np.float64, copy=True)
    out[0, :2] *= width / size
    out[0, 2] = (intrinsics[0, 2] * width + left) / size
    out[1, 1] *= height / size
    out[1, 2] = (intrinsics[1, 2] * height + top) / size
    return out


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, H, W)`` floats to ``(C, size, size)``: bilinear, antialiased when shrinking."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def resize_labels(segm: torch.Tensor, size: int) -> torch.Tensor:
    """Resize an ``(H, W)`` integer label map to ``(size, size)`` by nearest neighour on pixel centres
    (never blending label indices, docs/method.md §1)."""
    if segm.shape[-2:] == (size, size):
        return segm
    resized = F.interpolate(segm[None, None].to(torch.float32), size=(size, size), mode="nearest-exact")[0, 0]
    return resized.round().to(segm.dtype)


def decode_normals(encoded: np.ndarray, foreground: np.ndarray) -> torch.Tensor:
    """PNG normal map ``(H, W, 3) uint8`` → ``(3, H, W)`` floats: unit vectors ``2·v/255 − 1``
    re-normalised on ``foreground (H, W)``, exactly ``(1, 1, 1)`` (white) elsewhere."""
    normals = torch.from_numpy(np.ascontiguousarray(encoded)).permute(2, 0, 1).to(torch.float32) * (2.0 / WHITE) - 1.0
    mask = torch.from_numpy(np.ascontiguousarray(foreground, dtype=bool))
    return finish_normals(normals, mask)


def finish_normals(normals: torch.Tensor, foreground: torch.Tensor, fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise ``(3, H, W)`` vectors on ``foreground (H, W)`` and set the rest to white ``(1, 1, 1)``.

    Where a foreground vector is (nearly) zero — no foreground normal contributed to it — the
    normalised ``fallback`` is used if it is defined there, else ``+z`` (facing a camera on +z).
    """
    def normalised(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = vectors.norm(dim=0, keepdim=True)
        return vectors / length.clamp_min(NORMAL_EPS), length > NORMAL_EPS

    unit, defined = normalised(normals)
    facing = torch.zeros_like(normals)
    facing[2] = 1.0
    if fallback is not None:
        fallback_unit, fallback_defined = normalised(fallback)
        facing = torch.where(fallback_defined, fallback_unit, facing)
    unit = torch.where(defined, unit, facing)
    return torch.where(foreground.unsqueeze(0), unit, torch.ones_like(unit))


def resize_normals(normals: torch.Tensor, foreground: torch.Tensor, size: int, new_foreground: torch.Tensor) -> torch.Tensor:
    """Resize a ``(3, H, W)`` normal map whose normals are defined on ``foreground (H, W)`` to
    ``(3, size, size)``.

    The foreground vectors are averaged (antialiased bilinear over the foreground only, so the white
    background never bleeds in) and re-normalised; ``new_foreground (size, size)`` — the resized label
    map's foreground — decides which output pixels are normals and which are white. An output
    foreground pixel that no input normal reaches takes its nearest input normal, else ``+z``.
    """
    weighted = normals * foreground.to(normals.dtype).unsqueeze(0)
    if normals.shape[-2:] == (size, size):
        return finish_normals(weighted, new_foreground)
    nearest = F.interpolate(weighted[None], size=(size, size), mode="nearest-exact")[0]
    return finish_normals(resize_image(weighted, size), new_foreground, fallback=nearest)


# ---- Mirroring --------------------------------------------------------------------------------


def mirror_pictures(picture: torch.Tensor) -> torch.Tensor:
    """Flip an ``(…, H, W)`` picture or label map left ↔ right."""
    return picture.flip(-1)


def mirror_normals(normals: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """Mirror a ``(3, H, W)`` normal map: flip left ↔ right and negate x on the foreground
    (``foreground (H, W)`` of the UNflipped map); background stays white."""
    flipped = normals.flip(-1).clone()
    mask = foreground.flip(-1)
    flipped[0] = torch.where(mask, -flipped[0], flipped[0])
    return flipped


def _world_mirror(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(WORLD_MIRROR, dtype=like.dtype, device=like.device)


def mirror_cam2world(cam2world: torch.Tensor) -> torch.Tensor:
    """``(…, 4, 4)`` camera-to-world transforms of the mirrored cameras: ``D · cam2world · D``."""
    d = _world_mirror(cam2world)
    return cam2world * d.view(4, 1) * d.view(1, 4)


def mirror_intrinsics(intrinsics: torch.Tensor) -> torch.Tensor:
    """``(…, 3, 3)`` normalised intrinsics of the mirrored image: ``cx → 1 − cx``, skew ``→ −skew``."""
    out = intrinsics.clone()
    out[..., 0, 1] = -intrinsics[..., 0, 1]
    out[..., 0, 2] = 1.0 - intrinsics[..., 0, 2]
    return out


def mirror_camera_vector(camera: torch.Tensor) -> torch.Tensor:
    """Mirror flat ``(…, 25)`` camera labels (``cam2world`` 16 | ``intrinsics`` 9)."""
    if camera.shape[-1] != CAMERA_LABEL_DIM:
        raise ValueError(f"`camera` must have {CAMERA_LABEL_DIM} values in its last axis, got shape {tuple(camera.shape)}.")
    lead = camera.shape[:-1]
    cam2world = mirror_cam2world(camera[..., :CAM2WORLD_DIM].reshape(*lead, 4, 4))
    intrinsics = mirror_intrinsics(camera[..., CAM2WORLD_DIM:].reshape(*lead, 3, 3))
    return torch.cat([cam2world.reshape(*lead, 16), intrinsics.reshape(*lead, 9)], dim=-1)


def mirror_axis_angles(pose: torch.Tensor) -> torch.Tensor:
    """Mirror ``(…, J, 3)`` axis-angle rotations about x = 0 (no joint swap): ``(a_x, −a_y, −a_z)``."""
    return pose * torch.tensor(AXIS_ANGLE_MIRROR_SIGNS, dtype=pose.dtype, device=pose.device)


def mirror_full_pose(full_pose: torch.Tensor) -> torch.Tensor:
    """Mirror SMPL poses ``(…, 72)`` = global_orient 3 + body_pose 69: swap left/right joints with
    :data:`SMPL_MIRROR_PERMUTATION` and negate the y and z axis-angle components."""
    if full_pose.shape[-1] != NUM_SMPL_JOINTS * 3:
        raise ValueError(f"`full_pose` must have {NUM_SMPL_JOINTS * 3} values in its last axis, got shape {tuple(full_pose.shape)}.")
    joints = full_pose.reshape(*full_pose.shape[:-1], NUM_SMPL_JOINTS, 3)
    permutation = torch.tensor(SMPL_MIRROR_PERMUTATION, device=full_pose.device)
    return mirror_axis_angles(joints.index_select(-2, permutation)).reshape(full_pose.shape)


def mirror_smpl_vector(smpl: torch.Tensor) -> torch.Tensor:
    """Mirror flat ``(…, 86)`` SMPL labels (scale 1 | transl 3 | global_orient 3 | body_pose 69 | betas 10)."""
    if smpl.shape[-1] != SMPL_LABEL_DIM:
        raise ValueError(f"`smpl` must have {SMPL_LABEL_DIM} values in its last axis, got shape {tuple(smpl.shape)}.")

    def local(name: str) -> slice:
        part = LABEL_SLICES[name]
        return slice(part.start - CAMERA_LABEL_DIM, part.stop - CAMERA_LABEL_DIM)

    out = smpl.clone()
    transl = local("transl")
    out[..., transl.start] = -smpl[..., transl.start]
    pose = slice(local("global_orient").start, local("body_pose").stop)
    out[..., pose] = mirror_full_pose(smpl[..., pose])
    return out


def mirror_label_vector(label: torch.Tensor) -> torch.Tensor:
    """Mirror flat ``(…, 111)`` labels (camera 25 | SMPL 86)."""
    if label.shape[-1] != LABEL_DIM:
        raise ValueError(f"`label` must have {LABEL_DIM} values in its last axis, got shape {tuple(label.shape)}.")
    return torch.cat([mirror_camera_vector(label[..., :CAMERA_LABEL_DIM]), mirror_smpl_vector(label[..., CAMERA_LABEL_DIM:])], dim=-1)
