"""Bad input → answer, across the Python API and the command line: every case ends in a clear error that
names the argument (an exception of the documented kind from the API, exit status 2 and a one-line
``semantichuman-hd COMMAND: error: …`` from the command line), never a traceback, and before any
rendering.

``python tests/test_bad_inputs.py`` prints the table (input → answer) as Markdown.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

API_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)
"""What the API raises for bad input (FileNotFoundError for a missing file or folder)."""


@dataclass
class Case:
    kind: str  # "api" or "cli"
    shown: str  # the input, as a user would write it
    argument: str  # what the answer must name
    run: Callable  # api: (ctx) -> None, raising; cli: (ctx) -> argv


class Context:
    """What the cases share: a scratch folder with bad files, a tiny pipeline, saved pipeline folders."""

    def __init__(self, root: Path):
        from semantichuman_hd.cli._common import save_latents
        from semantichuman_hd.pipelines import SemanticHumanPipeline

        self.root = root
        self.file = root / "existing.txt"
        self.file.write_text("keep")
        (root / "folder.glb").mkdir()
        (root / "folder.pkl").mkdir()
        (root / "garbage.npz").write_bytes(os.urandom(200))
        (root / "garbage.safetensors").write_bytes(os.urandom(200))
        np.savez(root / "no_trans.npz", poses=np.zeros((3, 156)))
        save_latents(root / "two.safetensors", torch.zeros(2, 6, 32))
        save_latents(root / "other_model.safetensors", torch.zeros(1, 6, 128))
        self.pipe = SemanticHumanPipeline.from_preset("tiny", seed=0)
        self.pipe.set_progress_bar_config(disable=True)
        self.latents = self.pipe.sample_latents(1, generator=torch.Generator().manual_seed(0))
        self.saved = root / "saved"
        self.pipe.save_pretrained(self.saved)

    def folder(self, name: str, change: Callable[[Path], None]) -> Path:
        """A copy of the saved pipeline, changed by ``change``."""
        target = self.root / name
        if not target.exists():
            shutil.copytree(self.saved, target)
            change(target)
        return target

    def index_naming(self, module: str) -> Path:
        def change(folder: Path) -> None:
            index = json.loads((folder / "model_index.json").read_text())
            index["mapper"] = [module, "SemanticMapper"]
            (folder / "model_index.json").write_text(json.dumps(index))

        return self.folder("index-" + module.replace(".", "-"), change)

    def without_manifest(self) -> Path:
        return self.folder("no-manifest", lambda folder: (folder / "weights_sha256.json").unlink())

    def missing_tensor(self) -> Path:
        from safetensors.torch import load_file, save_file

        from semantichuman_hd.hub import write_weights_manifest

        def change(folder: Path) -> None:
            path = folder / "mapper" / "diffusion_pytorch_model.safetensors"
            tensors = load_file(str(path))
            tensors.pop(sorted(tensors)[0])
            save_file(tensors, str(path))
            write_weights_manifest(folder)

        return self.folder("missing-tensor", change)

    def unwritable(self) -> Path:
        if os.geteuid() != 0:
            folder = self.root / "read-only"
            folder.mkdir(exist_ok=True)
            folder.chmod(0o555)
            return folder
        return Path("/sys/kernel")  # modes do not bind root; sysfs refuses new files to everyone


def _pipeline():
    from semantichuman_hd.pipelines import SemanticHumanPipeline

    return SemanticHumanPipeline


NAN = float("nan")

CASES: list[Case] = [
    # -- Python API: generation ----------------------------------------------------------------------
    Case("api", "pipe(num_images=0)", "`num_images`", lambda c: c.pipe(num_images=0)),
    Case("api", "pipe(num_images=2.5)", "`num_images`", lambda c: c.pipe(num_images=2.5)),
    Case("api", "pipe(latents=torch.zeros(0, 6, 32))", "`latents`", lambda c: c.pipe(latents=torch.zeros(0, 6, 32))),
    Case("api", "pipe(latents=torch.zeros(1, 5, 32))", "`latents`", lambda c: c.pipe(latents=torch.zeros(1, 5, 32))),
    Case("api", "pipe(latents=<NaN latents>)", "`latents`", lambda c: c.pipe(latents=torch.full((1, 6, 32), NAN))),
    Case("api", "pipe(generator=42)", "`generator`", lambda c: c.pipe(generator=42)),
    Case("api", "pipe(truncation_psi=nan)", "`truncation_psi`", lambda c: c.pipe(truncation_psi=NAN)),
    Case("api", "pipe(betas=torch.full((10,), 1e6))", "`betas`", lambda c: c.pipe(betas=torch.full((10,), 1e6))),
    Case("api", "pipe(body_pose=torch.zeros(5))", "`body_pose`", lambda c: c.pipe(body_pose=torch.zeros(5))),
    Case("api", "pipe(num_images=1, global_orient=torch.zeros(2, 3))", "`global_orient`", lambda c: c.pipe(global_orient=torch.zeros(2, 3))),
    Case("api", 'pipe(view_angle="left")', "`view_angle`", lambda c: c.pipe(view_angle="left")),
    Case("api", 'pipe(resolution="medium")', "`resolution`", lambda c: c.pipe(resolution="medium")),
    Case("api", 'pipe(output_type="jpg")', "`output_type`", lambda c: c.pipe(output_type="jpg")),
    Case("api", "pipe.sample_latents(-1)", "`num_images`", lambda c: c.pipe.sample_latents(-1)),
    Case("api", 'pipe.swap_parts(a, b, ["hat"])', "`parts`", lambda c: c.pipe.swap_parts(c.latents, c.latents, ["hat"])),
    Case("api", 'pipe.export_mesh(z, "person.stl")', "`path`", lambda c: c.pipe.export_mesh(c.latents, c.root / "person.stl")),
    Case("api", "pipe.export_mesh(z, grid_resolution=2)", "`grid_resolution`", lambda c: c.pipe.export_mesh(c.latents, grid_resolution=2)),
    Case("api", "pipe.render_turntable(z, num_frames=0)", "`num_frames`", lambda c: c.pipe.render_turntable(c.latents, num_frames=0)),
    Case("api", 'pipe.animate("missing.npz", z)', "`poses`", lambda c: c.pipe.animate(c.root / "missing.npz", c.latents)),
    Case("api", 'pipe.animate("garbage.npz", z)', "`poses`", lambda c: c.pipe.animate(c.root / "garbage.npz", c.latents)),
    Case("api", 'SemanticHumanPipeline.from_preset("huge")', "`name`", lambda c: _pipeline().from_preset("huge")),
    Case(
        "api",
        'SemanticHumanPipeline.from_preset("tiny", high_resolution=1 << 20)',
        "`high_resolution`",
        lambda c: _pipeline().from_preset("tiny", high_resolution=1 << 20),
    ),
    # -- Python API: loading and saving --------------------------------------------------------------
    Case("api", 'from_pretrained("no/such/folder")', "`pretrained_model_name_or_path`", lambda c: _pipeline().from_pretrained("no/such/folder")),
    Case("api", "from_pretrained(<model_index.json naming semantichuman_hd.__main__>)", "`mapper`", lambda c: _pipeline().from_pretrained(c.index_naming("semantichuman_hd.__main__"))),
    Case("api", "from_pretrained(<folder without weights_sha256.json>)", "trust_unverified_weights", lambda c: _pipeline().from_pretrained(c.without_manifest())),
    Case("api", "from_pretrained(<weights missing a tensor>)", "`mapper`", lambda c: _pipeline().from_pretrained(c.missing_tensor())),
    Case("api", "from_pretrained(folder, use_safetensors=False)", "`use_safetensors`", lambda c: _pipeline().from_pretrained(c.saved, use_safetensors=False)),
    Case("api", 'from_pretrained(folder, trust_unverified_weights="yes")', "`trust_unverified_weights`", lambda c: _pipeline().from_pretrained(c.saved, trust_unverified_weights="yes")),
    Case("api", "pipe.save_pretrained(folder, safe_serialization=False)", "`safe_serialization`", lambda c: c.pipe.save_pretrained(c.root / "pickles", safe_serialization=False)),
    # -- command line: where results go -------------------------------------------------------------
    Case("cli", "generate --out <an existing file>", "`--out`", lambda c: ["generate", "--preset", "tiny", "--out", c.file]),
    Case("cli", "generate --out people.png", "`--out`", lambda c: ["generate", "--preset", "tiny", "--out", c.root / "people.png"]),
    Case("cli", "generate --out <read-only folder>/people", "`--out`", lambda c: ["generate", "--preset", "tiny", "--out", c.unwritable() / "people"]),
    Case("cli", "try-on --out <an existing file>", "`--out`", lambda c: ["try-on", "--preset", "tiny", "--out", c.file]),
    Case("cli", "export-mesh --out person.stl", "`--out`", lambda c: ["export-mesh", "--preset", "tiny", "--out", c.root / "person.stl"]),
    Case("cli", "export-mesh --out <an existing folder>.glb", "`--out`", lambda c: ["export-mesh", "--preset", "tiny", "--out", c.root / "folder.glb"]),
    Case("cli", "turntable --out turn.avi", "`--out`", lambda c: ["turntable", "--preset", "tiny", "--out", c.root / "turn.avi"]),
    Case("cli", "render-body --out body", "`--out`", lambda c: ["render-body", "--out", c.root / "body"]),
    Case("cli", "make-body-model --out <an existing folder>.pkl", "`--out`", lambda c: ["make-body-model", "--out", c.root / "folder.pkl"]),
    # -- command line: sizes and numbers -------------------------------------------------------------
    Case("cli", "generate --num 0", "`--num`", lambda c: ["generate", "--preset", "tiny", "--num", "0", "--out", c.root / "g"]),
    Case("cli", "generate --num many", "--num", lambda c: ["generate", "--num", "many"]),
    Case("cli", "generate --batch-size 0", "`--batch-size`", lambda c: ["generate", "--preset", "tiny", "--batch-size", "0", "--out", c.root / "g"]),
    Case("cli", "generate --view-angle nan", "`--view-angle`", lambda c: ["generate", "--preset", "tiny", "--view-angle", "nan", "--out", c.root / "g"]),
    Case("cli", "generate --truncation-psi inf", "`--truncation-psi`", lambda c: ["generate", "--preset", "tiny", "--truncation-psi", "inf", "--out", c.root / "g"]),
    Case("cli", "render-body --resolution 100000", "`--resolution`", lambda c: ["render-body", "--resolution", "100000", "--out", c.root / "body.png"]),
    Case("cli", "render-body --resolution 0", "`--resolution`", lambda c: ["render-body", "--resolution", "0", "--out", c.root / "body.png"]),
    Case("cli", "export-mesh --grid-resolution 100000", "`--grid-resolution`", lambda c: ["export-mesh", "--preset", "tiny", "--grid-resolution", "100000", "--out", c.root / "p.glb"]),
    Case("cli", "turntable --frames 10000000000", "`--frames`", lambda c: ["turntable", "--preset", "tiny", "--frames", "10000000000", "--out", c.root / "t.gif"]),
    Case("cli", "turntable --frames 0", "`--frames`", lambda c: ["turntable", "--preset", "tiny", "--frames", "0", "--out", c.root / "t.gif"]),
    Case("cli", "animate --poses walk --stride 0", "`--stride`", lambda c: ["animate", "--preset", "tiny", "--poses", "walk", "--stride", "0", "--out", c.root / "a.gif"]),
    Case("cli", "export-mesh --index -1", "`--index`", lambda c: ["export-mesh", "--preset", "tiny", "--index", "-1", "--out", c.root / "p.glb"]),
    # -- command line: names and files ---------------------------------------------------------------
    Case("cli", "generate --preset huge", "`--preset`", lambda c: ["generate", "--preset", "huge", "--out", c.root / "g"]),
    Case("cli", "generate --model m --preset tiny", "`--model`", lambda c: ["generate", "--model", "m", "--preset", "tiny", "--out", c.root / "g"]),
    Case("cli", "generate --model no/such-model (offline)", "`--model`", lambda c: ["generate", "--model", str(c.root / "no-such-model"), "--out", c.root / "g"]),
    Case("cli", "generate --device cuda:7 (no GPU)", "`--device`", lambda c: ["generate", "--preset", "tiny", "--device", "cuda:7" if not torch.cuda.is_available() else "warp:0", "--out", c.root / "g"]),
    Case("cli", "generate --pose dab", "`--pose`", lambda c: ["generate", "--preset", "tiny", "--pose", "dab", "--out", c.root / "g"]),
    Case("cli", "generate --latents missing.safetensors", "`--latents`", lambda c: ["generate", "--preset", "tiny", "--latents", c.root / "missing.safetensors", "--out", c.root / "g"]),
    Case("cli", "generate --latents <garbage file>", "`--latents`", lambda c: ["generate", "--preset", "tiny", "--latents", c.root / "garbage.safetensors", "--out", c.root / "g"]),
    Case("cli", "generate --latents <latents of another model>", "`--latents`", lambda c: ["generate", "--preset", "tiny", "--latents", c.root / "other_model.safetensors", "--out", c.root / "g"]),
    Case("cli", "generate --latents <2 people> --num 3", "`--num`", lambda c: ["generate", "--preset", "tiny", "--latents", c.root / "two.safetensors", "--num", "3", "--out", c.root / "g"]),
    Case("cli", "try-on --parts tops,hat", "`--parts`", lambda c: ["try-on", "--preset", "tiny", "--parts", "tops,hat", "--out", c.root / "t"]),
    Case("cli", "export-mesh --part hat", "`--part`", lambda c: ["export-mesh", "--preset", "tiny", "--part", "hat", "--out", c.root / "p.glb"]),
    Case("cli", "animate --poses <garbage .npz>", "`--poses`", lambda c: ["animate", "--preset", "tiny", "--poses", c.root / "garbage.npz", "--out", c.root / "a.gif"]),
    Case("cli", "animate --poses <.npz without trans>", "`--poses`", lambda c: ["animate", "--preset", "tiny", "--poses", c.root / "no_trans.npz", "--out", c.root / "a.gif"]),
    Case("cli", "animate --poses missing.npz", "`--poses`", lambda c: ["animate", "--preset", "tiny", "--poses", c.root / "missing.npz", "--out", c.root / "a.gif"]),
    Case("cli", "render-body --smpl missing.pkl", "--smpl", lambda c: ["render-body", "--smpl", c.root / "missing.pkl", "--out", c.root / "body.png"]),
    Case("cli", "preview-dataset DIR (neither --out nor --stats)", "--out", lambda c: ["preview-dataset", str(c.root)]),
]


def run_api(case: Case, ctx: Context) -> tuple[bool, str]:
    """(clear, answer): the exception it raised, or what went wrong."""
    try:
        case.run(ctx)
    except API_ERRORS as error:
        text = f"{type(error).__name__}: {error}"
        return case.argument in str(error), text
    except Exception as error:  # noqa: BLE001 - an unexpected kind of error is the finding
        return False, f"UNEXPECTED {type(error).__name__}: {error}"
    return False, "no error"


def run_cli(case: Case, ctx: Context) -> tuple[bool, str]:
    from semantichuman_hd.cli import main

    argv = [str(arg) for arg in case.run(ctx)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own usage errors (also status 2)
            code = exit.code
        except Exception as error:  # noqa: BLE001
            return False, f"UNEXPECTED {type(error).__name__}: {error}"
    lines = [line for line in err.getvalue().splitlines() if line.strip() and not line.startswith(("usage:", " ", "!!"))]
    answer = lines[-1] if lines else "(nothing on stderr)"
    clear = code == 2 and "Traceback" not in err.getvalue() and case.argument in answer
    return clear, f"exit {code}: {answer}"


def run_case(case: Case, ctx: Context) -> tuple[bool, str]:
    return (run_api if case.kind == "api" else run_cli)(case, ctx)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, open_body):
    context = Context(tmp_path_factory.mktemp("bad_inputs"))
    context.pipe.set_body_model(open_body)
    return context


def test_there_are_at_least_forty_cases_across_api_and_command_line():
    assert len(CASES) >= 40
    assert {case.kind for case in CASES} == {"api", "cli"}
    assert len({case.shown for case in CASES}) == len(CASES)


@pytest.fixture
def no_rendering(monkeypatch):
    """Rendering would mean a check came too late."""
    from semantichuman_hd.pipelines import SemanticHumanPipeline

    def refuse(*args, **kwargs):
        raise AssertionError("rendering started before the bad input was refused")

    monkeypatch.setattr(SemanticHumanPipeline, "render_low", refuse)
    monkeypatch.setattr(SemanticHumanPipeline, "canonical_field", refuse)


@pytest.mark.parametrize("case", CASES, ids=[case.shown for case in CASES])
def test_bad_input_gets_a_clear_answer_naming_the_argument(ctx, no_rendering, case):
    clear, answer = run_case(case, ctx)
    assert clear, answer


def print_table() -> int:
    """Run every case and print ``| # | input | answer |`` as Markdown; returns the unclear count."""
    from semantichuman_hd.body.body_model import BodyModel

    with tempfile.TemporaryDirectory() as folder:
        ctx = Context(Path(folder))
        ctx.pipe.set_body_model(BodyModel.open())
        print("| # | where | input | answer |")
        print("|---:|---|---|---|")
        unclear = 0
        for number, case in enumerate(CASES, 1):
            clear, answer = run_case(case, ctx)
            unclear += not clear
            answer = answer.replace(folder, "…").replace("|", "\\|")
            shown = case.shown.replace("|", "\\|")
            print(f"| {number} | {'Python' if case.kind == 'api' else 'CLI'} | `{shown}` | {'' if clear else '**UNCLEAR** '}{answer} |")
        return unclear


if __name__ == "__main__":
    sys.exit(1 if print_table() else 0)
