"""The Gradio Space's event functions, called directly on a ``tiny`` pipeline (32² renders): people as
part seeds, generation, try-on, interpolation, turntables, meshes, uploaded AMASS frames, friendly
errors for bad input, the bounded temporary folder and the model choice."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

gr = pytest.importorskip("gradio", reason="the Space needs the [space] extra: pip install -e '.[space]'")

from semantichuman_hd.parts import NUM_PARTS, PARTS  # noqa: E402
from semantichuman_hd.hub import BUNDLED_MODEL_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
"""Side of the tiny preset's low-resolution render."""

SEED_A, SEED_B = 3, 11
SCENE = ("a-pose", None, 0, 0.0, 1.0, "low")
"""pose, motion file, motion frame, view angle (degrees), truncation, resolution."""

PIXEL_TOLERANCE = 2
"""Largest difference of 8-bit pixel values between two renders of the same person in different batches."""


def load_app():
    """``spaces/app.py`` as a module (the Space folder is not a package)."""
    name = "semantichuman_space_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "spaces" / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def app():
    return load_app()


@pytest.fixture(scope="module")
def space(app, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small renders: threads only contend on a busy machine
    model = app.load_model(preset="tiny", device="cpu")
    model.pipeline.set_progress_bar_config(disable=True)
    yield app.SemanticHumanSpace(model, app.BoundedTempFiles(max_files=4, root=tmp_path_factory.mktemp("space_files")))
    torch.set_num_threads(threads)


def pixels(image: PIL.Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_event_signatures_name_the_parts_in_order(app):
    for event in ("render", "try_on", "interpolate", "turntable", "export_mesh"):
        names = list(inspect.signature(getattr(app.SemanticHumanSpace, event)).parameters)[1 : 1 + NUM_PARTS]
        assert names == list(PARTS), event
    generate = list(inspect.signature(app.SemanticHumanSpace.generate).parameters)
    assert generate[3 : 3 + NUM_PARTS] == list(PARTS)


def test_equal_part_seeds_are_the_seeds_person_and_parts_are_independent(space):
    pipe = space.pipe
    whole = pipe.sample_latents(1, torch.Generator().manual_seed(SEED_A))
    assert torch.equal(space.person_latents([SEED_A] * NUM_PARTS), whole)
    mixed = space.person_latents([SEED_A, SEED_B, SEED_A, SEED_A, SEED_A, SEED_A])
    other = pipe.sample_latents(1, torch.Generator().manual_seed(SEED_B))
    assert torch.equal(mixed[:, 1], other[:, 1])
    assert torch.equal(mixed[:, [0, 2, 3, 4, 5]], whole[:, [0, 2, 3, 4, 5]])


def test_seed_events_change_only_what_they_say(space):
    seeds = [1, 2, 3, 4, 5, 6]
    assert space.set_seed(9, ["tops", "shoes"], *seeds) == [9, 2, 9, 9, 5, 9]
    assert space.set_seed(9, None, *seeds) == [9] * NUM_PARTS
    rerolled = space.reroll_part("bottoms", *seeds)
    assert rerolled[:3] == seeds[:3] and rerolled[4:] == seeds[4:] and rerolled[3] != seeds[3]
    assert space.try_on_seeds(SEED_B, ["tops", "bottoms"], *seeds) == [1, SEED_B, 3, SEED_B, 5, 6]
    assert 0 <= space.random_seed() <= space_max_seed()


def space_max_seed():
    return load_app().MAX_SEED


def test_generate_renders_four_pictures_and_reports_the_seeds(space):
    out = space.generate(SEED_A, ["shoes"], *[SEED_B] * NUM_PARTS, "walking", None, 0, 30.0, 1.0, "low")
    seeds, (image, semantic, normals, depth, info) = out[:NUM_PARTS], out[NUM_PARTS:]
    assert list(seeds) == [SEED_A, SEED_A, SEED_A, SEED_A, SEED_B, SEED_A]
    for picture in (image, semantic, normals, depth):
        assert isinstance(picture, PIL.Image.Image) and picture.size == (SIZE, SIZE)
    depth_values = pixels(depth)
    assert (depth_values == 0).all(-1).any() and (depth_values > 0).any(), "depth: black background and a bright person"
    assert "shoes 11" in info and "tops 3" in info and "Visible parts" in info
    high = space.render(*seeds, "a-pose", None, 0, 0.0, 1.0, "high")
    assert [picture.size for picture in high[:4]] == [(space.pipe.config.high_resolution,) * 2] * 4


def test_the_command_line_shown_on_the_page_draws_the_same_picture(space, tmp_path):
    import shlex

    from semantichuman_hd.cli import main

    image, *_, info = space.render(*[SEED_A] * NUM_PARTS, "walking", None, 0, 30.0, 1.0, "low")
    command = space.command_line([SEED_A] * NUM_PARTS, "walking", 30.0, 1.0, "low")
    assert command in info and command.startswith("semantichuman-hd generate --preset tiny --seed 3 ")
    assert main([*shlex.split(command)[1:], "--out", str(tmp_path)]) == 0
    written = PIL.Image.open(tmp_path / "image_000.png")
    assert np.abs(pixels(written) - pixels(image)).max() <= 1
    assert space.command_line([SEED_A, SEED_B, SEED_A, SEED_A, SEED_A, SEED_A], "walking", 0.0, 1.0, "low") is None
    assert space.command_line([SEED_A] * NUM_PARTS, "amass", 0.0, 1.0, "low") is None


def test_try_on_is_person_a_with_b_s_parts(space):
    person_b, dressed, dressed_semantic, info = space.try_on(*[SEED_A] * NUM_PARTS, SEED_B, ["tops", "bottoms"], *SCENE)
    expected_seeds = space.try_on_seeds(SEED_B, ["tops", "bottoms"], *[SEED_A] * NUM_PARTS)
    image, semantic, *_ = space.render(*expected_seeds, *SCENE)
    assert np.abs(pixels(dressed) - pixels(image)).max() <= PIXEL_TOLERANCE
    assert np.abs(pixels(dressed_semantic) - pixels(semantic)).max() <= PIXEL_TOLERANCE
    b_image, *_ = space.render(*[SEED_B] * NUM_PARTS, *SCENE)
    assert np.abs(pixels(person_b) - pixels(b_image)).max() <= PIXEL_TOLERANCE
    assert "tops, bottoms" in info


def test_interpolation_ends_are_a_and_the_swapped_part(space):
    start, _, _ = space.interpolate(*[SEED_A] * NUM_PARTS, "tops", SEED_B, 0.0, *SCENE)
    end, _, info = space.interpolate(*[SEED_A] * NUM_PARTS, "tops", SEED_B, 1.0, *SCENE)
    person_a, *_ = space.render(*[SEED_A] * NUM_PARTS, *SCENE)
    swapped, *_ = space.render(*space.try_on_seeds(SEED_B, ["tops"], *[SEED_A] * NUM_PARTS), *SCENE)
    assert np.abs(pixels(start) - pixels(person_a)).max() <= PIXEL_TOLERANCE
    assert np.abs(pixels(end) - pixels(swapped)).max() <= PIXEL_TOLERANCE
    assert "100%" in info


def test_turntable_writes_a_gif_preview_and_an_mp4_download(space):
    preview, download = space.turntable(*[SEED_A] * NUM_PARTS, 4, "mp4", *SCENE)
    assert Path(preview).suffix == ".gif" and Path(download).suffix == ".mp4"
    with PIL.Image.open(preview) as gif:
        assert gif.n_frames == 4 and gif.size == (SIZE, SIZE)
    assert Path(download).stat().st_size > 0


def test_export_mesh_of_a_part_and_of_the_person(space):
    trimesh = pytest.importorskip("trimesh")
    viewer, download = space.export_mesh(*[SEED_A] * NUM_PARTS, "tops", 32, ".glb", True, "walking", None, 0, 1.0)
    assert viewer == download and Path(download).name.endswith("tops_seed3.glb")
    mesh = trimesh.load(download, force="mesh")
    assert len(mesh.faces) > 0
    _, person = space.export_mesh(*[SEED_A] * NUM_PARTS, "person", 32, ".obj", False, "a-pose", None, 0, 1.0)
    assert Path(person).suffix == ".obj" and len(trimesh.load(person, force="mesh").faces) > len(mesh.faces)


def amass_file(path: Path, frames: int = 3) -> Path:
    poses = np.zeros((frames, 156), dtype=np.float32)
    poses[:, 3 * 16 + 2] = 0.8  # left shoulder (SMPL joint 16) turned: the arms differ from the rest pose
    np.savez(path, poses=poses, trans=np.zeros((frames, 3), dtype=np.float32), mocap_framerate=np.float64(30))
    return path


def test_an_uploaded_amass_frame_poses_the_person(space, tmp_path):
    motion = str(amass_file(tmp_path / "motion.npz"))
    posed, *_ = space.render(*[SEED_A] * NUM_PARTS, "amass", motion, 2, 0.0, 1.0, "low")
    rest, *_ = space.render(*[SEED_A] * NUM_PARTS, "t-pose", None, 0, 0.0, 1.0, "low")
    assert posed.size == (SIZE, SIZE) and np.abs(pixels(posed) - pixels(rest)).max() > 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({5: -1}, "`accessories seed` must be a number in [0, 2147483647], got -1"),
        ({0: 2.5}, "`body seed` must be a whole number in [0, 2147483647], got 2.5"),
        ({1: None}, "`tops seed` must be a number in"),
        ({6: "sitting"}, "`pose` must be one of"),
        ({6: "amass"}, "needs an uploaded AMASS .npz"),
        ({9: 400.0}, "`view angle` must be a number in [-180.0, 180.0], got 400.0"),
        ({10: 2.0}, "`truncation` must be a number in [0.0, 1.0], got 2.0"),
        ({11: "ultra"}, "`resolution` must be one of"),
    ],
)
def test_bad_render_input_is_a_readable_message(space, change, message):
    args = [*[SEED_A] * NUM_PARTS, *SCENE]
    for index, value in change.items():
        args[index] = value
    with pytest.raises(gr.Error, match=re.escape(message)):
        space.render(*args)


def test_bad_uploads_and_choices_are_readable_messages(space, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(gr.Error, match="'broken.npz'") as error:
        space.render(*[SEED_A] * NUM_PARTS, "amass", str(broken), 0, 0.0, 1.0, "low")
    assert str(tmp_path) not in str(error.value), "the message names the upload, not where the server keeps it"
    no_poses = tmp_path / "no_poses.npz"
    np.savez(no_poses, trans=np.zeros((2, 3)))
    with pytest.raises(gr.Error, match="poses"):
        space.render(*[SEED_A] * NUM_PARTS, "amass", str(no_poses), 0, 0.0, 1.0, "low")
    motion = str(amass_file(tmp_path / "motion.npz", frames=3))
    with pytest.raises(gr.Error, match=re.escape("`motion frame` must be a number in [0, 2], got 3")):
        space.render(*[SEED_A] * NUM_PARTS, "amass", motion, 3, 0.0, 1.0, "low")
    with pytest.raises(gr.Error, match=re.escape("`parts to take from person B` must name at least one of")):
        space.try_on(*[SEED_A] * NUM_PARTS, SEED_B, [], *SCENE)
    with pytest.raises(gr.Error, match="`part to interpolate` must be one of"):
        space.interpolate(*[SEED_A] * NUM_PARTS, "hat", SEED_B, 0.5, *SCENE)
    with pytest.raises(gr.Error, match=re.escape("`interpolation weight` must be a number in [0.0, 1.0], got 1.5")):
        space.interpolate(*[SEED_A] * NUM_PARTS, "tops", SEED_B, 1.5, *SCENE)
    with pytest.raises(gr.Error, match=re.escape("`number of frames` must be a number in [4, 48], got 1000")):
        space.turntable(*[SEED_A] * NUM_PARTS, 1000, "gif", *SCENE)
    with pytest.raises(gr.Error, match="`mesh format` must be one of"):
        space.export_mesh(*[SEED_A] * NUM_PARTS, "tops", 32, ".fbx", False, *SCENE[:3], 1.0)
    with pytest.raises(gr.Error, match="`part to re-roll` must be one of"):
        space.reroll_part("hat", *[SEED_A] * NUM_PARTS)


def test_temporary_files_keep_only_the_newest(app, tmp_path):
    files = app.BoundedTempFiles(max_files=3, root=tmp_path)
    paths = []
    for i in range(7):
        path = files.new_path(f"mesh {i}/../x.glb")
        assert path.parent == tmp_path, "names cannot leave the folder"
        path.write_text(str(i))
        paths.append(path)
    assert files.files() == paths[-3:]
    with pytest.raises(ValueError, match="`max_files` must be a positive integer, got 0"):
        app.BoundedTempFiles(max_files=0, root=tmp_path)


def test_render_concurrency_setting(app, monkeypatch):
    monkeypatch.delenv(app.CONCURRENCY_ENV, raising=False)
    assert app.render_concurrency() == app.DEFAULT_CONCURRENCY
    monkeypatch.setenv(app.CONCURRENCY_ENV, "2")
    assert app.render_concurrency() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(app.CONCURRENCY_ENV, bad)
        with pytest.raises(ValueError, match=f"SEMANTICHUMAN_CONCURRENCY must be a positive integer, got '{bad}'"):
            app.render_concurrency()


def test_model_choice(app, monkeypatch):
    with pytest.raises(ValueError, match="not both"):
        app.load_model(model="some/repo", preset="tiny")
    with pytest.raises(ValueError, match="SEMANTICHUMAN_PRESET must be one of"):
        app.load_model(preset="huge")
    with pytest.raises(ValueError, match="could not be loaded as a SemanticHumanPipeline"):
        app.load_model(model=str(ROOT / "docs"))
    bundled = app.load_model(device="cpu")  # neither variable: the checkpoint bundled with the package
    assert not bundled.random_weights and bundled.name == app.BUNDLED_MODEL_NAME and bundled.cli_arguments == ""
    assert bundled.pipeline.config._name_or_path == str(BUNDLED_MODEL_DIR)
    preset = app.load_model(preset="tiny", device="cpu")
    assert preset.random_weights and preset.cli_arguments == "--preset tiny"


def test_a_checkpoint_folder_from_the_environment_loads_once(app, space, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint"
    space.pipe.save_pretrained(folder)
    model = app.load_model(model=str(folder), device="cpu")
    assert not model.random_weights and model.name == str(folder) and model.cli_arguments == f"--model {folder}"
    state = space.pipe.mapper.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in model.pipeline.mapper.state_dict().items())
    config = app.build_demo(app.SemanticHumanSpace(model, space.files)).get_config_file()
    assert not any(c.get("props", {}).get("elem_id") == "random-weights-warning" for c in config["components"])

    monkeypatch.setenv(app.MODEL_ENV, str(folder))
    monkeypatch.delenv(app.PRESET_ENV, raising=False)
    app.model_from_environment.cache_clear()
    try:
        assert app.model_from_environment() is app.model_from_environment(), "loaded once per process"
        assert app.model_from_environment().name == str(folder)
    finally:
        app.model_from_environment.cache_clear()


def test_the_page_warns_about_random_weights_and_queues_renders(app, space):
    demo = app.build_demo(space)
    config = demo.get_config_file()
    texts = [c["props"].get("value") for c in config["components"] if c.get("props", {}).get("elem_id") == "random-weights-warning"]
    assert texts and "randomly initialised `tiny` model" in texts[0]
    assert demo._queue.max_size == app.QUEUE_MAX_SIZE
    assert demo.delete_cache == (app.GRADIO_CACHE_LIFETIME_S, app.GRADIO_CACHE_LIFETIME_S)
    render_events = [fn for fn in demo.fns.values() if fn.fn is not None and fn.fn.__name__ in ("render", "generate", "try_on", "interpolate", "turntable", "export_mesh")]
    assert render_events and {fn.concurrency_id for fn in render_events} == {app.RENDER_CONCURRENCY_ID}
    assert {fn.concurrency_limit for fn in render_events} == {"default"}
    assert demo._queue.default_concurrency_limit == app.DEFAULT_CONCURRENCY
