"""Virtual try-on through the full pipeline changes only the swapped part's pixels.

Randomly initialised generators spread every part thinly over the whole body, so a swap would be local
only in a trivial sense. These tests give each part its own band of the canonical body instead (Δsdf =
−∞ outside the band: the part has exactly no density there), which is what a trained model's parts look
like, and then swap one part's latent between two people:

* low resolution: pixels where the part's mask is zero before and after are unchanged, in image, depth,
  normals and every mask;
* high resolution: changes stay inside the union of the part's low-resolution masks, upsampled and
  dilated by the guided sampler's footprint (the 3×3 depth neighbourhood plus the bilinear upsampling).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from semantichuman_hd import NUM_PARTS, PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline
from semantichuman_hd.rendering.guided_sampling import guided_footprint

SWAPPED = "tops"
UNCHANGED_TOLERANCE = 1e-5
TRAINED_BETA = 0.01


def _banded(decode, edges: torch.Tensor):
    """``decode`` with part k kept only where the canonical height falls in band k."""

    def banded_decode(planes, points, part_mask=None, tables=None):
        delta_sdf, rgb_logits = decode(planes, points, part_mask, tables=tables)
        band = torch.bucketize(points[..., 1].contiguous(), edges)
        own = band.unsqueeze(-1) == torch.arange(NUM_PARTS, device=points.device)
        return torch.where(own, delta_sdf, torch.full_like(delta_sdf, float("-inf"))), rgb_logits

    return banded_decode


@pytest.fixture(scope="module")
def pipe(open_body):
    pipe = SemanticHumanPipeline.from_preset("tiny", seed=0)
    pipe.set_body_model(open_body)
    pipe.set_progress_bar_config(disable=True)
    heights = open_body.canonical_vertices()[..., 1]
    edges = torch.linspace(float(heights.min()), float(heights.max()), NUM_PARTS + 1)[1:-1]
    with torch.no_grad():  # a trained model's sharp surfaces (the random initialisation's β is 0.1)
        pipe.local_generators.beta.fill_(TRAINED_BETA)
        pipe.super_resolution.beta.fill_(TRAINED_BETA)
    pipe.local_generators.decode = _banded(pipe.local_generators.decode, edges)
    pipe.super_resolution.decode = _banded(pipe.super_resolution.decode, edges)
    return pipe


@pytest.fixture(scope="module")
def people(pipe):
    generator = torch.Generator().manual_seed(3)
    person, other = pipe.sample_latents(2, generator).split(1)
    return person, pipe.swap_parts(person, other, SWAPPED)


def _render(pipe, latents, resolution):
    return pipe(latents=latents, resolution=resolution, output_type="pt")


def _changes(first, second):
    return {
        "image": (first.images - second.images).abs().amax(1)[0],
        "depth": (first.depth - second.depth).abs()[0],
        "normals": (first.normals - second.normals).abs().amax(1)[0],
        "masks": (first.semantic_masks - second.semantic_masks).abs().amax(1)[0],
    }


def test_swap_changes_only_latents_of_the_part(pipe, people):
    person, swapped = people
    k = PARTS.index(SWAPPED)
    others = [i for i in range(NUM_PARTS) if i != k]
    assert torch.equal(swapped[:, others], person[:, others])
    assert not torch.equal(swapped[:, k], person[:, k])


@pytest.fixture(scope="module")
def low_renders(pipe, people):
    return [_render(pipe, latents, "low") for latents in people]


def test_low_resolution_swap_changes_only_pixels_inside_the_part(low_renders):
    before, after = low_renders
    k = PARTS.index(SWAPPED)
    union = (before.semantic_masks[0, k] > 0) | (after.semantic_masks[0, k] > 0)
    outside = ~union
    assert 0.02 < union.float().mean() < 0.5, "the part should cover some, not all, of the picture"
    assert int((outside & (before.alpha[0] > 0.5)).sum()) > 20, "other parts must be visible"
    changes = _changes(before, after)
    for name, change in changes.items():
        assert change[outside].max() <= UNCHANGED_TOLERANCE, name
    assert changes["image"][union].max() > 1e-2, "the swap must change the part itself"


def test_high_resolution_swap_stays_within_the_guided_footprint(pipe, people, low_renders):
    before, after = (_render(pipe, latents, "high") for latents in people)
    k = PARTS.index(SWAPPED)
    scale = pipe.config.high_resolution // pipe.config.low_resolution
    low_union = (low_renders[0].semantic_masks[0, k] > 0) | (low_renders[1].semantic_masks[0, k] > 0)
    reach = guided_footprint(scale)
    blocks = F.interpolate(low_union[None, None].float(), scale_factor=scale, mode="nearest")
    allowed = F.max_pool2d(blocks, kernel_size=2 * reach + 1, stride=1, padding=reach)[0, 0] > 0
    assert allowed.float().mean() < 0.9, "the footprint must leave most of the picture to test"
    outside = ~allowed
    assert int((outside & (before.alpha[0] > 0.5)).sum()) > 100
    changes = _changes(before, after)
    for name, change in changes.items():
        assert change[outside].max() <= UNCHANGED_TOLERANCE, name
    assert changes["image"][allowed].max() > 1e-2
