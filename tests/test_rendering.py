"""Volume rendering: samplers, the K-part compositor and the renderer, checked on analytic fields.

* A sphere SDF (positive inside, sharp β) renders the exact ray–sphere depth and the analytic normals.
* Random smooth K-part fields with compact supports show the structural disentanglement of summing
  densities: editing one part leaves every pixel where that part has no rendered weight exactly as it
  was (and pixels where its weight is tiny change by at most a small multiple of it), while the
  CNeRF-style sum of SDFs changes such pixels.
"""

from __future__ import annotations

import math

import pytest
import torch

from semantichuman_hd.rendering import (
    COMPOSITIONS,
    FieldOutput,
    PartField,
    VolumeRenderer,
    alpha_composite,
    compose_parts,
    fixed_camera,
    importance_depths,
    merge_depths,
    normals_to_picture,
    perspective_camera,
    ray_box_intersection,
    sdf_to_density,
    stratified_depths,
)
from semantichuman_hd.rendering.compositor import BETA_EPS

# ---------------------------------------------------------------------------------------------- fields


class SphereField:
    """Every part is the same sphere (sdf = radius − |x − centre|, positive inside) in its own colour.

    ``centre`` is ``(3,)`` or ``(B, 3)``. Records the points it was asked to evaluate, per part."""

    def __init__(self, centre=(0.0, 0.0, 0.0), radius=0.5, num_parts: int = 1):
        self.centre = torch.as_tensor(centre, dtype=torch.float32)
        self.radius = radius
        self.num_parts = num_parts
        self.colours = torch.linspace(-2.0, 2.0, num_parts * 3).reshape(num_parts, 3)
        self.queried_points: list[torch.Tensor] = []

    def __call__(self, points, part_mask=None):
        centre = self.centre if self.centre.ndim == 1 else self.centre.unsqueeze(1)
        distance = (points - centre).norm(dim=-1, keepdim=True)
        sdf = (self.radius - distance).expand(-1, -1, self.num_parts)
        if part_mask is not None:
            sdf = torch.where(part_mask, sdf, torch.full_like(sdf, float("-inf")))
            self.queried_points.append(points[part_mask.any(-1)].detach())
        else:
            self.queried_points.append(points.reshape(-1, 3).detach())
        logits = self.colours.expand(*sdf.shape, 3)
        return FieldOutput(sdf=sdf, rgb_logits=logits)


class BlobParts:
    """K random smooth parts with compact supports.

    Part k: ``sdf_k(x) = r_k − |x − c_k| + Σ_f a_f sin(ω_f·x + φ_f)`` inside its support ball
    ``|x − c_k| < r_k + margin`` and ``-inf`` (no density) outside; colour logits
    ``2 tanh(sin(Ω x + ψ))``. Exactly zero density outside the support, like the parts' shells around
    the body in the real model."""

    def __init__(self, centres, radii, margin=0.3, seed=0, num_features=8):
        generator = torch.Generator().manual_seed(seed)
        self.centres = torch.tensor(centres)
        self.radii = torch.tensor(radii)
        self.margin = margin
        self.num_parts = len(radii)
        k = self.num_parts
        self.frequencies = torch.randn(k, num_features, 3, generator=generator) * 4.0
        self.phases = torch.rand(k, num_features, generator=generator) * 2 * math.pi
        self.amplitudes = torch.randn(k, num_features, generator=generator) * 0.03 / math.sqrt(num_features)
        self.colour_frequencies = torch.randn(k, 3, 3, generator=generator) * 3.0
        self.colour_phases = torch.rand(k, 3, generator=generator) * 2 * math.pi

    def replace_part(self, k: int, other: "BlobParts", radius: float) -> None:
        """Part k takes ``other``'s random field and a new radius (same support centre)."""
        for name in ("frequencies", "phases", "amplitudes", "colour_frequencies", "colour_phases"):
            getattr(self, name)[k] = getattr(other, name)[k]
        self.radii[k] = radius

    def __call__(self, points, part_mask=None):
        distance = (points.unsqueeze(2) - self.centres).norm(dim=-1)  # (B, N, K)
        waves = torch.einsum("bnd,kfd->bnkf", points, self.frequencies) + self.phases
        sdf = self.radii - distance + (self.amplitudes * torch.sin(waves)).sum(-1)
        support = distance < self.radii + self.margin
        sdf = torch.where(support, sdf, torch.full_like(sdf, float("-inf")))
        logits = 2.0 * torch.tanh(torch.sin(torch.einsum("bnd,kcd->bnkc", points, self.colour_frequencies) + self.colour_phases))
        return FieldOutput(sdf=sdf, rgb_logits=logits)


def sphere_intersection(origins, directions, centre, radius):
    """Exact first ray–sphere intersection distance and the squared-discriminant margin."""
    relative = origins - centre
    b = (relative * directions).sum(-1)
    disc = b * b - ((relative * relative).sum(-1) - radius**2)
    return -b - disc.clamp_min(0).sqrt(), disc


def render_sphere(cameras, size, centre=(0.0, 0.0, 0.0), radius=0.5, beta=1e-3, renderer=None, **kwargs):
    field = SphereField(centre, radius)
    origins, directions = cameras.generate_rays(size, size)
    c = torch.as_tensor(centre, dtype=torch.float32)
    near, far, hit = ray_box_intersection(origins, directions, c - radius - 0.1, c + radius + 0.1)
    renderer = renderer or VolumeRenderer()
    output = renderer.render(field, origins, directions, near, far, beta=beta, hit=hit, **kwargs)
    return output, field, origins, directions, hit


# ---------------------------------------------------------------------------------------------- samplers


def test_ray_box_intersection_slab_cases():
    origins = torch.tensor([[[0.0, 0.0, 5.0], [0.0, 0.0, 0.0], [2.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.5, 0.5, -5.0]]])
    directions = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    near, far, hit = ray_box_intersection(origins, directions, torch.full((1, 3), -1.0), torch.full((1, 3), 1.0))
    assert hit.tolist() == [[True, True, False, False, True]]
    assert torch.allclose(near[0, [0, 1, 4]], torch.tensor([4.0, 0.0, 4.0]))  # inside: starts at the origin
    assert torch.allclose(far[0, [0, 1, 4]], torch.tensor([6.0, 1.0, 6.0]))
    assert bool((near[~hit] == 0).all() and (far[~hit] == 0).all())


def test_ray_box_intersection_matches_point_membership():
    generator = torch.Generator().manual_seed(3)
    origins = torch.randn(2, 500, 3, generator=generator) * 2.0
    targets = torch.randn(2, 500, 3, generator=generator) * 0.5  # aim near the boxes: many hits, many misses
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    box_min = torch.tensor([[-0.5, -1.0, -0.3], [-0.2, -0.2, -0.2]])
    box_max = torch.tensor([[0.5, 0.9, 0.3], [0.4, 0.3, 0.2]])
    near, far, hit = ray_box_intersection(origins, directions, box_min, box_max)
    t = torch.linspace(0, 1, 50)
    inside_points = origins[hit].unsqueeze(1) + (near[hit, None] + t * (far - near)[hit, None]).unsqueeze(-1) * directions[hit].unsqueeze(1)
    rows = torch.arange(2).unsqueeze(1).expand(2, 500)[hit]
    tolerance = 1e-5
    assert bool((inside_points >= box_min[rows].unsqueeze(1) - tolerance).all())
    assert bool((inside_points <= box_max[rows].unsqueeze(1) + tolerance).all())
    # Rays that miss never enter the box along a dense sampling of t >= 0.
    t_dense = torch.linspace(0, 8, 4000)
    missed = origins[~hit].unsqueeze(1) + t_dense.view(1, -1, 1) * directions[~hit].unsqueeze(1)
    rows = torch.arange(2).unsqueeze(1).expand(2, 500)[~hit]
    inside = ((missed > box_min[rows].unsqueeze(1)) & (missed < box_max[rows].unsqueeze(1))).all(-1)
    assert not bool(inside.any())
    assert 100 < int(hit.sum()) < 900


def test_stratified_depths_sorted_within_interval_and_midpoints():
    near = torch.tensor([[1.0, 2.0]])
    far = torch.tensor([[3.0, 2.5]])
    generator = torch.Generator().manual_seed(0)
    depths = stratified_depths(near, far, 16, generator=generator, perturb=True)
    assert depths.shape == (1, 2, 16)
    assert bool((depths[..., 1:] >= depths[..., :-1]).all())
    assert bool((depths >= near.unsqueeze(-1)).all() and (depths <= far.unsqueeze(-1)).all())
    middle = stratified_depths(near, far, 4, perturb=False)
    assert torch.allclose(middle[0, 0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    again = stratified_depths(near, far, 16, generator=torch.Generator().manual_seed(0), perturb=True)
    assert torch.equal(depths, again)
    with pytest.raises(ValueError, match="num_samples"):
        stratified_depths(near, far, 0)


def test_importance_depths_concentrate_on_the_weights():
    depths = stratified_depths(torch.zeros(1, 3), torch.ones(1, 3), 32, perturb=False)
    weights = torch.zeros(1, 3, 32)
    weights[0, 0, 20] = 1.0  # one opaque sample
    weights[0, 1] = 1.0 / 32  # flat
    weights[0, 2, [5, 25]] = 0.5  # two surfaces
    weights.requires_grad_(True)
    samples = importance_depths(depths, weights, 64, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (1, 3, 64) and not samples.requires_grad
    assert bool((samples[..., 1:] >= samples[..., :-1]).all())
    assert bool((samples >= depths[..., :1]).all() and (samples <= depths[..., -1:]).all())
    # The blurred bins around sample 20 span depths 19..21 → [19/32, 22/32].
    near_peak = ((samples[0, 0] >= 19 / 32) & (samples[0, 0] <= 22 / 32)).float().mean()
    assert near_peak > 0.7, near_peak
    # Flat weights give nearly uniform samples.
    assert torch.histc(samples[0, 1], bins=4, min=depths[0, 1, 0].item(), max=depths[0, 1, -1].item()).min() >= 12
    near_either = ((samples[0, 2] - 5.5 / 32).abs() < 2 / 32) | ((samples[0, 2] - 25.5 / 32).abs() < 2 / 32)
    assert near_either.float().mean() > 0.7
    deterministic = importance_depths(depths, weights, 64, perturb=False)
    assert torch.equal(deterministic, importance_depths(depths, weights, 64, perturb=False))


def test_merge_depths_sorted_union_with_order():
    a = torch.tensor([[[0.1, 0.5, 0.9]]])
    b = torch.tensor([[[0.2, 0.6]]])
    merged, order = merge_depths(a, b)
    assert torch.equal(merged, torch.tensor([[[0.1, 0.2, 0.5, 0.6, 0.9]]]))
    assert torch.equal(torch.gather(torch.cat([a, b], -1), -1, order), merged)


# ---------------------------------------------------------------------------------------------- compositor


def test_sdf_to_density_values_and_minus_infinity():
    beta = torch.tensor(0.1, requires_grad=True)
    sdf = torch.tensor([0.0, 0.2, -0.2, float("-inf")], requires_grad=True)
    density = sdf_to_density(sdf, beta)
    b = 0.1 + BETA_EPS
    assert torch.allclose(density[:3], torch.sigmoid(sdf[:3].detach() / b) / b)
    assert density[3] == 0.0
    density.sum().backward()
    assert torch.isfinite(beta.grad) and bool(torch.isfinite(sdf.grad).all()) and sdf.grad[3] == 0.0
    assert torch.allclose(sdf_to_density(torch.tensor(0.3), -0.05), sdf_to_density(torch.tensor(0.3), 0.05))


@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_compose_parts_weights_and_gradients(composition):
    sdf = torch.tensor(
        [
            [0.01, -0.3, float("-inf")],  # two present parts
            [float("-inf")] * 3,  # nothing present
            [-2.0, -3.0, -2.5],  # densities underflow to 0 in float32
            [float("-inf"), 0.5, float("-inf")],  # one part
        ],
        requires_grad=True,
    )
    logits = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    beta = torch.tensor(1e-3, requires_grad=True)
    out = compose_parts(sdf, logits, beta, composition)
    assert out.density.shape == (4,) and out.part_weights.shape == (4, 3) and out.rgb.shape == (4, 3)
    sums = out.part_weights.sum(-1)
    assert torch.allclose(sums[[0, 2, 3]], torch.ones(3), atol=1e-6)
    assert bool((out.part_weights[1] == 0).all()) and out.density[1] == 0
    assert out.part_weights[0, 2] == 0 and out.part_weights[3, 1] == 1.0
    (out.density.sum() + out.part_weights.sum() + out.rgb.sum()).backward()
    for tensor in (sdf, logits, beta):
        assert bool(torch.isfinite(tensor.grad).all()), tensor.grad


def test_compose_parts_definitions():
    sdf = torch.tensor([[0.05, -0.02, 0.01]])
    logits = torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(2))
    beta = 0.02
    paper = compose_parts(sdf, logits, beta, "sum_density")
    part_density = sdf_to_density(sdf, beta)
    assert torch.allclose(paper.density, part_density.sum(-1))
    assert torch.allclose(paper.part_weights, part_density / part_density.sum(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(paper.rgb, torch.sigmoid((paper.part_weights.unsqueeze(-1) * logits).sum(-2)))
    ablation = compose_parts(sdf, logits, beta, "sum_sdf")
    assert torch.allclose(ablation.density, sdf_to_density(sdf.sum(-1), beta))
    assert torch.allclose(ablation.part_weights, torch.softmax(sdf / (beta + BETA_EPS), -1))
    assert torch.equal(ablation.sdf_gradient_weights, torch.ones(1, 3))
    with pytest.raises(ValueError, match="sum_density"):
        compose_parts(sdf, logits, beta, "max")


def test_alpha_composite_constant_density():
    depths = stratified_depths(torch.zeros(1, 1), torch.full((1, 1), 2.0), 200, perturb=False)
    density = torch.full_like(depths, 1.5)
    weights, transmittance = alpha_composite(density, depths, far=torch.full((1, 1), 2.0))
    # The first sample sits at 0.005: the composite covers [0.005, 2.0].
    assert torch.allclose(weights.sum(-1), torch.tensor([[1 - math.exp(-1.5 * 1.995)]]), atol=1e-5)
    assert torch.allclose(transmittance[..., 0], torch.ones(1, 1))
    assert bool((weights >= 0).all())
    single, _ = alpha_composite(torch.tensor([[[1e6]]]), torch.tensor([[[1.0]]]), far=torch.tensor([[1.1]]))
    assert torch.allclose(single, torch.ones(1, 1, 1))
    with pytest.raises(ValueError, match="far"):
        alpha_composite(torch.ones(1, 1, 1), torch.ones(1, 1, 1))


def test_normals_to_picture():
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    picture = normals_to_picture(normals, torch.tensor([1.0, 0.0]))
    assert torch.allclose(picture, torch.tensor([[0.5, 0.5, 1.0], [1.0, 1.0, 1.0]]))


# ---------------------------------------------------------------------------------------------- renderer


@pytest.mark.parametrize(
    "cameras, centre",
    [
        (perspective_camera((0.4, 0.5, 2.5), look_at=(0.05, 0.1, 0.0), focal=1.2), (0.05, 0.1, 0.0)),
        (fixed_camera(), (0.2, -0.1, 0.1)),
    ],
    ids=["perspective", "fixed"],
)
def test_sphere_depth_and_normals_are_exact(cameras, centre):
    radius = 0.5
    output, _, origins, directions, hit = render_sphere(cameras, 48, centre=centre, radius=radius)
    c = torch.tensor(centre)
    exact_depth, disc = sphere_intersection(origins, directions, c, radius)
    interior = disc > 0.2 * radius**2  # closest approach within ~89 % of the radius: away from the silhouette
    assert int(interior.sum()) > 150
    relative_error = ((output.depth - exact_depth).abs() / exact_depth)[interior]
    assert relative_error.max() < 0.01, relative_error.max()
    exact_normals = torch.nn.functional.normalize(origins + exact_depth.unsqueeze(-1) * directions - c, dim=-1)
    cosine = (output.normals * exact_normals).sum(-1)[interior].clamp(-1, 1)
    assert torch.rad2deg(torch.acos(cosine)).max() < 2.0
    assert bool((output.alpha[interior] > 0.999).all())
    missed = disc < -0.05
    assert bool((output.alpha[missed] < 1e-6).all()) and torch.allclose(output.rgb[missed], torch.ones(3), atol=1e-5)


def test_sphere_image_orientation_with_the_fixed_camera():
    size = 32
    output, *_ = render_sphere(fixed_camera(), size, centre=(0.5, 0.4, 0.0), radius=0.3)
    images = output.to_images(size, size)
    assert images.rgb.shape == (1, 3, size, size) and images.depth.shape == (1, 1, size, size)
    assert images.part_masks.shape == (1, 1, size, size) and images.normal_picture.shape == (1, 3, size, size)
    alpha = images.alpha[0, 0]
    rows, cols = torch.nonzero(alpha > 0.5, as_tuple=True)
    # World +x is image right, world +y is image up: the sphere sits in the upper-right quadrant.
    assert cols.float().mean() > size / 2 + 3 and rows.float().mean() < size / 2 - 3
    # Its normals on the right half point to world +x.
    centre_row, centre_col = int(rows.float().mean().round()), int(cols.float().mean().round())
    assert images.normals[0, 0, centre_row, centre_col + 3] > 0.3 and images.normals[0, 2, centre_row, centre_col] > 0.9
    assert torch.allclose(images.normal_picture[0, :, 0, 0], torch.ones(3))


def test_render_depths_at_guided_samples():
    cameras = perspective_camera((0.0, 0.0, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(16, 16)
    exact, disc = sphere_intersection(origins, directions, torch.zeros(3), 0.5)
    hit = disc > 0.05
    offsets = torch.linspace(-0.03, 0.03, 11)
    depths = exact.unsqueeze(-1) + offsets
    renderer = VolumeRenderer()
    output = renderer.render_depths(SphereField(radius=0.5, num_parts=2), origins, directions, depths, beta=1e-3, hit=hit)
    assert output.sample_depths.shape == (1, 256, 11)
    assert ((output.depth - exact).abs() / exact)[hit].max() < 0.01
    assert output.num_field_queries == int(hit.sum()) * 11 * 2
    assert bool((output.alpha[~hit] == 0).all())


def test_masks_in_unit_interval_and_sum_to_alpha():
    field = BlobParts([(0.0, 0.0, 0.0), (0.45, 0.2, 0.1), (-0.4, 0.45, -0.1)], [0.45, 0.3, 0.25])
    cameras = fixed_camera()
    origins, directions = cameras.generate_rays(32, 32)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -1.0), torch.full((3,), 1.0))
    output = VolumeRenderer().render(field, origins, directions, near, far, beta=0.01, hit=hit)
    masks = output.part_masks
    assert masks.shape == (1, 1024, 3)
    rounding = 1e-6  # Σ_s T_s α_s telescopes to 1 − T_S ≤ 1 only up to float rounding (one ulp seen)
    assert bool((masks >= 0).all() and (masks <= 1 + rounding).all())
    assert torch.allclose(masks.sum(-1), output.alpha, atol=1e-5)
    assert bool((output.alpha <= 1 + rounding).all())
    assert bool(((masks > 0.5).sum(1) > 10).all())  # every part is visible somewhere


def _render_edit(composition, size=48, k=1, beta=0.01):
    """Render the blob scene before and after replacing part k's field."""
    centres = [(0.0, 0.0, 0.0), (0.45, 0.2, 0.1), (-0.4, 0.45, -0.1)]
    radii = [0.45, 0.3, 0.25]
    before = BlobParts(centres, radii, seed=0)
    after = BlobParts(centres, radii, seed=0)
    after.replace_part(k, BlobParts(centres, radii, seed=1), radius=0.26)
    origins, directions = fixed_camera().generate_rays(size, size)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -1.0), torch.full((3,), 1.0))
    renderer = VolumeRenderer(composition=composition)
    outputs = [renderer.render(field, origins, directions, near, far, beta=beta, hit=hit) for field in (before, after)]
    return outputs[0], outputs[1], k


def _changes(first, second):
    return {
        "rgb": (first.rgb - second.rgb).abs().amax(-1),
        "depth": (first.depth - second.depth).abs(),
        "normals": (first.normals - second.normals).abs().amax(-1),
        "masks": (first.part_masks - second.part_masks).abs().amax(-1),
    }


def test_summing_densities_disentangles_parts():
    """Editing part k cannot reach pixels where part k has no rendered weight.

    With exactly zero density outside a part's support, a ray that never meets part k's density
    composites bit-identical samples before and after (the importance pass sees identical coarse
    weights too): every map is unchanged. Where part k's weight m is tiny but nonzero, its own colour and
    the light it occludes change a pixel by at most about m before plus m after (colours and normal
    components differ by at most 1–2); depth and normals are normalised by alpha, so on opaque pixels
    they change by at most that over alpha (depth times the depth range of the samples)."""
    first, second, k = _render_edit("sum_density")
    weight_before, weight_after = first.part_masks[..., k], second.part_masks[..., k]
    changes = _changes(first, second)

    untouched = (weight_before == 0) & (weight_after == 0)
    assert int(untouched.sum()) > 1000
    for name, change in changes.items():
        assert change[untouched].max() <= 1e-5, name

    weight = weight_before + weight_after
    faint = (torch.maximum(weight_before, weight_after) < 1e-4) & ~untouched
    assert int(faint.sum()) > 100
    float_noise = 1e-6
    for name in ("rgb", "masks"):
        assert bool((changes[name][faint] <= 2 * weight[faint] + float_noise).all()), name
    opaque = faint & (first.alpha > 0.5) & (second.alpha > 0.5)
    assert int(opaque.sum()) > 50
    alpha = torch.minimum(first.alpha, second.alpha)[opaque]
    depth_range = first.sample_depths[opaque].amax(-1) - first.sample_depths[opaque].amin(-1)
    assert bool((changes["normals"][opaque] <= 4 * weight[opaque] / alpha + float_noise).all())
    assert bool((changes["depth"][opaque] <= 2 * weight[opaque] * depth_range / alpha + 1e-5).all())


def test_summing_sdfs_couples_parts():
    """The CNeRF-style ablation: part k's sdf enters the one global SDF wherever part k is present, so
    editing it moves surfaces where part k's semantic weight is negligible."""
    first, second, k = _render_edit("sum_sdf")
    faint = torch.maximum(first.part_masks[..., k], second.part_masks[..., k]) < 1e-4
    changes = _changes(first, second)
    assert int((faint & (changes["rgb"] > 1e-3)).sum()) > 30
    assert int((faint & (changes["depth"] > 1e-2)).sum()) > 30
    assert changes["rgb"][faint].max() > 0.1


def test_brute_force_query_count_and_missed_rays_query_nothing():
    cameras = fixed_camera()
    output, field, origins, directions, hit = render_sphere(cameras, 24, radius=0.4)
    renderer = VolumeRenderer()
    assert output.num_field_queries == int(hit.sum()) * renderer.samples_per_ray * 1
    assert 0 < int(hit.sum()) < 24 * 24
    queried = torch.cat(field.queried_points)
    assert queried.shape[0] == int(hit.sum()) * 72
    # Every queried point lies in the sphere's box (+ margin): no query on rays that miss it.
    assert bool((queried.abs() <= 0.5 + 1e-4).all())

    six = SphereField(radius=0.4, num_parts=6)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.5), torch.full((3,), 0.5))
    brute = renderer.render(six, origins, directions, near, far, beta=1e-3, hit=hit)
    assert brute.num_field_queries == int(hit.sum()) * 72 * 6
    # Semantic guidance: only the allowed parts are requested.
    mask = torch.zeros(1, 24 * 24, 6, dtype=torch.bool)
    mask[..., 0] = True
    mask[0, ::2, 3] = True
    guided = renderer.render(six, origins, directions, near, far, beta=1e-3, hit=hit, ray_part_mask=mask)
    assert guided.num_field_queries == int((mask & hit.unsqueeze(-1)).sum()) * 72
    assert bool((guided.part_masks[..., [1, 2, 4, 5]] == 0).all())
    assert bool((guided.part_masks[0, 1::2, 3] == 0).all())


def test_chunking_and_batching_do_not_change_results():
    cameras = perspective_camera(torch.tensor([[0.0, 0.0, 2.5], [0.5, 0.3, 2.2]]), focal=1.2)
    centres = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0]])
    field = SphereField(centres, radius=0.35, num_parts=2)
    origins, directions = cameras.generate_rays(16, 16)
    near, far, hit = ray_box_intersection(origins, directions, centres - 0.45, centres + 0.45)
    assert int(hit[0].sum()) != int(hit[1].sum())  # ragged: the packed batch is padded
    whole = VolumeRenderer(chunk_size=100000).render(field, origins, directions, near, far, beta=1e-2, hit=hit)
    chunked = VolumeRenderer(chunk_size=50).render(field, origins, directions, near, far, beta=1e-2, hit=hit)
    for name in ("rgb", "depth", "alpha", "part_masks", "normals", "sample_weights"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-5), name
    assert whole.num_field_queries == chunked.num_field_queries == int(hit.sum()) * 72 * 2
    for b in range(2):
        single = VolumeRenderer().render(
            SphereField(centres[b], radius=0.35, num_parts=2),
            origins[b : b + 1], directions[b : b + 1], near[b : b + 1], far[b : b + 1], beta=1e-2, hit=hit[b : b + 1],
        )
        assert torch.allclose(single.rgb[0], whole.rgb[b], atol=1e-5)
        assert torch.allclose(single.depth[0], whole.depth[b], atol=1e-4)


def test_field_validity_culls_density():
    class HalfCulled(SphereField):
        def __call__(self, points, part_mask=None):
            output = super().__call__(points, part_mask)
            output.valid = points[..., 0] < 0  # the right half is culled
            return output

    cameras = perspective_camera((0.0, 0.0, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(16, 16)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    output = VolumeRenderer().render(HalfCulled(radius=0.5), origins, directions, near, far, beta=1e-3, hit=hit)
    image = output.to_images(16, 16).alpha[0, 0]
    assert image[:, 9:].max() < 1e-6 and image[6:10, 5:8].min() > 0.99


def test_no_grad_inference_still_renders_normals():
    with torch.no_grad():
        output, *_ = render_sphere(fixed_camera(), 16, radius=0.6)
    assert output.normals is not None and not output.rgb.requires_grad and not output.normals.requires_grad
    assert output.normals[0, 8 * 16 + 8, 2] > 0.9  # the centre pixel faces the camera (+z)
    without, *_ = render_sphere(fixed_camera(), 16, radius=0.6, renderer=VolumeRenderer(compute_normals=False))
    assert without.normals is None and without.to_images(16, 16).normal_picture is None
    with torch.inference_mode():
        fast, *_ = render_sphere(fixed_camera(), 16, radius=0.6, renderer=VolumeRenderer(compute_normals=False))
        assert torch.allclose(fast.rgb, without.rgb)
        with pytest.raises(RuntimeError, match="inference_mode"):
            render_sphere(fixed_camera(), 16, radius=0.6)


def test_gradients_reach_field_parameters_and_beta():
    class LearnableSphere:
        num_parts = 2

        def __init__(self):
            self.radius = torch.tensor([0.45, 0.4], requires_grad=True)
            self.colour = torch.zeros(2, 3, requires_grad=True)

        def __call__(self, points, part_mask=None):
            sdf = self.radius - points.norm(dim=-1, keepdim=True)
            sdf = torch.where(points[..., :1] > 0.2, torch.full_like(sdf, float("-inf")), sdf)  # some absent entries
            return FieldOutput(sdf=sdf, rgb_logits=self.colour.expand(*sdf.shape, 3))

    field = LearnableSphere()
    beta = torch.tensor(0.02, requires_grad=True)
    cameras = perspective_camera((0.0, 0.3, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(12, 12)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    output = VolumeRenderer(num_stratified=24, num_importance=24).render(
        field, origins, directions, near, far, beta=beta, hit=hit, create_graph=True, perturb=True,
        generator=torch.Generator().manual_seed(0),
    )
    loss = output.rgb.sum() + output.part_masks[..., 1].sum() + output.depth.sum() + (output.normals[..., 2] * output.alpha).sum()
    loss.backward()
    for tensor in (field.radius, field.colour, beta):
        assert tensor.grad is not None and bool(torch.isfinite(tensor.grad).all()) and bool((tensor.grad != 0).any())


def test_renderer_argument_checks():
    field = SphereField()
    origins, directions = fixed_camera().generate_rays(4, 4)
    near = torch.zeros(1, 16)
    renderer = VolumeRenderer()
    with pytest.raises(ValueError, match="composition"):
        VolumeRenderer(composition="sum")
    with pytest.raises(ValueError, match="num_stratified"):
        VolumeRenderer(num_stratified=0)
    with pytest.raises(ValueError, match="chunk_size"):
        VolumeRenderer(chunk_size=0)
    with pytest.raises(ValueError, match="directions"):
        renderer.render(field, origins, directions[:, :3], near, near, beta=0.1)
    with pytest.raises(ValueError, match="far"):
        renderer.render(field, origins, directions, near, near[:, :3], beta=0.1)
    with pytest.raises(ValueError, match="hit"):
        renderer.render(field, origins, directions, near, near, beta=0.1, hit=torch.ones(1, 16))
    with pytest.raises(ValueError, match="beta"):
        renderer.render(field, origins, directions, near, near, beta=torch.ones(3))
    with pytest.raises(ValueError, match="ray_part_mask"):
        renderer.render(field, origins, directions, near, near, beta=0.1, ray_part_mask=torch.ones(1, 16, 1))
    with pytest.raises(ValueError, match="depths"):
        renderer.render_depths(field, origins, directions, torch.zeros(1, 15, 11), beta=0.1)
    with pytest.raises(ValueError, match="sdf"):
        renderer.render(SphereField(num_parts=2), origins, directions, near, near + 1, beta=0.1,
                        ray_part_mask=torch.ones(1, 16, 3, dtype=torch.bool))
    assert isinstance(field, PartField)


def test_plain_function_field_and_sum_sdf_normals():
    """A field without ``num_parts`` (K learnt from a zero-point query); with ``"sum_sdf"`` two copies of a
    sphere sum to ``2 (r − |x|)``: the same surface and the same normals."""

    def two_spheres(points, part_mask=None):
        sdf = (0.5 - points.norm(dim=-1, keepdim=True)).expand(-1, -1, 2)
        return FieldOutput(sdf=sdf, rgb_logits=torch.zeros(*sdf.shape, 3))

    cameras = perspective_camera((0.3, 0.2, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(16, 16)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    exact, disc = sphere_intersection(origins, directions, torch.zeros(3), 0.5)
    interior = disc > 0.05
    exact_normals = torch.nn.functional.normalize(origins + exact.unsqueeze(-1) * directions, dim=-1)
    for composition in COMPOSITIONS:
        output = VolumeRenderer(composition=composition).render(two_spheres, origins, directions, near, far, beta=1e-3, hit=hit)
        assert output.part_masks.shape == (1, 256, 2)
        assert ((output.depth - exact).abs() / exact)[interior].max() < 0.01, composition
        cosine = (output.normals * exact_normals).sum(-1)[interior].clamp(-1, 1)
        assert torch.rad2deg(torch.acos(cosine)).max() < 2.0, composition
        assert torch.allclose(output.part_masks[interior], torch.full((int(interior.sum()), 2), 0.5), atol=1e-4)


def test_without_coarse_gradients_the_render_is_unchanged_and_only_its_gradients_differ():
    class LearnableSphere:
        num_parts = 1

        def __init__(self):
            self.radius = torch.tensor([0.45], requires_grad=True)

        def __call__(self, points, part_mask=None):
            sdf = self.radius - points.norm(dim=-1, keepdim=True)
            return FieldOutput(sdf=sdf, rgb_logits=torch.zeros(*sdf.shape, 3))

    cameras = perspective_camera((0.0, 0.3, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(10, 10)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    outputs, gradients = [], []
    for coarse_gradients in (True, False):
        field = LearnableSphere()
        renderer = VolumeRenderer(num_stratified=16, num_importance=16, coarse_gradients=coarse_gradients)
        output = renderer.render(field, origins, directions, near, far, beta=0.05, hit=hit, create_graph=True)
        (output.alpha.sum() + output.normals[..., 2].sum()).backward()
        outputs.append(output)
        gradients.append(field.radius.grad)
    for name in ("rgb", "alpha", "depth", "part_masks", "normals"):
        assert torch.equal(getattr(outputs[0], name), getattr(outputs[1], name)), name
    assert gradients[1] is not None and float(gradients[1].abs()) > 0
    assert not torch.allclose(gradients[0], gradients[1])  # the stratified samples' share is missing
    with pytest.raises(ValueError, match="coarse_gradients"):
        VolumeRenderer(coarse_gradients="no")


def test_skipping_empty_rays_evaluates_fewer_samples_and_renders_the_same():
    """``skip_empty_rays``: rays whose stratified samples found no density get no importance samples
    evaluated; here (parts with compact supports) the picture does not change."""
    parts = BlobParts(centres=[[0.0, 0.1, 0.0], [0.15, -0.2, 0.05]], radii=[0.2, 0.15], margin=0.05)
    cameras = perspective_camera((0.0, 0.3, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(24, 24)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    renders = {}
    for skip in (False, True):
        renderer = VolumeRenderer(num_stratified=16, num_importance=16, skip_empty_rays=skip)
        renders[skip] = renderer.render(parts, origins, directions, near, far, beta=0.02, hit=hit)
    empty = renders[False].alpha == 0
    assert 0 < int((empty & hit).sum()) and int((~empty).sum()) > 0  # some hit rays cross nothing
    saved = renders[False].num_field_queries - renders[True].num_field_queries
    assert saved == int((empty & hit).sum()) * 16 * parts.num_parts  # their 16 importance samples
    for name in ("rgb", "alpha", "depth", "part_masks", "normals"):
        torch.testing.assert_close(getattr(renders[True], name), getattr(renders[False], name), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="skip_empty_rays"):
        VolumeRenderer(skip_empty_rays=1)


class HintingParts(BlobParts):
    """:class:`BlobParts` that returns each point's coordinates times 2 as its hint and records the
    (points, hint) pairs it is handed back."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, points, part_mask=None, hint=None):
        if hint is not None:
            self.handed.append((points.detach(), hint))
        output = super().__call__(points, part_mask)
        return FieldOutput(sdf=output.sdf, rgb_logits=output.rgb_logits, hint=2 * points.detach())


def test_normals_requery_hands_the_field_its_hints_row_for_row():
    """A field's :attr:`FieldOutput.hint` of the samples comes back with the same points when the
    normals are taken again at the heaviest samples (stratified, importance and guided samples alike);
    a field that gives no hint is called without one, and the render is the same either way."""
    kwargs = dict(centres=[[0.0, 0.1, 0.0], [0.15, -0.2, 0.05]], radii=[0.2, 0.15], margin=0.05)
    cameras = perspective_camera((0.0, 0.3, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(16, 16)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    renderer = VolumeRenderer(num_stratified=12, num_importance=12, normal_min_weight=0.1, chunk_size=100)
    hinting = HintingParts(**kwargs)
    plain = renderer.render(BlobParts(**kwargs), origins, directions, near, far, beta=0.02, hit=hit)
    hinted = renderer.render(hinting, origins, directions, near, far, beta=0.02, hit=hit)
    guided = renderer.render_depths(hinting, origins, directions, plain.sample_depths, beta=0.02, hit=hit)
    reference = renderer.render_depths(BlobParts(**kwargs), origins, directions, plain.sample_depths, beta=0.02, hit=hit)
    assert len(hinting.handed) > 2  # one re-query per chunk of rays with weighty samples, in both renders
    for points, hint in hinting.handed:
        assert torch.equal(hint, 2 * points)
    for name in ("rgb", "alpha", "depth", "part_masks", "normals"):
        torch.testing.assert_close(getattr(hinted, name), getattr(plain, name), atol=0, rtol=0)
        torch.testing.assert_close(getattr(guided, name), getattr(reference, name), atol=0, rtol=0)
    bad = FieldOutput(sdf=torch.zeros(1, 4, 2), rgb_logits=torch.zeros(1, 4, 2, 3), hint=torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="hint"):
        bad.check(1, 4, 2)


def test_normals_at_weighty_samples_only():
    """``normal_min_weight`` t: normals are taken after the composite, on the rays of alpha above t, at the
    heaviest samples holding 1 − t of the ray's weight. Everything else is unchanged; with a tiny t the
    normals equal the all-sample ones (zero-weight samples add nothing); at 0.1, fewer samples are queried
    again and the normals stay close and differentiable, for sharp and for soft surfaces."""
    parts = BlobParts(centres=[[0.0, 0.1, 0.0], [0.15, -0.2, 0.05]], radii=[0.2, 0.15], margin=0.05)
    parts.amplitudes.requires_grad_(True)
    cameras = perspective_camera((0.0, 0.3, 2.0), focal=1.0)
    origins, directions = cameras.generate_rays(24, 24)
    near, far, hit = ray_box_intersection(origins, directions, torch.full((3,), -0.6), torch.full((3,), 0.6))
    renders = {}
    for weight in (0.0, 1e-12, 0.1):
        renderer = VolumeRenderer(num_stratified=16, num_importance=16, normal_min_weight=weight)
        renders[weight] = renderer.render(parts, origins, directions, near, far, beta=0.02, hit=hit, create_graph=True)
    full = renders[0.0]
    for weight in (1e-12, 0.1):
        for name in ("rgb", "alpha", "depth", "part_masks", "sample_weights"):
            torch.testing.assert_close(getattr(renders[weight], name), getattr(full, name), atol=1e-6, rtol=0)
    torch.testing.assert_close(renders[1e-12].normals, full.normals, atol=1e-5, rtol=0)
    fast = renders[0.1]
    weights = full.sample_weights.detach()
    heaviest, _ = weights.sort(-1, descending=True)
    alpha = weights.sum(-1, keepdim=True)
    chosen = int(((heaviest.cumsum(-1) - heaviest < 0.9 * alpha) & (heaviest > 0) & (alpha > 0.1)).sum())
    assert 0 < chosen < int((full.sample_weights > 0).sum()) // 2
    assert fast.num_field_queries == full.num_field_queries + chosen * parts.num_parts  # the chosen samples again
    opaque = full.alpha > 0.9
    cosine = (fast.normals * full.normals).sum(-1)[opaque].detach()
    assert int(opaque.sum()) > 20 and float(cosine.mean()) > 0.99 and float(cosine.min()) > 0.95  # within 18°, 8° on average
    # A soft surface spreads its weight over many samples, none above 0.1: the normals stay close.
    soft = {
        weight: VolumeRenderer(num_stratified=16, num_importance=16, normal_min_weight=weight).render(
            parts, origins, directions, near, far, beta=0.2, hit=hit
        )
        for weight in (0.0, 0.1)
    }
    covered = soft[0.0].alpha > 0.5
    assert float(soft[0.0].sample_weights.detach().amax()) < 0.1 and int(covered.sum()) > 20  # no weight above 0.1
    cosine = (soft[0.1].normals * soft[0.0].normals).sum(-1)[covered].detach()
    assert float(cosine.mean()) > 0.98 and float(cosine.min()) > 0.9
    fast.normals[..., 2].sum().backward()
    assert parts.amplitudes.grad is not None and float(parts.amplitudes.grad.abs().sum()) > 0
    guided = VolumeRenderer(normal_min_weight=1e-12).render_depths(parts, origins, directions, full.sample_depths, beta=0.02, hit=hit)
    reference = VolumeRenderer().render_depths(parts, origins, directions, full.sample_depths, beta=0.02, hit=hit)
    torch.testing.assert_close(guided.normals, reference.normals, atol=1e-5, rtol=0)
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="normal_min_weight"):
            VolumeRenderer(normal_min_weight=bad)
