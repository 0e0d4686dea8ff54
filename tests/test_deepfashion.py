"""DeepFashion-MultiModal preparation, end to end on a tiny fixture built here in the release's file
naming (images/NAME.jpg, segm/NAME_segm.png, keypoints_loc.txt) plus SMPL fits in every accepted layout."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from semantichuman_hd.data import SemanticHumanDataset, label_to_vector, load_smpl_fits, prepare_deepfashion
from semantichuman_hd.data.deepfashion import (
    REPORT_FILE,
    SKIP_NO_FIT,
    SKIP_NO_NORMALS,
    SKIP_NO_PARSING,
    SKIP_SIZE_MISMATCH,
    SKIP_UNREADABLE_IMAGE,
)
from semantichuman_hd.data.labels import DEEPFASHION_LABEL_NAMES, DEEPFASHION_LABEL_TO_PART, deepfashion_to_parts
from semantichuman_hd.data.transforms import padded_intrinsics
from semantichuman_hd.parts import part_index

WIDTH, HEIGHT = 15, 22
"""Fixture picture size: the release's 750 × 1101 portrait shape, 50 times smaller."""

# Horizontal bands of parsing labels (DeepFashion values), top to bottom, and the part each must become.
BANDS = [(7, "accessories"), (14, "body"), (1, "tops"), (2, "outerwear"), (5, "bottoms"), (18, "shoes"), (11, "shoes")]
BAND_ROWS = 3

COMPLETE = ["MEN-Denim-id_00000080-01_7_additional", "WOMEN-Dresses-id_00000002-02_1_front", "WOMEN-Tees_Tanks-id_00000007-01_2_side"]
NO_PARSING = "MEN-Pants-id_00000111-01_4_full"
NO_FIT = "WOMEN-Skirts-id_00000123-03_1_front"
MISMATCH = "MEN-Jackets_Vests-id_00000200-02_7_additional"
UNREADABLE = "WOMEN-Blouses_Shirts-id_00000300-01_3_back"
UNKNOWN_VALUE = 30


def parsing_map() -> np.ndarray:
    parsing = np.zeros((HEIGHT, WIDTH), np.uint8)
    for band, (value, _) in enumerate(BANDS):
        parsing[band * BAND_ROWS : (band + 1) * BAND_ROWS, 3:12] = value
    return parsing


def fit_label(rng: np.random.Generator, cx: float = 0.5) -> dict:
    cam2world = np.eye(4)
    cam2world[:3, :3] = np.diag([1.0, -1.0, -1.0])
    cam2world[2, 3] = 11.0
    intrinsics = np.array([[5.0, 0.0, cx], [0.0, 5.0, 0.5], [0.0, 0.0, 1.0]])
    return {
        "camera": {"cam2world": cam2world.tolist(), "intrinsics": intrinsics.tolist()},
        "smpl": {
            "scale": 1.0,
            "transl": rng.normal(size=3).tolist(),
            "global_orient": rng.normal(size=3).tolist(),
            "body_pose": (rng.normal(size=69) * 0.2).tolist(),
            "betas": rng.normal(size=10).tolist(),
        },
    }


@pytest.fixture
def deepfashion(tmp_path):
    """A DeepFashion-MultiModal-shaped folder and a JSON {name: label} fits file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "DeepFashion-MultiModal"
    images, segm = root / "images", root / "segm"
    images.mkdir(parents=True)
    segm.mkdir()
    parsing = parsing_map()
    for name in COMPLETE + [NO_PARSING, NO_FIT, MISMATCH]:
        picture = np.full((HEIGHT, WIDTH, 3), 250, np.uint8)
        picture[parsing > 0] = (30, 60, 200)
        Image.fromarray(picture).save(images / f"{name}.jpg", quality=95)
        if name != NO_PARSING:
            labels = parsing.copy()
            if name == COMPLETE[1]:
                labels[0, 0] = UNKNOWN_VALUE
                labels[0, 1] = UNKNOWN_VALUE
            if name == MISMATCH:
                labels = labels[:-1]
            Image.fromarray(labels).save(segm / f"{name}_segm.png")
    (images / f"{UNREADABLE}.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(parsing).save(segm / f"{UNREADABLE}_segm.png")
    (root / "keypoints_loc.txt").write_text(
        "\n".join(f"{name}.jpg " + " ".join(["-1"] * 42) for name in COMPLETE) + "\n"
    )
    fits = {f"{name}.jpg": fit_label(rng) for name in COMPLETE + [NO_PARSING, MISMATCH, UNREADABLE, "IMAGE-not-in-folder"]}
    fits_path = tmp_path / "fits.json"
    fits_path.write_text(json.dumps(fits))
    return {"root": root, "images": images, "segm": segm, "fits_path": fits_path, "fits": fits, "tmp": tmp_path}


def test_label_table_is_the_design_grouping():
    assert len(DEEPFASHION_LABEL_NAMES) == 24 and set(DEEPFASHION_LABEL_TO_PART) == set(range(24))
    assert DEEPFASHION_LABEL_TO_PART[0] is None
    expected = {
        "body": {14, 13, 15},
        "tops": {1, 4, 21},
        "outerwear": {2},
        "bottoms": {3, 5, 6},
        "shoes": {11, 18},
        "accessories": {7, 8, 9, 10, 12, 16, 17, 19, 20, 22, 23},
    }
    for part, values in expected.items():
        assert {v for v, p in DEEPFASHION_LABEL_TO_PART.items() if p == part} == values
    parsing = np.arange(0, 32, dtype=np.uint8).reshape(4, 8)
    parts, unknown = deepfashion_to_parts(parsing)
    assert parts[0, 0] == 0 and parts[1, 6] == part_index("body") + 1  # value 14 is the face
    assert unknown == {value: 1 for value in range(24, 32)}
    assert (parts.reshape(-1)[24:] == 0).all()


def test_end_to_end(deepfashion, tmp_path):
    out = tmp_path / "prepared"
    report = prepare_deepfashion(deepfashion["images"], deepfashion["segm"], deepfashion["fits_path"], out, image_size=33)
    assert report.num_images == 7
    assert report.written == sorted(f"{name}.png" for name in COMPLETE)
    reasons = {entry["image"]: entry["reason"] for entry in report.skipped}
    assert reasons == {
        f"{NO_PARSING}.jpg": SKIP_NO_PARSING,
        f"{NO_FIT}.jpg": SKIP_NO_FIT,
        f"{MISMATCH}.jpg": SKIP_SIZE_MISMATCH,
        f"{UNREADABLE}.jpg": SKIP_UNREADABLE_IMAGE,
    }
    assert report.unknown_labels == {UNKNOWN_VALUE: {"images": 1, "pixels": 2}}
    assert report.unused_fits == 1
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["num_written"] == 3 and saved["skipped_by_reason"][SKIP_NO_FIT] == 1
    assert saved["unknown_labels"] == {str(UNKNOWN_VALUE): {"images": 1, "pixels": 2}}
    summary = report.summary()
    assert "3 of 7 images written" in summary and NO_FIT in summary and "parsing value 30" in summary

    dataset = SemanticHumanDataset(out)
    assert dataset.resolution == 33 and not dataset.with_normals and len(dataset) == 3
    size, left, top = 22, (22 - WIDTH) // 2, 0
    for i, name in enumerate(sorted(COMPLETE)):
        item = dataset[i]
        assert item["name"] == f"{name}.png"
        segm = item["segm"]
        assert set(segm.unique().tolist()) == {0} | {part_index(part) + 1 for _, part in BANDS}
        # The middle row of each band, at the centre column, carries the band's part.
        scale = 33 / size
        for band, (_, part) in enumerate(BANDS):
            row = int((top + band * BAND_ROWS + 1.5) * scale)
            assert int(segm[row, 16]) == part_index(part) + 1, (name, part)
        # White padding on both sides; the person is blue-ish.
        assert torch.equal(item["image"][:, :, 0], torch.ones(3, 33)) and torch.equal(item["image"][:, :, -1], torch.ones(3, 33))
        assert (segm[:, : int(left * scale)] == 0).all() and (segm[:, -int(left * scale) :] == 0).all()
        person = item["image"][:, segm > 0].mean(1)
        assert person[2] > 0.3 and person[0] < -0.5
        expected = torch.from_numpy(label_to_vector(deepfashion["fits"][f"{name}.jpg"]))
        assert torch.equal(torch.cat([item["camera"], item["smpl"]]), expected)
        assert dataset.extras(i)["source"] == {"dataset": "DeepFashion-MultiModal", "image": f"{name}.jpg", "parsing": f"{name}_segm.png"}
    info = dataset.index.info
    assert info["source"] == "DeepFashion-MultiModal" and info["deepfashion_labels_per_part"]["outerwear"] == [2]

    with pytest.raises(ValueError, match="already exists"):
        prepare_deepfashion(deepfashion["images"], deepfashion["segm"], deepfashion["fits_path"], out, image_size=33)


def write_fits(fits: dict, path, layout: str):
    if layout == "json-object":
        path.write_text(json.dumps(fits))
    elif layout in ("ag3d-flat", "ag3d-pair"):
        labels = []
        for name, label in fits.items():
            vector = label_to_vector(label).astype(float).tolist()
            labels.append([name.replace(".jpg", ".png"), vector if layout == "ag3d-flat" else [vector[:25], vector[25:]]])
        path.write_text(json.dumps({"labels": labels}))
    elif layout == "npz":
        names = list(fits)
        arrays = {"names": np.array(names, dtype=str)}
        arrays["cam2world"] = np.stack([np.array(fits[n]["camera"]["cam2world"]) for n in names])
        arrays["intrinsics"] = np.stack([np.array(fits[n]["camera"]["intrinsics"]) for n in names])
        for key in ("scale", "transl", "global_orient", "body_pose", "betas"):
            arrays[key] = np.stack([np.array(fits[n]["smpl"][key], dtype=float) for n in names])
        np.savez(path, **arrays)


@pytest.mark.parametrize("layout,suffix", [("json-object", ".json"), ("ag3d-flat", ".json"), ("ag3d-pair", ".json"), ("npz", ".npz")])
def test_fits_layouts(deepfashion, tmp_path, layout, suffix):
    path = tmp_path / f"fits_{layout}{suffix}"
    write_fits(deepfashion["fits"], path, layout)
    fits = load_smpl_fits(path)
    assert set(fits) == {name[:-4] for name in deepfashion["fits"]}
    for name, label in deepfashion["fits"].items():
        assert np.allclose(label_to_vector(fits[name[:-4]]), label_to_vector(label))


def test_bad_fits_files(tmp_path):
    object_names = tmp_path / "objects.npz"
    np.savez(object_names, names=np.array(["a", None], dtype=object), cam2world=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="without pickle"):
        load_smpl_fits(object_names)
    partial = tmp_path / "partial.npz"
    np.savez(partial, names=np.array(["a"]), cam2world=np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"arrays \['intrinsics', 'scale'"):
        load_smpl_fits(partial)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_smpl_fits(tmp_path / "none.json")
    (tmp_path / "fits.txt").write_text("{}")
    with pytest.raises(ValueError, match=r"must end in .json or .npz"):
        load_smpl_fits(tmp_path / "fits.txt")
    (tmp_path / "bad.json").write_text('{"a.jpg": [1, 2, 3]}')
    with pytest.raises(ValueError, match=r"fit 'a.jpg': a flat label vector must hold 111 numbers"):
        load_smpl_fits(tmp_path / "bad.json")
    (tmp_path / "twice.json").write_text(json.dumps({"x/a.jpg": fit_label(np.random.default_rng(0)), "y/a.png": fit_label(np.random.default_rng(1))}))
    with pytest.raises(ValueError, match="share the image stem 'a'"):
        load_smpl_fits(tmp_path / "twice.json")


def test_original_intrinsics_frame_is_converted(deepfashion, tmp_path):
    rng = np.random.default_rng(3)
    fits = {f"{name}.jpg": fit_label(rng, cx=0.4) for name in COMPLETE}
    path = tmp_path / "fits_original.json"
    path.write_text(json.dumps(fits))
    out = tmp_path / "prepared"
    prepare_deepfashion(deepfashion["images"], deepfashion["segm"], path, out, image_size=16, intrinsics_frame="original")
    item = SemanticHumanDataset(out)[0]
    expected = padded_intrinsics(np.array(fits[f"{sorted(COMPLETE)[0]}.jpg"]["camera"]["intrinsics"]), WIDTH, HEIGHT)
    assert np.allclose(item["intrinsics"].numpy(), expected, atol=1e-6)
    assert not np.allclose(expected[0, 2], 0.4)
    with pytest.raises(ValueError, match="`intrinsics_frame` must be one of"):
        prepare_deepfashion(deepfashion["images"], deepfashion["segm"], path, tmp_path / "x", intrinsics_frame="cropped")


def test_normals_are_padded_resized_and_required(deepfashion, tmp_path):
    normals_dir = tmp_path / "normals"
    normals_dir.mkdir()
    parsing = parsing_map()
    for name in COMPLETE[:2]:
        normals = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
        normals[parsing > 0] = (128, 128, 255)  # facing the camera
        Image.fromarray(normals).save(normals_dir / (f"{name}_normal.png" if name == COMPLETE[0] else f"{name}.png"))
    out = tmp_path / "prepared"
    report = prepare_deepfashion(deepfashion["images"], deepfashion["segm"], deepfashion["fits_path"], out, normals_dir=normals_dir, image_size=16)
    assert {entry["image"]: entry["reason"] for entry in report.skipped}[f"{COMPLETE[2]}.jpg"] == SKIP_NO_NORMALS
    dataset = SemanticHumanDataset(out)
    assert dataset.with_normals and len(dataset) == 2
    item = dataset[0]
    foreground = item["segm"] > 0
    assert torch.allclose(item["normals"][:, foreground], torch.tensor([0.0, 0.0, 1.0])[:, None], atol=0.02)
    assert torch.equal(item["normals"][:, ~foreground], torch.ones(3, int((~foreground).sum())))


def test_parallel_workers_give_the_same_dataset(deepfashion, tmp_path):
    serial = prepare_deepfashion(deepfashion["images"], deepfashion["segm"], deepfashion["fits_path"], tmp_path / "a", image_size=12)
    parallel = prepare_deepfashion(deepfashion["images"], deepfashion["segm"], deepfashion["fits_path"], tmp_path / "b", image_size=12, workers=2)
    assert serial.written == parallel.written and serial.skipped == parallel.skipped
    a, b = SemanticHumanDataset(tmp_path / "a"), SemanticHumanDataset(tmp_path / "b")
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["segm"], b[i]["segm"])


def test_no_usable_image_writes_the_report_and_fails(deepfashion, tmp_path):
    path = tmp_path / "other_fits.json"
    path.write_text(json.dumps({"unrelated.jpg": fit_label(np.random.default_rng(0))}))
    with pytest.raises(ValueError, match="no image could be prepared"):
        prepare_deepfashion(deepfashion["images"], deepfashion["segm"], path, tmp_path / "out", image_size=8)
    assert json.loads((tmp_path / "out" / REPORT_FILE).read_text())["skipped_by_reason"][SKIP_NO_FIT] == 6
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_make_dataset_deepfashion_command(deepfashion, tmp_path, capsys):
    from semantichuman_hd.cli import data as data_cli

    parser = argparse.ArgumentParser(prog="semantichuman-hd")
    data_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    args = parser.parse_args([
        "make-dataset", "deepfashion",
        "--images", str(deepfashion["images"]), "--parsing", str(deepfashion["segm"]),
        "--smpl", str(deepfashion["fits_path"]), "--out", str(out), "--resolution", "24",
    ])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "3 of 7 images written at 24²" in printed and f"skipped 1 ({SKIP_NO_PARSING})" in printed
    assert len(SemanticHumanDataset(out)) == 3
