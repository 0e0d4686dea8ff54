"""The trained ``demo`` checkpoint bundled in the package: small fp16 safetensors that load offline by
default, and people that are not degenerate (they vary, wear every part, fill a plausible share of the
picture, and a swapped part changes nothing outside its masks)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from semantichuman_hd import SemanticHumanPipeline
from semantichuman_hd.evaluation.pictures import label_maps
from semantichuman_hd.evaluation.structure import MASK_THRESHOLD, disentanglement
from semantichuman_hd.hub import BUNDLED_MAX_BYTES, BUNDLED_MODEL_DIR, BUNDLED_VARIANT, PIPELINE_INDEX, SOURCE_PATH_KEY, variant_name, WEIGHTS_NAME
from semantichuman_hd.parts import PARTS
from semantichuman_hd.presets import get_preset

ROOT = Path(__file__).resolve().parent.parent
NUM_SEEDS = 16
MIN_PART_PIXELS = 4
"""Least pixels (of 64²) a part must cover in at least one of the 16 people to count as appearing."""
COVERAGE_RANGE = (0.03, 0.5)
"""Share of the picture each person may cover (the procedural data's people cover about 14%)."""
MIN_PIXEL_STD = 0.02
"""Least mean (over pixels) standard deviation of the image across seeds: the people differ."""
SWAP_OUTSIDE_MAX = 2 * MASK_THRESHOLD
"""Most a swap may change an image or normal-picture pixel outside the part's masks: a part below
``MASK_THRESHOLD`` of a pixel moves it by about its weight there (its colour, and the light it takes from
what lies behind), before and after the swap."""
SWAP_OUTSIDE_MEAN = 1e-4
"""Mean change outside the part's masks (almost every outside pixel changes by nothing at all)."""
SWAP_INSIDE_MEAN = 0.05
"""Least mean change inside the part's masks: the swapped garment is another garment."""
SWAP_OUTSIDE_DEPTH_M = 2e-3
"""Most a swap may move the depth of a covered pixel outside the part's masks (metres): a sub-threshold
weight shifts the mean depth by a few percent of the part's distance to the surface."""


@pytest.fixture(scope="module")
def pipe():
    return SemanticHumanPipeline.from_pretrained()


@pytest.fixture(scope="module")
def people(pipe):
    with torch.no_grad():
        return pipe(num_images=NUM_SEEDS, generator=torch.Generator().manual_seed(0), output_type="pt")


def test_the_bundled_checkpoint_is_small_fp16_and_the_default(pipe, monkeypatch):
    files = [path for path in BUNDLED_MODEL_DIR.rglob("*") if path.is_file()]
    assert (BUNDLED_MODEL_DIR / PIPELINE_INDEX).is_file()
    assert sum(path.stat().st_size for path in files) <= BUNDLED_MAX_BYTES
    weights = [path for path in files if path.suffix == ".safetensors"]
    assert sorted(path.parent.name for path in weights) == ["local_generators", "mapper", "super_resolution"]
    for path in weights:
        assert path.name == variant_name(WEIGHTS_NAME, BUNDLED_VARIANT)
        with safe_open(path, "pt") as handle:
            assert {handle.get_slice(key).get_dtype() for key in handle.keys()} == {"F16"}, path
    assert not [path for path in files if path.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    for path in files:  # no path of the machine that trained it
        if path.suffix == ".json":
            assert SOURCE_PATH_KEY not in json.loads(path.read_text()), path
    # Loaded as float32, with the demo preset's architecture, without the network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = SemanticHumanPipeline.from_pretrained()
    assert {p.dtype for p in offline.components["local_generators"].parameters()} == {torch.float32}
    demo = get_preset("demo")
    assert offline.config.low_resolution == demo.low_resolution and offline.config.high_resolution == demo.high_resolution
    assert all(offline.mapper.config[key] == value for key, value in demo.mapper.items())
    assert pipe.config._name_or_path == str(BUNDLED_MODEL_DIR)


def test_the_bundled_checkpoint_is_installed_with_the_package():
    """Every file of the checkpoint matches the package data that pyproject.toml installs."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["semantichuman_hd"]
    package = ROOT / "semantichuman_hd"
    files = {path for path in BUNDLED_MODEL_DIR.rglob("*") if path.is_file()}
    matched = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assert files and files <= matched, sorted(str(p.relative_to(package)) for p in files - matched)


def test_the_bundled_people_are_not_degenerate(people):
    images = people.images  # (B, 3, H, W)
    assert torch.isfinite(images).all()
    assert float(images.std(0).mean()) >= MIN_PIXEL_STD, "the 16 seeds must give different people"
    flat = images.flatten(1)
    assert float(torch.cdist(flat, flat).add(torch.eye(NUM_SEEDS) * 1e9).min()) > 0, "no two seeds may give the same picture"
    labels = label_maps(people.semantic_masks, people.alpha)  # (B, H, W): 0 background, k + 1 part k
    pixels = torch.stack([(labels == k + 1).flatten(1).sum(1) for k in range(len(PARTS))], 1)  # (B, K)
    missing = [part for k, part in enumerate(PARTS) if int(pixels[:, k].max()) < MIN_PART_PIXELS]
    assert not missing, f"parts that no seed shows: {missing}"
    coverage = (labels > 0).flatten(1).float().mean(1)
    low, high = COVERAGE_RANGE
    assert bool(((coverage >= low) & (coverage <= high)).all()), coverage.tolist()


def test_swapping_a_part_changes_nothing_outside_its_masks(pipe):
    scores = disentanglement(pipe, num_pairs=2, seed=0, compositions=("sum_density",), parts=["tops", "bottoms"])["sum_density"]
    for part, sides in scores["parts"].items():
        outside, inside = sides["outside"], sides["inside"]
        for quantity in ("image", "normals"):  # at most the part's own (sub-threshold) weight there
            assert outside[quantity]["max"] <= SWAP_OUTSIDE_MAX, (part, quantity)
            assert outside[quantity]["mean"] <= SWAP_OUTSIDE_MEAN, (part, quantity)
            assert inside[quantity]["mean"] >= SWAP_INSIDE_MEAN, (part, quantity)  # the garment itself changed
        assert outside["depth"]["max"] <= SWAP_OUTSIDE_DEPTH_M, part
        assert all(outside[quantity]["pixels"] > 0 for quantity in ("image", "depth", "normals")), part


def test_a_missing_bundled_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    from semantichuman_hd import hub

    monkeypatch.setattr(hub, "BUNDLED_MODEL_DIR", tmp_path / "demo")
    with pytest.raises(FileNotFoundError, match=r"bundled demo checkpoint is missing .*from_preset\('demo'\)"):
        SemanticHumanPipeline.from_pretrained()


def test_bundle_writes_fp16_weights_and_keeps_the_old_checkpoint_when_a_check_fails(tmp_path, monkeypatch):
    from training import bundle

    source = tmp_path / "run" / "pipeline"
    SemanticHumanPipeline.from_preset("tiny", seed=3).save_pretrained(source)
    out = tmp_path / "bundled"
    record = bundle.bundle(source, out)
    assert record["fp16_psnr_db"] >= bundle.MIN_FP16_PSNR and record["bytes"] <= BUNDLED_MAX_BYTES
    assert sorted(p.name for p in out.rglob("*.safetensors")) == [variant_name(WEIGHTS_NAME, BUNDLED_VARIANT)] * 3
    loaded = SemanticHumanPipeline.from_pretrained(out, variant=BUNDLED_VARIANT, dtype=torch.float32)
    original = SemanticHumanPipeline.from_pretrained(source)
    for (name, a), (_, b) in zip(loaded.local_generators.state_dict().items(), original.local_generators.state_dict().items()):
        assert a.dtype == torch.float32 and torch.equal(a, b.half().float()), name
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(bundle, "BUNDLED_MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="may take at most 1,000"):
        bundle.bundle(SemanticHumanPipeline.from_preset("tiny", seed=4).save_pretrained(source) or source, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".partial-*"))


def test_showcase_grids_have_one_tile_per_person():
    from training import showcase

    pipe = SemanticHumanPipeline.from_preset("tiny")
    pipe.set_progress_bar_config(disable=True)
    high, low = pipe.config.high_resolution, pipe.config.low_resolution
    gap, crop = showcase.GAP, showcase.CROP_FRACTION
    samples = showcase.sample_grid(pipe, 2)
    person = int(high * crop) * 6  # image | semantics | normals, low then high
    assert samples.size == (showcase.PEOPLE_PER_ROW * (person + gap) + gap, high + 2 * gap)
    try_on = showcase.try_on_grid(pipe)
    columns = showcase.TRY_ON_PEOPLE + 1
    assert try_on.size == (columns * (int(2 * low * crop) + gap) + gap, columns * (2 * low + gap) + gap)
