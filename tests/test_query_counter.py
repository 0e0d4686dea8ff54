"""``count_decoder_queries``: decoder-query counting that a benchmark or test attaches to tri-plane
models for a block, leaving nothing on the models."""

from __future__ import annotations

import pytest
import torch

from semantichuman_hd.models import LocalGenerators, count_decoder_queries
from semantichuman_hd.presets import get_preset


@pytest.fixture(scope="module")
def generators():
    torch.manual_seed(0)
    return LocalGenerators(**get_preset("tiny").local_generators).eval()


def test_counts_while_attached_only(generators):
    planes = torch.zeros(2, generators.config.num_parts, 3, generators.config.plane_channels, 4, 4)
    points = torch.zeros(2, 5, 3)
    with count_decoder_queries(generators, generators) as counter:  # the same model twice counts once
        generators.decode(planes, points)
        generators.decode(planes, points)
    assert counter.total == 2 * 2 * 5 * generators.config.num_parts and counter.last == 2 * 5 * generators.config.num_parts
    generators.decode(planes, points)
    assert counter.total == 2 * 2 * 5 * generators.config.num_parts
    assert "decode" not in vars(generators)


def test_detaches_after_an_error(generators):
    with pytest.raises(ValueError, match="planes"):
        with count_decoder_queries(generators):
            generators.decode(torch.zeros(1), torch.zeros(1, 5, 3))
    assert "decode" not in vars(generators)


def test_refuses_bad_use(generators):
    with pytest.raises(ValueError, match=r"`models` must name at least one"):
        with count_decoder_queries():
            pass
    with pytest.raises(ValueError, match=r"`models` must be tri-plane models"):
        with count_decoder_queries(torch.nn.Linear(2, 2)):
            pass
    with count_decoder_queries(generators):
        with pytest.raises(ValueError, match=r"already being counted"):
            with count_decoder_queries(generators):
                pass
