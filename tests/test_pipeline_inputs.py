"""``SemanticHumanPipeline.check_inputs`` and the settings checked when a pipeline is built: every bad
argument fails before any work, with one answer per kind of value (``semantichuman_hd.checks``)."""

from __future__ import annotations

import json

import pytest
import torch

from semantichuman_hd.parts import NUM_PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import MAX_ABS_BETAS, MAX_RENDER_RESOLUTION, SemanticHumanPipeline


@pytest.fixture(scope="module")
def pipe():
    pipe = SemanticHumanPipeline.from_preset("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture()
def no_work(pipe, monkeypatch):
    """Fail the test if the pipeline starts posing bodies or mapping latents."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(pipe, "_pose_bodies", refuse)
    monkeypatch.setattr(pipe.mapper, "forward", refuse)
    return pipe


BAD_CALLS = {
    "empty latents": (lambda z: dict(latents=torch.zeros(0, NUM_PARTS, z)), r"`latents` must not be empty, got shape \(0, 6, \d+\)"),
    "integer latents": (lambda z: dict(latents=torch.zeros(1, NUM_PARTS, z, dtype=torch.long)), r"`latents` must be a floating-point tensor"),
    "seed as generator": (lambda z: dict(generator=42), r"`generator` must be a torch.Generator or None, got int 42"),
    "extreme betas": (lambda z: dict(betas=torch.full((10,), 1e6)), rf"`betas` must lie in \[-{MAX_ABS_BETAS:g}, {MAX_ABS_BETAS:g}\]"),
    "truncation_psi True": (lambda z: dict(truncation_psi=True), r"`truncation_psi` must be a finite number, got True"),
    "view_angle True": (lambda z: dict(view_angle=True), r"`view_angle` must be a number or a \(B,\) tensor of radians, got True"),
    "bad resolution with latents": (lambda z: dict(latents=torch.zeros(1, NUM_PARTS, z), resolution="hd"), r"`resolution` must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_call_refuses_before_any_work(no_work, case):
    make_kwargs, message = BAD_CALLS[case]
    with pytest.raises(ValueError, match=message):
        no_work(**make_kwargs(no_work.z_dim), output_type="pt")


def test_betas_at_the_bound_are_accepted(pipe):
    edge = torch.full((10,), MAX_ABS_BETAS)
    pipe.check_inputs(1, None, None, None, edge, None, 0.0, None, "low", "pt")


def test_sample_latents_refuses_a_seed(pipe):
    with pytest.raises(ValueError, match=r"`generator` must be a torch.Generator"):
        pipe.sample_latents(1, generator=7)


def test_export_mesh_refuses_extreme_betas(pipe):
    latents = torch.zeros(1, NUM_PARTS, pipe.z_dim)
    with pytest.raises(ValueError, match=r"`betas` must lie in"):
        pipe.export_mesh(latents, betas=torch.full((10,), -1e6), grid_resolution=8)


def test_absurd_resolution_fails_when_built(pipe):
    with pytest.raises(ValueError, match=rf"`high_resolution` must be at most {MAX_RENDER_RESOLUTION}, got 1000000"):
        SemanticHumanPipeline.from_preset("tiny", low_resolution=1000, high_resolution=10**6)
    with pytest.raises(ValueError, match=r"`truncation_psi` must be a finite number, got True"):
        SemanticHumanPipeline.from_preset("tiny", truncation_psi=True)
    with pytest.raises(ValueError, match=r"`num_importance` must be a non-negative integer"):
        SemanticHumanPipeline.from_preset("tiny", num_importance=-1)


def test_absurd_resolution_fails_when_loaded(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    index = json.loads(index_path.read_text())
    index["high_resolution"] = 10**6
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"`high_resolution` must be at most {MAX_RENDER_RESOLUTION}"):
        SemanticHumanPipeline.from_pretrained(tmp_path)
