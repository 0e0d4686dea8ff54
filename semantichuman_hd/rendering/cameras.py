"""Pinhole cameras and the rays through their pixels (docs/method.md §4).

Conventions (as EG3D / AG3D camera labels):

* ``cam2world (B, 4, 4)`` maps camera coordinates to world coordinates, OpenCV axes: camera x points
  to image right, y to image down, z forward (into the scene).
* ``intrinsics (B, 3, 3)`` are NORMALISED: focal lengths and principal point are in units of the image
  size, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with ``fx`` in image widths and ``fy`` in image
  heights. A camera-frame point ``(x, y, z)`` lands at the normalised pixel coordinates
  ``u = (fx·x + s·y)/z + cx``, ``v = fy·y/z + cy``, with ``(0, 0)`` the top-left image corner and
  ``(1, 1)`` the bottom-right one; pixel ``(row i, column j)`` of an ``H × W`` image has its centre at
  ``u = (j + 0.5)/W``, ``v = (i + 0.5)/H``.

The same labels therefore work at every resolution (256² for stage 1, 1024² for stage 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..checks import check_positive_int
from ..precision import full_precision

FIXED_CAMERA_FOCAL: float = 5.0
"""Normalised focal length of the fixed, near-orthographic camera (about 11.4° field of view): the
value the reference's label writer uses."""

FIXED_CAMERA_PRINCIPAL_POINT: float = 0.5
"""Normalised principal point of the fixed camera (the image centre)."""

FIXED_CAMERA_DISTANCE: float = 11.0
"""Distance in metres from the fixed camera to the world origin, where it looks. The frame spans
``± FIXED_CAMERA_DISTANCE · FIXED_CAMERA_PRINCIPAL_POINT / FIXED_CAMERA_FOCAL = ± 1.1`` m at the origin
plane, so a 1.7–1.8 m person centred on the origin fills about 80 % of the image height."""

_PARALLEL_TOLERANCE = 1e-6


@dataclass
class Cameras:
    """A batch of pinhole cameras.

    Parameters:
        cam2world: ``(B, 4, 4)`` camera-to-world transforms (OpenCV axes: x right, y down, z forward).
        intrinsics: ``(B, 3, 3)`` normalised intrinsics (see the module docstring).

    Raises:
        ValueError: If the shapes do not match or a focal length is not positive.
    """

    cam2world: torch.Tensor
    intrinsics: torch.Tensor

    def __post_init__(self):
        if not isinstance(self.cam2world, torch.Tensor) or self.cam2world.ndim != 3 or self.cam2world.shape[1:] != (4, 4):
            shape = tuple(self.cam2world.shape) if isinstance(self.cam2world, torch.Tensor) else type(self.cam2world)
            raise ValueError(f"`cam2world` must be a tensor of shape (B, 4, 4), got {shape}.")
        if not isinstance(self.intrinsics, torch.Tensor) or self.intrinsics.shape != (self.cam2world.shape[0], 3, 3):
            shape = tuple(self.intrinsics.shape) if isinstance(self.intrinsics, torch.Tensor) else type(self.intrinsics)
            raise ValueError(
                f"`intrinsics` must be a tensor of shape (B, 3, 3) with B = {self.cam2world.shape[0]} as "
                f"`cam2world`, got {shape}."
            )
        if self.cam2world.shape[0] == 0:
            raise ValueError("`cam2world` must hold at least one camera, got an empty batch.")
        focal = torch.stack([self.intrinsics[:, 0, 0], self.intrinsics[:, 1, 1]])
        if not bool((focal > 0).all()):
            raise ValueError(f"`intrinsics` focal lengths (fx, fy) must be positive, got {focal.T.tolist()}.")

    @property
    def batch_size(self) -> int:
        """B, the number of cameras."""
        return self.cam2world.shape[0]

    @property
    def device(self) -> torch.device:
        return self.cam2world.device

    @property
    def positions(self) -> torch.Tensor:
        """``(B, 3)`` camera centres in world coordinates."""
        return self.cam2world[:, :3, 3]

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Cameras":
        """The same cameras on ``device`` and/or in ``dtype``."""
        return Cameras(self.cam2world.to(device=device, dtype=dtype), self.intrinsics.to(device=device, dtype=dtype))

    @full_precision
    def generate_rays(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space rays through the pixel centres of a ``height × width`` image, row-major.

        Returns:
            origins: ``(B, H·W, 3)`` the camera centres.
            directions: ``(B, H·W, 3)`` unit directions; a point at distance ``t`` along a ray is
            ``origins + t · directions`` (so rendered depths are distances from the camera centre).
        """
        check_positive_int(height, "height")
        check_positive_int(width, "width")
        device, dtype = self.cam2world.device, self.cam2world.dtype
        v = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
        u = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
        v, u = torch.meshgrid(v, u, indexing="ij")
        u = u.reshape(1, -1)
        v = v.reshape(1, -1)
        fx, fy = self.intrinsics[:, 0, 0:1], self.intrinsics[:, 1, 1:2]
        skew = self.intrinsics[:, 0, 1:2]
        cx, cy = self.intrinsics[:, 0, 2:3], self.intrinsics[:, 1, 2:3]
        y = (v - cy) / fy
        x = (u - cx - skew * y) / fx
        camera_dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # (B, H·W, 3)
        directions = camera_dirs @ self.cam2world[:, :3, :3].transpose(1, 2)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        origins = self.positions.unsqueeze(1).expand_as(directions)
        return origins, directions

    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``(B, N, 3)`` in camera coordinates ``(B, N, 3)``."""
        if points.ndim != 3 or points.shape[0] != self.batch_size or points.shape[-1] != 3:
            raise ValueError(f"`points` must have shape (B, N, 3) with B = {self.batch_size}, got {tuple(points.shape)}.")
        rotation = self.cam2world[:, :3, :3]
        return (points - self.positions.unsqueeze(1)) @ rotation

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points ``(B, N, 3)`` into the images.

        Returns:
            pixels: ``(B, N, 2)`` normalised pixel coordinates ``(u, v)`` (``(0, 0)`` top-left corner,
            ``(1, 1)`` bottom-right; multiply by ``(W, H)`` for pixel units).
            depth: ``(B, N)`` z-depth, the camera-frame z coordinate (not the distance along the ray,
            which is what the volume renderer reports; the two agree at the image centre).
        """
        camera = self.world_to_camera(points)
        x, y, z = camera.unbind(-1)
        fx, fy = self.intrinsics[:, 0, 0:1], self.intrinsics[:, 1, 1:2]
        skew = self.intrinsics[:, 0, 1:2]
        cx, cy = self.intrinsics[:, 0, 2:3], self.intrinsics[:, 1, 2:3]
        u = (fx * x + skew * y) / z + cx
        v = fy * y / z + cy
        return torch.stack([u, v], dim=-1), z


def normalized_intrinsics(
    focal: float | torch.Tensor,
    principal_point: float | Sequence[float] = FIXED_CAMERA_PRINCIPAL_POINT,
    batch_size: int = 1,
    device=None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``(B, 3, 3)`` normalised intrinsics with ``fx = fy = focal`` (a float or a ``(B,)`` tensor) and
    ``(cx, cy) = principal_point`` (one float for both, or a pair).

    Raises:
        ValueError: If a focal length is not positive or the sizes do not match.
    """
    check_positive_int(batch_size, "batch_size")
    dtype = dtype or torch.get_default_dtype()
    focal = torch.as_tensor(focal, device=device, dtype=dtype)
    if focal.ndim == 0:
        focal = focal.expand(batch_size)
    if focal.shape != (batch_size,):
        raise ValueError(f"`focal` must be a number or a tensor of shape ({batch_size},), got {tuple(focal.shape)}.")
    if not bool((focal > 0).all()):
        raise ValueError(f"`focal` must be positive, got {focal.tolist()}.")
    if isinstance(principal_point, (int, float)):
        principal_point = (float(principal_point), float(principal_point))
    if len(principal_point) != 2:
        raise ValueError(f"`principal_point` must be a number or a pair (cx, cy), got {principal_point!r}.")
    intrinsics = torch.zeros(batch_size, 3, 3, device=device, dtype=dtype)
    intrinsics[:, 0, 0] = focal
    intrinsics[:, 1, 1] = focal
    intrinsics[:, 0, 2] = float(principal_point[0])
    intrinsics[:, 1, 2] = float(principal_point[1])
    intrinsics[:, 2, 2] = 1.0
    return intrinsics


def _as_points(name: str, value, batch_size: int | None, device, dtype) -> torch.Tensor:
    """A ``(3,)`` or ``(B, 3)`` value as a ``(B, 3)`` tensor."""
    tensor = torch.as_tensor(value, device=device, dtype=dtype)
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape (3,) or (B, 3), got {tuple(tensor.shape)}.")
    if batch_size is not None and tensor.shape[0] not in (1, batch_size):
        raise ValueError(f"`{name}` must have shape (3,) or ({batch_size}, 3), got {tuple(tensor.shape)}.")
    return tensor


def look_at_cam2world(
    cam_position: torch.Tensor, look_at: torch.Tensor, up: torch.Tensor
) -> torch.Tensor:
    """``(B, 4, 4)`` OpenCV camera-to-world transforms of cameras at ``cam_position (B, 3)`` looking at
    ``look_at (B, 3)`` with ``up (B, 3)`` pointing up in the image.

    Raises:
        ValueError: If a camera sits on its target or looks along its up vector.
    """
    forward = look_at - cam_position
    distance = forward.norm(dim=-1, keepdim=True)
    if not bool((distance > _PARALLEL_TOLERANCE).all()):
        raise ValueError("`cam_position` must differ from `look_at`; a camera sits on its target.")
    forward = forward / distance
    right = torch.cross(forward, up.expand_as(forward), dim=-1)
    right_norm = right.norm(dim=-1, keepdim=True)
    if not bool((right_norm > _PARALLEL_TOLERANCE).all()):
        raise ValueError("`up` must not be parallel to the viewing direction `look_at - cam_position`.")
    right = right / right_norm
    down = torch.cross(forward, right, dim=-1)
    cam2world = torch.zeros(*forward.shape[:-1], 4, 4, device=forward.device, dtype=forward.dtype)
    cam2world[..., :3, 0] = right
    cam2world[..., :3, 1] = down
    cam2world[..., :3, 2] = forward
    cam2world[..., :3, 3] = cam_position
    cam2world[..., 3, 3] = 1.0
    return cam2world


def perspective_camera(
    cam_position,
    look_at=(0.0, 0.0, 0.0),
    up=(0.0, 1.0, 0.0),
    focal: float | torch.Tensor = FIXED_CAMERA_FOCAL,
    principal_point: float | Sequence[float] = FIXED_CAMERA_PRINCIPAL_POINT,
    device=None,
    dtype: torch.dtype | None = None,
) -> Cameras:
    """Look-at pinhole cameras.

    Parameters:
        cam_position: ``(3,)`` or ``(B, 3)`` camera centres in world coordinates.
        look_at: ``(3,)`` or ``(B, 3)`` points the cameras look at (mapped to the principal point).
        up: ``(3,)`` or ``(B, 3)`` world direction that appears up in the image.
        focal: Normalised focal length (a number or a ``(B,)`` tensor).
        principal_point: Normalised ``(cx, cy)`` (one number for both).
    """
    if dtype is None:
        dtype = cam_position.dtype if isinstance(cam_position, torch.Tensor) else torch.get_default_dtype()
    if device is None and isinstance(cam_position, torch.Tensor):
        device = cam_position.device
    position = _as_points("cam_position", cam_position, None, device, dtype)
    batch_size = position.shape[0]
    target = _as_points("look_at", look_at, batch_size, device, dtype).expand(batch_size, 3)
    up_vector = _as_points("up", up, batch_size, device, dtype).expand(batch_size, 3)
    cam2world = look_at_cam2world(position, target, up_vector)
    intrinsics = normalized_intrinsics(focal, principal_point, batch_size, device, dtype)
    return Cameras(cam2world, intrinsics)


def orbit_camera(
    azimuth: float | torch.Tensor,
    elevation: float | torch.Tensor = 0.0,
    distance: float | torch.Tensor = FIXED_CAMERA_DISTANCE,
    focal: float | torch.Tensor = FIXED_CAMERA_FOCAL,
    look_at=(0.0, 0.0, 0.0),
    device=None,
    dtype: torch.dtype | None = None,
) -> Cameras:
    """Cameras on a sphere around ``look_at``, world y up.

    ``azimuth`` and ``elevation`` are in radians (numbers or ``(B,)`` tensors). Azimuth 0, elevation 0
    is the front view of the fixed camera (on the +z axis); positive azimuth turns the camera about +y
    toward +x, positive elevation raises it toward +y.

    Raises:
        ValueError: If ``distance`` is not positive or the elevation is ±90° (the up vector is then
        along the viewing direction).
    """
    dtype = dtype or torch.get_default_dtype()
    azimuth, elevation, distance = torch.broadcast_tensors(
        *(torch.as_tensor(value, device=device, dtype=dtype) for value in (azimuth, elevation, distance))
    )
    if azimuth.ndim > 1:
        raise ValueError(f"`azimuth`, `elevation` and `distance` must be numbers or (B,) tensors, got shape {tuple(azimuth.shape)}.")
    if not bool((distance > 0).all()):
        raise ValueError(f"`distance` must be positive, got {distance.tolist()}.")
    if bool((elevation.abs() >= math.pi / 2 - _PARALLEL_TOLERANCE).any()):
        raise ValueError(f"`elevation` must lie strictly between -pi/2 and pi/2, got {elevation.tolist()}.")
    offset = torch.stack(
        [torch.sin(azimuth) * torch.cos(elevation), torch.sin(elevation), torch.cos(azimuth) * torch.cos(elevation)], dim=-1
    )
    target = torch.as_tensor(look_at, device=device, dtype=dtype)
    position = (target + distance.unsqueeze(-1) * offset).reshape(-1, 3)
    return perspective_camera(position, look_at=look_at, focal=focal, device=device, dtype=dtype)


def fixed_camera(batch_size: int = 1, device=None, dtype: torch.dtype | None = None) -> Cameras:
    """The fixed near-orthographic camera of docs/method.md §4: normalised focal :data:`FIXED_CAMERA_FOCAL`,
    principal point at the image centre, :data:`FIXED_CAMERA_DISTANCE` metres away on the +z axis and
    looking toward −z at the origin. SMPL bodies face +z, so it sees their front; image right is world
    +x and image down is world −y. Novel views rotate the body, not this camera."""
    check_positive_int(batch_size, "batch_size")
    dtype = dtype or torch.get_default_dtype()
    position = torch.tensor([[0.0, 0.0, FIXED_CAMERA_DISTANCE]], device=device, dtype=dtype).expand(batch_size, 3)
    return perspective_camera(position, focal=FIXED_CAMERA_FOCAL, device=device, dtype=dtype)
