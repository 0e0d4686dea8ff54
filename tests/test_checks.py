"""``semantichuman_hd.checks``: one answer per kind of argument, and a message naming the argument,
the value and what is allowed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semantichuman_hd.checks import (
    check_choice,
    check_finite_number,
    check_finite_tensor,
    check_generator,
    check_non_negative_int,
    check_number_in_range,
    check_positive_int,
    check_positive_number,
)


def test_positive_int():
    assert check_positive_int(3, "n") == 3
    assert check_positive_int(np.int64(2), "n") == 2 and type(check_positive_int(np.int64(2), "n")) is int
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=rf"`n` must be a positive integer, got {bad!r}"):
            check_positive_int(bad, "n")


def test_non_negative_int():
    assert check_non_negative_int(0, "seed") == 0
    for bad in (-1, False, 1.5):
        with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer"):
            check_non_negative_int(bad, "seed")


def test_finite_number_refuses_bool_everywhere():
    assert check_finite_number(0.7, "truncation_psi") == 0.7
    assert check_finite_number(1, "truncation_psi") == 1.0
    assert check_finite_number(np.float32(0.5), "truncation_psi") == 0.5
    for bad in (True, math.nan, -math.inf, "0.7", None, torch.tensor(0.5)):
        with pytest.raises(ValueError, match=r"`truncation_psi` must be a finite number, got"):
            check_finite_number(bad, "truncation_psi")
    with pytest.raises(ValueError, match=r"`start_angle` must be a finite number of radians"):
        check_finite_number(math.inf, "start_angle", unit="radians")


def test_positive_number_and_range():
    assert check_positive_number(0.1, "beta_init") == 0.1
    for bad in (0, -0.1, math.inf, False):
        with pytest.raises(ValueError, match=r"`beta_init` must be a positive number"):
            check_positive_number(bad, "beta_init")
    assert check_number_in_range(0.0, "w_avg_beta", 0, 1, include_high=False) == 0.0
    for bad in (1, 1.5, -0.1, math.nan, True):
        with pytest.raises(ValueError, match=r"`w_avg_beta` must be a number in \[0, 1\)"):
            check_number_in_range(bad, "w_avg_beta", 0, 1, include_high=False)


def test_choice():
    assert check_choice("low", ("low", "high"), "resolution") == "low"
    for bad in ("medium", ["low"], None):
        with pytest.raises(ValueError, match=r"`resolution` must be one of \['low', 'high'\]"):
            check_choice(bad, ("low", "high"), "resolution")


def test_finite_tensor():
    value = torch.zeros(2, 6, 4)
    assert check_finite_tensor(value, "latents", (None, 6, 4)) is value
    with pytest.raises(ValueError, match=r"`latents` must be a tensor of shape \(B, 6, 4\), got \(2, 5, 4\)"):
        check_finite_tensor(torch.zeros(2, 5, 4), "latents", (None, 6, 4))
    with pytest.raises(ValueError, match=r"`latents` must be a tensor of shape \(B, 6, 4\), got list"):
        check_finite_tensor([[0.0]], "latents", ("B", 6, 4))
    with pytest.raises(ValueError, match=r"`latents` must not be empty, got shape \(0, 6, 4\)"):
        check_finite_tensor(torch.zeros(0, 6, 4), "latents", (None, 6, 4))
    assert check_finite_tensor(torch.zeros(0, 6, 4), "latents", (None, 6, 4), allow_empty=True).shape[0] == 0
    with pytest.raises(ValueError, match=r"`latents` contains NaN or infinite values"):
        check_finite_tensor(torch.tensor([0.0, math.nan]), "latents")
    with pytest.raises(ValueError, match=r"`latents` must be a floating-point tensor"):
        check_finite_tensor(torch.zeros(3, dtype=torch.long), "latents")


def test_generator():
    generator = torch.Generator().manual_seed(0)
    assert check_generator(generator) is generator and check_generator(None) is None
    with pytest.raises(ValueError, match=r"`generator` must be a torch.Generator or None, got int 42.*manual_seed"):
        check_generator(42)
