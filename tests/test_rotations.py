import math

import pytest
import torch

from semantichuman_hd.body.rotations import amass_root_to_smpl, axis_angle_to_matrix, matrix_to_axis_angle, yaw_global_orient


def test_round_trip_including_near_zero_and_near_pi():
    generator = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=-1)
    angles = torch.cat([torch.rand(60, generator=generator) * math.pi, torch.tensor([0.0, 1e-8, math.pi - 1e-7, math.pi])])
    matrices = axis_angle_to_matrix(axes * angles.unsqueeze(-1))
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(matrices)), matrices, atol=1e-5)


def test_yaw_turns_the_front_to_the_side():
    turned = yaw_global_orient(torch.zeros(2, 3), math.pi / 2)
    front = torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(axis_angle_to_matrix(turned) @ front, torch.tensor([1.0, 0.0, 0.0]).expand(2, 3), atol=1e-6)
    with pytest.raises(ValueError, match="view_angle"):
        yaw_global_orient(torch.zeros(2, 3), torch.zeros(3))


def test_amass_root_fix_makes_z_up_y_up():
    upright = axis_angle_to_matrix(amass_root_to_smpl(torch.zeros(1, 3)))
    assert torch.allclose(upright[0] @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
