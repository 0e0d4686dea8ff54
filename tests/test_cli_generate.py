"""End-to-end tests of ``semantichuman-hd generate`` and ``try-on`` on the ``tiny`` preset."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from semantichuman_hd.cli import main
from semantichuman_hd.cli._common import LATENTS_KEY, load_latents, save_latents
from semantichuman_hd.cli.generate import DEFAULT_TRY_ON_PARTS, parse_parts
from semantichuman_hd.parts import NUM_PARTS, PARTS, part_indices
from semantichuman_hd.presets import get_preset

TINY = get_preset("tiny")
Z_DIM = TINY.mapper["z_dim"]
PICTURES = ("image", "semantic", "depth", "normals")
RANDOM_INIT_WARNING = "RANDOMLY INITIALISED"


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the command line in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def read_pictures(folder, prefix: str = "", index: int = 0) -> dict[str, np.ndarray]:
    return {name: np.array(Image.open(folder / f"{prefix}{name}_{index:03d}.png")) for name in PICTURES}


def assert_pictures(folder, prefix: str, count: int, size: int) -> None:
    for i in range(count):
        for name in PICTURES:
            picture = Image.open(folder / f"{prefix}{name}_{i:03d}.png")
            assert picture.size == (size, size), (name, picture.size)
            if name == "depth":
                assert np.array(picture).dtype == np.uint16
            else:
                assert picture.mode == "RGB"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two people from a seed, walking, turned by 30 degrees."""
    out = tmp_path_factory.mktemp("generate")
    code, stdout, stderr = run_cli("generate", "--preset", "tiny", "--seed", 5, "--num", 2, "--pose", "walking", "--view-angle", 30, "--out", out)
    assert code == 0, stderr
    return out, stdout, stderr


@pytest.fixture(scope="module")
def tried_on(tmp_path_factory):
    """Person A (seed 1) wearing person B's (seed 2) top and bottoms."""
    out = tmp_path_factory.mktemp("try_on")
    code, stdout, stderr = run_cli("try-on", "--preset", "tiny", "--seed-a", 1, "--seed-b", 2, "--parts", "tops,bottoms", "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_generate_writes_pictures_and_latents(generated):
    out, stdout, stderr = generated
    assert_pictures(out, "", count=2, size=TINY.low_resolution)
    latents = load_latents(out / "latents.safetensors")
    assert latents.shape == (2, NUM_PARTS, Z_DIM)
    assert not torch.equal(latents[0], latents[1])
    with safe_open(str(out / "latents.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["pose"] == "walking" and metadata["view_angle_degrees"] == "30" and metadata["model"] == "--preset tiny"
    assert str(out) in stdout and "latents.safetensors" in stdout
    assert RANDOM_INIT_WARNING not in stderr  # an explicit --preset is not a silent fallback
    pictures = read_pictures(out)
    background = pictures["depth"] == 0
    assert background.any() and (~background).any()
    assert (pictures["image"][background] == 255).all()  # white background


def test_latents_file_reproduces_bit_identically(generated, tmp_path):
    first, _, _ = generated
    # A different --seed: with --latents the seed draws nothing, and a preset's weights do not depend on it.
    code, stdout, stderr = run_cli(
        "generate", "--preset", "tiny", "--seed", 77, "--latents", first / "latents.safetensors", "--pose", "walking", "--view-angle", 30, "--out", tmp_path
    )
    assert code == 0, stderr
    assert torch.equal(load_latents(tmp_path / "latents.safetensors"), load_latents(first / "latents.safetensors"))
    for index in range(2):
        again, before = read_pictures(tmp_path, index=index), read_pictures(first, index=index)
        for name in PICTURES:
            assert np.array_equal(again[name], before[name]), name


def test_try_on_latents_swap_exactly_the_parts(tried_on):
    out, stdout = tried_on
    for prefix in ("a_", "b_", "result_"):
        assert_pictures(out, prefix, count=1, size=TINY.low_resolution)
        assert f"{prefix}latents.safetensors" in stdout
    a, b, result = (load_latents(out / f"{prefix}latents.safetensors") for prefix in ("a_", "b_", "result_"))
    swapped = part_indices(["tops", "bottoms"])
    kept = [k for k in range(NUM_PARTS) if k not in swapped]
    assert torch.equal(result[:, swapped], b[:, swapped])
    assert torch.equal(result[:, kept], a[:, kept])
    assert not torch.equal(a, b)
    # --seed-a and --seed-b draw the people exactly as `generate --seed` does.
    generator = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline

    pipe = SemanticHumanPipeline.from_preset("tiny")
    assert torch.equal(a, pipe.sample_latents(1, generator(1)))
    assert torch.equal(b, pipe.sample_latents(1, generator(2)))


def test_try_on_from_latents_files_broadcasts_one_garment_donor(generated, tried_on, tmp_path):
    people, _, _ = generated
    donor, _ = tried_on
    code, stdout, stderr = run_cli(
        "try-on", "--preset", "tiny", "--person", people / "latents.safetensors", "--garments", donor / "b_latents.safetensors", "--parts", "shoes", "--out", tmp_path
    )
    assert code == 0, stderr
    a, b, result = (load_latents(tmp_path / f"{prefix}latents.safetensors") for prefix in ("a_", "b_", "result_"))
    assert a.shape == b.shape == result.shape == (2, NUM_PARTS, Z_DIM)
    assert torch.equal(a, load_latents(people / "latents.safetensors"))
    shoes = PARTS.index("shoes")
    donor_latents = load_latents(donor / "b_latents.safetensors")
    assert torch.equal(result[:, shoes], donor_latents[:, shoes].expand(2, -1))
    assert torch.equal(result[:, [k for k in range(NUM_PARTS) if k != shoes]], a[:, [k for k in range(NUM_PARTS) if k != shoes]])
    assert_pictures(tmp_path, "result_", count=2, size=TINY.low_resolution)


def test_without_model_or_preset_the_bundled_checkpoint_generates(tmp_path, monkeypatch):
    """No --model and no --preset: the demo checkpoint bundled with the package, offline, no warning; the
    printed reproduce command names no model."""
    from semantichuman_hd.presets import get_preset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, stdout, stderr = run_cli("generate", "--out", tmp_path)
    assert code == 0, stderr
    assert RANDOM_INIT_WARNING not in stderr
    assert_pictures(tmp_path, "", count=1, size=get_preset("demo").low_resolution)
    reproduce = next(line for line in stdout.splitlines() if "reproduce:" in line)
    assert "--model" not in reproduce and "--preset" not in reproduce and "--resolution low" in reproduce
    with safe_open(tmp_path / "latents.safetensors", "pt") as handle:
        assert handle.metadata()["model"] == "the bundled demo checkpoint"


def test_parse_parts():
    assert parse_parts("tops, bottoms,tops") == ["tops", "bottoms"]
    assert "body" not in DEFAULT_TRY_ON_PARTS and set(DEFAULT_TRY_ON_PARTS) < set(PARTS)


def _write_garbage(path):
    path.write_bytes(b"this is not a safetensors file")
    return path


def _write_latents(tensor):
    def write(path):
        save_latents(path, tensor)
        return path

    return write


def _write_other_key(path):
    from safetensors.torch import save_file

    save_file({"codes": torch.zeros(1, NUM_PARTS, Z_DIM)}, str(path))
    return path


BAD_LATENTS = {
    "missing": (lambda path: path, "does not exist"),
    "corrupted": (_write_garbage, "not a readable safetensors file"),
    "wrong z_dim": (_write_latents(torch.zeros(1, NUM_PARTS, Z_DIM + 1)), f"(B, {NUM_PARTS}, {Z_DIM})"),
    "wrong part count": (_write_latents(torch.zeros(1, NUM_PARTS - 1, Z_DIM)), f"(B, {NUM_PARTS}, {Z_DIM})"),
    "two dimensions": (_write_latents(torch.zeros(NUM_PARTS, Z_DIM)), f"(B, {NUM_PARTS}, {Z_DIM})"),
    "NaN": (_write_latents(torch.full((1, NUM_PARTS, Z_DIM), math.nan)), "NaN"),
    "no latents tensor": (_write_other_key, repr(LATENTS_KEY)),
}


@pytest.mark.parametrize("case", sorted(BAD_LATENTS))
@pytest.mark.parametrize("command,argument", [("generate", "--latents"), ("try-on", "--person"), ("try-on", "--garments")])
def test_bad_latents_files_exit_2(case, command, argument, tmp_path):
    write, message = BAD_LATENTS[case]
    path = write(tmp_path / "latents.safetensors")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(command, "--preset", "tiny", argument, path, "--out", out)
    assert code == 2
    assert f"`{argument}`" in stderr and message in stderr, stderr
    assert not out.exists()


def test_num_disagreeing_with_latents_file_exits_2(generated, tmp_path):
    people, _, _ = generated
    code, _, stderr = run_cli("generate", "--preset", "tiny", "--latents", people / "latents.safetensors", "--num", 3, "--out", tmp_path / "out")
    assert code == 2 and "`--num`" in stderr and "2 people" in stderr


def test_try_on_people_counts_must_match(tmp_path):
    save_latents(tmp_path / "two.safetensors", torch.zeros(2, NUM_PARTS, Z_DIM))
    save_latents(tmp_path / "three.safetensors", torch.zeros(3, NUM_PARTS, Z_DIM))
    code, _, stderr = run_cli(
        "try-on", "--preset", "tiny", "--person", tmp_path / "two.safetensors", "--garments", tmp_path / "three.safetensors", "--out", tmp_path / "out"
    )
    assert code == 2 and "`--person` holds 2 people and `--garments` 3" in stderr
    assert not (tmp_path / "out").exists()


BAD_ARGUMENTS = [
    (["try-on", "--parts", "tops,hat"], "`--parts`", "accessories"),
    (["try-on", "--parts", ","], "`--parts`", "outerwear"),
    (["generate", "--pose", "dab"], "`--pose`", "a-pose"),
    (["try-on", "--pose", "dab"], "`--pose`", "walking"),
    (["generate", "--view-angle", "nan"], "`--view-angle`", "finite"),
    (["generate", "--truncation-psi", "inf"], "`--truncation-psi`", "finite"),
    (["generate", "--num", "0"], "`--num`", "positive"),
    (["generate", "--device", "bogus"], "`--device`", "torch device"),
    (["generate", "--preset", "huge"], "`--preset`", "tiny"),
    (["generate", "--preset", "tiny", "--model", "somewhere"], "`--model`", "not both"),
]


@pytest.mark.parametrize("argv,argument,allowed", BAD_ARGUMENTS, ids=[" ".join(case[0]) for case in BAD_ARGUMENTS])
def test_bad_arguments_exit_2_naming_the_argument(argv, argument, allowed, tmp_path):
    out = tmp_path / "out"
    extra = [] if "--preset" in argv else ["--preset", "tiny"]
    code, _, stderr = run_cli(*argv, *extra, "--out", out)
    assert code == 2
    assert argument in stderr and allowed in stderr, stderr
    assert not out.exists()


def test_model_that_is_not_a_pipeline_exits_2(tmp_path):
    not_a_pipeline = tmp_path / "weights"
    not_a_pipeline.mkdir()
    (not_a_pipeline / "config.json").write_text("{}")
    for model in (not_a_pipeline, tmp_path / "missing", tmp_path / "weights" / "config.json"):
        code, _, stderr = run_cli("generate", "--model", model, "--out", tmp_path / "out")
        assert code == 2
        assert "`--model`" in stderr and str(model) in stderr, stderr
        assert RANDOM_INIT_WARNING not in stderr
    assert not (tmp_path / "out").exists()


def test_person_and_seed_a_are_exclusive(tmp_path):
    code, _, stderr = run_cli("try-on", "--preset", "tiny", "--person", tmp_path / "a.safetensors", "--seed-a", 1, "--out", tmp_path)
    assert code == 2 and "--seed-a" in stderr and "--person" in stderr
