"""One meaning per name: ``resolution`` is the pipeline's ``"low"``/``"high"``; the data code's integer
picture side is ``image_size`` (``--image-size``), with ``resolution`` kept as a deprecated alias."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from semantichuman_hd.checks import renamed_argument
from semantichuman_hd.data import SemanticHumanDataset
from semantichuman_hd.data.format import DatasetWriter

SIZE = 8


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("naming")
    camera = {"cam2world": np.eye(4).tolist(), "intrinsics": [[5.0, 0, 0.5], [0, 5.0, 0.5], [0, 0, 1]]}
    smpl = {"betas": [0.0] * 10, "body_pose": [0.0] * 69, "global_orient": [0.0] * 3, "transl": [0.0] * 3, "scale": 1.0}
    with DatasetWriter(root, resolution=SIZE) as writer:
        writer.add("a.png", np.full((SIZE, SIZE, 3), 255, np.uint8), np.zeros((SIZE, SIZE), np.uint8), camera, smpl)
    return root


def test_dataset_image_size_and_its_deprecated_name(dataset_root):
    dataset = SemanticHumanDataset(dataset_root, image_size=4)
    assert dataset.image_size == 4 and dataset[0]["image"].shape[-1] == 4
    with pytest.warns(FutureWarning, match=r"`resolution` is deprecated: use `image_size`"):
        old = SemanticHumanDataset(dataset_root, resolution=4)
    assert old.image_size == old.resolution == 4
    with pytest.raises(ValueError, match=r"`image_size` must be a positive integer, got 0"):
        SemanticHumanDataset(dataset_root, image_size=0)
    with pytest.raises(ValueError, match=r"Pass `image_size` only"), pytest.warns(FutureWarning):
        SemanticHumanDataset(dataset_root, image_size=4, resolution=6)


def test_renamed_argument():
    assert renamed_argument(3, None, "image_size", "resolution") == 3
    with pytest.warns(FutureWarning):
        assert renamed_argument(256, 64, "image_size", "resolution", default=256) == 64


@pytest.mark.parametrize("flag", ["--image-size", "--resolution"])
def test_make_dataset_flags(flag, tmp_path):
    from semantichuman_hd.cli import data as data_cli

    parser = argparse.ArgumentParser(prog="semantichuman-hd")
    data_cli.register(parser.add_subparsers(dest="command"))
    synthetic = parser.parse_args(["make-dataset", "synthetic", flag, "32", "--out", str(tmp_path)])
    deepfashion = parser.parse_args(
        ["make-dataset", "deepfashion", "--images", "i", "--parsing", "p", "--smpl", "s", "--out", str(tmp_path), flag, "64"]
    )
    assert synthetic.image_size == 32 and deepfashion.image_size == 64
