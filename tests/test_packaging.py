"""The project's promises about itself: the README's commands, CI, and the installed package layout."""

import re
import tomllib
from pathlib import Path

import semantichuman_hd

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "the README must open with two shell blocks: main job and tests"
    return blocks[0].strip().splitlines(), blocks[1].strip().splitlines()


def test_ci_runs_the_readme_install_and_test_commands():
    main_job, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    install = [line for line in tests if "pip install" in line]
    assert install, "the README's test block must install the package"
    for line in install:
        assert line.split("&& python -m pytest")[0].split(". .venv/bin/activate && ")[-1].strip() in ci
    assert "python -m pytest -q" in ci and any("python -m pytest -q" in line for line in tests)
    assert any("semantichuman-hd" in line for line in main_job)


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "semantichuman_hd").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert config["tool"]["setuptools"]["package-dir"]["semantichuman_hd.pipelines"] == "pipelines"


def test_parts_are_exported():
    assert semantichuman_hd.PARTS == ("body", "tops", "outerwear", "bottoms", "shoes", "accessories")
    assert semantichuman_hd.NUM_PARTS == 6
