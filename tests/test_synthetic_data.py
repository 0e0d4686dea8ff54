"""Tests of the procedural clothed-human dataset generator (tiny sizes)."""

import argparse
import filecmp
import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from semantichuman_hd.body.body_model import BodyModel
from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES
from semantichuman_hd.data.format import read_index
from semantichuman_hd.data.synthetic import (
    GarmentSpec,
    Material,
    OutfitSpec,
    SampleSpec,
    SyntheticHumanGenerator,
    export_part_meshes,
    generate_dataset,
)
from semantichuman_hd.data.synthetic.garments import LAYER_OFFSETS
from semantichuman_hd.parts import PARTS
from semantichuman_hd.rendering.cameras import Cameras

RESOLUTION = 64


@pytest.fixture(scope="module")
def generator():
    return SyntheticHumanGenerator(RESOLUTION)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "a"
    generate_dataset(root, 3, image_size=RESOLUTION, seed=5, workers=1, progress=False)
    return root


def _label(generator, spec):
    return {"smpl": spec.smpl_label(), "extras": spec.extras()}


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_identical_files_serial_and_parallel(dataset, tmp_path):
    again = tmp_path / "b"
    parallel = tmp_path / "c"
    generate_dataset(again, 3, image_size=RESOLUTION, seed=5, workers=1, progress=False)
    generate_dataset(parallel, 3, image_size=RESOLUTION, seed=5, workers=2, progress=False)
    files = _files(dataset)
    assert files == _files(again) == _files(parallel)
    assert len(files) == 1 + 3 * 3  # index + images, segm, normals
    for name in files:
        assert filecmp.cmp(dataset / name, again / name, shallow=False), name
        assert filecmp.cmp(dataset / name, parallel / name, shallow=False), name
    other = tmp_path / "d"
    generate_dataset(other, 1, image_size=RESOLUTION, seed=6, workers=1, progress=False)
    assert not filecmp.cmp(dataset / "images/000000.png", other / "images/000000.png", shallow=False)


def test_dataset_files_and_labels_are_valid(dataset):
    index = read_index(dataset)
    assert index.names == ["000000.png", "000001.png", "000002.png"]
    assert index.resolution == (RESOLUTION, RESOLUTION) and index.with_normals
    for name, label in zip(index.names, index.labels):
        segm = np.asarray(Image.open(dataset / "segm" / name))
        image = np.asarray(Image.open(dataset / "images" / name))
        normals = np.asarray(Image.open(dataset / "normals" / name))
        assert segm.dtype == np.uint8 and segm.shape == (RESOLUTION, RESOLUTION)
        assert segm.max() <= len(PARTS) and (segm == 1).any()  # body always visible
        assert image.shape == normals.shape == (RESOLUTION, RESOLUTION, 3)
        background = segm == 0
        assert (normals[background] == 255).all()
        # The image is anti-aliased: pixels next to the silhouette may blend; those farther are white.
        padded = np.pad(background, 1, constant_values=True)
        far = np.logical_and.reduce([padded[1 + dy : 1 + dy + RESOLUTION, 1 + dx : 1 + dx + RESOLUTION] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        assert (image[far] == 255).all()
        assert (image[~background] < 255).any(-1).mean() > 0.9
        decoded = normals[~background].astype(np.float64) / 255 * 2 - 1
        assert np.abs(np.linalg.norm(decoded, axis=-1) - 1).max() < 0.02
        assert label["extras"]["generator"] == "semantichuman-hd-synthetic"
        assert set(label["extras"]["parts"]) >= {PARTS[k - 1] for k in np.unique(segm) if k > 0}


def test_every_part_appears_across_samples(generator):
    seen = set()
    for index in range(24):
        sample = generator.render(11, index)
        assert sample.segm.max() <= len(PARTS)
        assert (sample.segm == 1).any()
        seen |= {int(k) for k in np.unique(sample.segm)}
    assert seen == set(range(len(PARTS) + 1))


def _front_spec(generator, garments):
    """A front-facing person with arms lowered in the given garments."""
    spec = generator.sample_spec(0, 0)
    pose = np.zeros(69)
    for name, sign in (("left_shoulder", -1.0), ("right_shoulder", 1.0)):
        j = SMPL_JOINT_NAMES.index(name) - 1
        pose[j * 3 + 2] = sign * 1.2
    spec.outfit = OutfitSpec(skin=spec.outfit.skin, garments=garments)
    spec.body_pose, spec.global_orient, spec.betas = pose, np.zeros(3), np.zeros(10)
    spec.transl, spec.scale = np.zeros(3), 1.0
    vertices = generator.build_scene(spec).vertices
    spec.transl = -(vertices.min(0) + vertices.max(0)) / 2
    return spec


def _label_at_joint(generator, spec, sample, joint):
    body = generator.body
    with torch.no_grad():
        output = body(
            betas=torch.tensor(spec.betas, dtype=torch.float32)[None],
            body_pose=torch.tensor(spec.body_pose, dtype=torch.float32)[None],
            global_orient=torch.tensor(spec.global_orient, dtype=torch.float32)[None],
            transl=torch.tensor(spec.transl, dtype=torch.float32)[None],
        )
    point = output.joints[:, SMPL_JOINT_NAMES.index(joint)] * spec.scale
    pixels, _ = generator.camera.project(point[:, None].double())
    u, v = (pixels[0, 0].numpy() * RESOLUTION).astype(int)
    return int(sample.segm[v, u])


def _garment(part, kind, params, pattern="solid"):
    return GarmentSpec(part, kind, params, [Material(pattern, [[0.2, 0.3, 0.4]]), Material("solid", [[0.1, 0.1, 0.1]])])


TSHIRT = {"offset": LAYER_OFFSETS["top_untucked"], "sleeve": 0.3, "hem": 0.8, "neck_depth": 0.03}
TROUSERS = {"waist": 0.4, "length": 1.0, "offset": LAYER_OFFSETS["bottoms"], "flare": 0.0}
SHOES = {"height": 0.03, "offset": LAYER_OFFSETS["shoes"]}


def test_occlusion_front_facing_layers(generator):
    outfit = [_garment("tops", "top", TSHIRT), _garment("bottoms", "trousers", TROUSERS), _garment("shoes", "shoes", SHOES)]
    spec = _front_spec(generator, outfit)
    sample = generator.render_spec(spec)
    assert _label_at_joint(generator, spec, sample, "spine2") == PARTS.index("tops") + 1
    assert _label_at_joint(generator, spec, sample, "left_knee") == PARTS.index("bottoms") + 1
    assert _label_at_joint(generator, spec, sample, "head") == PARTS.index("body") + 1
    assert _label_at_joint(generator, spec, sample, "left_foot") == PARTS.index("shoes") + 1
    # A closed jacket covers the top; an open one shows it in the middle.
    jacket = {"offset": LAYER_OFFSETS["outerwear"], "sleeve": 1.0, "hem": 0.8, "long": 0.0, "opening": 0.0}
    closed = _front_spec(generator, outfit + [_garment("outerwear", "outerwear", jacket)])
    assert _label_at_joint(generator, closed, generator.render_spec(closed), "spine2") == PARTS.index("outerwear") + 1
    opened = _front_spec(generator, outfit + [_garment("outerwear", "outerwear", dict(jacket, opening=0.14))])
    assert _label_at_joint(generator, opened, generator.render_spec(opened), "spine2") == PARTS.index("tops") + 1
    # A tucked top lies under the trousers' waistband, an untucked one over it.
    waist = {"pelvis"}
    tucked = _front_spec(generator, [_garment("tops", "top", dict(TSHIRT, offset=LAYER_OFFSETS["top_tucked"], hem=0.9)), outfit[1]])
    untucked = _front_spec(generator, [_garment("tops", "top", dict(TSHIRT, hem=0.9)), outfit[1]])
    for spec_, expected in ((tucked, "bottoms"), (untucked, "tops")):
        sample_ = generator.render_spec(spec_)
        for joint in waist:
            assert _label_at_joint(generator, spec_, sample_, joint) == PARTS.index(expected) + 1


def test_labels_reproduce_the_rendered_body(generator):
    """The label's SMPL fit and camera put every body joint inside the silhouette, and the body model
    driven by the label gives exactly the rendered body vertices."""
    body = BodyModel.open()
    for index in range(4):
        sample = generator.render(3, index)
        smpl = sample.spec.smpl_label()
        with torch.no_grad():
            output = body(**{k: torch.tensor(smpl[k], dtype=torch.float32)[None] for k in ("betas", "body_pose", "global_orient", "transl")})
        scale = smpl["scale"]
        scene = generator.build_scene(sample.spec)
        assert np.abs(output.vertices[0].double().numpy() * scale - scene.vertices[: body.num_vertices]).max() < 1e-4
        camera = Cameras(torch.tensor(sample.camera["cam2world"])[None], torch.tensor(sample.camera["intrinsics"])[None])
        pixels, _ = camera.project(output.joints * scale)
        columns, rows = (pixels[0].numpy() * RESOLUTION).astype(int).T
        assert ((columns >= 0) & (columns < RESOLUTION) & (rows >= 0) & (rows < RESOLUTION)).all()
        silhouette = sample.segm > 0
        grown = silhouette.copy()  # one-pixel tolerance for thin wrists at 64²
        grown[1:] |= silhouette[:-1]
        grown[:-1] |= silhouette[1:]
        grown[:, 1:] |= silhouette[:, :-1]
        grown[:, :-1] |= silhouette[:, 1:]
        assert grown[rows, columns].all()
        # The person is centred in the frame.
        rows_, columns_ = np.nonzero(silhouette)
        assert abs((rows_.min() + rows_.max()) / 2 - RESOLUTION / 2) < 4
        assert abs((columns_.min() + columns_.max()) / 2 - RESOLUTION / 2) < 4


def test_label_extras_regenerate_the_sample(generator, dataset):
    index = read_index(dataset)
    spec = SampleSpec.from_label(index.labels[1])
    sample = generator.render_spec(spec)
    assert np.array_equal(sample.image, np.asarray(Image.open(dataset / "images" / index.names[1])))
    assert np.array_equal(sample.segm, np.asarray(Image.open(dataset / "segm" / index.names[1])))
    json.dumps(spec.extras())


def test_export_part_meshes(generator, dataset, tmp_path):
    label = read_index(dataset).labels[0]
    paths = export_part_meshes(label, tmp_path / "meshes", generator=generator)
    assert set(paths) == set(label["extras"]["parts"])
    for part, path in paths.items():
        mesh = trimesh.load(path, process=False)
        assert len(mesh.vertices) > 0 and len(mesh.faces) > 0, part
        assert np.isfinite(mesh.vertices).all()
    # Canonical (Da-pose, betas 0): the body is the canonical body.
    body = trimesh.load(paths["body"], process=False)
    canonical = generator.body.canonical_vertices().numpy()
    assert np.allclose(np.asarray(body.vertices)[: len(canonical)], canonical, atol=1e-5)
    obj = export_part_meshes(SampleSpec.from_label(label), tmp_path / "obj", file_format="obj", use_sample_shape=True, generator=generator)
    assert all(path.suffix == ".obj" and path.stat().st_size > 0 for path in obj.values())
    with pytest.raises(ValueError, match="file_format"):
        export_part_meshes(label, tmp_path / "x", file_format="stl", generator=generator)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num": 0}, "num"), ({"num": -2}, "num"), ({"image_size": 0}, "image_size"), ({"image_size": -64}, "image_size"),
     ({"workers": 0}, "workers"), ({"seed": -1}, "seed"), ({"supersample": 0}, "supersample"), ({"num": 2.5}, "num")],
)
def test_bad_arguments(tmp_path, kwargs, name):
    arguments = {"out_dir": tmp_path / "x", "num": 1, "image_size": RESOLUTION, "progress": False}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}`"):
        generate_dataset(**arguments)
    assert not (tmp_path / "x" / "dataset.json").exists()


def test_refuses_to_overwrite(dataset):
    with pytest.raises(ValueError, match="overwrite"):
        generate_dataset(dataset, 1, image_size=RESOLUTION, progress=False)


def test_command_line(tmp_path, capsys):
    from semantichuman_hd.cli import data as data_cli

    parser = argparse.ArgumentParser(prog="semantichuman-hd")
    data_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    args = parser.parse_args(["make-dataset", "synthetic", "--num", "1", "--resolution", "32", "--out", str(out), "--no-normals"])
    assert args.func(args) == 0
    assert read_index(out).with_normals is False
    args = parser.parse_args(["make-dataset", "synthetic", "--num", "0", "--out", str(tmp_path / "zero")])
    with pytest.raises(ValueError, match="`num`"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["make-dataset", "synthetic", "--out", str(out), "--bogus", "1"])
    assert "--bogus" in capsys.readouterr().err


def test_arm_through_trunk_is_detected(generator):
    from semantichuman_hd.data.synthetic.garments import body_state

    def pose(shoulder_z, shoulder_y=0.0):
        body_pose = torch.zeros(1, 69)
        j = SMPL_JOINT_NAMES.index("left_shoulder") - 1
        body_pose[0, j * 3 + 1], body_pose[0, j * 3 + 2] = shoulder_y, shoulder_z
        return body_state(generator.body, generator.topology, None, body_pose)

    assert generator.arms_clear_of_torso(pose(-1.2))  # arm hanging at the side
    assert not generator.arms_clear_of_torso(pose(-2.1))  # arm swung into the trunk
    assert not generator.arms_clear_of_torso(pose(-1.5, -0.9))


def test_regions_are_cut_along_smooth_level_sets(generator):
    from semantichuman_hd.data.synthetic.garments import clip_region

    topology = generator.topology
    height = -0.4
    region = clip_region(topology, topology.template[:, 1] - height)
    points = region.lerp(topology.template)
    assert points[:, 1].min() > height - 1e-9
    cut = region.a != region.b
    assert cut.any() and np.allclose(points[cut, 1], height)  # the hem is exactly the level set
    assert region.faces.max() < len(points) and len(np.unique(region.faces)) == len(points)
    # Orientation is kept: normals of the cut surface still point outwards like the body's.
    v0, v1, v2 = (points[region.faces[:, k]] for k in range(3))
    normals = np.cross(v1 - v0, v2 - v0)
    body_normals = region.lerp(topology.template_normals)[region.faces[:, 0]]
    assert ((normals * body_normals).sum(1) > 0).mean() > 0.98
