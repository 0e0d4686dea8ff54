"""Axis-angle helpers for SMPL orientations (novel views and animation turn the body, not the camera)."""

from __future__ import annotations

import math

import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: ``(..., 3)`` axis-angle → ``(..., 3, 3)`` rotation matrices."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    axis = axis_angle / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(skew.shape)
    sin = torch.sin(angle).unsqueeze(-1)
    cos = torch.cos(angle).unsqueeze(-1)
    return eye + sin * skew + (1 - cos) * (skew @ skew)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` rotation matrices → ``(..., 3)`` axis-angle (angle in [0, π])."""
    trace = matrix[..., 0, 0] + matrix[..., 1, 1] + matrix[..., 2, 2]
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    vector = torch.stack(
        [matrix[..., 2, 1] - matrix[..., 1, 2], matrix[..., 0, 2] - matrix[..., 2, 0], matrix[..., 1, 0] - matrix[..., 0, 1]], dim=-1
    )
    sin = vector.norm(dim=-1) / 2
    angle = torch.atan2(sin, cos)  # precise at every angle, unlike acos near π
    axis = vector / (2 * sin.clamp_min(1e-12)).unsqueeze(-1)
    # Past 120° the vector part loses precision; the symmetric part (1 − cos)·k·kᵀ gives the axis,
    # and the vector part (2·sin·k) its sign.
    obtuse = cos < -0.5
    if obtuse.any():
        eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
        outer = (matrix + matrix.transpose(-1, -2)) / 2 - cos[..., None, None] * eye
        largest = torch.diagonal(outer, dim1=-2, dim2=-1).argmax(-1)
        column = outer.gather(-1, largest[..., None, None].expand(*outer.shape[:-1], 1)).squeeze(-1)
        column = column / column.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sign = torch.where((column * vector).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(matrix.dtype)
        axis = torch.where(obtuse.unsqueeze(-1), column * sign, axis)
    result = axis * angle.unsqueeze(-1)
    # Near 0 the vector part is 2·sin·axis ≈ 2·angle·axis.
    return torch.where(((sin.abs() < 1e-6) & (cos >= 0)).unsqueeze(-1), vector / 2, result)


def yaw_global_orient(global_orient: torch.Tensor, angle) -> torch.Tensor:
    """Turn bodies about the world's vertical (y) axis by ``angle`` radians (scalar or ``(B,)``):
    returns the new ``(B, 3)`` global orientation ``R_y(angle) · R(global_orient)``."""
    angle = torch.as_tensor(angle, dtype=global_orient.dtype, device=global_orient.device).reshape(-1)
    if angle.numel() not in (1, global_orient.shape[0]):
        raise ValueError(f"`view_angle` must be a scalar or have one value per body ({global_orient.shape[0]}), got {angle.numel()}.")
    yaw = torch.zeros(angle.numel(), 3, dtype=global_orient.dtype, device=global_orient.device)
    yaw[:, 1] = angle
    return matrix_to_axis_angle(axis_angle_to_matrix(yaw) @ axis_angle_to_matrix(global_orient))


def amass_root_to_smpl(root_orient: torch.Tensor) -> torch.Tensor:
    """AMASS's world is z-up: turn root orientations by −90° about x to stand upright in SMPL's y-up frame."""
    fix = torch.tensor([-math.pi / 2, 0.0, 0.0], dtype=root_orient.dtype, device=root_orient.device)
    return matrix_to_axis_angle(axis_angle_to_matrix(fix) @ axis_angle_to_matrix(root_orient))
