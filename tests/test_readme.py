"""The README's Python example runs as written (on the tiny preset, in a scratch folder)."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "from_pretrained()" in example  # the bundled checkpoint; the test runs the example on `tiny`
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example.replace("from_pretrained()", 'from_preset("tiny")'), "README.md", "exec"), namespace)
    assert (tmp_path / "person.png").is_file()
    assert namespace["hd"].images[0].size == (128, 128)
    assert namespace["tried_on"].shape == namespace["person"].shape


class _Reached(Exception):
    """Raised where a command would start its work: its arguments all passed their checks."""


def test_readme_commands_are_valid_as_written(tmp_path, monkeypatch):
    """Every command of the README's "Command line" block parses and passes every check made before
    work (files it names exist, e.g. the bundled `--poses walk`; its `--out` can be written), run in
    order in a scratch folder where the earlier commands' latents files exist."""
    import shlex

    from semantichuman_hd.cli import body as body_cli, export as export_cli, generate as generate_cli, main
    from semantichuman_hd.cli._common import save_latents

    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Command line\n\n```\n(.*?)```", text, flags=re.S).group(1)
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert commands and all(command[0] == "semantichuman-hd" for command in commands)

    def reached(*args, **kwargs):
        raise _Reached

    for module in (generate_cli, export_cli):
        monkeypatch.setattr(module, "load_pipeline", reached)
    monkeypatch.setattr(body_cli, "render_body_sheet", reached)
    monkeypatch.chdir(tmp_path)
    for path, count in (("people/latents.safetensors", 4), ("try_on/a_latents.safetensors", 1)):
        save_latents(path, torch.zeros(count, 6, 128))
    for command in commands:
        with pytest.raises(_Reached):
            code = main(command[1:])
            pytest.fail(f"{shlex.join(command)} ended with status {code} before its work")
