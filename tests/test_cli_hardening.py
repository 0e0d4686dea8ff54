"""The command line checks its output paths and sizes before any work, generates large --num in bounded
batches written as they are done, labels its progress (off with --quiet), writes a viewable depth
picture, ships the motion its README animates, and its messages name the real options."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import types
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from semantichuman_hd.body.amass import BUNDLED_MOTIONS, MOTION_DATA_DIR, load_amass, resolve_motion
from semantichuman_hd.body.walk_cycle import walk_cycle
from semantichuman_hd.cli import _common, body as body_cli, export as export_cli, generate as generate_cli, main
from semantichuman_hd.cli._common import DEPTH_VIS_FAR_LEVEL, depth_visualisation, load_latents
from semantichuman_hd.rendering.compositor import DEPTH_ALPHA_THRESHOLD

SIZE = 4
"""Side of the fake renders."""


class FakeOutput(types.SimpleNamespace):
    """A pipeline output stand-in that can be weakly referenced."""

    __slots__ = ("__weakref__",)


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def no_work(monkeypatch):
    """Loading a model or a body fails the test: the checks under test must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    for module in (generate_cli, export_cli):
        monkeypatch.setattr(module, "load_pipeline", refuse)
    monkeypatch.setattr(body_cli.BodyModel, "from_source", refuse)
    monkeypatch.setattr(body_cli, "write_open_body_model", refuse)


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: read-only by mode, or, for root (whom modes do not
    bind), a folder of sysfs."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys/kernel")
    try:
        with open(folder / "probe", "w"):
            pass
    except OSError:
        return folder
    pytest.skip("no unwritable folder available to root here")


OUT_CASES = [
    ("generate", "{file}", r"`--out` must be a folder, but .* is an existing file"),
    ("generate", "{tmp}/people.png", r"`--out` is the output folder, but .* is named like a \.png file"),
    ("generate", "{file}/below", r"`--out` .* cannot be written: .* is a file, not a folder"),
    ("generate", "{readonly}/people", r"`--out` .* cannot be written: the folder .* is not writable"),
    ("try-on", "{file}", r"`--out` must be a folder"),
    ("export-mesh", "{tmp}", r"`--out` must end in one of"),
    ("export-mesh", "{dir}.glb", r"`--out` must be a file, but .* is an existing folder"),
    ("export-mesh", "{readonly}/x.glb", r"`--out` .* is not writable"),
    ("turntable", "{dir}.gif", r"`--out` must be a file, but .* is an existing folder"),
    ("turntable", "{readonly}/x.gif", r"`--out` .* is not writable"),
    ("animate", "{dir}.gif", r"`--out` must be a file, but .* is an existing folder"),
    ("render-body", "{tmp}/sheet", r"`--out` must be a file ending in one of \['.png'"),
    ("render-body", "{dir}.png", r"`--out` must be a file, but .* is an existing folder"),
    ("render-body", "{readonly}/body.png", r"`--out` .* is not writable"),
    ("make-body-model", "{dir}.pkl", r"`--out` must be a file, but .* is an existing folder"),
]


@pytest.mark.parametrize("command, out, message", OUT_CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(OUT_CASES)])
def test_bad_out_is_refused_before_any_work(no_work, tmp_path, command, out, message):
    import re

    existing_file = tmp_path / "existing.txt"
    existing_file.write_text("keep me")
    for suffix in (".glb", ".gif", ".png", ".pkl"):
        (tmp_path / f"folder{suffix}").mkdir()
    readonly = unwritable_folder(tmp_path) if "{readonly}" in out else None
    out = out.format(tmp=tmp_path, file=existing_file, dir=tmp_path / "folder", readonly=readonly)
    extra = {"animate": ["--poses", "walk"], "try-on": [], "render-body": [], "make-body-model": []}.get(command, [])
    model = [] if command in ("render-body", "make-body-model") else ["--preset", "tiny"]
    code, _, err = run_cli(command, *model, *extra, "--out", out)
    assert code == 2, err
    assert err.startswith(f"semantichuman-hd {command}: error:") and "Traceback" not in err
    assert re.search(message, err), err
    assert existing_file.read_text() == "keep me"


@pytest.mark.parametrize("source", ["synthetic", "deepfashion"])
def test_every_make_dataset_source_checks_its_out_folder_first(tmp_path, monkeypatch, source):
    from semantichuman_hd.data import deepfashion
    from semantichuman_hd.data.synthetic import generator

    def no_work(*args, **kwargs):
        raise AssertionError("the dataset was being written before --out was checked")

    monkeypatch.setattr(generator, "generate_dataset", no_work)
    monkeypatch.setattr(deepfashion, "prepare_deepfashion", no_work)
    existing_file = tmp_path / "existing.txt"
    existing_file.write_text("keep me")
    inputs = [] if source == "synthetic" else ["--images", str(tmp_path), "--parsing", str(tmp_path), "--smpl", str(existing_file)]
    for out, message in ((existing_file, "is an existing file"), (tmp_path / "data.png", "is named like a .png file")):
        code, _, err = run_cli("make-dataset", source, *inputs, "--out", str(out))
        assert code == 2 and "Traceback" not in err, err
        assert "`--out` must be a folder" in err or "`--out` is the output folder" in err, err
        assert message in err, err
    assert existing_file.read_text() == "keep me"


def test_render_body_refuses_a_resolution_that_cannot_fit_with_an_estimate(no_work, tmp_path):
    code, _, err = run_cli("render-body", "--resolution", 100000, "--out", tmp_path / "body.png")
    assert code == 2
    assert "`--resolution` 100000 needs about 10.2 TB of memory" in err and "use at most about" in err
    code, _, err = run_cli("render-body", "--resolution", 0, "--out", tmp_path / "body.png")
    assert code == 2 and "`--resolution` must be a positive integer" in err
    assert body_cli.check_render_resolution(256, available=1 << 30) == 256
    with pytest.raises(ValueError, match=r"`--resolution` 2048 needs about 4.29 GB .* 1.07 GB available; use at most about 915"):
        body_cli.check_render_resolution(2048, available=1 << 30)


def test_a_video_whose_frames_cannot_fit_is_refused_before_rendering(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("rendering started")

    monkeypatch.setattr(export_cli, "_render_frames", refuse)
    code, _, err = run_cli("turntable", "--preset", "tiny", "--frames", 10**10, "--out", tmp_path / "t.gif")
    assert code == 2
    assert "`--frames` 10000000000 needs about 61.4 TB of memory for 10000000000 frames of 32²" in err and "use fewer frames" in err


def test_render_body_help_describes_the_command():
    code, out, _ = run_cli("render-body", "--help")
    assert code == 0
    assert "contact sheet" in out and "--quiet" in out and "memory grows with its square" in out


def test_smpl_error_names_the_real_option(tmp_path):
    code, _, err = run_cli("render-body", "--smpl", tmp_path / "missing.pkl", "--out", tmp_path / "body.png")
    assert code == 2
    assert "`render-body --smpl`" in err and "--smpl-path" not in err


# -- generate in bounded batches ----------------------------------------------------------------------


class FakeRender:
    """Stands in for the renderer: records each batch, checks that earlier batches are on disk and their
    outputs freed, and returns small pictures."""

    def __init__(self, out: Path):
        self.out, self.batches, self.previous = out, [], None

    def __call__(self, pipe, latents, args):
        if self.previous is not None:
            gc.collect()
            assert self.previous() is None, "the previous batch's output is still held"
        done = sum(self.batches)
        assert len(list(self.out.glob("image_*.png"))) == done, "earlier batches must be written before the next renders"
        self.batches.append(latents.shape[0])
        count = latents.shape[0]
        depth = np.zeros((count, SIZE, SIZE), np.float32)
        depth[:, 1:3, 1:3] = 11.0
        output = FakeOutput(
            images=np.ones((count, SIZE, SIZE, 3), np.float32),
            semantic_images=np.ones((count, SIZE, SIZE, 3), np.float32),
            depth=depth,
            normals=np.ones((count, SIZE, SIZE, 3), np.float32),
            alpha=(depth > 0).astype(np.float32),
            latents=latents.cpu(),
        )
        self.previous = weakref.ref(output)
        return output


@pytest.mark.parametrize("batch_size", [3, 64])
def test_large_num_is_generated_in_bounded_batches_streamed_to_disk(tmp_path, monkeypatch, batch_size):
    out = tmp_path / "people"
    fake = FakeRender(out)
    monkeypatch.setattr(generate_cli, "_render", fake)
    num = 11
    code, stdout, err = run_cli("generate", "--preset", "tiny", "--num", num, "--batch-size", batch_size, "--seed", 3, "--out", out)
    assert code == 0, err
    assert max(fake.batches) <= batch_size and sum(fake.batches) == num
    assert len(list(out.glob("image_*.png"))) == num and len(list(out.glob("depth_vis_*.png"))) == num
    assert f"wrote {num} people: {5 * num} pictures" in stdout
    # The latents are those of one draw of `num` people from the seed, whatever the batch size.
    pipe = generate_cli.load_pipeline(generate_cli_args(3))
    assert torch.equal(load_latents(out / "latents.safetensors"), pipe.sample_latents(num, generator=torch.Generator().manual_seed(3)).cpu())


def generate_cli_args(seed: int):
    import argparse

    return argparse.Namespace(model=None, preset="tiny", device="cpu", truncation_psi=None, seed=seed)


def test_picture_numbers_widen_past_a_thousand_people():
    assert _common.picture_width(1) == 3 and _common.picture_width(1000) == 3 and _common.picture_width(1001) == 4


@pytest.mark.parametrize("argv, message", [(["--batch-size", "0"], "`--batch-size` must be a positive integer"), (["--num", "-1"], "`--num` must be a positive integer")])
def test_bad_batch_arguments(no_work, tmp_path, argv, message):
    code, _, err = run_cli("generate", "--preset", "tiny", *argv, "--out", tmp_path / "x")
    assert code == 2 and message in err


def test_generate_progress_is_labelled_and_quiet_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_cli, "_render", FakeRender(tmp_path / "a"))
    code, _, err = run_cli("generate", "--preset", "tiny", "--num", 2, "--out", tmp_path / "a")
    assert code == 0 and "generate: 100%" in err and "person" in err
    monkeypatch.setattr(generate_cli, "_render", FakeRender(tmp_path / "b"))
    code, _, err = run_cli("generate", "--preset", "tiny", "--num", 2, "--quiet", "--out", tmp_path / "b")
    assert code == 0 and "generate:" not in err and "%" not in err


# -- depth picture ------------------------------------------------------------------------------------


def test_depth_visualisation_is_bright_near_and_black_behind():
    depth = np.array([[0.0, 10.0], [10.5, 11.0]])
    picture = depth_visualisation(depth)
    assert picture.dtype == np.uint8
    assert picture[0, 0] == 0 and picture[0, 1] == 255 and picture[1, 1] == DEPTH_VIS_FAR_LEVEL
    assert DEPTH_VIS_FAR_LEVEL < picture[1, 0] < 255
    assert (depth_visualisation(np.zeros((2, 2))) == 0).all()
    assert (depth_visualisation(np.full((2, 2), 3.0)) == 255).all()


def test_depth_visualisation_leaves_out_pixels_that_are_not_opaque():
    """With alpha, faint haze and soft rims (alpha below DEPTH_ALPHA_THRESHOLD) are background and do not
    stretch the grey scale."""
    depth = np.array([[0.0, 10.0], [10.5, 20.0]])
    alpha = np.array([[0.0, 1.0], [0.9, DEPTH_ALPHA_THRESHOLD / 2]])
    picture = depth_visualisation(depth, alpha)
    assert picture[1, 1] == 0 and picture[0, 0] == 0
    assert picture[0, 1] == 255 and picture[1, 0] == DEPTH_VIS_FAR_LEVEL
    assert (depth_visualisation(depth, np.ones((2, 2))) == depth_visualisation(depth)).all()


# -- motions --------------------------------------------------------------------------------------------


def test_bundled_walk_is_the_generated_walk_cycle_and_loads():
    path = resolve_motion("walk")
    assert path == MOTION_DATA_DIR / BUNDLED_MOTIONS["walk"] and path.is_file()
    with np.load(path, allow_pickle=False) as data:
        expected = walk_cycle()
        assert set(data.files) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(data[key], value, err_msg=key)
    motion = load_amass(path)
    assert len(motion) == 60 and motion.framerate == 30.0
    assert motion.global_orient.abs().max() < 1e-5  # upright in SMPL's frame after the z-up turn
    assert motion.body_pose.std(0).max() > 0.1  # it moves


def test_a_path_named_like_a_bundled_motion_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("walk").write_text("mine")
    assert resolve_motion("walk") == Path("walk")


def test_garbage_npz_says_what_the_file_should_hold(no_work, tmp_path):
    garbage = tmp_path / "motion.npz"
    garbage.write_bytes(os.urandom(256))
    code, _, err = run_cli("animate", "--preset", "tiny", "--poses", garbage, "--out", tmp_path / "x.gif")
    assert code == 2
    assert "`--poses` file" in err and "should be an AMASS-style .npz" in err and "`poses` (T, 66" in err and "`trans` (T, 3)" in err
    assert "allow_pickle" not in err and "pickled data" not in err
    code, _, err = run_cli("animate", "--preset", "tiny", "--poses", tmp_path / "none.npz", "--out", tmp_path / "x.gif")
    assert code == 2 and "bundled motion: walk" in err
