"""Loading a pipeline folder runs no code of the folder's choosing, its integrity check cannot be switched
off by deleting the manifest, weights that do not fit their component fail at load time naming the
tensors, and a saved folder's files get the usual permissions."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from semantichuman_hd.hub import PIPELINE_INDEX, TRUST_UNVERIFIED_WEIGHTS, WEIGHTS_MANIFEST, WEIGHTS_NAME
from semantichuman_hd.io import default_file_mode
from semantichuman_hd.pipelines import SemanticHumanPipeline

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("security") / "tiny"
    SemanticHumanPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    return folder


@pytest.fixture
def copy(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "copy"))


def set_index_entry(folder: Path, name: str, entry) -> None:
    index = json.loads((folder / PIPELINE_INDEX).read_text())
    index[name] = entry
    (folder / PIPELINE_INDEX).write_text(json.dumps(index))


@pytest.mark.parametrize(
    "entry",
    [
        ["semantichuman_hd.__main__", "SemanticMapper"],
        ["semantichuman_hd.cli", "SemanticMapper"],
        ["semantichuman_hd.pipelines.pipeline_semantic_human", "SemanticMapper"],  # re-exported, not defined there
    ],
    ids=["package-main", "cli", "re-export"],
)
def test_only_the_defining_module_of_the_expected_class_is_accepted(copy, entry):
    set_index_entry(copy, "mapper", entry)
    with pytest.raises(ValueError, match=r'component `mapper` .*allowed: \["semantichuman_hd\.models\.mapper", "SemanticMapper"\] exactly'):
        SemanticHumanPipeline.from_pretrained(copy)


def test_a_folder_naming_main_runs_nothing_in_a_fresh_process(copy, tmp_path):
    """The attack of the issue: the host's own arguments would have run ``make-body-model`` and exited."""
    set_index_entry(copy, "mapper", ["semantichuman_hd.__main__", "SemanticMapper"])
    victim = tmp_path / "victim.pkl"
    code = (
        "import sys\n"
        "from semantichuman_hd.pipelines import SemanticHumanPipeline\n"
        f"sys.argv = ['host', 'make-body-model', '--out', {str(victim)!r}]\n"
        "try:\n"
        f"    SemanticHumanPipeline.from_pretrained({str(copy)!r})\n"
        "except ValueError as error:\n"
        "    print('refused:', error)\n"
        "print('main imported:', 'semantichuman_hd.__main__' in sys.modules)\n"
        "print('host still running')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "main imported: False" in result.stdout and "host still running" in result.stdout
    assert not victim.exists()


def test_importing_the_package_main_module_runs_nothing():
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['host', '--no-such-option']; import semantichuman_hd.__main__; print('alive')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "alive", result.stderr


def test_folder_without_manifest_is_refused_unless_trusted_explicitly(copy, saved):
    (copy / WEIGHTS_MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=rf"weights_sha256\.json is missing: .*altered or replaced weights would load unnoticed.*`{TRUST_UNVERIFIED_WEIGHTS}=True`"):
        SemanticHumanPipeline.from_pretrained(copy)
    loaded = SemanticHumanPipeline.from_pretrained(copy, trust_unverified_weights=True)
    reference = load_file(str(saved / "mapper" / WEIGHTS_NAME))
    assert all((loaded.mapper.state_dict()[key] == value).all() for key, value in reference.items())
    with pytest.raises(ValueError, match=rf"`{TRUST_UNVERIFIED_WEIGHTS}` must be True or False, got 'yes'"):
        SemanticHumanPipeline.from_pretrained(copy, trust_unverified_weights="yes")


def test_weights_file_missing_from_the_manifest_is_refused(copy):
    manifest = json.loads((copy / WEIGHTS_MANIFEST).read_text())
    del manifest["sha256"][f"mapper/{WEIGHTS_NAME}"]
    (copy / WEIGHTS_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"mapper/diffusion_pytorch_model\.safetensors is not listed in weights_sha256\.json"):
        SemanticHumanPipeline.from_pretrained(copy)


def resave_without(copy: Path, component: str, drop: str | None = None, add: str | None = None) -> None:
    """Rewrite a component's weights without tensor ``drop`` / with an extra tensor ``add``, and re-record
    the manifest (so that only the key check can catch it)."""
    from semantichuman_hd.hub import write_weights_manifest

    path = copy / component / WEIGHTS_NAME
    tensors = load_file(str(path))
    if drop is not None:
        tensors.pop(drop)
    if add is not None:
        tensors[add] = next(iter(tensors.values())).clone()
    save_file(tensors, str(path))
    write_weights_manifest(copy)


def test_missing_tensor_is_reported_at_load_naming_component_and_key(copy, saved):
    key = sorted(load_file(str(saved / "local_generators" / WEIGHTS_NAME)))[0]
    resave_without(copy, "local_generators", drop=key)
    with pytest.raises(ValueError, match=rf"component `local_generators` .*missing 1 tensor\(s\): {key.replace('.', '[.]')}"):
        SemanticHumanPipeline.from_pretrained(copy)


def test_unexpected_tensor_is_reported_at_load(copy):
    resave_without(copy, "mapper", add="extra.weight")
    with pytest.raises(ValueError, match=r"component `mapper` .*unexpected 1 tensor\(s\): extra\.weight"):
        SemanticHumanPipeline.from_pretrained(copy)


def test_saved_files_share_the_usual_permissions(saved):
    modes = {path.relative_to(saved).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in saved.rglob("*") if path.is_file()}
    assert set(modes.values()) == {default_file_mode()}, modes
    assert default_file_mode() == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
