"""Decoder queries of the 3D-aware super-resolution renderer (docs/method.md §5).

The guided high-resolution render decodes at most :data:`NUM_GUIDED_SAMPLES` (11) samples per foreground
pixel in ``"argmax"`` mode (11 × the selected parts in ``"threshold"`` mode) and nothing at all on the
background, where brute-force rendering (the stage-1 sampler, 36 + 36 samples, every part) asks for
72 × 6 = 432 per pixel. Queries are attributed to pixels by projecting the points the field is asked
at back into the image, and the per-point counts are checked against the decoders' own counters.
"""

from __future__ import annotations

import pytest
import torch

from semantichuman_hd.models.triplane import count_decoder_queries
from semantichuman_hd.parts import NUM_PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline
from semantichuman_hd.rendering.cameras import fixed_camera
from semantichuman_hd.rendering.fields import FieldOutput
from semantichuman_hd.rendering.guided_sampling import NUM_GUIDED_SAMPLES, select_parts
from semantichuman_hd.rendering.ray_sampler import ray_box_intersection

LOW_RESOLUTION = 16
HIGH_RESOLUTION = 64
SCALE = HIGH_RESOLUTION // LOW_RESOLUTION
NUM_STRATIFIED = 36
NUM_IMPORTANCE = 36
BRUTE_FORCE_QUERIES_PER_RAY = (NUM_STRATIFIED + NUM_IMPORTANCE) * NUM_PARTS  # 432 (docs/method.md §4)


class RecordingField:
    """A posed part field that remembers every query: the posed points (what the deformer solves for)
    and, per point, which parts were decoded (finite sdf; the posed field returns ``-inf`` for every
    (point, part) pair it does not decode)."""

    def __init__(self, field):
        self.field = field
        self.num_parts = field.num_parts
        self.points: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []

    def __call__(self, points: torch.Tensor, part_mask: torch.Tensor | None = None) -> FieldOutput:
        output = self.field(points, part_mask)
        self.points.append(points.detach())
        self.decoded.append(torch.isfinite(output.sdf.detach()))
        return output

    def __getattr__(self, name: str):
        return getattr(self.field, name)  # posed, deformer, ... of the wrapped field

    def per_pixel(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For batch element 0 of a ``size × size`` fixed-camera render: ``(size², )`` counts of points
        queried and of (point, part) pairs decoded per pixel, and the ``(size², K)`` parts decoded at any
        point of each pixel."""
        points = torch.cat(self.points, 1)[:1]
        decoded = torch.cat(self.decoded, 1)[0]
        uv, _ = fixed_camera(1).project(points)
        column = (uv[0, :, 0] * size).floor().long().clamp(0, size - 1)
        row = (uv[0, :, 1] * size).floor().long().clamp(0, size - 1)
        pixel = row * size + column
        points_per_pixel = torch.bincount(pixel, minlength=size * size)
        pairs_per_pixel = torch.bincount(pixel, weights=decoded.sum(-1).double(), minlength=size * size).long()
        parts_per_pixel = torch.zeros(size * size, decoded.shape[-1], dtype=torch.long).index_add_(0, pixel, decoded.long()) > 0
        return points_per_pixel, pairs_per_pixel, parts_per_pixel


def render_recorded(pipe, monkeypatch, call):
    """Run ``call()`` with the pipeline's HR field wrapped in a :class:`RecordingField`; returns the
    render, the recording and the HR decoders' query count."""
    recordings = []
    generator = pipe.generator_model
    original = generator.field

    def recording_field(posed, planes, stage=1):
        if stage == 1:
            return original(posed, planes, stage)
        recordings.append(RecordingField(original(posed, planes, stage)))
        return recordings[-1]

    with monkeypatch.context() as patch, count_decoder_queries(pipe.super_resolution) as counter:
        patch.setattr(generator, "field", recording_field)
        output = call()
    assert len(recordings) == 1
    return output, recordings[0], counter.total


@pytest.fixture(scope="module")
def scene(open_body):
    pipe = SemanticHumanPipeline.from_preset(
        "tiny",
        low_resolution=LOW_RESOLUTION,
        high_resolution=HIGH_RESOLUTION,
        num_stratified=NUM_STRATIFIED,
        num_importance=NUM_IMPORTANCE,
    )
    pipe.set_body_model(open_body)
    with torch.no_grad():
        posed = pipe._pose_bodies(1, None, None, None, 0.0)
        ws = pipe.mapper(pipe.sample_latents(1, torch.Generator().manual_seed(0)))
        low, lr = pipe.render_low(ws, posed)
    return pipe, posed, ws, lr, low


@pytest.fixture(scope="module")
def renders(scene):
    """The HR render of each selection mode and the brute-force one, recorded."""
    pipe, posed, ws, lr, low = scene
    results = {}
    with pytest.MonkeyPatch.context() as monkeypatch, torch.no_grad():
        for mode in ("argmax", "threshold"):
            pipe.register_to_config(selection_mode=mode)
            results[mode] = render_recorded(pipe, monkeypatch, lambda: pipe.render_high(ws, posed, lr, low))
        pipe.register_to_config(selection_mode="threshold")
        results["brute_force"] = render_recorded(pipe, monkeypatch, lambda: pipe.render_high(ws, posed, lr, None, guided=False))
    return results


def guided_parts(low, mode: str) -> torch.Tensor:
    """``(H·W, K)`` the parts the stage-1 guidance selects at each HR pixel (batch element 0)."""
    masks = low.to_images(LOW_RESOLUTION, LOW_RESOLUTION).part_masks
    return select_parts(masks, SCALE, mode=mode)[0].flatten(1).T


@pytest.mark.parametrize("mode", ["argmax", "threshold"])
def test_background_pixels_cost_nothing_and_foreground_pixels_at_most_11_samples(scene, renders, mode):
    _, _, _, _, low = scene
    output, recording, decoder_queries = renders[mode]
    parts = guided_parts(low, mode)
    foreground = parts.any(-1)
    assert 0 < foreground.sum() < foreground.numel()  # the guidance has both kinds of pixels

    points, pairs, decoded_parts = recording.per_pixel(HIGH_RESOLUTION)
    # Every decoded pair is attributed to a pixel, and the decoders counted exactly these.
    assert pairs.sum().item() == decoder_queries > 0
    # Background: not deformed (no root finding), not decoded, rendered empty.
    assert points[~foreground].sum() == 0
    assert pairs[~foreground].sum() == 0
    assert (output.alpha[0, ~foreground] == 0).all()
    # Foreground: the 11 guided samples, decoding only the parts selected for the pixel.
    assert (points[foreground] == NUM_GUIDED_SAMPLES).all()
    assert not (decoded_parts & ~parts).any()
    assert (pairs <= NUM_GUIDED_SAMPLES * parts.sum(-1)).all()
    if mode == "argmax":
        assert (parts.sum(-1) == foreground.long()).all()
        assert (pairs <= NUM_GUIDED_SAMPLES).all()
    # The renderer's own count (pairs requested) bounds the decoded ones (culled points are not decoded).
    assert decoder_queries <= output.num_field_queries <= NUM_GUIDED_SAMPLES * parts.sum()


def test_brute_force_asks_432_queries_per_pixel(scene, renders):
    pipe, posed, _, _, _ = scene
    output, recording, decoder_queries = renders["brute_force"]
    origins, directions = fixed_camera(1).generate_rays(HIGH_RESOLUTION, HIGH_RESOLUTION)
    box_min, box_max = posed.bounds(margin=pipe.deformer.cull_distance)
    _, _, hit = ray_box_intersection(origins, directions, box_min, box_max)
    hit = hit[0]

    points, pairs, _ = recording.per_pixel(HIGH_RESOLUTION)
    assert output.num_field_queries == BRUTE_FORCE_QUERIES_PER_RAY * hit.sum().item()
    assert (points[hit] == NUM_STRATIFIED + NUM_IMPORTANCE).all() and points[~hit].sum() == 0
    assert pairs.sum().item() == decoder_queries
    assert 0 < decoder_queries <= output.num_field_queries


def test_guided_sampling_saves_most_decoder_queries(scene, renders):
    _, _, _, _, low = scene
    argmax, threshold, brute_force = (renders[name][2] for name in ("argmax", "threshold", "brute_force"))
    foreground = guided_parts(low, "argmax").any(-1).sum().item()
    selected = guided_parts(low, "threshold").sum().item()
    # argmax decodes one part per sample; threshold adds the other parts above the weight threshold.
    assert argmax <= threshold <= NUM_GUIDED_SAMPLES * selected <= NUM_GUIDED_SAMPLES * NUM_PARTS * foreground
    # Per foreground pixel, against 432 asked for by brute force on every pixel whose ray meets the box
    # (the decoders see fewer after culling: measured here at about 1/3 of them).
    assert argmax / foreground <= NUM_GUIDED_SAMPLES
    assert threshold / foreground <= NUM_GUIDED_SAMPLES * NUM_PARTS < BRUTE_FORCE_QUERIES_PER_RAY
    assert argmax < brute_force / 10
    assert threshold < brute_force / 2
