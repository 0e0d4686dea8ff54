"""Inverse linear blend skinning: posed → canonical round trips, culling, differentiability."""

import pytest
import torch

from semantichuman_hd.body.body_model import random_plausible_pose
from semantichuman_hd.body.deformer import CULL_DISTANCE, SOLVER_TOLERANCE, InverseLBSDeformer
from semantichuman_hd.body.poses import NAMED_POSES

NUM_BODIES = 3


@pytest.fixture(scope="module")
def posed(open_body_deformer):
    generator = torch.Generator().manual_seed(0)
    poses = torch.cat([NAMED_POSES["walking"][None], random_plausible_pose(NUM_BODIES - 1, generator)])
    betas = torch.randn(NUM_BODIES, 10, generator=generator)
    orient = torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.1, -1.0, 0.0]])
    transl = torch.tensor([[0.0, 0.2, 0.0], [0.1, 0.0, -0.3], [0.0, 0.0, 0.0]])
    return open_body_deformer.pose(betas=betas, body_pose=poses, global_orient=orient, transl=transl)


def near_surface_points(deformer, count, max_offset, generator):
    canonical = deformer.body_model.canonical_vertices()
    index = torch.randint(0, canonical.shape[0], (NUM_BODIES, count), generator=generator)
    direction = torch.nn.functional.normalize(torch.randn(NUM_BODIES, count, 3, generator=generator), dim=-1)
    return canonical[index] + direction * max_offset * torch.rand(NUM_BODIES, count, 1, generator=generator)


def test_culling_keeps_every_surface_point(open_body_deformer, posed):
    out = open_body_deformer.posed_to_canonical(posed.vertices, posed)
    assert out.valid.all()
    # Each posed vertex maps near its own canonical vertex (the deformer models SMPL's skinning).
    error = (out.canonical - open_body_deformer.body_model.canonical_vertices()).norm(dim=-1)
    assert error.median() < 5e-3


def test_round_trip_near_surface(open_body_deformer, posed):
    generator = torch.Generator().manual_seed(1)
    canonical = near_surface_points(open_body_deformer, 3000, 0.03, generator)
    posed_points = open_body_deformer.canonical_to_posed(canonical, posed)
    back = open_body_deformer.posed_to_canonical(posed_points, posed)
    assert back.valid.all()
    error = (back.canonical - canonical).norm(dim=-1)
    # Every solution reproduces its posed point ...
    remapped = open_body_deformer.canonical_to_posed(back.canonical, posed)
    assert (remapped - posed_points).norm(dim=-1).max() < 10 * SOLVER_TOLERANCE
    # ... and recovers the original canonical point below 1e-3, except where the pose brings two body
    # regions into contact (e.g. inner thighs): there a second canonical point maps to the same posed
    # point, and the deformer's rule picks the preimage nearest the canonical body surface.
    recovered = error < 1e-3
    prior = open_body_deformer.sdf_prior
    other_preimage = prior(back.canonical).abs() <= prior(canonical).abs() + 1e-6
    assert (recovered | other_preimage).all()
    assert recovered.float().mean() > 0.99


def test_far_points_are_culled(open_body_deformer, posed):
    box_min, box_max = posed.bounds(margin=0.0)
    far = torch.stack([box_max + 0.5, box_min - 0.5, (box_min + box_max) / 2 + torch.tensor([0.0, 0.0, 0.4])], dim=1)
    out = open_body_deformer.posed_to_canonical(far, posed)
    # Two points outside the grown box, and one in front of the torso farther than the cull distance.
    assert not out.valid[:, :2].any()
    front = out.valid[:, 2]
    prior = open_body_deformer.sdf_prior(out.canonical[:, 2])
    assert torch.all(~front | (prior.abs() <= CULL_DISTANCE))


def test_gradient_is_the_inverse_skinning_jacobian(open_body_deformer, posed):
    generator = torch.Generator().manual_seed(2)
    canonical = near_surface_points(open_body_deformer, 4, 0.02, generator)
    points = open_body_deformer.canonical_to_posed(canonical, posed).requires_grad_(True)
    out = open_body_deformer.posed_to_canonical(points, posed)
    (grad,) = torch.autograd.grad(out.canonical[..., 0].sum(), points)
    eps = 1e-3
    for axis in range(3):
        shift = torch.zeros(3)
        shift[axis] = eps
        plus = open_body_deformer.posed_to_canonical(points.detach() + shift, posed).canonical[..., 0]
        minus = open_body_deformer.posed_to_canonical(points.detach() - shift, posed).canonical[..., 0]
        finite = (plus - minus) / (2 * eps)
        assert torch.allclose(grad[..., axis], finite, atol=0.02)


def test_bad_points_shape(open_body_deformer, posed):
    with pytest.raises(ValueError, match="points"):
        open_body_deformer.posed_to_canonical(torch.zeros(NUM_BODIES, 5, 2), posed)
    with pytest.raises(ValueError, match="points"):
        open_body_deformer.posed_to_canonical(torch.zeros(NUM_BODIES + 1, 5, 3), posed)


def test_skinning_grids_are_cached_and_identical(open_body, open_body_deformer, isolated_cache):
    from pathlib import Path

    from semantichuman_hd.body.deformer import InverseLBSDeformer

    files = list((Path(isolated_cache) / "skinning").glob("skinning_*.safetensors"))
    assert len(files) == 1
    again = InverseLBSDeformer(open_body, open_body_deformer.sdf_prior)
    for name in ("weights_grid", "shape_grid"):
        first, second = getattr(open_body_deformer, name), getattr(again, name)
        assert torch.equal(first.values, second.values) and torch.equal(first.box_min, second.box_min), name
    files[0].write_bytes(b"not safetensors")
    rebuilt = InverseLBSDeformer(open_body, open_body_deformer.sdf_prior)
    assert torch.equal(rebuilt.weights_grid.values, open_body_deformer.weights_grid.values)


def test_compiled_solver_solves_as_the_eager_one(open_body, posed):
    """``compile_solver`` (torch.compile of the Newton iterations) gives the eager solutions up to
    rounding; a compiled solver that fails warns and falls back to the eager one."""
    deformer = InverseLBSDeformer.from_body_model(open_body)  # its own, so the shared fixture stays eager
    generator = torch.Generator().manual_seed(5)
    canonical = near_surface_points(deformer, 700, 0.08, generator)  # 2,100 points: one set, then stragglers
    points = deformer.canonical_to_posed(canonical, posed)
    eager = deformer.posed_to_canonical(points, posed)
    assert deformer.compile_solver()
    compiled = deformer.posed_to_canonical(points, posed)
    assert torch.equal(compiled.valid, eager.valid)
    torch.testing.assert_close(compiled.canonical, eager.canonical, atol=1e-5, rtol=0)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    deformer._compiled_update = broken
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        fallback = deformer.posed_to_canonical(points, posed)
    assert deformer._compiled_update is None
    assert torch.equal(fallback.canonical, eager.canonical) and torch.equal(fallback.valid, eager.valid)
    assert not deformer.compile_solver(False)


def test_mask_solves_only_the_selected_points(open_body_deformer, posed):
    generator = torch.Generator().manual_seed(6)
    points = open_body_deformer.canonical_to_posed(near_surface_points(open_body_deformer, 400, 0.05, generator), posed)
    full = open_body_deformer.posed_to_canonical(points, posed)
    mask = torch.rand(points.shape[:2], generator=generator) < 0.5
    part = open_body_deformer.posed_to_canonical(points, posed, mask=mask)
    torch.testing.assert_close(part.canonical[mask], full.canonical[mask], atol=1e-6, rtol=0)
    assert torch.equal(part.valid[mask], full.valid[mask])
    assert not part.valid[~mask].any() and torch.equal(part.canonical[~mask], points[~mask])  # as culled points
    nothing = open_body_deformer.posed_to_canonical(points, posed, mask=torch.zeros_like(mask))
    assert not nothing.valid.any() and torch.equal(nothing.canonical, points)
    with pytest.raises(ValueError, match="mask"):
        open_body_deformer.posed_to_canonical(points, posed, mask=mask.float())


def test_starting_at_earlier_solutions_gives_them_back_in_one_iteration(open_body_deformer, posed, monkeypatch):
    generator = torch.Generator().manual_seed(7)
    points = open_body_deformer.canonical_to_posed(near_surface_points(open_body_deformer, 300, 0.05, generator), posed)
    points = torch.cat([points, posed.bounds()[1].unsqueeze(1) + 0.3], 1)  # and one culled point per body
    first = open_body_deformer.posed_to_canonical(points, posed)
    assert first.valid[:, :-1].float().mean() > 0.99 and not first.valid[:, -1].any()
    rows = []
    update = open_body_deformer._update
    monkeypatch.setattr(open_body_deformer, "_update", lambda x, *args: rows.append(x.shape[0]) or update(x, *args))
    query = points.detach().requires_grad_(True)
    again = open_body_deformer.posed_to_canonical(query, posed, starts=first.canonical)
    valid = first.valid
    assert torch.equal(again.valid, valid)
    torch.testing.assert_close(again.canonical[valid], first.canonical[valid], atol=1e-6, rtol=0)
    assert rows == [int(valid.sum())]  # every start had converged already: one evaluation each, no step
    # Still differentiable: the gradient of a canonical coordinate is the inverse skinning Jacobian's row.
    (gradient,) = torch.autograd.grad(again.canonical[valid][:, 0].sum(), query)
    reference = points.detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(open_body_deformer.posed_to_canonical(reference, posed).canonical[valid][:, 0].sum(), reference)
    torch.testing.assert_close(gradient, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="starts"):
        open_body_deformer.posed_to_canonical(points, posed, starts=first.canonical[:, :5])
