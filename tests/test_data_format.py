"""The dataset format: writer ↔ reader round trip, label layouts, padding/resizing, the mirror's
geometry, validation errors, previews/statistics and the data CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from semantichuman_hd.body.rotations import axis_angle_to_matrix
from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES, SMPL_MIRROR_PERMUTATION
from semantichuman_hd.data import (
    CAMERA_LABEL_DIM,
    LABEL_DIM,
    SMPL_LABEL_DIM,
    DatasetWriter,
    SemanticHumanDataset,
    dataset_stats,
    label_to_vector,
    preview_dataset,
    read_index,
    vector_to_label,
    write_index,
    write_sample,
)
from semantichuman_hd.data.format import encode_normals
from semantichuman_hd.data.labels import colorize_labels
from semantichuman_hd.data.transforms import (
    mirror_camera_vector,
    mirror_full_pose,
    mirror_label_vector,
    mirror_smpl_vector,
    pad_to_square,
    padded_intrinsics,
    resize_labels,
)
from semantichuman_hd.parts import NUM_PARTS, PART_COLORS, PARTS
from semantichuman_hd.rendering.cameras import Cameras, look_at_cam2world, normalized_intrinsics


# ---- helpers ------------------------------------------------------------------------------------


def random_camera(rng: np.random.Generator, principal_point=(0.5, 0.5), skew: float = 0.0) -> dict:
    position = torch.tensor(rng.normal(size=3) * 2 + [0.0, 0.0, 6.0], dtype=torch.float64)[None]
    target = torch.tensor(rng.normal(size=3) * 0.2, dtype=torch.float64)[None]
    up = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    cam2world = look_at_cam2world(position, target, up)[0]
    intrinsics = normalized_intrinsics(float(rng.uniform(2, 6)), principal_point, dtype=torch.float64)[0]
    intrinsics[0, 1] = skew
    return {"cam2world": cam2world.numpy(), "intrinsics": intrinsics.numpy()}


def random_smpl(rng: np.random.Generator) -> dict:
    return {
        "scale": float(rng.uniform(0.8, 1.2)),
        "transl": rng.normal(size=3) * 0.1,
        "global_orient": rng.normal(size=3) * 0.3,
        "body_pose": rng.normal(size=69) * 0.3,
        "betas": rng.normal(size=10),
    }


def random_pictures(rng: np.random.Generator, width: int, height: int):
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    segm = rng.integers(0, NUM_PARTS + 1, (height, width), dtype=np.uint8)
    normals = rng.normal(size=(height, width, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return image, segm, normals


def write_dataset(root, num=3, width=16, height=16, with_normals=True, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    with DatasetWriter(root, (width, height), with_normals=with_normals) as writer:
        for i in range(num):
            image, segm, normals = random_pictures(rng, width, height)
            camera, smpl = random_camera(rng), random_smpl(rng)
            writer.add(f"{i:06d}.png", image, segm, camera, smpl, normals=normals if with_normals else None, extras={"i": i})
            samples.append({"image": image, "segm": segm, "normals": normals, "camera": camera, "smpl": smpl})
    return samples


def rewrite_index(root, mutate):
    path = root / "dataset.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))


# ---- round trip and layouts -----------------------------------------------------------------------


def test_round_trip_at_native_resolution(tmp_path):
    samples = write_dataset(tmp_path)
    dataset = SemanticHumanDataset(tmp_path)
    assert len(dataset) == 3 and dataset.resolution == 16 and dataset.with_normals
    for i, sample in enumerate(samples):
        item = dataset[i]
        expected_image = torch.from_numpy(sample["image"]).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(item["image"], expected_image)
        assert item["image"].min() >= -1 and item["image"].max() <= 1
        assert torch.equal(item["segm"], torch.from_numpy(sample["segm"]).long())
        assert item["segm"].dtype == torch.int64
        one_hot = torch.nn.functional.one_hot(item["segm"], NUM_PARTS + 1)[..., 1:].permute(2, 0, 1).float()
        assert torch.equal(item["part_masks"], one_hot)
        # Normals: 8-bit quantised, then re-normalised; background (label 0) exactly white.
        foreground = item["segm"] > 0
        normals = item["normals"]
        expected_normals = torch.from_numpy(sample["normals"]).permute(2, 0, 1).float()
        assert torch.allclose(normals[:, foreground], expected_normals[:, foreground], atol=1.5 / 127.5 * 2)
        assert torch.allclose(normals[:, foreground].norm(dim=0), torch.ones(int(foreground.sum())), atol=1e-5)
        assert torch.equal(normals[:, ~foreground], torch.ones(3, int((~foreground).sum())))
        vector = torch.from_numpy(label_to_vector({"camera": sample["camera"], "smpl": sample["smpl"]}))
        assert torch.equal(torch.cat([item["camera"], item["smpl"]]), vector)
        assert torch.allclose(item["cam2world"], torch.from_numpy(sample["camera"]["cam2world"]).float())
        assert torch.allclose(item["intrinsics"], torch.from_numpy(sample["camera"]["intrinsics"]).float())
        for key in ("transl", "global_orient", "body_pose", "betas"):
            assert torch.allclose(item[key], torch.tensor(sample["smpl"][key]).float())
        assert item["scale"].shape == () and math.isclose(float(item["scale"]), sample["smpl"]["scale"], rel_tol=1e-6)
        assert item["name"] == f"{i:06d}.png" and item["mirrored"] is False
        assert dataset.extras(i) == {"i": i}
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["smpl"].shape == (3, SMPL_LABEL_DIM)


def test_label_vector_layout_is_ag3d():
    rng = np.random.default_rng(1)
    label = {"camera": random_camera(rng), "smpl": random_smpl(rng)}
    vector = label_to_vector(label)
    assert vector.shape == (LABEL_DIM,) == (CAMERA_LABEL_DIM + SMPL_LABEL_DIM,) == (111,)
    assert np.allclose(vector[:16], label["camera"]["cam2world"].reshape(-1))
    assert np.allclose(vector[16:25], label["camera"]["intrinsics"].reshape(-1))
    assert np.isclose(vector[25], label["smpl"]["scale"])
    assert np.allclose(vector[26:29], label["smpl"]["transl"])
    assert np.allclose(vector[29:32], label["smpl"]["global_orient"])
    assert np.allclose(vector[32:101], label["smpl"]["body_pose"])
    assert np.allclose(vector[101:111], label["smpl"]["betas"])
    assert np.allclose(label_to_vector(vector_to_label(vector)), vector)
    with pytest.raises(ValueError, match="111"):
        vector_to_label(vector[:110])


@pytest.mark.parametrize("layout", ["flat", "pair"])
def test_reads_ag3d_label_layouts(tmp_path, layout):
    write_dataset(tmp_path, with_normals=False)
    reference = SemanticHumanDataset(tmp_path)

    def to_ag3d(data):
        labels = []
        for name, label in data["labels"]:
            vector = label_to_vector(label).astype(float).tolist()
            labels.append([name, vector if layout == "flat" else [vector[:25], vector[25:]]])
        data.clear()
        data["labels"] = labels  # AG3D's files hold nothing else

    rewrite_index(tmp_path, to_ag3d)
    dataset = SemanticHumanDataset(tmp_path)
    assert dataset.index.resolution is None and dataset.resolution == 16 and not dataset.with_normals
    for i in range(len(dataset)):
        assert torch.equal(dataset[i]["camera"], reference[i]["camera"])
        assert torch.equal(dataset[i]["smpl"], reference[i]["smpl"])
        assert torch.equal(dataset[i]["image"], reference[i]["image"])


# ---- padding and resizing -------------------------------------------------------------------------


def test_non_square_pictures_are_padded_white_and_centred(tmp_path):
    rng = np.random.default_rng(2)
    width, height = 8, 13
    image = np.zeros((height, width, 3), dtype=np.uint8)  # black person, so white padding stands out
    segm = np.full((height, width), 2, dtype=np.uint8)
    normals = np.tile([0.0, 0.0, 1.0], (height, width, 1))
    with DatasetWriter(tmp_path, (width, height), with_normals=True) as writer:
        writer.add("a.png", image, segm, random_camera(rng), random_smpl(rng), normals=normals)
    assert read_index(tmp_path).resolution == (width, height)
    item = SemanticHumanDataset(tmp_path)[0]
    assert item["image"].shape == (3, 13, 13)
    left = (13 - width) // 2  # 2 columns left, 3 right
    inside = torch.zeros(13, 13, dtype=torch.bool)
    inside[:, left : left + width] = True
    assert torch.equal(item["image"][:, ~inside], torch.ones(3, int((~inside).sum())))
    assert torch.equal(item["image"][:, inside], -torch.ones(3, int(inside.sum())))
    assert torch.equal(item["segm"], torch.where(inside, 2, 0))
    assert torch.equal(item["normals"][:, ~inside], torch.ones(3, int((~inside).sum())))
    assert torch.allclose(item["normals"][:, inside], torch.tensor([0.0, 0.0, 1.0])[:, None], atol=1e-2)


def test_nearest_neighbour_resizing_keeps_only_valid_labels(tmp_path):
    # Stripes of labels 1 and 5: any blending would produce 2, 3 or 4.
    segm = torch.zeros(37, 37, dtype=torch.long)
    segm[:, ::2] = 1
    segm[:, 1::2] = 5
    for size in (8, 16, 50, 111):
        values = set(resize_labels(segm, size).unique().tolist())
        assert values <= {1, 5}
    write_dataset(tmp_path, num=2, width=20, height=24)
    for resolution in (7, 16, 48):
        dataset = SemanticHumanDataset(tmp_path, image_size=resolution, mirror=True)
        for i in range(len(dataset)):
            item = dataset[i]
            assert item["image"].shape == (3, resolution, resolution)
            assert item["segm"].min() >= 0 and item["segm"].max() <= NUM_PARTS
            assert torch.equal(item["part_masks"].sum(0), (item["segm"] > 0).float())
            foreground = item["segm"] > 0
            assert torch.allclose(item["normals"][:, foreground].norm(dim=0), torch.ones(int(foreground.sum())), atol=1e-5)
            assert torch.equal(item["normals"][:, ~foreground], torch.ones(3, int((~foreground).sum())))
            assert item["image"].min() >= -1 and item["image"].max() <= 1


def test_downsampling_a_uniform_region_keeps_its_label_and_colour(tmp_path):
    rng = np.random.default_rng(4)
    image = np.full((32, 32, 3), 255, dtype=np.uint8)
    image[8:24, 8:24] = (10, 200, 30)
    segm = np.zeros((32, 32), dtype=np.uint8)
    segm[8:24, 8:24] = 4
    with DatasetWriter(tmp_path, 32) as writer:
        writer.add("x.png", image, segm, random_camera(rng), random_smpl(rng))
    item = SemanticHumanDataset(tmp_path, image_size=8)[0]
    assert torch.equal(item["segm"][2:6, 2:6], torch.full((4, 4), 4))
    assert int((item["segm"] == 4).sum()) == 16
    expected = torch.tensor([10, 200, 30]) / 127.5 - 1
    assert torch.allclose(item["image"][:, 3, 3], expected, atol=1e-5)


def test_padded_intrinsics_follow_the_pixels():
    width, height = 6, 10
    intrinsics = np.array([[1.3, 0.1, 0.45], [0, 0.9, 0.55], [0, 0, 1]])
    padded = padded_intrinsics(intrinsics, width, height)
    point = np.array([0.3, -0.2, 2.0])
    u = (intrinsics[0, 0] * point[0] + intrinsics[0, 1] * point[1]) / point[2] + intrinsics[0, 2]
    v = intrinsics[1, 1] * point[1] / point[2] + intrinsics[1, 2]
    u2 = (padded[0, 0] * point[0] + padded[0, 1] * point[1]) / point[2] + padded[0, 2]
    v2 = padded[1, 1] * point[1] / point[2] + padded[1, 2]
    assert np.isclose(u2 * 10, u * width + 2) and np.isclose(v2 * 10, v * height)
    assert pad_to_square(np.zeros((height, width), np.uint8), 9)[:, :2].min() == 9


# ---- mirroring --------------------------------------------------------------------------------------


def test_mirror_twice_is_identity(tmp_path):
    rng = np.random.default_rng(5)
    vector = torch.from_numpy(label_to_vector({"camera": random_camera(rng, (0.4, 0.6), 0.05), "smpl": random_smpl(rng)}))
    once = mirror_label_vector(vector)
    assert not torch.allclose(once, vector)
    assert torch.allclose(mirror_label_vector(once), vector, rtol=0, atol=1e-6)  # 1 − (1 − cx) rounds in float32
    write_dataset(tmp_path, num=2, width=12, height=15)
    dataset = SemanticHumanDataset(tmp_path, mirror=True)
    assert len(dataset) == 4
    for i in range(2):
        original, mirrored = dataset[i], dataset[i + 2]
        assert mirrored["mirrored"] is True and mirrored["name"] == original["name"]
        assert torch.equal(mirrored["image"], original["image"].flip(-1))
        assert torch.equal(mirrored["segm"], original["segm"].flip(-1))
        assert torch.equal(mirrored["part_masks"], original["part_masks"].flip(-1))
        foreground = original["segm"].flip(-1) > 0
        expected = original["normals"].flip(-1).clone()
        expected[0][foreground] = -expected[0][foreground]
        assert torch.equal(mirrored["normals"], expected)
        assert torch.equal(torch.cat([mirrored["camera"], mirrored["smpl"]]), mirror_label_vector(dataset.labels[i]))
        again = mirror_label_vector(torch.cat([mirrored["camera"], mirrored["smpl"]]))
        assert torch.allclose(again, dataset.labels[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("principal_point,skew", [((0.5, 0.5), 0.0), ((0.37, 0.61), 0.08)])
def test_mirrored_camera_projects_mirrored_points(principal_point, skew):
    rng = np.random.default_rng(6)
    camera = random_camera(rng, principal_point, skew)
    flat = torch.from_numpy(np.concatenate([camera["cam2world"].reshape(-1), camera["intrinsics"].reshape(-1)]))
    mirrored = mirror_camera_vector(flat)
    cameras = Cameras(flat[:16].reshape(1, 4, 4), flat[16:].reshape(1, 3, 3))
    mirrored_cameras = Cameras(mirrored[:16].reshape(1, 4, 4), mirrored[16:].reshape(1, 3, 3))
    points = torch.from_numpy(rng.normal(size=(1, 50, 3)) * 0.5)
    reflected = points * torch.tensor([-1.0, 1.0, 1.0], dtype=points.dtype)
    pixels, depth = cameras.project(points)
    mirrored_pixels, mirrored_depth = mirrored_cameras.project(reflected)
    assert torch.allclose(mirrored_pixels[..., 0], 1 - pixels[..., 0], atol=1e-10)
    assert torch.allclose(mirrored_pixels[..., 1], pixels[..., 1], atol=1e-10)
    assert torch.allclose(mirrored_depth, depth, atol=1e-10)
    rotation = mirrored_cameras.cam2world[0, :3, :3]
    assert torch.isclose(torch.det(rotation), torch.tensor(1.0, dtype=rotation.dtype))
    assert torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=rotation.dtype), atol=1e-10)


def test_mirrored_sample_pixels_agree_with_mirrored_camera(tmp_path):
    """A pixel marked where the camera sees a 3D point is, after the mirror, where the mirrored
    camera sees the mirrored point."""
    rng = np.random.default_rng(7)
    size = 40
    camera = random_camera(rng, (0.45, 0.5))
    cameras = Cameras(torch.from_numpy(camera["cam2world"])[None], torch.from_numpy(camera["intrinsics"])[None])
    point = torch.tensor([[[0.2, -0.1, 0.05]]], dtype=torch.float64)
    u, v = cameras.project(point)[0][0, 0]
    assert 0 < u < 1 and 0 < v < 1
    column, row = int(u * size), int(v * size)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[row, column] = 0
    segm = np.zeros((size, size), dtype=np.uint8)
    segm[row, column] = 3
    with DatasetWriter(tmp_path, size) as writer:
        writer.add("p.png", image, segm, camera, random_smpl(rng))
    item = SemanticHumanDataset(tmp_path, mirror=True)[1]
    mirrored_cameras = Cameras(item["cam2world"][None].double(), item["intrinsics"][None].double())
    (u2, v2) = mirrored_cameras.project(point * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))[0][0, 0]
    marked = torch.nonzero(item["segm"] == 3)
    assert marked.tolist() == [[int(v2 * size), int(u2 * size)]]
    assert float(item["image"][0, int(v2 * size), int(u2 * size)]) == -1.0


def test_mirrored_smpl_swaps_sides_and_reflects_rotations():
    assert SMPL_MIRROR_PERMUTATION[SMPL_JOINT_NAMES.index("left_hip")] == SMPL_JOINT_NAMES.index("right_hip")
    assert SMPL_MIRROR_PERMUTATION[SMPL_JOINT_NAMES.index("right_wrist")] == SMPL_JOINT_NAMES.index("left_wrist")
    assert SMPL_MIRROR_PERMUTATION[SMPL_JOINT_NAMES.index("head")] == SMPL_JOINT_NAMES.index("head")
    rng = np.random.default_rng(8)
    smpl = torch.from_numpy(label_to_vector({"camera": random_camera(rng), "smpl": random_smpl(rng)})[25:]).double()
    mirrored = mirror_smpl_vector(smpl)
    pose = smpl[4:76].reshape(24, 3)
    mirrored_pose = mirrored[4:76].reshape(24, 3)
    reflect = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    for joint in range(24):
        source = SMPL_MIRROR_PERMUTATION[joint]
        assert torch.allclose(mirrored_pose[joint], pose[source] * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
        # The rotation of the mirrored joint is M · R · M.
        assert torch.allclose(axis_angle_to_matrix(mirrored_pose[joint]), reflect @ axis_angle_to_matrix(pose[source]) @ reflect, atol=1e-10)
    assert mirrored[0] == smpl[0]  # scale
    assert torch.equal(mirrored[1:4], smpl[1:4] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))  # transl
    assert torch.equal(mirrored[76:], smpl[76:])  # betas
    assert torch.equal(mirror_full_pose(mirror_full_pose(smpl[4:76])), smpl[4:76])


def test_mirrored_pose_mirrors_the_open_body(open_body):
    """Posed joints of the mirrored fit are the reflected joints of the fit, left and right swapped."""
    rng = np.random.default_rng(9)
    smpl = torch.from_numpy(label_to_vector({"camera": random_camera(rng), "smpl": random_smpl(rng)})[25:])[None]
    smpl[:, 76:] = 0  # shape components need not be symmetric; the pose mirror is what is tested
    mirrored = mirror_smpl_vector(smpl)

    def joints(vector):
        return open_body(
            betas=vector[:, 76:], body_pose=vector[:, 7:76], global_orient=vector[:, 4:7], transl=vector[:, 1:4]
        ).joints[0, :24]

    reflected = joints(smpl) * torch.tensor([-1.0, 1.0, 1.0])
    permutation = torch.tensor(SMPL_MIRROR_PERMUTATION)
    assert torch.allclose(joints(mirrored), reflected[permutation], atol=1e-4)


# ---- validation -------------------------------------------------------------------------------------


def test_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        SemanticHumanDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SemanticHumanDataset(tmp_path / "nowhere")


@pytest.mark.parametrize("folder", ["images", "segm", "normals"])
def test_missing_listed_picture(tmp_path, folder):
    write_dataset(tmp_path, num=2)
    (tmp_path / folder / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder}/000001.png"):
        SemanticHumanDataset(tmp_path)


def test_image_and_segm_size_mismatch(tmp_path):
    write_dataset(tmp_path, num=2)
    Image.fromarray(np.zeros((15, 16), np.uint8)).save(tmp_path / "segm" / "000001.png")
    dataset = SemanticHumanDataset(tmp_path)
    dataset[0]
    with pytest.raises(ValueError, match=r"segm/000001.png is 16 × 15"):
        dataset[1]
    with pytest.raises(ValueError, match="000001.png"):
        dataset.validate()


def test_picture_size_differs_from_declared_resolution(tmp_path):
    write_dataset(tmp_path, num=1)
    rewrite_index(tmp_path, lambda data: data.update(resolution=32))
    with pytest.raises(ValueError, match="declares resolution 32 × 32"):
        SemanticHumanDataset(tmp_path)[0]


def test_label_value_above_six(tmp_path):
    write_dataset(tmp_path, num=1)
    segm = np.zeros((16, 16), np.uint8)
    segm[3, 3] = 7
    Image.fromarray(segm).save(tmp_path / "segm" / "000000.png")
    with pytest.raises(ValueError, match=r"segm/000000.png holds label value 7; allowed are 0 .* to 6"):
        SemanticHumanDataset(tmp_path)[0]
    with pytest.raises(ValueError, match="label value 7"):
        dataset_stats(tmp_path)


def test_rgb_label_map_is_refused(tmp_path):
    write_dataset(tmp_path, num=1)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "segm" / "000000.png")
    with pytest.raises(ValueError, match="single-channel"):
        SemanticHumanDataset(tmp_path)[0]


def test_unparseable_json(tmp_path):
    write_dataset(tmp_path, num=1)
    (tmp_path / "dataset.json").write_text('{"labels": [["000000.png", ')
    with pytest.raises(ValueError, match=r"dataset.json is not valid JSON"):
        SemanticHumanDataset(tmp_path)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["labels"][0].__setitem__(1, [0.0] * 110), r"labels\[0\]` \(000000.png\): a flat label vector must hold 111 numbers .* got 110"),
        (lambda d: d["labels"][0].__setitem__(1, [[0.0] * 25, [0.0] * 80]), "must hold 25 and 86 numbers, got 25 and 80"),
        (lambda d: d["labels"][1][1]["smpl"]["body_pose"].__setitem__(5, float("nan")), r"000001.png.*`smpl.body_pose` holds non-finite values .* \[5\]"),
        (lambda d: d["labels"][0][1]["camera"].pop("intrinsics"), r"`camera.intrinsics` is missing"),
        (lambda d: d["labels"][0][1]["smpl"].__setitem__("betas", [0.0] * 9), r"`smpl.betas` must hold 10 numbers"),
        (lambda d: d["labels"][0][1].__setitem__("smlp", {}), r"unknown label keys \['smlp'\]"),
        (lambda d: d["labels"][0][1]["camera"]["cam2world"].__setitem__(3, [0, 0, 1, 1]), "must end with the row"),
        (lambda d: d.update(format="something-else"), "`format` must be 'semantichuman-hd-dataset'"),
        (lambda d: d.update(version=2), "`version` must be an integer from 1 to 1"),
        (lambda d: d.update(parts=list(reversed(PARTS))), "`parts` must be"),
        (lambda d: d["labels"].append(d["labels"][0]), "listed twice"),
        (lambda d: d.update(labels=[]), "`labels` must be a non-empty list"),
        (lambda d: d["labels"][0].__setitem__(0, "../escape.png"), "plain file name"),
    ],
)
def test_bad_index_contents(tmp_path, mutate, message):
    write_dataset(tmp_path, num=2, with_normals=False)
    rewrite_index(tmp_path, mutate)
    with pytest.raises(ValueError, match=message):
        SemanticHumanDataset(tmp_path)


def test_flat_vector_with_nan(tmp_path):
    write_dataset(tmp_path, num=1, with_normals=False)

    def to_flat_with_nan(data):
        vector = label_to_vector(data["labels"][0][1]).astype(float).tolist()
        vector[40] = float("nan")
        data["labels"][0][1] = vector

    rewrite_index(tmp_path, to_flat_with_nan)
    with pytest.raises(ValueError, match=r"000000.png.*non-finite .* \[40\]"):
        SemanticHumanDataset(tmp_path)


def test_with_normals_argument(tmp_path):
    write_dataset(tmp_path, num=1, with_normals=False)
    assert "normals" not in SemanticHumanDataset(tmp_path)[0]
    with pytest.raises(ValueError, match="declares `normals: false`"):
        SemanticHumanDataset(tmp_path, with_normals=True)
    with pytest.raises(ValueError, match="`with_normals` must be one of"):
        SemanticHumanDataset(tmp_path, with_normals="yes")
    with pytest.raises(ValueError, match="`image_size` must be a positive integer"):
        SemanticHumanDataset(tmp_path, image_size=0)
    # The deprecated name still works, warns, and errors name it.
    with pytest.warns(FutureWarning, match="`resolution` is deprecated"), pytest.raises(ValueError, match="`resolution` must be a positive integer"):
        SemanticHumanDataset(tmp_path, resolution=0)


def test_writer_checks_its_inputs(tmp_path):
    rng = np.random.default_rng(10)
    image, segm, _ = random_pictures(rng, 8, 8)
    camera, smpl = random_camera(rng), random_smpl(rng)
    with pytest.raises(ValueError, match="segm` values must be 0..6"):
        write_sample(tmp_path, "a.png", image, np.full((8, 8), 7, np.uint8), camera, smpl)
    with pytest.raises(ValueError, match="`image` must be uint8"):
        write_sample(tmp_path, "a.png", image.astype(np.float32), segm, camera, smpl)
    with pytest.raises(ValueError, match=r"`image` must have shape \(8, 8, 3\)"):
        write_sample(tmp_path, "a.png", image[:4], segm, camera, smpl)
    with pytest.raises(ValueError, match="plain file name ending in '.png'"):
        write_sample(tmp_path, "a.jpg", image, segm, camera, smpl)
    with pytest.raises(ValueError, match="pictures must be 16 × 16"):
        write_sample(tmp_path, "a.png", image, segm, camera, smpl, resolution=16)
    with pytest.raises(ValueError, match="`smpl` must hold 86 numbers"):
        write_sample(tmp_path, "a.png", image, segm, camera, np.zeros(85))
    writer = DatasetWriter(tmp_path / "w", 8)
    writer.add("a.png", image, segm, camera, smpl)
    with pytest.raises(ValueError, match="already added"):
        writer.add("a.png", image, segm, camera, smpl)
    with pytest.raises(ValueError, match="with_normals=False"):
        writer.add("b.png", image, segm, camera, smpl, normals=np.zeros((8, 8, 3), np.uint8))
    writer.close()
    with pytest.raises(ValueError, match="already exists"):
        DatasetWriter(tmp_path / "w", 8)
    DatasetWriter(tmp_path / "w", 8, overwrite=True)


def test_worker_style_writing(tmp_path):
    """Workers call write_sample; the parent gathers the entries and writes the index."""
    rng = np.random.default_rng(11)
    entries = []
    for name in ("b.png", "a.png"):
        image, segm, normals = random_pictures(rng, 6, 6)
        entry = write_sample(tmp_path, name, image, segm, random_camera(rng), random_smpl(rng), normals=encode_normals(normals, segm > 0))
        json.dumps(entry)  # JSON-ready, so it crosses process boundaries
        entries.append(entry)
    with pytest.raises(ValueError, match="appears twice"):
        write_index(tmp_path, entries + entries[:1], 6, with_normals=True)
    with pytest.raises(FileNotFoundError, match="was not written"):
        write_index(tmp_path, entries + [["c.png", entries[0][1]]], 6, with_normals=True)
    write_index(tmp_path, entries, 6, with_normals=True, info={"generator": "test"})
    dataset = SemanticHumanDataset(tmp_path)
    assert dataset.names == ["b.png", "a.png"] and dataset.index.info == {"generator": "test"} and dataset.with_normals
    assert not list(tmp_path.glob("**/.*.tmp*"))


# ---- preview and statistics --------------------------------------------------------------------------


def test_stats_and_preview(tmp_path):
    rng = np.random.default_rng(12)
    first = np.zeros((10, 10), np.uint8)
    first[:, :5] = 1  # body: half the picture
    first[:2, 5:] = 2  # tops: 10 %
    second = np.zeros((10, 10), np.uint8)
    second[:5, :] = 1  # body: half; no tops
    with DatasetWriter(tmp_path, 10) as writer:
        for name, segm in (("a.png", first), ("b.png", second)):
            writer.add(name, np.full((10, 10, 3), 255, np.uint8), segm, random_camera(rng), random_smpl(rng))
    stats = dataset_stats(tmp_path)
    assert stats["num_images"] == 2 and list(stats["parts"]) == list(PARTS)
    assert stats["parts"]["body"] == {"presence_rate": 1.0, "mean_coverage": 0.5, "mean_coverage_when_present": 0.5}
    assert stats["parts"]["tops"] == pytest.approx({"presence_rate": 0.5, "mean_coverage": 0.05, "mean_coverage_when_present": 0.1})
    assert stats["parts"]["shoes"] == {"presence_rate": 0.0, "mean_coverage": 0.0, "mean_coverage_when_present": None}
    assert stats["background_coverage"] == pytest.approx(0.45)
    assert SemanticHumanDataset(tmp_path).stats() == stats

    sheet_path = preview_dataset(tmp_path, tmp_path / "sheet.png", num=5, seed=3, tile=10)
    sheet = np.asarray(Image.open(sheet_path))
    assert sheet.shape == (2 * 10, 3 * 10, 3)  # all 2 samples, image | labels | normals
    rows = {tuple(sheet[r * 10, 10]) for r in range(2)}
    assert rows == {tuple(PART_COLORS[0])}  # top-left pixel of each label tile is body
    assert (sheet[:, 20:] == 200).all()  # no normals: grey tiles
    assert np.array_equal(colorize_labels(first)[0, 9], PART_COLORS[1])
    assert np.array_equal(colorize_labels(first)[9, 9], (255, 255, 255))


def test_preview_shows_normals(tmp_path):
    write_dataset(tmp_path, num=3)
    sheet = np.asarray(Image.open(preview_dataset(tmp_path, tmp_path / "s.png", num=2, tile=16)))
    assert sheet.shape == (32, 48, 3)
    assert not (sheet[:, 32:] == 200).all()


# ---- CLI ----------------------------------------------------------------------------------------------


def build_cli():
    from semantichuman_hd.cli import data as data_cli

    parser = argparse.ArgumentParser(prog="semantichuman-hd")
    subparsers = parser.add_subparsers(dest="command")
    data_cli.register(subparsers)
    return parser


def test_preview_dataset_command(tmp_path, capsys):
    write_dataset(tmp_path / "ds", num=2)
    parser = build_cli()
    args = parser.parse_args(["preview-dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "sheet.png"), "--stats", "--num", "1"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_images"] == 2 and set(printed["parts"]) == set(PARTS)
    assert Image.open(tmp_path / "sheet.png").size == (3 * 256, 256)
    args = parser.parse_args(["preview-dataset", str(tmp_path / "ds")])
    with pytest.raises(ValueError, match="nothing to do"):
        args.func(args)


def test_make_dataset_is_a_group_with_a_source_registry(capsys):
    from semantichuman_hd.cli import data as data_cli

    parser = build_cli()
    with pytest.raises(SystemExit):
        parser.parse_args(["make-dataset"])
    assert "required" in capsys.readouterr().err
    assert parser.parse_args(["make-dataset", "deepfashion", "--images", "i", "--parsing", "p", "--smpl", "s.json", "--out", "o"]).source == "deepfashion"
    with pytest.raises(ValueError, match="new make-dataset source"):
        data_cli.add_make_dataset_source("deepfashion", "x:y")
    with pytest.raises(ValueError, match="module:function"):
        data_cli.add_make_dataset_source("other", "no-colon")
