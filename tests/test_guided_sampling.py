"""Depth- and semantics-guided sampling of stage 2 (pure tensor operations)."""

from __future__ import annotations

import pytest
import torch

from semantichuman_hd.rendering.guided_sampling import (
    DEPTH_AGGREGATION_OFFSET,
    NUM_GUIDED_SAMPLES,
    SELECTION_MODES,
    SEMANTIC_WEIGHT_THRESHOLD,
    aggregate_depths,
    guided_footprint,
    guided_support,
    select_parts,
    upsample_depth_candidates,
)

OFFSET = DEPTH_AGGREGATION_OFFSET
K = 6


def _scene(height=12, width=10, seed=0):
    """A person-like LR render: a foreground rectangle on an empty background, two depth levels inside
    (a step), soft alpha at the left edge, and random part masks summing to alpha."""
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.zeros(1, height, width)
    alpha[0, 2:10, 3:8] = 1.0
    alpha[0, 2:10, 3] = 0.3  # semi-transparent silhouette column
    depth = torch.zeros(1, height, width)
    depth[0, 2:10, 3:8] = 5.0
    depth[0, 2:6, 3:8] = 4.6  # a depth step inside the person
    weights = torch.rand(1, K, height, width, generator=generator)
    masks = weights / weights.sum(1, keepdim=True) * alpha.unsqueeze(1)
    return depth, alpha, masks


def test_candidates_count_sorted_and_offsets():
    depth, alpha, _ = _scene()
    candidates = aggregate_depths(depth, alpha)
    assert candidates.shape == (1, NUM_GUIDED_SAMPLES, *depth.shape[1:]) and NUM_GUIDED_SAMPLES == 11
    assert (candidates[:, 1:] >= candidates[:, :-1]).all()
    # A pixel inside a flat region: 9 × its depth plus its depth ± offset.
    expected = torch.tensor([5.0 - OFFSET] + [5.0] * 9 + [5.0 + OFFSET])
    torch.testing.assert_close(candidates[0, :, 8, 5], expected)
    # Every foreground pixel has its own depth ± offset among its candidates.
    fg = alpha[0] > 0
    for offset in (-OFFSET, OFFSET):
        present = (candidates[0] - (depth[0] + offset)).abs().amin(0) < 1e-6
        assert present[fg].all()


def test_depth_step_gives_both_depths():
    depth, alpha, _ = _scene()
    candidates = aggregate_depths(depth, alpha)
    # Row 5 is the last of the near level (4.6), row 6 the first of the far one (5.0).
    near_side, far_side = candidates[0, :, 5, 5], candidates[0, :, 6, 5]
    assert (near_side == 5.0).sum() == 3 and (near_side == 4.6).sum() == 6
    assert (far_side == 4.6).sum() == 3 and (far_side == 5.0).sum() == 6


def test_background_never_pulls_candidates_toward_zero():
    depth, alpha, _ = _scene()
    candidates = aggregate_depths(depth, alpha)
    fg = alpha[0] > SEMANTIC_WEIGHT_THRESHOLD
    near_fg = torch.nn.functional.max_pool2d(fg[None].float(), 3, stride=1, padding=1)[0] > 0
    # Foreground pixels and background pixels that border the person only have surface depths.
    lowest = candidates[0, 0]
    assert (lowest[near_fg] >= 4.6 - OFFSET - 1e-6).all()
    # A foreground pixel on the silhouette: background neighbours contribute its own depth.
    corner = candidates[0, :, 9, 7]  # bottom-right corner of the person
    torch.testing.assert_close(corner, torch.tensor([5.0 - OFFSET] + [5.0] * 9 + [5.0 + OFFSET]))
    # A background pixel next to the person takes the foreground neighbours' depths (filled).
    outside = candidates[0, :, 10, 5]
    assert (outside >= 5.0 - OFFSET - 1e-6).all() and (outside <= 5.0 + OFFSET + 1e-6).all()
    # Far from the person, background stays at its own depth.
    torch.testing.assert_close(candidates[0, :, 0, 0], torch.tensor([-OFFSET] + [0.0] * 9 + [OFFSET]))
    # Without alpha every neighbour is used as it is: zeros appear at the silhouette.
    assert (aggregate_depths(depth, None)[0, :, 9, 7] == 0).sum() == 5


def test_border_is_replicated():
    depth = torch.arange(12.0).reshape(1, 3, 4) + 1
    candidates = aggregate_depths(depth)
    # Top-left pixel: its 3×3 neighbourhood with the border replicated.
    neighbours = torch.tensor([1, 1, 2, 1, 1, 2, 5, 5, 6], dtype=torch.float32)
    expected = torch.sort(torch.cat([neighbours, torch.tensor([1 - OFFSET, 1 + OFFSET])])).values
    torch.testing.assert_close(candidates[0, :, 0, 0], expected)


def test_without_neighbourhood():
    depth, alpha, _ = _scene()
    candidates = aggregate_depths(depth, alpha, use_neighbourhood=False)
    spread = torch.linspace(-OFFSET, OFFSET, NUM_GUIDED_SAMPLES)
    torch.testing.assert_close(candidates[0, :, 5, 5], 4.6 + spread)
    torch.testing.assert_close(candidates[0, :, 6, 5], 5.0 + spread)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_upsampled_candidates_stay_sorted(scale):
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 9, 7, generator=generator) * 3 + 1
    alpha = (torch.rand(2, 9, 7, generator=generator) > 0.3).float()
    candidates = aggregate_depths(depth, alpha)
    upsampled = upsample_depth_candidates(candidates, scale)
    assert upsampled.shape == (2, NUM_GUIDED_SAMPLES, 9 * scale, 7 * scale)
    assert (upsampled[:, 1:] >= upsampled[:, :-1]).all()
    # Plain bilinear interpolation (the running maximum only fixes rounding-level inversions).
    plain = torch.nn.functional.interpolate(candidates, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsampled, plain, atol=1e-6, rtol=1e-6)
    # Values interpolate the LR candidates: within their range.
    assert upsampled.min() >= candidates.min() and upsampled.max() <= candidates.max()


@pytest.mark.parametrize("scale", [1, 4])
def test_select_parts(scale):
    _, alpha, masks = _scene()
    argmax = select_parts(masks, scale, mode="argmax")
    threshold = select_parts(masks, scale, mode="threshold")
    assert argmax.shape == threshold.shape == (1, K, 12 * scale, 10 * scale) and argmax.dtype == torch.bool
    weights = torch.nn.functional.interpolate(masks, scale_factor=scale, mode="bilinear", align_corners=False)
    foreground = weights.sum(1) > SEMANTIC_WEIGHT_THRESHOLD
    assert foreground.any() and (~foreground).any()
    assert (argmax.sum(1)[foreground] == 1).all()  # exactly one part per foreground pixel
    assert not argmax.any(1)[~foreground].any() and not threshold.any(1)[~foreground].any()  # none on background
    assert (threshold | argmax).equal(threshold)  # threshold ⊇ argmax
    assert (threshold.sum(1)[foreground] > 1).any()
    chosen = weights.argmax(1, keepdim=True)
    assert argmax.gather(1, chosen)[foreground.unsqueeze(1)].all()
    # Threshold mode keeps every part above the threshold, and the best one where weights are thin.
    assert threshold[(weights > SEMANTIC_WEIGHT_THRESHOLD) & foreground.unsqueeze(1)].all()
    thin = torch.full((1, K, 2, 2), 2 * SEMANTIC_WEIGHT_THRESHOLD / K)
    thin[:, 2] *= 1.5
    selection = select_parts(thin, 1)
    assert selection[:, 2].all() and selection.sum() == 4


def test_footprint_bounds_the_influence_of_one_lr_pixel():
    """Changing one LR pixel's depth, alpha and masks changes the HR candidates and selection only within
    ``guided_footprint(scale)`` HR pixels of that pixel's HR block; the bound is reached."""
    scale, height, width = 4, 11, 11
    generator = torch.Generator().manual_seed(0)
    reached = 0
    for trial in range(6):
        depth = torch.rand(1, height, width, generator=generator) + 2
        alpha = (torch.rand(1, height, width, generator=generator) > 0.2).float()
        weights = torch.rand(1, K, height, width, generator=generator)
        masks = weights / weights.sum(1, keepdim=True) * alpha.unsqueeze(1)
        row, col = 5, 5
        depth2, alpha2, masks2 = depth.clone(), alpha.clone(), masks.clone()
        depth2[0, row, col] = 9.0 + trial
        alpha2[0, row, col] = 1.0 - alpha[0, row, col]
        masks2[0, :, row, col] = torch.roll(masks[0, :, row, col], 1) + alpha2[0, row, col] / K

        def guided(d, a, m):
            return upsample_depth_candidates(aggregate_depths(d, a), scale), select_parts(m, scale)

        (c1, s1), (c2, s2) = guided(depth, alpha, masks), guided(depth2, alpha2, masks2)
        changed = (c1 != c2).any(1)[0] | (s1 != s2).any(1)[0]  # (sH, sW)
        rows, cols = torch.nonzero(changed, as_tuple=True)
        block = torch.tensor([row * scale, row * scale + scale - 1, col * scale, col * scale + scale - 1])
        distance = torch.maximum(
            torch.maximum(block[0] - rows, rows - block[1]).clamp(min=0),
            torch.maximum(block[2] - cols, cols - block[3]).clamp(min=0),
        )
        assert distance.max() <= guided_footprint(scale)
        reached = max(reached, int(distance.max()))
    assert reached == guided_footprint(scale) == 6


def test_support_holds_every_lr_pixel_a_patch_reads():
    """LR values outside ``guided_support`` of some HR pixels never change those pixels' candidates or
    selection (so an LR render of the support alone guides them exactly); the support is a small box."""
    scale, height, width = 4, 12, 10
    high = torch.zeros(2, height * scale, width * scale, dtype=torch.bool)
    high[0, 8:24, 12:20] = True  # a 16×8 HR patch
    high[1, 0:4, 36:40] = True  # one LR block in a corner
    support = guided_support(high, scale)
    assert support.shape == (2, height, width)
    assert support[0].sum() == (4 + 4) * (2 + 4) and support[1].sum() == 3 * 3  # blocks grown by 2 LR pixels
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):
        depth = torch.rand(2, height, width, generator=generator) + 2
        alpha = (torch.rand(2, height, width, generator=generator) > 0.3).float()
        masks = torch.rand(2, K, height, width, generator=generator) * alpha.unsqueeze(1) / K
        noise = torch.rand(2, height, width, generator=generator)
        outside = ~support
        depth2 = torch.where(outside, depth + 5 * noise, depth)
        alpha2 = torch.where(outside, 1 - alpha, alpha)
        masks2 = torch.where(outside.unsqueeze(1), masks.flip(1) + 0.1, masks)

        def guided(d, a, m):
            return upsample_depth_candidates(aggregate_depths(d, a), scale), select_parts(m, scale)

        (c1, s1), (c2, s2) = guided(depth, alpha, masks), guided(depth2, alpha2, masks2)
        keep = high.unsqueeze(1)
        assert torch.equal(c1.masked_select(keep.expand_as(c1)), c2.masked_select(keep.expand_as(c2)))
        assert torch.equal(s1.masked_select(keep.expand_as(s1)), s2.masked_select(keep.expand_as(s2)))
    with pytest.raises(ValueError, match="high_mask"):
        guided_support(high.float(), scale)
    with pytest.raises(ValueError, match="multiples"):
        guided_support(high[:, :, :-1], scale)


def test_bad_arguments_raise():
    depth, alpha, masks = _scene()
    with pytest.raises(ValueError, match="mode"):
        select_parts(masks, 4, mode="nearest")
    assert "nearest" not in SELECTION_MODES
    with pytest.raises(ValueError, match="scale"):
        select_parts(masks, 0)
    with pytest.raises(ValueError, match="scale"):
        upsample_depth_candidates(aggregate_depths(depth, alpha), 2.5)
    with pytest.raises(ValueError, match="scale"):
        guided_footprint(-1)
    with pytest.raises(ValueError, match="depth"):
        aggregate_depths(depth.unsqueeze(0), alpha)
    with pytest.raises(ValueError, match="depth"):
        aggregate_depths(depth * float("nan"), alpha)
    with pytest.raises(ValueError, match="alpha"):
        aggregate_depths(depth, alpha[:, :-1])
    with pytest.raises(ValueError, match="offset"):
        aggregate_depths(depth, alpha, offset=-0.1)
    with pytest.raises(ValueError, match="part_masks"):
        select_parts(masks[0], 4)
    with pytest.raises(ValueError, match="threshold"):
        select_parts(masks, 4, threshold=-1.0)
