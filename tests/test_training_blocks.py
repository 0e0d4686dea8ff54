"""The training building blocks: discriminators, losses, regularisers, EMA and augmentation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.augment import DEFAULT_FILL, blur, blur_sigma, face_crops, gaussian_kernel, translate_augment
from training.discriminators import (
    EPILOGUE_RESOLUTION,
    ConditionalDiscriminator,
    DiscriminatorSet,
    discriminator_inputs,
    mbstd_group,
)
from training.losses import (
    COVERAGE_EPS,
    coverage_floor_loss,
    density_tv_loss,
    discriminator_loss,
    eikonal_loss,
    ema_beta,
    generator_loss,
    lazy_adam_hyperparameters,
    r1_penalty,
    update_ema,
    upsampling_loss,
)

TINY_CHANNELS = {"channel_base": 256, "channel_max": 16}
"""A ``tiny``-sized channel schedule."""

C_DIM = 5


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- discriminators -----------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(16, 16), (32, 16), (8, 4)])
def test_discriminator_shapes_square_and_portrait(height, width):
    torch.manual_seed(0)
    discriminator = ConditionalDiscriminator(3, height, width, c_dim=C_DIM, **TINY_CHANNELS)
    sizes = discriminator.feature_sizes
    assert sizes[0] == (height, width) and min(sizes[-1]) == EPILOGUE_RESOLUTION
    assert sizes[-1][0] * width == sizes[-1][1] * height  # the aspect ratio is kept
    logits = discriminator(torch.randn(3, 3, height, width), torch.randn(3, C_DIM))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


def test_channels_follow_the_longer_side():
    discriminator = ConditionalDiscriminator(3, 32, 16, channel_base=128, channel_max=64)
    # Levels (32, 16) → (16, 8) → (8, 4): channels min(128 // longer side, 64) = 4, 8, 16.
    assert discriminator.from_picture.weight.shape[0] == 4
    assert [block.conv1.weight.shape[0] for block in discriminator.blocks] == [8, 16]


def test_projection_conditioning_and_unconditional():
    torch.manual_seed(0)
    conditional = ConditionalDiscriminator(3, 16, 8, c_dim=C_DIM, **TINY_CHANNELS)
    x = torch.randn(4, 3, 16, 8)
    c = torch.randn(4, C_DIM)
    assert not torch.allclose(conditional(x, c), conditional(x, c + 1.0))
    assert conditional.cmap_dim == 16  # the epilogue's channels by default

    unconditional = ConditionalDiscriminator(3, 16, 8, c_dim=0, **TINY_CHANNELS)
    assert unconditional.embed is None
    assert torch.equal(unconditional(x), unconditional(x, None))


def test_logits_are_the_projection_of_features_onto_cmap():
    torch.manual_seed(0)
    discriminator = ConditionalDiscriminator(3, 8, 8, c_dim=C_DIM, conditioning_dim=7, **TINY_CHANNELS)
    x, c = torch.randn(2, 3, 8, 8), torch.randn(2, C_DIM)
    with torch.no_grad():
        h = discriminator.from_picture(x)
        for block in discriminator.blocks:
            h = block(h)
        features = discriminator.out(discriminator.fc(discriminator.conv(discriminator.mbstd(h)).flatten(1)))
        cmap = discriminator.mapping(F.normalize(discriminator.embed(c), dim=1) * math.sqrt(7))
        expected = (features * cmap).sum(1) / math.sqrt(7)
        assert torch.allclose(discriminator(x, c), expected, atol=1e-4)


def test_minibatch_std_groups_divide_the_batch():
    assert [mbstd_group(batch, 4) for batch in (1, 2, 3, 4, 6, 8, 9)] == [1, 2, 3, 4, 3, 4, 3]
    torch.manual_seed(0)
    discriminator = ConditionalDiscriminator(3, 8, 8, **TINY_CHANNELS)
    x = torch.randn(6, 3, 8, 8)
    changed = x.clone()
    changed[1] += 1.0
    logits, logits_changed = discriminator(x), discriminator(changed)
    # Batch 6 makes two groups of 3, samples {0, 2, 4} and {1, 3, 5} (StyleGAN2's interleaved split): a
    # sample's logit depends on the others of its group through the standard deviation, and only on them.
    assert torch.equal(logits[[0, 2, 4]], logits_changed[[0, 2, 4]])
    assert not torch.allclose(logits[[3, 5]], logits_changed[[3, 5]])


def test_discriminator_set_runs_the_named_subset_and_round_trips(tmp_path):
    torch.manual_seed(0)
    inputs = discriminator_inputs(1, 16, 8, 8, num_parts=6)
    assert list(inputs) == ["image", "semantic", "normal", "face_image", "face_normal"]
    assert inputs["semantic"] == (6, 16, 8) and inputs["face_image"] == (3, 8, 8)
    assert list(discriminator_inputs(2, 64, 32, 32)) == ["image", "normal", "face_image", "face_normal"]

    discriminators = DiscriminatorSet(inputs, c_dim=C_DIM, **TINY_CHANNELS)
    pictures = {name: torch.randn(2, *shape) for name, shape in inputs.items()}
    c = torch.randn(2, C_DIM)
    logits = discriminators(pictures, c)
    assert set(logits) == set(inputs) and all(value.shape == (2,) for value in logits.values())
    subset = discriminators({"semantic": pictures["semantic"]}, c)
    assert list(subset) == ["semantic"] and torch.allclose(subset["semantic"], logits["semantic"])

    discriminators.save_pretrained(tmp_path)
    reloaded = DiscriminatorSet.from_pretrained(tmp_path)
    assert sorted(reloaded.names) == sorted(discriminators.names)  # the saved config sorts its keys
    assert all(torch.allclose(reloaded(pictures, c)[name], logits[name]) for name in inputs)


# --- losses -------------------------------------------------------------------------------------------


def test_non_saturating_losses_match_the_closed_form():
    real = torch.tensor([0.5, -1.0, 2.0])
    fake = torch.tensor([-0.3, 1.5, 0.0])
    log1p_exp = lambda x: torch.log1p(torch.exp(x))  # noqa: E731
    assert torch.allclose(generator_loss({"image": fake}), log1p_exp(-fake).mean())
    assert torch.allclose(generator_loss(fake), log1p_exp(-fake).mean())
    weighted = generator_loss({"image": fake, "normal": real}, weights={"normal": 0.5})
    assert torch.allclose(weighted, log1p_exp(-fake).mean() + 0.5 * log1p_exp(-real).mean())

    both = discriminator_loss({"image": real}, {"image": fake})
    assert torch.allclose(both, log1p_exp(fake).mean() + log1p_exp(-real).mean())
    halves = discriminator_loss({"image": real}, None) + discriminator_loss(None, {"image": fake})
    assert torch.allclose(both, halves)
    # At logits 0 each term is log 2.
    assert torch.allclose(discriminator_loss(torch.zeros(4), torch.zeros(4)), torch.tensor(2 * math.log(2.0)))


def test_r1_equals_the_hand_computed_gradient():
    torch.manual_seed(0)
    weight = torch.randn(3, 4, 4, requires_grad=True)
    image = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (image * weight).sum(dim=(1, 2, 3))  # a linear D: ∂l_b/∂x_b = weight
    penalty = r1_penalty({"image": logits}, {"image": image})
    assert torch.allclose(penalty, weight.square().sum())
    # The graph is kept: the penalty's gradient with respect to the weight is 2·weight.
    (gradient,) = torch.autograd.grad(penalty, weight)
    assert torch.allclose(gradient, 2 * weight)

    # Several discriminators: the squared norms add up; a quadratic D: ∂l_b/∂m_b = 2 m_b.
    masks = torch.randn(5, 6, 2, 2, requires_grad=True)
    several = r1_penalty(
        {"image": (image * weight).sum(dim=(1, 2, 3)), "semantic": masks.square().sum(dim=(1, 2, 3))},
        [image, masks],
    )
    expected = weight.square().sum() + (2 * masks).square().flatten(1).sum(1).mean()
    assert torch.allclose(several, expected)


def test_eikonal_and_density_tv_ignore_non_finite_values():
    gradients = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [float("nan"), 0.0, 0.0]])
    assert torch.allclose(eikonal_loss(gradients), torch.tensor((16.0 + 0.0) / 2))
    assert eikonal_loss(torch.full((2, 3), float("inf"))) == 0
    values = torch.tensor([1.0, 2.0, float("inf")])
    jittered = torch.tensor([1.5, 1.0, 0.0])
    assert torch.allclose(density_tv_loss(values, jittered), torch.tensor(0.75))


def test_upsampling_loss():
    low = torch.rand(2, 3, 1, 1).expand(2, 3, 8, 4).contiguous()  # constant per channel
    lr = {"image": low, "normal": low.clone(), "semantic": torch.rand(2, 6, 1, 1).expand(2, 6, 8, 4).contiguous()}
    hr = {name: F.interpolate(value, scale_factor=4, mode="nearest").requires_grad_() for name, value in lr.items()}
    assert upsampling_loss(lr, hr).abs() < 1e-5

    lr_trained = {"image": torch.zeros(1, 3, 8, 4, requires_grad=True)}
    hr_image = torch.full((1, 3, 32, 16), 0.5, requires_grad=True)
    loss = upsampling_loss(lr_trained, {"image": hr_image}, weight=100.0)
    assert torch.allclose(loss, torch.tensor(50.0))
    loss.backward()
    assert lr_trained["image"].grad is None and hr_image.grad is not None  # LR pictures are targets
    assert torch.allclose(upsampling_loss(lr_trained, {"image": hr_image}, weight={"image": 2.0}), torch.tensor(1.0))


def test_coverage_floor_is_a_hinge_on_each_parts_share():
    real = torch.zeros(2, 3, 4, 4)
    real[:, 0, :2] = 1  # part 0 covers half the window, part 1 an eighth, part 2 nothing
    real[:, 1, 2, :2] = 1
    fake = torch.zeros(2, 3, 4, 4)
    fake[:, 0, :1] = 1  # a quarter: exactly half of part 0's real share
    fake = fake.requires_grad_()
    loss = coverage_floor_loss(fake, real, 0.5)
    floor = 0.5 * 0.125  # part 1 is missing altogether
    assert loss.item() == pytest.approx(floor / (floor + COVERAGE_EPS) / 3)
    loss.backward()
    assert fake.grad[:, 0].abs().sum() == 0 and fake.grad[:, 2].abs().sum() == 0  # at or above their floor
    assert (fake.grad[:, 1] < 0).all()  # raising part 1 anywhere lowers the loss
    assert coverage_floor_loss(fake, real, 0.0).item() == 0
    assert coverage_floor_loss(real, real, 1.0).item() == 0


def test_lazy_adam_hyperparameters():
    lr, betas = lazy_adam_hyperparameters(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert lazy_adam_hyperparameters(0.0025, (0.0, 0.99), None) == (0.0025, (0.0, 0.99))


def test_ema_beta_and_update():
    # No ramp-up: half-life ema_kimg·1000 images.
    assert ema_beta(32, 10.0, None, 0) == pytest.approx(0.5 ** (32 / 10_000))
    # Ramp-up: half-life min(10 000, images_seen · 0.05) = 50 images after 1000 images.
    assert ema_beta(4, 10.0, 0.05, 1000) == pytest.approx(0.5 ** (4 / 50))
    assert ema_beta(4, 10.0, 0.05, 0) == pytest.approx(0.0)  # the very first step copies the weights

    torch.manual_seed(0)
    module, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        module.weight.fill_(2.0)
        ema.weight.fill_(1.0)
    module.running_mean.fill_(7.0)
    update_ema(ema, module, 0.25)
    assert torch.allclose(ema.weight, torch.full((3,), 2.0 + 0.25 * (1.0 - 2.0)))
    assert torch.equal(ema.running_mean, module.running_mean)  # buffers are copied
    with pytest.raises(ValueError, match="ema_module"):
        update_ema(nn.Linear(3, 3), module, 0.5)


# --- augmentation -------------------------------------------------------------------------------------


def test_blur_keeps_constants_and_the_mean():
    constant = torch.full((2, 3, 16, 8), 0.7)
    assert torch.allclose(blur(constant, 10.0), constant)  # the radius exceeds the picture: still constant
    impulse = torch.zeros(1, 1, 32, 32)
    impulse[0, 0, 16, 16] = 1.0
    blurred = blur(impulse, 2.0)
    assert torch.allclose(blurred.sum(), torch.tensor(1.0)) and blurred[0, 0, 16, 16] < 1
    assert torch.allclose(blurred[0, 0, 16, 10:23], blurred[0, 0, 10:23, 16])  # isotropic
    assert blur(impulse, 0.0) is impulse
    assert gaussian_kernel(1.0).numel() == 7
    assert blur_sigma(0, 200.0, 10.0) == 10.0
    assert blur_sigma(100_000, 200.0, 10.0) == pytest.approx(5.0)
    assert blur_sigma(300_000, 200.0, 10.0) == 0.0
    assert blur_sigma(0, 0.0, 10.0) == 0.0


def test_face_crop_centres_on_the_marked_pixel():
    pictures = torch.zeros(2, 3, 64, 32)
    marks = [(20, 10), (5, 40)]  # (column, row)
    for b, (column, row) in enumerate(marks):
        pictures[b, :, row, column] = 1.0
    centres = torch.tensor([[column + 0.5, row + 0.5] for column, row in marks], requires_grad=True)
    crops = face_crops(pictures.requires_grad_(), centres, 5.0, 5, fill=0.0)
    assert crops.shape == (2, 3, 5, 5)
    for b in range(2):
        assert crops[b, 0, 2, 2] == 1.0 and crops[b, 0].sum() == 1.0
    crops.sum().backward()
    assert pictures.grad is not None and pictures.grad.abs().sum() > 0

    # Outside the picture the crop takes the fill value; a per-sample size zooms.
    corner = face_crops(torch.zeros(1, 2, 8, 8), torch.tensor([[0.0, 0.0]]), 4.0, 4, fill=[1.0, -1.0])
    assert torch.equal(corner[0, 0, :2, :2], torch.ones(2, 2)) and torch.equal(corner[0, 1, 2:, 2:], torch.zeros(2, 2))
    zoomed = face_crops(torch.arange(64.0).view(1, 1, 8, 8), torch.tensor([[4.0, 4.0]]), torch.tensor([8.0]), 8)
    assert torch.allclose(zoomed, torch.arange(64.0).view(1, 1, 8, 8))


def test_translation_keeps_the_pictures_of_a_sample_aligned():
    batch, height, width = 6, 8, 4
    position = torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width) + 1.0
    images = {
        "image": position.expand(batch, 3, height, width) * torch.arange(1.0, batch + 1).view(-1, 1, 1, 1),
        "semantic": position.expand(batch, 6, height, width) * torch.arange(1.0, batch + 1).view(-1, 1, 1, 1),
    }
    moved, shifts = translate_augment(images, 2, generator=_seeded(1))
    assert shifts.shape == (batch, 2) and shifts.abs().max() <= 2 and shifts.abs().sum() > 0
    for b in range(batch):
        dx, dy = shifts[b].tolist()
        expected = torch.full((height, width), -1.0)
        for i in range(height):
            for j in range(width):
                if 0 <= i - dy < height and 0 <= j - dx < width:
                    expected[i, j] = images["image"][b, 0, i - dy, j - dx]
        inside = expected >= 0
        for name in images:
            picture = moved[name][b]
            assert torch.equal(picture[:, inside], expected[inside].expand(picture.shape[0], -1))
            assert (picture[:, ~inside] == DEFAULT_FILL[name]).all()

    unchanged, none = translate_augment(images, 2, generator=_seeded(1), probability=0.0)
    assert none.abs().sum() == 0 and all(torch.equal(unchanged[name], images[name]) for name in images)


# --- argument checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: ConditionalDiscriminator(3, 24, 16), "height"),
        (lambda: ConditionalDiscriminator(3, 16, 2), "width"),
        (lambda: ConditionalDiscriminator(3, 16, 16, c_dim=-1), "c_dim"),
        (lambda: ConditionalDiscriminator(3, 16, 16, c_dim=2, **TINY_CHANNELS)(torch.zeros(1, 3, 16, 16), None), "`c`"),
        (lambda: ConditionalDiscriminator(3, 16, 16, **TINY_CHANNELS)(torch.zeros(1, 3, 8, 8)), "`x`"),
        (lambda: DiscriminatorSet({"image": (3, 8, 8)}, **TINY_CHANNELS)({"normal": torch.zeros(1, 3, 8, 8)}), "inputs"),
        (lambda: discriminator_inputs(3, 16, 8, 8), "stage"),
        (lambda: generator_loss({"image": torch.zeros(2)}, weights={"normal": 1.0}), "weights"),
        (lambda: discriminator_loss({"image": torch.zeros(2)}, {"normal": torch.zeros(2)}), "real_logits"),
        (lambda: r1_penalty(torch.zeros(2), torch.zeros(2, 3)), "real_inputs"),
        (lambda: eikonal_loss(torch.zeros(4, 2)), "gradients"),
        (lambda: density_tv_loss(torch.zeros(3), torch.zeros(4)), "jittered_values"),
        (lambda: upsampling_loss({"image": torch.zeros(1, 3, 8, 8)}, {"image": torch.zeros(1, 3, 4, 4)}), "hr"),
        (lambda: upsampling_loss({"depth": torch.zeros(1, 1, 8, 8)}, {"depth": torch.zeros(1, 1, 8, 8)}), "lr"),
        (lambda: coverage_floor_loss(torch.zeros(1, 6, 8, 8), torch.zeros(1, 6, 8, 8), 1.5), "fraction"),
        (lambda: coverage_floor_loss(torch.zeros(1, 6, 8, 8), torch.zeros(1, 6, 8, 4), 0.5), "real_masks"),
        (lambda: coverage_floor_loss(torch.zeros(6, 8, 8), torch.zeros(1, 6, 8, 8), 0.5), "fake_masks"),
        (lambda: lazy_adam_hyperparameters(0.002, (0.0, 1.5), 16), "betas"),
        (lambda: ema_beta(0, 10.0, None, 0), "batch_size"),
        (lambda: update_ema(nn.Linear(2, 2), nn.Linear(2, 2), 1.5), "beta"),
        (lambda: blur(torch.zeros(1, 1, 4, 4), -1.0), "sigma"),
        (lambda: blur_sigma(-1, 10.0, 1.0), "images_seen"),
        (lambda: face_crops(torch.zeros(2, 3, 8, 8), torch.zeros(3, 2), 4.0, 4), "centres_px"),
        (lambda: face_crops(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2), 0.0, 4), "crop_size"),
        (lambda: face_crops(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2), 4.0, 4, fill=[1.0, 1.0]), "fill"),
        (lambda: translate_augment({"image": torch.zeros(1, 3, 8, 8), "normal": torch.zeros(1, 3, 4, 4)}, 1), "normal"),
        (lambda: translate_augment({"depth": torch.zeros(1, 1, 8, 8)}, 1), "fill"),
        (lambda: translate_augment({"image": torch.zeros(1, 3, 8, 8)}, -1), "max_shift_px"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, argument):
    with pytest.raises(ValueError, match=argument.replace("[", r"\[")):
        call()
