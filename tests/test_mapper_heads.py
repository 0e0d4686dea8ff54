"""The mapper's two output layers: one head per part (the presets' default) or one head shared by all
parts (``part_heads=False``, the paper's mapper: a z shared by all parts gives one w for all of them)."""

from __future__ import annotations

import pytest
import torch

from semantichuman_hd.models.mapper import SemanticMapper
from semantichuman_hd.parts import NUM_PARTS
from semantichuman_hd.presets import PRESETS, get_preset

TINY = get_preset("tiny")


def _mapper(**overrides) -> SemanticMapper:
    torch.manual_seed(0)
    return SemanticMapper(**dict(TINY.mapper, **overrides)).eval()


@torch.no_grad()
def test_shared_head_gives_one_code_for_a_shared_z():
    mapper = _mapper(part_heads=False)
    latents = mapper.sample_latents(3, generator=torch.Generator().manual_seed(1))  # one z for all parts
    ws = mapper(latents)  # (B, K, num_ws, w_dim)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))


@torch.no_grad()
def test_shared_head_keeps_parts_independent():
    mapper = _mapper(part_heads=False)
    latents = mapper.sample_latents(2, generator=torch.Generator().manual_seed(2), same_for_all_parts=False)
    ws = mapper(latents)
    edited = latents.clone()
    edited[:, 3] = torch.randn(2, mapper.config.z_dim, generator=torch.Generator().manual_seed(3))
    ws_edited = mapper(edited)
    others = [k for k in range(NUM_PARTS) if k != 3]
    assert torch.equal(ws[:, others], ws_edited[:, others])
    assert not torch.equal(ws[:, 3], ws_edited[:, 3])
    # part k's code is the same function of z_k for every part
    swapped = latents.roll(1, dims=1)
    torch.testing.assert_close(mapper(swapped), ws.roll(1, dims=1))


@torch.no_grad()
def test_part_heads_default_gives_different_codes_for_a_shared_z():
    mapper = _mapper()
    assert mapper.config.part_heads is True
    ws = mapper(mapper.sample_latents(1, generator=torch.Generator().manual_seed(4)))
    assert not torch.allclose(ws[:, 0], ws[:, 1])


def test_presets_use_part_heads_and_their_weights_keep_their_layout():
    for name, preset in PRESETS.items():
        assert preset.mapper.get("part_heads", True) is True, name
    per_part, shared = _mapper().state_dict(), _mapper(part_heads=False).state_dict()
    assert per_part["heads.weight"].shape[0] == NUM_PARTS and per_part["heads.weight"].ndim == 3
    assert shared["heads.weight"].ndim == 2 and set(per_part) == set(shared)


def test_shared_head_round_trip(tmp_path):
    mapper = _mapper(part_heads=False)
    mapper.save_pretrained(tmp_path)
    loaded = SemanticMapper.from_pretrained(tmp_path).eval()
    assert loaded.config.part_heads is False
    latents = torch.randn(2, NUM_PARTS, mapper.config.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents), mapper(latents))


def test_part_heads_must_be_a_bool():
    with pytest.raises(ValueError, match=r"`part_heads` must be True or False, got 1"):
        _mapper(part_heads=1)
