"""The posed scene (deformer + prior + canonical part fields as one posed field) and ``render-body``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semantichuman_hd.body.deformer import SOLVER_TOLERANCE
from semantichuman_hd.body.poses import named_pose
from semantichuman_hd.cli import main
from semantichuman_hd.rendering.cameras import fixed_camera
from semantichuman_hd.rendering.volume_renderer import VolumeRenderer
from semantichuman_hd.scene import PosedPartField, body_only_field, centering_transl, pack_rows, render_posed_field


def test_pack_rows_gathers_true_entries_in_order():
    valid = torch.tensor([[False, True, False, True], [True, False, False, False]])
    index, present = pack_rows(valid)
    assert index.shape == (2, 2)
    assert present.tolist() == [[True, True], [True, False]]
    assert index[0].tolist() == [1, 3]
    assert index[1, 0].item() == 0


@pytest.fixture(scope="module")
def walking(open_body_deformer):
    pose = named_pose("walking").unsqueeze(0)
    placed = open_body_deformer.body_model(body_pose=pose)
    return open_body_deformer.pose(body_pose=pose, transl=centering_transl(placed.vertices))


def test_centering_transl_centres_the_box(open_body_deformer, walking):
    lo, hi = walking.vertices.amin(1), walking.vertices.amax(1)
    assert torch.allclose((lo + hi) / 2, torch.zeros(1, 3), atol=1e-5)


def test_body_field_is_zero_on_the_posed_surface_and_empty_far_away(open_body_deformer, walking):
    field = PosedPartField(open_body_deformer, walking, body_only_field, num_parts=1)
    surface = walking.vertices[:, ::50]
    far = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])
    out = field(torch.cat([surface, far], 1))
    n = surface.shape[1]
    assert out.sdf.shape == (1, n + 2, 1)
    assert out.valid[0, :n].float().mean() > 0.99
    assert out.sdf[0, :n][out.valid[0, :n]].abs().median() < 0.01
    assert torch.isinf(out.sdf[0, n:]).all() and (out.sdf[0, n:] < 0).all()


def test_body_prior_is_read_only_where_the_solve_succeeded(open_body_deformer, walking, monkeypatch):
    """Culled points (far from the body, or left out by the part mask) never reach the body prior; the
    field's SDF and validity are the prior's at the solved points, with its gradient in the posed points."""
    prior = open_body_deformer.sdf_prior
    read, forward = [], prior.forward

    def counted(points):
        read.append(points.shape[:-1].numel())
        return forward(points)

    field = PosedPartField(open_body_deformer, walking, body_only_field, num_parts=1)
    surface = walking.vertices[:, ::50] + 0.02 * torch.randn(1, walking.vertices[:, ::50].shape[1], 3, generator=torch.Generator().manual_seed(0))
    points = torch.cat([surface, torch.tensor([[[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -2.0]]])], 1).requires_grad_(True)
    deformed = open_body_deformer.posed_to_canonical(points.detach(), walking)
    expected = prior(deformed.canonical)
    monkeypatch.setattr(prior, "forward", counted)
    out = field(points)
    assert read[-1] == int(deformed.valid.sum()) < points.shape[1]  # the solver's own check, then the field's
    valid = deformed.valid & (expected.abs() <= field.shell_width)
    assert torch.equal(out.valid, valid)
    torch.testing.assert_close(out.sdf[..., 0][valid], expected[valid], atol=1e-4, rtol=0)
    (gradient,) = torch.autograd.grad(out.sdf[..., 0][valid].sum(), points)
    assert gradient[0, :-3].norm(dim=-1).gt(0.5).float().mean() > 0.9 and torch.equal(gradient[0, -3:], torch.zeros(3, 3))


def test_part_mask_limits_the_decoded_points(open_body_deformer, walking):
    seen = []

    def field_fn(points, mask):
        seen.append(mask.sum().item())
        return body_only_field(points, mask)

    field = PosedPartField(open_body_deformer, walking, field_fn, num_parts=1)
    points = walking.vertices[:, ::200]
    mask = torch.zeros(1, points.shape[1], 1, dtype=torch.bool)
    mask[0, ::2] = True
    out = field(points, mask)
    assert torch.isinf(out.sdf[0, 1::2]).all()
    assert seen[0] <= int(mask.sum())


def test_render_body_silhouette_matches_the_mesh(open_body_deformer, walking):
    size = 24
    field = PosedPartField(open_body_deformer, walking, body_only_field, num_parts=1)
    with torch.no_grad():
        images = render_posed_field(VolumeRenderer(), field, fixed_camera(1), size, size, beta=0.004).to_images(size, size)
    covered = images.alpha[0, 0] > 0.5
    # Project the posed vertices: every pixel they land in is covered.
    pixels = fixed_camera(1).project(walking.vertices)[0][..., :2]  # normalised [0, 1] image coordinates
    cols = (pixels[:, 0] * size).long().clamp(0, size - 1)
    rows = (pixels[:, 1] * size).long().clamp(0, size - 1)
    assert covered[rows, cols].float().mean() > 0.95
    assert 0.05 < covered.float().mean() < 0.5


def test_render_body_command(tmp_path, capsys):
    out = tmp_path / "body.png"
    assert main(["render-body", "--out", str(out), "--resolution", "16"]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (32, 64, 3)
    assert (sheet < 200).any() and (sheet == 255).any()
    assert "s per 16² image" in capsys.readouterr().out


def test_render_body_rejects_bad_resolution(tmp_path, capsys):
    assert main(["render-body", "--out", str(tmp_path / "x.png"), "--resolution", "0"]) == 2
    assert "`--resolution` must be a positive integer (pixels per tile side), got 0" in capsys.readouterr().err


def test_make_body_model_command(tmp_path):
    out = tmp_path / "open_body.pkl"
    assert main(["make-body-model", "--out", str(out)]) == 0
    assert out.stat().st_size > 100_000


def test_half_precision_fields_are_promoted(open_body_deformer, walking):
    def half_field(points, mask):
        delta, logits = body_only_field(points, mask)
        return (delta + 0.01).half(), (logits + 1).half()

    field = PosedPartField(open_body_deformer, walking, half_field, num_parts=1)
    out = field(walking.vertices[:, ::100])
    assert out.sdf.dtype == torch.float32 and out.rgb_logits.dtype == torch.float32
    assert torch.allclose(out.rgb_logits[out.valid], torch.ones(1, 3))


def test_normals_requery_starts_the_solve_at_the_samples_solutions(open_body_deformer, walking, monkeypatch):
    """The posed field's hints are its canonical solutions: the renderer's normals re-query hands them
    back, the solver stops at its first evaluation there, and the render equals one without hints."""

    class WithoutHints(PosedPartField):
        def __call__(self, points, part_mask=None):
            output = super().__call__(points, part_mask)
            return type(output)(sdf=output.sdf, rgb_logits=output.rgb_logits, valid=output.valid)

    renderer = VolumeRenderer(num_stratified=12, num_importance=8, normal_min_weight=0.1)
    renders, rows = {}, {}
    for name, kind in (("hints", PosedPartField), ("none", WithoutHints)):
        counted = []
        update = open_body_deformer._update
        monkeypatch.setattr(open_body_deformer, "_update", lambda x, *args: counted.append(x.shape[0]) or update(x, *args))
        with torch.no_grad():
            renders[name] = render_posed_field(renderer, kind(open_body_deformer, walking, body_only_field, num_parts=1), fixed_camera(1), 20, 20, beta=0.01)
        monkeypatch.undo()
        rows[name] = sum(counted)
    for key in ("rgb", "alpha", "depth"):
        assert torch.equal(getattr(renders["hints"], key), getattr(renders["none"], key))
    # A solve started afresh stops anywhere within the solver's tolerance of the sample's solution.
    torch.testing.assert_close(renders["hints"].normals, renders["none"].normals, atol=100 * SOLVER_TOLERANCE, rtol=0)
    assert float(renders["hints"].alpha.amax()) > 0.9
    assert rows["hints"] < rows["none"]
