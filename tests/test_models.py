"""The neural components (tiny preset): shapes, tri-plane axes, part independence of the batched
generators, the mapper's truncation and per-part latents, decoder part masks and query counts, the
super-resolution initialisation, safetensors round trips, preset sizes and argument checks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from semantichuman_hd.models import (
    PLANE_AXES,
    SR_SCALE,
    LocalGenerators,
    SemanticMapper,
    SuperResolution3D,
    TriplaneOutput,
    sample_triplanes,
)
from semantichuman_hd.models.local_generators import BETA_INIT
from semantichuman_hd.models.stylegan2 import DEMODULATION_EPS, GroupedModulatedConv2d, ToPlanes, upsample
from semantichuman_hd.models import triplane
from semantichuman_hd.models.triplane import (
    TexelTables,
    count_decoder_queries,
    sample_all_parts,
    sample_triplane_pairs,
    texel_major,
    texel_order,
)
from semantichuman_hd.parts import NUM_PARTS
from semantichuman_hd.presets import PRESETS, get_preset

TINY = get_preset("tiny")
BATCH = 2
NUM_POINTS = 300
DEMO_MAX_PARAMETERS = 12_500_000
"""The demo preset must fit in 25 MB of fp16 weights."""


def _randomize_zero_initialised(module: torch.nn.Module) -> None:
    """Noise strengths and the super-resolution output layers start at 0; make them matter so that the
    tests exercise them."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("noise.strength") or (isinstance(module, SuperResolution3D) and name.endswith("to_planes.conv.weight")):
                parameter.normal_()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    mapper = SemanticMapper(**TINY.mapper)
    generators = LocalGenerators(**TINY.local_generators)
    super_resolution = SuperResolution3D(**TINY.super_resolution)
    _randomize_zero_initialised(generators)
    _randomize_zero_initialised(super_resolution)
    with torch.no_grad():
        mapper.w_avg.normal_()
    super_resolution.init_from_local_generators(generators)
    return mapper.eval(), generators.eval(), super_resolution.eval()


def _ws(mapper, seed=0, batch=BATCH):
    latents = mapper.sample_latents(batch, generator=torch.Generator().manual_seed(seed), same_for_all_parts=False)
    return latents, mapper(latents)


def _canonical_points(generators, count=NUM_POINTS, seed=1, batch=BATCH):
    """Points in (and slightly outside) the canonical box, metres."""
    config = generators.config
    unit = torch.rand(batch, count, 3, generator=torch.Generator().manual_seed(seed)) * 2.2 - 1.1
    return unit * config.box_warp / 2 + torch.tensor(config.box_center)


# --------------------------------------------------------------------------------------------- shapes


@torch.no_grad()
def test_shapes(models):
    mapper, generators, super_resolution = models
    latents, ws = _ws(mapper)
    config = generators.config
    assert latents.shape == (BATCH, NUM_PARTS, mapper.config.z_dim)
    assert ws.shape == (BATCH, NUM_PARTS, generators.num_ws, config.w_dim)
    assert generators.num_ws == 2 * int(math.log2(config.plane_resolution)) - 2
    lr = generators.synthesize(ws)
    assert isinstance(lr, TriplaneOutput)
    size = config.plane_resolution
    assert lr.planes.shape == (BATCH, NUM_PARTS, 3, config.plane_channels, size, size)
    assert lr.features.shape == (BATCH, NUM_PARTS, generators.feature_channels, size, size)
    hr = super_resolution.synthesize(lr, ws)
    assert hr.shape == (BATCH, NUM_PARTS, 3, config.plane_channels, SR_SCALE * size, SR_SCALE * size)
    assert super_resolution.hr_resolution == SR_SCALE * size
    points = _canonical_points(generators)
    for model, planes in ((generators, lr.planes), (super_resolution, hr)):
        delta_sdf, rgb_logits = model.decode(planes, points)
        assert delta_sdf.shape == (BATCH, NUM_POINTS, NUM_PARTS)
        assert rgb_logits.shape == (BATCH, NUM_POINTS, NUM_PARTS, 3)
        assert torch.isfinite(delta_sdf).all() and torch.isfinite(rgb_logits).all()
    # forward = synthesize + decode.
    assert torch.equal(generators(ws, points)[0], generators.decode(lr.planes, points)[0])
    assert torch.equal(super_resolution(lr, ws, points)[1], super_resolution.decode(hr, points)[1])
    # A fresh generator stays close to the body prior: small residual SDF.
    assert generators.decode(lr.planes, points)[0].abs().mean() < 0.05
    assert float(generators.beta) == pytest.approx(BETA_INIT)


# ------------------------------------------------------------------------------------ tri-plane axes


def _coordinate_planes(size: int) -> torch.Tensor:
    """``(1, 1, 3, 2, size, size)`` planes whose channels hold the (u, v) grid coordinate of each texel
    centre: channel 0 = column coordinate u, channel 1 = row coordinate v."""
    centres = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    plane = torch.stack([u, v])  # (2, H, W)
    return plane.expand(1, 1, 3, 2, size, size).clone()


@pytest.mark.parametrize("use_pairs", [False, True])
def test_triplane_planes_are_xy_xz_yz(use_pairs):
    """Plane p alone, holding its texel coordinates, reads back the point's PLANE_AXES[p] coordinates
    (bilinear interpolation reproduces a linear field exactly between texel centres)."""
    size = 8
    limit = 1 - 1 / size  # the outermost texel centres
    points = (torch.rand(1, 200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1) * limit
    expected_axes = [(0, 1), (0, 2), (1, 2)]
    assert list(PLANE_AXES) == expected_axes
    for plane, axes in enumerate(expected_axes):
        planes = _coordinate_planes(size)
        keep = torch.zeros(3, dtype=torch.float64)
        keep[plane] = 1
        planes = planes * keep.view(1, 1, 3, 1, 1, 1)
        if use_pairs:
            zeros = torch.zeros(200, dtype=torch.long)
            features = sample_triplane_pairs(planes, zeros, zeros, points[0])
        else:
            features = sample_triplanes(planes, points)[0, :, 0]
        torch.testing.assert_close(features * 3, points[0][:, list(axes)], atol=1e-12, rtol=0)


def test_synthesized_planes_are_texel_major(models):
    """Both synthesis networks store their planes channels last, so every chunk of a render reads the
    texel table as a view (no copy of the whole table per chunk)."""
    mapper, generators, super_resolution = models
    _, ws = _ws(mapper)
    lr = generators.synthesize(ws)
    hr = super_resolution.synthesize(lr, ws)
    for planes in (lr.planes, hr):
        assert texel_major(planes) is planes  # already channels last: nothing to copy
        assert texel_order(planes) == "interleaved" and planes.permute(0, 1, 4, 5, 2, 3).is_contiguous()


@pytest.mark.parametrize("layout", ["contiguous", "texel_major", "interleaved"])
@pytest.mark.parametrize("queries", [40, 3000])  # fewer and more queries than the 1152 texels
def test_triplane_pairs_match_grid_sample_in_values_and_gradients(queries, layout):
    rng = torch.Generator().manual_seed(0)
    planes = torch.randn(2, 3, 3, 4, 8, 8, generator=rng, dtype=torch.float64, requires_grad=True)
    points = ((torch.rand(queries, 3, generator=rng, dtype=torch.float64) * 2.2 - 1.1)).requires_grad_(True)
    batch_index = torch.randint(0, 2, (queries,), generator=rng)
    part_index = torch.randint(0, 3, (queries,), generator=rng)
    stored = {
        "contiguous": planes,
        "texel_major": texel_major(planes),
        "interleaved": planes.permute(0, 1, 4, 5, 2, 3).contiguous().permute(0, 1, 4, 5, 2, 3),
    }[layout]
    assert texel_order(stored) == {"contiguous": None, "texel_major": "plane_major", "interleaved": "interleaved"}[layout]
    pairs = sample_triplane_pairs(stored, batch_index, part_index, points)
    dense = sample_triplanes(planes, points.expand(2, -1, -1))[batch_index, torch.arange(queries), part_index]
    torch.testing.assert_close(pairs, dense, atol=1e-12, rtol=0)
    upstream = torch.randn(queries, 4, generator=rng, dtype=torch.float64)
    ours = torch.autograd.grad(pairs, (planes, points), upstream)
    theirs = torch.autograd.grad(dense, (planes, points), upstream)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


@pytest.mark.parametrize("layout", ["contiguous", "interleaved"])
def test_all_parts_sampling_matches_the_pairs_to_second_order(layout):
    """``sample_all_parts`` (one gathered row per texel for all K parts) gives the features of
    ``sample_triplane_pairs`` for every part, and the same first and second derivatives (the normals'
    double backward) with respect to planes and points."""
    rng = torch.Generator().manual_seed(1)
    base = torch.randn(2, 3, 3, 4, 8, 8, generator=rng, dtype=torch.float64, requires_grad=True)
    planes = base if layout == "contiguous" else base.permute(0, 1, 4, 5, 2, 3).contiguous().permute(0, 1, 4, 5, 2, 3)
    points = (torch.rand(50, 3, generator=rng, dtype=torch.float64) * 2.2 - 1.1).requires_grad_(True)
    batch_index = torch.randint(0, 2, (50,), generator=rng)
    weights = torch.randn(3, 4, generator=rng, dtype=torch.float64)

    def normals_loss(features):  # (K, P, C) → a loss on ∂(Σ tanh(f·w))/∂x, as the normals' double backward
        field = torch.tanh((features * weights.unsqueeze(1)).sum(-1)).sum()
        (gradient,) = torch.autograd.grad(field, points, create_graph=True)
        return features, gradient, gradient.square().sum() + features.square().sum()

    ours = normals_loss(sample_all_parts(planes, batch_index, points))
    pairs = torch.stack([sample_triplane_pairs(planes, batch_index, torch.full_like(batch_index, k), points) for k in range(3)])
    theirs = normals_loss(pairs)
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(ours[1], theirs[1], atol=1e-10, rtol=0)
    for a, b in zip(torch.autograd.grad(ours[2], (base, points)), torch.autograd.grad(theirs[2], (base, points))):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


@pytest.mark.parametrize("sampler", ["pairs", "all_parts"])
def test_reads_through_shared_texel_tables_equal_separate_reads(sampler):
    """A render's reads of the same planes (samples without gradient in the points, then a normals' re-query
    with it) share one table per grad mode through ``TexelTables``: the same features and first and second
    derivatives as separate reads, one table node, and the reads' plane gradients added in place."""
    rng = torch.Generator().manual_seed(3)
    base = torch.randn(2, 3, 3, 4, 8, 8, generator=rng, dtype=torch.float64, requires_grad=True)
    planes = texel_major(base * 1.0)  # a non-leaf in the synthesis networks' layout
    batch_index = torch.randint(0, 2, (40,), generator=rng)
    part_index = torch.randint(0, 3, (40,), generator=rng)
    render_points = torch.rand(40, 3, generator=rng, dtype=torch.float64) * 2.2 - 1.1
    normal_points = (torch.rand(40, 3, generator=rng, dtype=torch.float64) * 2.2 - 1.1).requires_grad_(True)

    def read(points, tables):
        if sampler == "pairs":
            return sample_triplane_pairs(planes, batch_index, part_index, points, tables)
        return sample_all_parts(planes, batch_index, points, tables)

    def loss(tables):
        rendered = read(render_points, tables)
        queried = read(normal_points, tables)
        (gradient,) = torch.autograd.grad(torch.tanh(queried).sum(), normal_points, create_graph=True)
        return rendered.square().sum() + gradient.square().sum() + queried.sum()

    tables = TexelTables(planes)
    shared, separate = loss(tables), loss(None)
    torch.testing.assert_close(shared, separate, atol=1e-12, rtol=0)
    inputs = (base, normal_points)
    for a, b in zip(torch.autograd.grad(shared, inputs, retain_graph=True), torch.autograd.grad(separate, inputs, retain_graph=True)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    table = tables.pairs() if sampler == "pairs" else tables.all_parts()
    assert table is (tables.pairs() if sampler == "pairs" else tables.all_parts())  # made once, kept
    assert table.requires_grad
    with torch.no_grad():  # kept per grad mode: a table made without gradients carries none
        assert (tables.pairs() if sampler == "pairs" else tables.all_parts()) is not table
    # The backward adds the reads' plane gradients in place (no out-of-place sum of plane-sized tensors).
    def out_of_place_plane_sums(tables) -> int:
        with torch.profiler.profile(record_shapes=True) as profile:
            loss(tables).backward(retain_graph=True)
        return sum(e.name == "aten::add" and list(e.input_shapes[0]) == list(planes.shape) for e in profile.events())

    assert out_of_place_plane_sums(None) > 0 and out_of_place_plane_sums(tables) == 0
    with pytest.raises(ValueError, match="`tables` must be the TexelTables of these `planes`"):
        read(render_points, TexelTables(planes.detach()))


def _autograd_node_names(tensor: torch.Tensor) -> set[str]:
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("sampler", ["pairs", "all_parts"])
def test_points_without_gradient_are_read_by_the_fused_weighted_sum(sampler, monkeypatch):
    """Points without gradient (a render's samples) are read by one fused weighted sum of texel rows
    instead of gathered rows: the features and plane gradients of ``grid_sample``, and a backward that is
    itself differentiable (second order in the planes)."""
    rng = torch.Generator().manual_seed(2)
    planes = torch.randn(2, 3, 3, 2, 4, 4, generator=rng, dtype=torch.float64, requires_grad=True)
    points = torch.rand(30, 3, generator=rng, dtype=torch.float64) * 2.2 - 1.1  # some outside the box
    batch_index = torch.randint(0, 2, (30,), generator=rng)
    part_index = torch.randint(0, 3, (30,), generator=rng)
    dense = sample_triplanes(planes, points.expand(2, -1, -1))  # (B, N, K, C)

    def sample(stored):
        if sampler == "pairs":
            return sample_triplane_pairs(stored, batch_index, part_index, points)
        return sample_all_parts(stored, batch_index, points)  # (K, P, C)

    ours = sample(texel_major(planes))
    assert "_WeightedRowSumsBackward" in _autograd_node_names(ours)
    theirs = dense[batch_index, torch.arange(30), part_index] if sampler == "pairs" else dense[batch_index, torch.arange(30)].transpose(0, 1)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    upstream = torch.randn(ours.shape, generator=rng, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, planes, upstream)[0], torch.autograd.grad(theirs, planes, upstream)[0], atol=1e-10, rtol=0)
    assert torch.autograd.gradgradcheck(lambda p: sample(texel_major(p)), (planes,))
    # On devices without a weighted embedding_bag, the gathered rows: the same features.
    monkeypatch.setattr(triplane, "FUSED_ROW_SUM_DEVICES", ())
    gathered = sample(texel_major(planes))
    assert "_WeightedRowSumsBackward" not in _autograd_node_names(gathered)
    torch.testing.assert_close(gathered, ours, atol=1e-12, rtol=0)
    monkeypatch.undo()
    # With gradients in the points (normals, eikonal losses), the gathered rows: twice differentiable in them.
    assert "_WeightedRowSumsBackward" not in _autograd_node_names(sample_triplane_pairs(planes, batch_index, part_index, points.requires_grad_(True)))


@pytest.mark.parametrize("autocast", [False, True])
def test_output_layer_adds_the_upsampled_skip_inside_its_product(autocast):
    """``ToPlanes(x, w, skip)`` is ``upsample(skip) + ToPlanes(x, w)`` (bias added once), computed as one
    batched product into the upsampled skip, stored channels last; with the same gradients. Under
    autocast the product runs in low precision and the sum stays in the skip's precision."""
    torch.manual_seed(0)
    groups, cin, cout, w_dim = 3, 4, 6, 8
    layer = ToPlanes(groups, cin, cout, w_dim).double()
    with torch.no_grad():
        layer.conv.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(2, groups, cin, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, groups, w_dim, dtype=torch.float64)
    skip = torch.randn(2, groups, cout, 4, 4, dtype=torch.float64, requires_grad=True)
    if autocast:
        layer, x, w, skip = layer.float(), x.float().detach().requires_grad_(True), w.float(), skip.float().detach().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = layer(x, w, skip=skip)
        assert fused.dtype == torch.float32
        torch.testing.assert_close(fused, upsample(skip) + layer(x, w), atol=0.05, rtol=0.02)
        return
    fused = layer(x, w, skip=skip)
    assert fused.permute(0, 1, 3, 4, 2).is_contiguous()  # channels last: the planes' texel-major layout
    separate = upsample(skip) + layer(x, w)
    torch.testing.assert_close(fused, separate, atol=1e-12, rtol=0)
    upstream = torch.randn_like(fused)
    ours = torch.autograd.grad(fused, (x, skip, layer.bias, layer.conv.weight), upstream)
    theirs = torch.autograd.grad(separate, (x, skip, layer.bias, layer.conv.weight), upstream)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="residual"):
        GroupedModulatedConv2d(groups, cin, cout, w_dim, kernel_size=3)(x, w, residual=fused)
    with pytest.raises(ValueError, match="residual"):  # the demodulation would scale the residual too
        GroupedModulatedConv2d(groups, cin, cout, w_dim, kernel_size=1).double()(x, w, residual=fused)


def test_decoding_all_parts_or_none_per_point_equals_the_dense_decode(models):
    """A part mask that asks, per point, for all parts or none (the stage-1 render's packed rays) decodes
    exactly what the unmasked decode does at the asked points, and nothing elsewhere."""
    mapper, generators, _ = models
    _, ws = _ws(mapper)
    planes = generators.synthesize(ws).planes
    rng = torch.Generator().manual_seed(2)
    points = torch.rand(planes.shape[0], 30, 3, generator=rng) - 0.5
    asked = torch.rand(planes.shape[0], 30, generator=rng) < 0.6
    mask = asked.unsqueeze(-1).expand(-1, -1, planes.shape[1])
    with count_decoder_queries(generators) as counter:
        delta, logits = generators.decode(planes, points, mask)
    dense_delta, dense_logits = generators.decode(planes, points)
    assert counter.last == int(asked.sum()) * planes.shape[1]
    torch.testing.assert_close(delta[asked], dense_delta[asked], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[asked], dense_logits[asked], atol=1e-5, rtol=1e-5)
    assert torch.isinf(delta[~asked]).all() and (logits[~asked] == 0).all()


def test_triplane_blob_in_xy_plane_reads_at_every_z():
    """A feature at one texel of plane 0 is read by points with that texel's (x, y), whatever z, and by
    no point with another (x, y)."""
    size = 16
    row, col = 11, 4
    planes = torch.zeros(1, 1, 3, 1, size, size)
    planes[0, 0, 0, 0, row, col] = 1.0
    x, y = (2 * col + 1) / size - 1, (2 * row + 1) / size - 1
    z = torch.linspace(-0.95, 0.95, 9)
    on = torch.stack([torch.full_like(z, x), torch.full_like(z, y), z], dim=-1).unsqueeze(0)
    features = sample_triplanes(planes, on)[0, :, 0, 0]
    torch.testing.assert_close(features, torch.full_like(features, 1 / 3))
    # Swapped roles (x ↔ y, or y used as z) read nothing.
    off = torch.tensor([[[y, x, 0.0], [x, 0.0, y], [0.0, x, y]]])
    assert sample_triplanes(planes, off).abs().max() == 0
    # Outside the box: zero padding.
    outside = torch.tensor([[[x, y, 0.0]]]) + torch.tensor([[[2.5, 0.0, 0.0]]])
    assert sample_triplanes(planes, outside).abs().max() == 0


def test_triplane_masked_sampling_matches_dense():
    torch.manual_seed(0)
    planes = torch.randn(2, NUM_PARTS, 3, 5, 7, 9, dtype=torch.float64)
    points = torch.rand(2, 50, 3, dtype=torch.float64) * 2.4 - 1.2  # some outside [-1, 1]
    mask = torch.rand(2, 50, NUM_PARTS) < 0.4
    dense = sample_triplanes(planes, points)
    masked = sample_triplanes(planes, points, mask)
    torch.testing.assert_close(masked[mask], dense[mask])
    assert masked[~mask].abs().max() == 0


# ------------------------------------------------------------------------------------- independence


def _part_slice(model, part: int, factory):
    """A one-part copy of ``model`` holding part ``part``'s weights (every per-part tensor has the part
    axis first; β is shared)."""
    config = dict(model.config)
    config["num_parts"] = 1
    single = factory(**config)
    state = {
        name: (tensor if tensor.ndim == 0 else tensor[part : part + 1]) for name, tensor in model.state_dict().items()
    }
    single.load_state_dict(state)
    return single.eval()


@torch.no_grad()
def test_batched_parts_equal_each_part_alone(models):
    """Run in float64 so that the comparison is tight (the two computations only group work differently)."""
    mapper, generators, super_resolution = models
    generators = LocalGenerators.from_config(generators.config)
    generators.load_state_dict(models[1].state_dict())
    super_resolution = SuperResolution3D.from_config(super_resolution.config)
    super_resolution.load_state_dict(models[2].state_dict())
    generators, super_resolution = generators.double().eval(), super_resolution.double().eval()
    _, ws = _ws(mapper)
    ws = ws.double()
    lr = generators.synthesize(ws)
    hr = super_resolution.synthesize(lr, ws)
    points = _canonical_points(generators).double()
    delta_sdf, rgb_logits = generators.decode(lr.planes, points)
    hr_delta_sdf, _ = super_resolution.decode(hr, points)
    close = dict(atol=1e-10, rtol=1e-10)
    for part in (0, 3, NUM_PARTS - 1):
        alone = _part_slice(generators, part, LocalGenerators).double()
        lr_alone = alone.synthesize(ws[:, part : part + 1])
        torch.testing.assert_close(lr_alone.planes, lr.planes[:, part : part + 1], **close)
        torch.testing.assert_close(lr_alone.features, lr.features[:, part : part + 1], **close)
        d, r = alone.decode(lr_alone.planes, points)
        torch.testing.assert_close(d, delta_sdf[..., part : part + 1], **close)
        torch.testing.assert_close(r, rgb_logits[..., part : part + 1, :], **close)
        sr_alone = _part_slice(super_resolution, part, SuperResolution3D).double()
        hr_alone = sr_alone.synthesize(lr_alone, ws[:, part : part + 1])
        torch.testing.assert_close(hr_alone, hr[:, part : part + 1], **close)
        torch.testing.assert_close(sr_alone.decode(hr_alone, points)[0], hr_delta_sdf[..., part : part + 1], **close)


@torch.no_grad()
@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_changing_one_part_changes_only_that_part(models, noise_mode):
    mapper, generators, super_resolution = models
    latents, ws = _ws(mapper)
    edited = latents.clone()
    part = 2
    edited[:, part] = torch.randn(BATCH, mapper.config.z_dim, generator=torch.Generator().manual_seed(9))
    ws_edited = mapper(edited)
    generator = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    outputs = []
    for codes in (ws, ws_edited):
        lr = generators.synthesize(codes, noise_mode=noise_mode, generator=generator())
        hr = super_resolution.synthesize(lr, codes, noise_mode=noise_mode, generator=generator())
        points = _canonical_points(generators)
        outputs.append((lr.planes, lr.features, hr, *generators.decode(lr.planes, points), *super_resolution.decode(hr, points)))
    others = [k for k in range(NUM_PARTS) if k != part]
    part_axis = (1, 1, 1, 2, 2, 2, 2)  # where K sits in each output
    for before, after, axis in zip(*outputs, part_axis):
        assert torch.equal(before.index_select(axis, torch.tensor(others)), after.index_select(axis, torch.tensor(others)))
        assert not torch.equal(before.select(axis, part), after.select(axis, part))


@torch.no_grad()
def test_batch_elements_are_independent(models):
    mapper, generators, _ = models
    _, ws = _ws(mapper, batch=3)
    planes = generators.synthesize(ws).planes
    alone = generators.synthesize(ws[1:2]).planes
    # Convolution kernels may sum in another order for another batch size (float rounding, ~1e-5);
    # a dependence between batch elements would show as differences of the planes' own size.
    torch.testing.assert_close(alone, planes[1:2], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_noise_modes(models):
    mapper, generators, _ = models
    _, ws = _ws(mapper)
    const = generators.synthesize(ws).planes
    assert torch.equal(const, generators.synthesize(ws, noise_mode="const").planes)
    first = generators.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(3)).planes
    again = generators.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(3)).planes
    other = generators.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(4)).planes
    none = generators.synthesize(ws, noise_mode="none").planes
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(none, const)


@pytest.mark.parametrize("kernel_size, upsample", [(3, False), (3, True), (1, False)])
@pytest.mark.parametrize("batch", [2, 1])
def test_modulated_conv_matches_its_definition(kernel_size, upsample, batch):
    """The grouped, input-scaled evaluation (a matrix product for 1×1 kernels; at a batch of one, the
    weights modulated per group) equals convolving each sample with its own modulated and demodulated
    weight W''[o, i] = W'[o, i] / sqrt(Σ_{i,kh,kw} W'[o, i]² + ε), W'[o, i] = W[o, i] s[i] gain, and so do
    the gradients of the input, the codes and the weights."""
    torch.manual_seed(0)
    groups, cin, cout, w_dim = 3, 4, 5, 8
    conv = GroupedModulatedConv2d(groups, cin, cout, w_dim, kernel_size=kernel_size, upsample=upsample).double()
    x = torch.randn(batch, 6, 6, groups, cin, dtype=torch.float64).permute(0, 3, 4, 1, 2).requires_grad_(True)  # features' layout
    w = torch.randn(batch, groups, w_dim, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(batch, groups, cout, 12 if upsample else 6, 12 if upsample else 6, dtype=torch.float64)
    y = conv(x, w)
    grads = torch.autograd.grad((y * upstream).sum(), [x, w, conv.weight, conv.affine.weight])
    styles = conv.affine(w)  # (B, K, Cin)
    expected_y = torch.empty_like(y)
    for b in range(batch):
        for k in range(groups):
            weight = conv.weight[k] * styles[b, k].view(1, -1, 1, 1) * conv.weight_gain
            weight = weight / (weight.square().sum((1, 2, 3), keepdim=True) + DEMODULATION_EPS).sqrt()
            xb = x[b, k : k + 1]
            if upsample:
                xb = torch.nn.functional.interpolate(xb, scale_factor=2, mode="bilinear", align_corners=False)
            expected_y[b, k] = torch.nn.functional.conv2d(xb, weight, padding=kernel_size // 2)[0]
    torch.testing.assert_close(y, expected_y, atol=1e-10, rtol=1e-10)
    expected_grads = torch.autograd.grad((expected_y * upstream).sum(), [x, w, conv.weight, conv.affine.weight])
    for grad, expected in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected, atol=1e-10, rtol=1e-10)


def test_channels_last_features_give_the_channels_first_synthesis(models, monkeypatch):
    """On a CPU the synthesis features are stored channels last, ``(H, W, B·K·C)`` in memory (the B·K pairs
    run as one image), from the first layer to the last; planes, features and every gradient equal the
    channels-first networks' (up to rounding)."""
    from semantichuman_hd.models import stylegan2

    mapper, generators, super_resolution = models
    ws = _ws(mapper)[1].detach()

    def run():
        generators.zero_grad(set_to_none=True), super_resolution.zero_grad(set_to_none=True)
        lr = generators.synthesize(ws, noise_mode="const")
        hr = super_resolution.synthesize(lr, ws, noise_mode="const")
        (lr.planes.square().mean() + lr.features.square().mean() + hr.square().mean()).backward()
        grads = [p.grad.clone() for m in (generators, super_resolution) for p in m.parameters() if p.grad is not None]
        return lr, hr, grads

    with torch.enable_grad():
        lr, hr, grads = run()
        assert lr.features.permute(3, 4, 0, 1, 2).is_contiguous()
        monkeypatch.setattr(stylegan2, "CHANNELS_LAST_DEVICES", ())
        lr_first, hr_first, grads_first = run()
    assert lr_first.features.is_contiguous()
    assert len(grads) == len(grads_first) > 0
    for value, value_first in zip([lr.planes, lr.features, hr, *grads], [lr_first.planes, lr_first.features, hr_first, *grads_first]):
        torch.testing.assert_close(value, value_first, rtol=1e-4, atol=1e-5 * float(value_first.detach().abs().max()))


@pytest.mark.parametrize("batch", [2, 1])
@pytest.mark.parametrize("layout", ["channels_first", "features", "planes"])
def test_upsample_keeps_the_layout_and_matches_interpolate(layout, batch):
    """:func:`upsample` of ``(B, K, C, H, W)`` in each layout it meets equals interpolating every (b, k) image,
    and comes back in the same layout (no copy of the input), also for one batch element (a pair selection's)."""
    x = torch.randn(batch, 3, 4, 5, 6, dtype=torch.float64)
    stored = {
        "channels_first": x,
        "features": x.permute(0, 3, 4, 1, 2).contiguous().permute(0, 3, 4, 1, 2),  # (B, H, W, K, C)
        "planes": x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3),  # (B, K, H, W, C)
    }[layout]
    y = upsample(stored)
    expected = torch.nn.functional.interpolate(x.reshape(batch * 3, 4, 5, 6), scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(y, expected.reshape(batch, 3, 4, 10, 12), atol=1e-12, rtol=0)
    order = [0, 1, 2, 3, 4] if layout == "channels_first" else [0, 3, 4, 1, 2] if layout == "features" else [0, 1, 3, 4, 2]
    assert y.permute(*order).is_contiguous()


@pytest.mark.parametrize("kernel_size, demodulate", [(1, False), (1, True), (3, False)])
def test_modulated_conv_bias_is_added_after_everything(kernel_size, demodulate):
    """``bias (K, Cout)`` adds to the output (after the demodulation), whether the 1×1 matrix product adds it
    in its own layout or not; its gradient is the output gradient summed over the batch and pixels."""
    torch.manual_seed(0)
    groups, cin, cout, w_dim = 3, 4, 5, 8
    conv = GroupedModulatedConv2d(groups, cin, cout, w_dim, kernel_size=kernel_size, demodulate=demodulate).double()
    x = torch.randn(2, groups, cin, 6, 6, dtype=torch.float64)
    w = torch.randn(2, groups, w_dim, dtype=torch.float64)
    bias = torch.randn(groups, cout, dtype=torch.float64, requires_grad=True)
    y = conv(x, w, bias=bias)
    torch.testing.assert_close(y, conv(x, w) + bias[..., None, None].detach(), atol=1e-12, rtol=0)
    upstream = torch.randn_like(y)
    (y * upstream).sum().backward()
    torch.testing.assert_close(bias.grad, upstream.sum((0, 3, 4)), atol=1e-10, rtol=0)


# -------------------------------------------------------------------------------------------- mapper


@torch.no_grad()
def test_mapper_truncation(models):
    mapper, _, _ = models
    latents, ws = _ws(mapper)
    average = mapper.w_avg.view(1, NUM_PARTS, 1, -1).expand_as(ws)
    torch.testing.assert_close(mapper(latents, truncation_psi=0.0), average)
    half = mapper(latents, truncation_psi=0.5)
    torch.testing.assert_close(half, (ws + average) / 2)
    cut = mapper(latents, truncation_psi=0.0, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :, :3], average[:, :, :3])
    assert torch.equal(cut[:, :, 3:], ws[:, :, 3:])
    # One code per part, repeated for every layer.
    assert torch.equal(ws, ws[:, :, :1].expand_as(ws))


@torch.no_grad()
def test_mapper_per_part_latents(models):
    mapper, _, _ = models
    shared = mapper.sample_latents(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(shared, shared[:, :1].expand_as(shared))
    ws = mapper(shared)
    assert not torch.allclose(ws[:, 0], ws[:, 1])  # one z, K different part codes
    edited = shared.clone()
    edited[:, 4] = torch.randn(2, mapper.config.z_dim)
    ws_edited = mapper(edited)
    changed = (ws_edited != ws).flatten(2).any(-1)  # (B, K)
    assert changed[:, 4].all() and not changed[:, [0, 1, 2, 3, 5]].any()
    separate = mapper.sample_latents(2, generator=torch.Generator().manual_seed(0), same_for_all_parts=False)
    assert not torch.equal(separate[:, 0], separate[:, 1])


@torch.no_grad()
def test_mapper_tracks_w_avg():
    torch.manual_seed(0)
    mapper = SemanticMapper(**TINY.mapper)
    latents = mapper.sample_latents(8, generator=torch.Generator().manual_seed(1))
    before = mapper.w_avg.clone()
    mapper(latents)
    assert torch.equal(mapper.w_avg, before)  # only when asked
    w = mapper(latents, update_w_avg=True)[:, :, 0]
    beta = mapper.config.w_avg_beta
    torch.testing.assert_close(mapper.w_avg, before * beta + w.mean(0) * (1 - beta))


# ------------------------------------------------------------------------------------------ decoders


@pytest.mark.parametrize("which", ["low", "high"])
def test_part_mask_skips_queries_and_fills(models, which):
    mapper, generators, super_resolution = models
    _, ws = _ws(mapper)
    with torch.no_grad():
        lr = generators.synthesize(ws)
        planes, model = (lr.planes, generators) if which == "low" else (super_resolution.synthesize(lr, ws), super_resolution)
    points = _canonical_points(generators)
    mask = torch.rand(BATCH, NUM_POINTS, NUM_PARTS, generator=torch.Generator().manual_seed(2)) < 0.3
    with count_decoder_queries(model) as counter:
        dense_sdf, dense_rgb = model.decode(planes, points)
        assert counter.last == BATCH * NUM_POINTS * NUM_PARTS
        delta_sdf, rgb_logits = model.decode(planes, points, mask)
        assert counter.last == int(mask.sum())
        assert counter.total == BATCH * NUM_POINTS * NUM_PARTS + int(mask.sum())
    assert torch.isneginf(delta_sdf[~mask]).all() and (rgb_logits[~mask] == 0).all()
    torch.testing.assert_close(delta_sdf[mask], dense_sdf[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rgb_logits[mask], dense_rgb[mask], atol=1e-5, rtol=1e-5)
    nothing = torch.zeros_like(mask)
    with count_decoder_queries(model) as counter:
        delta_sdf, rgb_logits = model.decode(planes, points, nothing)
    assert counter.last == 0 and torch.isneginf(delta_sdf).all() and (rgb_logits == 0).all()
    assert "decode" not in vars(model)  # the counter is detached after the block
    # Differentiable with respect to the points (normals), twice (eikonal), on both paths, alike.
    gradients = []
    for part_mask in (None, mask):
        model.zero_grad()
        points = points.detach().requires_grad_(True)
        delta_sdf, _ = model.decode(planes, points, part_mask)
        (gradient,) = torch.autograd.grad(delta_sdf[mask].sum(), points, create_graph=True)
        assert gradient.abs().sum() > 0
        gradient.square().sum().backward()
        gradients.append((gradient.detach(), model.decoders.weights[0].grad.clone()))
    for dense, masked in zip(*gradients):
        torch.testing.assert_close(dense, masked, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------ super-resolution


@torch.no_grad()
def test_super_resolution_init_copies_decoders_and_beta():
    torch.manual_seed(0)
    generators = LocalGenerators(**TINY.local_generators)
    super_resolution = SuperResolution3D(**TINY.super_resolution)
    generators.beta.fill_(0.037)
    for parameter in generators.decoders.parameters():
        parameter.normal_()
    planes = torch.randn(1, NUM_PARTS, 3, generators.config.plane_channels, 16, 16)
    points = _canonical_points(generators, batch=1)
    assert not torch.equal(super_resolution.decode(planes, points)[1], generators.decode(planes, points)[1])
    super_resolution.init_from_local_generators(generators)
    for ours, theirs in zip(super_resolution.decoders.parameters(), generators.decoders.parameters()):
        assert torch.equal(ours, theirs) and ours.data_ptr() != theirs.data_ptr()
    assert float(super_resolution.beta) == pytest.approx(0.037)
    for ours, theirs in zip(super_resolution.decode(planes, points), generators.decode(planes, points)):
        assert torch.equal(ours, theirs)
    generators.beta.fill_(0.5)
    assert float(super_resolution.beta) == pytest.approx(0.037)  # a copy, not shared

    other = dict(TINY.local_generators, decoder_hidden=[8])
    with pytest.raises(ValueError, match="decoder_hidden"):
        super_resolution.init_from_local_generators(LocalGenerators(**other))


@torch.no_grad()
def test_fresh_super_resolution_upsamples_the_lr_planes(models):
    mapper, generators, _ = models
    _, ws = _ws(mapper)
    lr = generators.synthesize(ws)
    fresh = SuperResolution3D(**TINY.super_resolution)
    hr = fresh.synthesize(lr, ws)
    flat = lr.planes.flatten(1, 3)
    for _ in range(2):
        flat = torch.nn.functional.interpolate(flat, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(hr, flat.reshape(hr.shape))


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_local_generators_run_their_pairs_as_one_batch_element(models, noise_mode):
    """The LR synthesis runs its B·K (person, part) pairs as one batch element of B·K groups (weights
    modulated per group); planes, features, the random stream and every gradient equal the same blocks
    run on the batch of B."""
    from semantichuman_hd.models.synthesis import run_blocks

    mapper, generators, _ = models
    ws = _ws(mapper, batch=3)[1].detach()

    def run(pairs: bool):
        generators.zero_grad(set_to_none=True)
        rng = torch.Generator().manual_seed(3)
        if pairs:
            lr = generators.synthesize(ws, noise_mode, rng)
            planes, features = lr.planes, lr.features
        else:
            features, img = run_blocks(generators.blocks, None, None, ws, noise_mode, rng)
            planes = img.reshape(*img.shape[:2], 3, -1, *img.shape[-2:])
        (planes.square().mean() + features.square().mean()).backward()
        return planes.detach(), features.detach(), {n: p.grad.clone() for n, p in generators.named_parameters() if p.grad is not None}, torch.rand(1, generator=rng)

    with torch.enable_grad():
        expected, got = run(False), run(True)
    for value, reference in zip(got[:2], expected[:2]):
        torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6 * float(reference.abs().max()))
    assert got[2].keys() == expected[2].keys() and len(expected[2]) > 0
    for name, grad in expected[2].items():
        torch.testing.assert_close(got[2][name], grad, rtol=1e-4, atol=1e-5 * float(grad.abs().max()), msg=name)
    assert torch.equal(got[3], expected[3])
    generators.zero_grad(set_to_none=True)


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "channels-first"])
def test_super_resolution_synthesizes_only_the_asked_parts(models, monkeypatch, channels_last):
    """``parts (B, K)``: the networks run on the asked (person, part) pairs only (by default all), as one
    batch element of P groups; those planes and every parameter gradient through them equal the same
    blocks run on the batch of B (``run_blocks`` without pairs), under both noise modes (the random noise
    is drawn for every pair, so the stream moves on as in a whole run); the other planes are zero."""
    from semantichuman_hd.models import stylegan2
    from semantichuman_hd.models.synthesis import run_blocks

    if not channels_last:
        monkeypatch.setattr(stylegan2, "CHANNELS_LAST_DEVICES", ())
    mapper, generators, super_resolution = models
    ws = _ws(mapper, batch=3)[1].detach()
    with torch.no_grad():
        lr = generators.synthesize(ws)
    some = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1], [1, 1, 0, 1, 1, 1]], dtype=torch.bool)
    groups_seen = []
    hook = super_resolution.blocks[0].conv0.register_forward_pre_hook(lambda module, args: groups_seen.append(tuple(args[0].shape[:2])))

    def run(noise_mode, asked, parts):
        super_resolution.zero_grad(set_to_none=True)
        rng = torch.Generator().manual_seed(7)
        if asked == "batch":
            batch, num_parts, _, channels, size = lr.planes.shape[:5]
            codes = ws[:, :, -1:].expand(-1, -1, super_resolution.num_ws, -1)
            skip = lr.planes.reshape(batch, num_parts, -1, size, size)
            _, hr = run_blocks(super_resolution.blocks, lr.features, skip, codes, noise_mode, rng)
            hr = hr.reshape(batch, num_parts, 3, channels, *hr.shape[-2:])
        else:
            hr = super_resolution.synthesize(lr, ws, noise_mode, rng, parts=asked)
        (hr * parts[..., None, None, None, None]).square().mean().backward()
        grads = {name: p.grad.clone() for name, p in super_resolution.named_parameters() if p.grad is not None}
        return hr.detach(), grads, torch.rand(1, generator=rng)

    try:
        for noise_mode, parts in itertools.product(("const", "random"), (some, torch.ones_like(some))):
            whole, whole_grads, whole_next = run(noise_mode, "batch", parts)
            subset, subset_grads, subset_next = run(noise_mode, None if parts.all() else parts, parts)
            assert groups_seen[-2:] == [(3, NUM_PARTS), (1, int(parts.sum()))]
            scale = float(whole.abs().max())
            torch.testing.assert_close(subset[parts], whole[parts], rtol=1e-5, atol=1e-6 * scale)
            assert not subset[~parts].any()
            assert texel_order(subset) is not None
            assert subset_grads.keys() == whole_grads.keys() and len(whole_grads) > 0
            for name, grad in whole_grads.items():
                torch.testing.assert_close(subset_grads[name], grad, rtol=1e-4, atol=1e-5 * float(grad.abs().max()), msg=name)
            assert torch.equal(subset_next, whole_next)
    finally:
        hook.remove()
        super_resolution.zero_grad(set_to_none=True)
    with torch.no_grad():  # nothing asked for (a render of background only): zero planes, no network run
        nothing = super_resolution.synthesize(lr, ws, parts=torch.zeros_like(some))
    assert nothing.shape == whole.shape and not nothing.any() and texel_order(nothing) is not None
    for bad in (some[:2], some.float(), some.tolist()):
        with pytest.raises(ValueError, match="`parts` must be a bool tensor of shape \\(3, 6\\)"):
            super_resolution.synthesize(lr, ws, parts=bad)


# ------------------------------------------------------------------------------ save / load round trip


@torch.no_grad()
def test_save_load_round_trip(models, tmp_path):
    mapper, generators, super_resolution = models
    latents, ws = _ws(mapper)
    points = _canonical_points(generators)
    lr = generators.synthesize(ws)

    def outputs(m, g, s):
        w = m(latents, truncation_psi=0.7)
        low = g.synthesize(w)
        high = s.synthesize(low, w)
        return [w, low.planes, low.features, high, *g.decode(low.planes, points), *s.decode(high, points)]

    reloaded = []
    for name, model in (("mapper", mapper), ("local_generators", generators), ("super_resolution", super_resolution)):
        folder = tmp_path / name
        model.save_pretrained(folder, safe_serialization=True)
        assert (folder / "config.json").is_file()
        assert list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin"))
        reloaded.append(type(model).from_pretrained(folder, use_safetensors=True).eval())
    for before, after in zip(outputs(mapper, generators, super_resolution), outputs(*reloaded)):
        assert torch.equal(before, after)
    assert torch.equal(reloaded[0].w_avg, mapper.w_avg)
    assert lr.planes.shape[0] == BATCH


# ------------------------------------------------------------------------------------------- presets


def test_presets_are_consistent_and_demo_is_small():
    counts = {}
    for name, preset in PRESETS.items():
        with torch.device("meta"):
            components = (
                SemanticMapper(**preset.mapper),
                LocalGenerators(**preset.local_generators),
                SuperResolution3D(**preset.super_resolution),
            )
        mapper, generators, super_resolution = components
        assert mapper.config.num_ws == generators.num_ws
        assert super_resolution.lr_feature_channels == generators.feature_channels
        assert preset.high_resolution == SR_SCALE * preset.low_resolution
        counts[name] = [sum(p.numel() for p in c.parameters()) for c in components]
        print(f"{name}: mapper {counts[name][0]:,} + generators {counts[name][1]:,} + SR {counts[name][2]:,} = {sum(counts[name]):,} parameters")
    assert sum(counts["demo"]) <= DEMO_MAX_PARAMETERS
    assert sum(counts["tiny"]) < sum(counts["demo"]) < sum(counts["paper"])
    paper = PRESETS["paper"]
    assert (paper.mapper["z_dim"], paper.mapper["w_dim"]) == (512, 512)
    assert paper.local_generators["plane_resolution"] == 256 and paper.local_generators["plane_channels"] == 16
    assert (paper.low_resolution, paper.high_resolution, paper.num_stratified, paper.num_importance) == (256, 1024, 36, 36)
    with pytest.raises(ValueError, match="tiny"):
        get_preset("huge")
    with pytest.raises(TypeError):
        PRESETS["tiny"].mapper["z_dim"] = 3  # read-only


def test_paper_channels():
    """512 channels up to 64², 256 at 128², 128 at 256² (docs/method.md §3)."""
    with torch.device("meta"):
        generators = LocalGenerators(**PRESETS["paper"].local_generators)
    channels = {block.resolution: block.conv1.conv.out_channels for block in generators.blocks}
    assert channels == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}


# ----------------------------------------------------------------------------------------- arguments


def test_bad_arguments_raise(models):
    mapper, generators, super_resolution = models
    z_dim = mapper.config.z_dim
    with pytest.raises(ValueError, match="latents"):
        mapper(torch.randn(2, NUM_PARTS, z_dim + 1))
    with pytest.raises(ValueError, match="latents"):
        mapper(torch.randn(2, z_dim))
    with pytest.raises(ValueError, match="NaN"):
        mapper(torch.full((1, NUM_PARTS, z_dim), float("nan")))
    with pytest.raises(ValueError, match="truncation_psi"):
        mapper(torch.randn(1, NUM_PARTS, z_dim), truncation_psi=float("nan"))
    with pytest.raises(ValueError, match="truncation_cutoff"):
        mapper(torch.randn(1, NUM_PARTS, z_dim), truncation_cutoff=99)
    with pytest.raises(ValueError, match="batch_size"):
        mapper.sample_latents(0)
    _, ws = _ws(mapper)
    with pytest.raises(ValueError, match="noise_mode"):
        generators.synthesize(ws, noise_mode="fresh")
    with pytest.raises(ValueError, match="ws"):
        generators.synthesize(ws[:, :, :-1])
    with pytest.raises(ValueError, match="ws"):
        generators.synthesize(ws * float("inf"))
    lr = generators.synthesize(ws)
    with pytest.raises(ValueError, match="lr.planes"):
        super_resolution.synthesize(TriplaneOutput(planes=lr.planes[:, :3], features=lr.features), ws)
    with pytest.raises(ValueError, match="lr.features"):
        super_resolution.synthesize(TriplaneOutput(planes=lr.planes, features=lr.features[..., :4]), ws)
    points = _canonical_points(generators)
    with pytest.raises(ValueError, match="points_canonical"):
        generators.decode(lr.planes, points[..., :2])
    with pytest.raises(ValueError, match="part_mask"):
        generators.decode(lr.planes, points, torch.ones(BATCH, NUM_POINTS, NUM_PARTS))  # not bool
    with pytest.raises(ValueError, match="planes"):
        generators.decode(lr.planes[:, :, :2], points)
    with pytest.raises(ValueError, match="plane_resolution"):
        LocalGenerators(**dict(TINY.local_generators, plane_resolution=48))
    with pytest.raises(ValueError, match="box_warp"):
        LocalGenerators(**dict(TINY.local_generators, box_warp=-1.0))
    with pytest.raises(ValueError, match="box_center"):
        LocalGenerators(**dict(TINY.local_generators, box_center=[0.0, 1.0]))
    with pytest.raises(ValueError, match="decoder_hidden"):
        LocalGenerators(**dict(TINY.local_generators, decoder_hidden=[0]))
    with pytest.raises(ValueError, match="w_avg_beta"):
        SemanticMapper(**dict(TINY.mapper, w_avg_beta=1.5))
    with pytest.raises(ValueError, match="local_generators"):
        super_resolution.init_from_local_generators(mapper)
