"""Weights round-trip through the Hub format: save_pretrained → from_pretrained (bit-identical renders),
fp16 variants, a repo id loaded offline from a Hub cache laid out as the Hub lays it out, push_to_hub with
only the network replaced, clear errors for bad folders, and the package's lazy exports."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import safe_open
from safetensors.torch import load_file

import semantichuman_hd
from semantichuman_hd.hub import (
    HUB_ALLOW_PATTERNS,
    MODEL_CARD,
    PIPELINE_INDEX,
    SOURCE_PATH_KEY,
    WEIGHTS_MANIFEST,
    WEIGHTS_NAME,
    file_sha256,
    resolve_pipeline_folder,
)
from semantichuman_hd.pipelines import SemanticHumanPipeline, SemanticHumanPipelineOutput

COMPONENTS = ("mapper", "local_generators", "super_resolution")
SAVED_FILES = {
    PIPELINE_INDEX,
    WEIGHTS_MANIFEST,
    MODEL_CARD,
    *(f"{name}/config.json" for name in COMPONENTS),
    *(f"{name}/{WEIGHTS_NAME}" for name in COMPONENTS),
}
"""Every file a pipeline folder holds (and a push uploads)."""

REPO_ID = "semantic-human/tiny-test"
LFS_SUFFIXES = (".safetensors",)
"""Files the Hub stores through LFS (cached as blobs named by their SHA-256)."""

OUTPUT_FIELDS = ("images", "semantic_masks", "depth", "normals", "alpha")
FP16_RENDER_TOLERANCE = 1e-3
"""Largest change allowed of a low-resolution render in [0, 1] when the weights are rounded to float16
(about 4e-5 measured for the tiny preset)."""


def files_of(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def state_dicts(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value for name in COMPONENTS for key, value in getattr(pipe, name).state_dict().items()}


def public_config(config) -> dict:
    """A config without diffusers' bookkeeping (``_name_or_path``, ``_use_default_values``, ...)."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


def git_blob_sha1(data: bytes) -> str:
    """The git object id the Hub gives a regular (non-LFS) file, its etag and cache blob name."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def populate_hub_cache(folder: Path, hub_cache: Path, repo_id: str, symlinks: bool = True) -> str:
    """Put ``folder`` in ``hub_cache`` as ``snapshot_download`` leaves a repo: ``blobs/<etag>`` (SHA-256
    for LFS files, the git blob id otherwise), ``snapshots/<commit>/<path>`` (relative symlinks to the
    blobs, or copies as on systems without symlinks) and ``refs/main``. Returns the commit hash."""
    repo_folder = hub_cache / f"models--{repo_id.replace('/', '--')}"
    files = sorted(files_of(folder))
    commit = hashlib.sha1(b"".join(name.encode() + (folder / name).read_bytes() for name in files)).hexdigest()
    for name in files:
        data = (folder / name).read_bytes()
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_sha1(data)
        blob = repo_folder / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = repo_folder / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if symlinks:
            target.symlink_to(os.path.relpath(blob, target.parent))
        else:
            target.write_bytes(data)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(commit)
    return commit


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without Hub settings or credentials, plus ``overrides``."""
    hub_variables = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE")
    env = {key: value for key, value in os.environ.items() if key not in hub_variables}
    env.update(overrides)
    return env


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe(open_body):
    pipeline = SemanticHumanPipeline.from_preset("tiny", seed=0)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.set_body_model(open_body)
    return pipeline


@pytest.fixture(scope="module")
def latents(pipe):
    return pipe.sample_latents(1, torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def deterministic():
    """Bit-identical renders need deterministic kernels: with several threads, the accumulation in the
    backward pass that gives the normals is otherwise free to change the last bit between calls."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


@pytest.fixture(scope="module")
def reference(pipe, latents, deterministic) -> dict[str, SemanticHumanPipelineOutput]:
    """The original pipeline's renders, by resolution."""
    return {resolution: pipe(latents=latents, resolution=resolution, output_type="pt") for resolution in ("low", "high")}


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "tiny-pipeline"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reloaded(saved, open_body):
    pipeline = SemanticHumanPipeline.from_pretrained(saved)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.set_body_model(open_body)
    return pipeline


@pytest.fixture
def broken(saved, tmp_path) -> Path:
    """A copy of the saved pipeline, to damage."""
    return Path(shutil.copytree(saved, tmp_path / "copy"))


# -- save / load ------------------------------------------------------------------------------------


def test_save_writes_safetensors_configs_card_and_manifest(pipe, saved):
    assert files_of(saved) == SAVED_FILES  # no .bin / .pkl / .pt anywhere
    index = json.loads((saved / PIPELINE_INDEX).read_text())
    assert index["_class_name"] == "SemanticHumanPipeline"
    for name in COMPONENTS:
        module = getattr(pipe, name)
        assert index[name] == [type(module).__module__, type(module).__name__]
        with safe_open(str(saved / name / WEIGHTS_NAME), framework="pt") as handle:
            assert set(handle.keys()) == set(module.state_dict())
    checksums = json.loads((saved / WEIGHTS_MANIFEST).read_text())["sha256"]
    assert checksums == {f"{name}/{WEIGHTS_NAME}": file_sha256(saved / name / WEIGHTS_NAME) for name in COMPONENTS}
    card = ModelCard.load(saved / MODEL_CARD)
    assert (card.data.library_name, card.data.license) == ("semantichuman-hd", "apache-2.0")
    card = card.text
    assert 'SemanticHumanPipeline.from_pretrained("tiny-pipeline")' in card
    assert f"{sum(p.numel() for p in pipe.mapper.parameters()):,}" in card


def test_a_resaved_folder_names_no_path_of_the_machine_that_wrote_it(reloaded, saved, tmp_path):
    """diffusers records where a pipeline was loaded from (``_name_or_path``); a folder saved from a loaded
    pipeline (a training run's export, the bundled checkpoint, a Hub upload) must not carry that path."""
    assert reloaded.config[SOURCE_PATH_KEY] == str(saved)  # loading records it ...
    again = tmp_path / "again"
    reloaded.save_pretrained(again)
    configs = [again / PIPELINE_INDEX, *sorted(again.glob("*/config.json"))]
    assert len(configs) == 1 + len(COMPONENTS)
    for path in configs:  # ... saving leaves it out
        assert SOURCE_PATH_KEY not in json.loads(path.read_text()), path
        assert str(saved) not in path.read_text(), path
    assert SemanticHumanPipeline.from_pretrained(again).config[SOURCE_PATH_KEY] == str(again)


def test_reload_has_identical_weights_and_settings(pipe, reloaded):
    assert_same_weights(state_dicts(reloaded), state_dicts(pipe))
    assert public_config(reloaded.config) == public_config(pipe.config)
    for name in COMPONENTS:
        assert public_config(getattr(reloaded, name).config) == public_config(getattr(pipe, name).config)


@pytest.mark.parametrize("resolution", ["low", "high"])
def test_reload_renders_bit_identically(pipe, reloaded, latents, reference, resolution):
    expected = reference[resolution]
    actual = reloaded(latents=latents, resolution=resolution, output_type="pt")
    assert isinstance(actual, SemanticHumanPipelineOutput)
    size = pipe.config.low_resolution if resolution == "low" else pipe.config.high_resolution
    assert actual.images.shape == (1, 3, size, size)
    assert expected.alpha.sum() > 0  # people were rendered, not only background
    for field in OUTPUT_FIELDS:
        assert torch.equal(getattr(actual, field), getattr(expected, field)), field


def test_save_refuses_pickles(pipe, tmp_path):
    with pytest.raises(ValueError, match="`safe_serialization` must be True"):
        pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert not (tmp_path / "pickled").exists()


@pytest.mark.filterwarnings("ignore:`torch_dtype` is deprecated:FutureWarning")  # diffusers 0.42 prefers `dtype`; both must work
def test_fp16_variant_saves_and_loads_with_dtype(pipe, saved, latents, reference, tmp_path, open_body):
    folder = Path(shutil.copytree(saved, tmp_path / "both"))
    half = SemanticHumanPipeline.from_pretrained(saved, dtype=torch.float16)
    assert {p.dtype for name in COMPONENTS for p in getattr(half, name).parameters()} == {torch.float16}
    half.save_pretrained(folder, variant="fp16")

    fp16_name = WEIGHTS_NAME.replace(".safetensors", ".fp16.safetensors")
    assert files_of(folder) == SAVED_FILES | {f"{name}/{fp16_name}" for name in COMPONENTS}
    assert (folder / MODEL_CARD).read_text() == (saved / MODEL_CARD).read_text()  # an existing card is kept
    assert set(json.loads((folder / WEIGHTS_MANIFEST).read_text())["sha256"]) == {f"{n}/{w}" for n in COMPONENTS for w in (WEIGHTS_NAME, fp16_name)}
    for name in COMPONENTS:
        stored = load_file(folder / name / fp16_name)
        assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
        assert sum(t.numel() * t.element_size() for t in stored.values()) * 2 == sum(
            t.numel() * t.element_size() for t in load_file(folder / name / WEIGHTS_NAME).values()
        )

    loaded_half = SemanticHumanPipeline.from_pretrained(folder, variant="fp16", torch_dtype=torch.float16)
    expected_half = {key: value.half() for key, value in state_dicts(pipe).items()}
    assert_same_weights(state_dicts(loaded_half), expected_half)

    # The fp32 weights beside the variant are untouched; the variant upcast renders close to them.
    assert_same_weights(state_dicts(SemanticHumanPipeline.from_pretrained(folder)), state_dicts(pipe))
    upcast = SemanticHumanPipeline.from_pretrained(folder, variant="fp16", dtype=torch.float32)
    assert_same_weights(state_dicts(upcast), {key: value.float() for key, value in expected_half.items()})
    upcast.set_progress_bar_config(disable=True)
    upcast.set_body_model(open_body)
    approximate = upcast(latents=latents, resolution="low", output_type="pt")
    exact = reference["low"]
    for field in ("images", "alpha"):
        difference = (getattr(approximate, field) - getattr(exact, field)).abs().max().item()
        assert 0 < difference < FP16_RENDER_TOLERANCE, (field, difference)


def test_fp16_only_folder_needs_the_variant(pipe, tmp_path):
    folder = tmp_path / "fp16-only"
    pipe.save_pretrained(folder, variant="fp16")
    assert 'SemanticHumanPipeline.from_pretrained("fp16-only", variant="fp16")' in (folder / MODEL_CARD).read_text()
    with pytest.raises(FileNotFoundError, match=r"variant=None.*found \['diffusion_pytorch_model\.fp16\.safetensors'\]"):
        SemanticHumanPipeline.from_pretrained(folder)


# -- Hub cache --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_process(saved, tmp_path_factory) -> dict:
    """One new Python process, with ``HF_HOME`` pointing at a Hub cache that holds the saved pipeline as
    ``REPO_ID`` and ``HF_HUB_OFFLINE=1`` (huggingface_hub reads both when it is imported). It imports
    ``PARTS`` (noting which heavy modules that pulled in), then only ``SemanticHumanPipeline``, loads the
    repo id, writes the loaded weights and tries a repo id that is not cached."""
    root = tmp_path_factory.mktemp("fresh_process")
    hf_home = root / "hf_home"
    commit = populate_hub_cache(saved, hf_home / "hub", REPO_ID)
    weights = root / "loaded.safetensors"
    code = f"""
        import json, sys
        from semantichuman_hd import PARTS
        heavy = sorted(name for name in ("torch", "diffusers", "huggingface_hub") if name in sys.modules)
        from semantichuman_hd import SemanticHumanPipeline

        pipe = SemanticHumanPipeline.from_pretrained({REPO_ID!r})
        from safetensors.torch import save_file
        from semantichuman_hd.hub import resolve_pipeline_folder

        tensors = {{f"{{name}}.{{key}}": value.contiguous() for name in {COMPONENTS!r} for key, value in getattr(pipe, name).state_dict().items()}}
        save_file(tensors, {str(weights)!r})
        try:
            SemanticHumanPipeline.from_pretrained("semantic-human/not-cached")
            missing = None
        except FileNotFoundError as error:
            missing = str(error)
        folder = str(resolve_pipeline_folder({REPO_ID!r}))
        print(json.dumps({{"heavy": heavy, "parts": list(PARTS), "folder": folder, "name_or_path": pipe.name_or_path, "missing": missing}}))
    """
    result = run_python(code, clean_environment(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1"))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected_folder = hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / commit
    return dict(report, weights=load_file(weights), expected_folder=str(expected_folder))


def test_repo_id_loads_offline_from_the_hub_cache_in_a_fresh_process(pipe, fresh_process):
    assert fresh_process["folder"] == fresh_process["expected_folder"]
    assert fresh_process["name_or_path"] == REPO_ID
    assert_same_weights(fresh_process["weights"], {key: value.contiguous() for key, value in state_dicts(pipe).items()})


def test_repo_id_missing_from_the_cache_while_offline(fresh_process):
    message = fresh_process["missing"]
    assert message is not None
    for words in ("'semantic-human/not-cached'", "not in the local Hub cache", "the Hub is offline (HF_HUB_OFFLINE is set)"):
        assert words in message


@pytest.mark.parametrize("symlinks", [True, False], ids=["symlinks", "copies"])
def test_repo_id_loads_from_cache_dir_without_network(pipe, saved, tmp_path, symlinks):
    cache = tmp_path / "hub_cache"
    commit = populate_hub_cache(saved, cache, REPO_ID, symlinks=symlinks)
    for revision in (None, commit):
        loaded = SemanticHumanPipeline.from_pretrained(REPO_ID, cache_dir=cache, local_files_only=True, revision=revision)
        assert_same_weights(state_dicts(loaded), state_dicts(pipe))
    with pytest.raises(FileNotFoundError, match=r"'semantic-human/other' \(revision 'main'\) is not in the local Hub cache .*`local_files_only=True`"):
        SemanticHumanPipeline.from_pretrained("semantic-human/other", cache_dir=cache, local_files_only=True)


def test_altered_blob_in_the_hub_cache_is_detected(saved, tmp_path):
    cache = tmp_path / "hub_cache"
    commit = populate_hub_cache(saved, cache, REPO_ID)
    blob = (cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / commit / "super_resolution" / WEIGHTS_NAME).resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"super_resolution/diffusion_pytorch_model\.safetensors is corrupted: its SHA-256"):
        SemanticHumanPipeline.from_pretrained(REPO_ID, cache_dir=cache, local_files_only=True)


# -- push_to_hub ------------------------------------------------------------------------------------


class FakeHub:
    """Stands in for the HfApi methods that talk to the Hub; records what would be sent."""

    def __init__(self, card_on_hub: bool):
        self.card_on_hub = card_on_hub
        self.created: list[dict] = []
        self.commits: list[dict] = []
        self.validated_cards: list[str] = []

    def install(self, monkeypatch) -> None:
        import huggingface_hub
        from huggingface_hub import CommitInfo, HfApi, RepoUrl

        fake = self

        def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
            fake.created.append(dict(repo_id=repo_id, private=private, exist_ok=exist_ok))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def file_exists(self, repo_id, filename, **kwargs):
            return fake.card_on_hub and filename == MODEL_CARD

        def validate_yaml(self, content, *, repo_type=None, token=None):
            ModelCard(content)  # parses the YAML header locally
            fake.validated_cards.append(content)

        def create_commit(self, repo_id, operations, *, commit_message, **kwargs):
            files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
            fake.commits.append(dict(repo_id=repo_id, message=commit_message, files=files, create_pr=kwargs.get("create_pr")))
            return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}", commit_message=commit_message, commit_description="", oid="0" * 40)

        def preupload_lfs_files(self, *args, **kwargs):
            raise AssertionError("the upload must go through the faked create_commit")

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "file_exists", file_exists)
        monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
        monkeypatch.setattr(HfApi, "create_commit", create_commit)
        monkeypatch.setattr(HfApi, "preupload_lfs_files", preupload_lfs_files)
        # The single-commit upload path (the hf_xet pipeline bypasses create_commit and streams blobs itself).
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def no_network():
    """Any HTTP request huggingface_hub makes fails the test instead of reaching the Hub."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    requests = []

    def refuse(request):
        requests.append(str(request.url))
        raise AssertionError(f"unexpected network request {request.method} {request.url}")

    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(refuse)))
    yield requests
    set_client_factory(default_client_factory)
    assert not requests


@pytest.mark.parametrize("card_on_hub", [False, True], ids=["new-repo", "repo-with-card"])
def test_push_to_hub_uploads_exactly_the_pipeline_files(pipe, saved, monkeypatch, no_network, card_on_hub):
    hub = FakeHub(card_on_hub)
    hub.install(monkeypatch)
    commit = pipe.push_to_hub(REPO_ID, commit_message="tiny weights", private=True)
    assert commit.oid == "0" * 40
    assert hub.created == [dict(repo_id=REPO_ID, private=True, exist_ok=True)]
    (upload,) = hub.commits
    assert upload["repo_id"] == REPO_ID and upload["message"] == "tiny weights" and not upload["create_pr"]
    expected = SAVED_FILES - {MODEL_CARD} if card_on_hub else SAVED_FILES
    assert set(upload["files"]) == expected
    for name in expected - {MODEL_CARD}:
        assert upload["files"][name] == (saved / name).read_bytes(), name  # serialisation is deterministic
    if not card_on_hub:
        card = upload["files"][MODEL_CARD].decode()
        assert hub.validated_cards == [card]
        assert f'SemanticHumanPipeline.from_pretrained("{REPO_ID}")' in card
        assert "library_name: semantichuman-hd" in card and "library_name: diffusers" not in card


def test_save_pretrained_with_push_to_hub_uploads_the_folder(pipe, tmp_path, monkeypatch, no_network):
    hub = FakeHub(card_on_hub=False)
    hub.install(monkeypatch)
    folder = tmp_path / "to-push"
    pipe.save_pretrained(folder, push_to_hub=True, repo_id=REPO_ID, variant="fp16", create_pr=True)
    fp16_files = {name.replace(".safetensors", ".fp16.safetensors") for name in SAVED_FILES}
    assert files_of(folder) == fp16_files
    (upload,) = hub.commits
    assert set(upload["files"]) == fp16_files and upload["create_pr"]
    assert f'SemanticHumanPipeline.from_pretrained("{REPO_ID}", variant="fp16")' in upload["files"][MODEL_CARD].decode()


def test_push_to_hub_refuses_pickles(pipe, monkeypatch, no_network):
    hub = FakeHub(card_on_hub=False)
    hub.install(monkeypatch)
    with pytest.raises(ValueError, match="`safe_serialization` must be True"):
        pipe.push_to_hub(REPO_ID, safe_serialization=False)
    assert not hub.created and not hub.commits


# -- bad input --------------------------------------------------------------------------------------


def test_missing_weights_file(broken):
    (broken / "mapper" / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"mapper/diffusion_pytorch_model\.safetensors is missing: component `mapper` needs its weights"):
        SemanticHumanPipeline.from_pretrained(broken)


def test_pickled_weights_are_never_loaded(broken):
    (broken / "mapper" / WEIGHTS_NAME).unlink()
    (broken / "mapper" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(FileNotFoundError, match="pickled weights .* are never loaded"):
        SemanticHumanPipeline.from_pretrained(broken)
    with pytest.raises(ValueError, match="`use_safetensors` must be True"):
        SemanticHumanPipeline.from_pretrained(broken, use_safetensors=False)


def test_truncated_weights_file(broken):
    path = broken / "local_generators" / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"local_generators/diffusion_pytorch_model\.safetensors is not a valid safetensors file"):
        SemanticHumanPipeline.from_pretrained(broken)


def test_garbled_header_without_manifest(broken):
    (broken / WEIGHTS_MANIFEST).unlink()
    path = broken / "mapper" / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[8:24] = b"\x00" * 16  # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"mapper/diffusion_pytorch_model\.safetensors is not a valid safetensors file"):
        SemanticHumanPipeline.from_pretrained(broken, trust_unverified_weights=True)


def test_garbled_tensor_bytes_are_caught_by_the_checksum(broken):
    path = broken / "mapper" / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(255 - byte for byte in data[-64:])  # tensor data: the header stays valid
    path.write_bytes(bytes(data))
    with safe_open(str(path), framework="pt") as handle:  # safetensors alone cannot tell
        assert handle.keys()
    with pytest.raises(ValueError, match=r"mapper/diffusion_pytorch_model\.safetensors is corrupted: its SHA-256 .* weights_sha256\.json recorded"):
        SemanticHumanPipeline.from_pretrained(broken)


def test_folder_without_model_index(broken):
    (broken / PIPELINE_INDEX).unlink()
    with pytest.raises(ValueError, match=r"is not a pipeline folder: it has no model_index\.json"):
        SemanticHumanPipeline.from_pretrained(broken)
    with pytest.raises(ValueError, match="single component"):
        SemanticHumanPipeline.from_pretrained(broken / "mapper")


@pytest.mark.parametrize(
    "path, error, words",
    [
        ("no/such/folder", FileNotFoundError, "neither an existing folder nor a Hub repo id"),
        ("./missing-folder", FileNotFoundError, "neither an existing folder nor a Hub repo id"),
        ("owner/bad name!", FileNotFoundError, "'owner/name' with letters, digits"),
    ],
)
def test_path_that_is_neither_folder_nor_repo_id(path, error, words):
    with pytest.raises(error, match=words):
        SemanticHumanPipeline.from_pretrained(path)


def test_file_instead_of_folder(saved):
    with pytest.raises(ValueError, match=r"must be a pipeline folder .* got the file"):
        SemanticHumanPipeline.from_pretrained(saved / PIPELINE_INDEX)


@pytest.mark.parametrize(
    "entry",
    [
        ["semantichuman_hd.models.mapper", "NoSuchMapper"],
        ["semantichuman_hd_plugin_that_must_not_be_imported", "SemanticMapper"],
        ["diffusers", "UNet2DModel"],
        ["semantichuman_hd.models.local_generators", "LocalGenerators"],
        "SemanticMapper",
    ],
    ids=["unknown-class", "foreign-module", "diffusers-class", "wrong-component", "not-a-pair"],
)
def test_model_index_naming_an_unknown_component_class(broken, entry):
    index = json.loads((broken / PIPELINE_INDEX).read_text())
    index["mapper"] = entry
    (broken / PIPELINE_INDEX).write_text(json.dumps(index))
    allowed = '["semantichuman_hd.models.mapper", "SemanticMapper"]'
    with pytest.raises(ValueError, match=r"component `mapper` .*allowed: " + allowed.replace("[", r"\[").replace("]", r"\]")):
        SemanticHumanPipeline.from_pretrained(broken)
    assert "semantichuman_hd_plugin_that_must_not_be_imported" not in sys.modules


def test_model_index_of_another_pipeline_or_with_extra_components(broken):
    index_path = broken / PIPELINE_INDEX
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValueError, match="describes a 'StableDiffusionPipeline' pipeline"):
        SemanticHumanPipeline.from_pretrained(broken)
    index_path.write_text(json.dumps({**index, "unet": ["diffusers", "UNet2DModel"]}))
    with pytest.raises(ValueError, match=r"names unknown components \['unet'\]; allowed components"):
        SemanticHumanPipeline.from_pretrained(broken)
    index_path.write_text("{not json")
    with pytest.raises(ValueError, match=r"model_index\.json is not valid JSON"):
        SemanticHumanPipeline.from_pretrained(broken)


def test_options_that_would_run_repository_code_are_refused(saved):
    with pytest.raises(ValueError, match="`trust_remote_code` is not supported"):
        SemanticHumanPipeline.from_pretrained(saved, trust_remote_code=True)
    with pytest.raises(ValueError, match="`custom_pipeline` is not supported"):
        SemanticHumanPipeline.from_pretrained(saved, custom_pipeline="pipeline.py")


def test_a_component_passed_in_replaces_the_saved_one(pipe, broken):
    (broken / "mapper" / WEIGHTS_NAME).unlink()
    loaded = SemanticHumanPipeline.from_pretrained(broken, mapper=pipe.mapper)
    assert loaded.mapper is pipe.mapper
    assert_same_weights(state_dicts(loaded), state_dicts(pipe))


# -- package exports --------------------------------------------------------------------------------


def test_pipeline_classes_are_exported():
    from semantichuman_hd import pipelines

    assert semantichuman_hd.SemanticHumanPipeline is pipelines.SemanticHumanPipeline is SemanticHumanPipeline
    assert semantichuman_hd.SemanticHumanPipelineOutput is pipelines.SemanticHumanPipelineOutput
    for name in ("SemanticMapper", "LocalGenerators", "SuperResolution3D"):
        assert name in dir(semantichuman_hd) and name in semantichuman_hd.__all__
        assert getattr(semantichuman_hd, name).__module__.startswith("semantichuman_hd.models.")
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        semantichuman_hd.NoSuchThing  # noqa: B018


def test_importing_parts_stays_cheap_and_the_pipeline_import_suffices_for_loading(fresh_process):
    assert fresh_process["heavy"] == []
    assert fresh_process["parts"] == list(semantichuman_hd.PARTS)
    assert fresh_process["name_or_path"] == REPO_ID  # loaded in a process that imported only the pipeline class


def test_snapshot_patterns_cover_every_saved_file(saved):
    from huggingface_hub.utils import filter_repo_objects

    assert set(filter_repo_objects(sorted(files_of(saved)), allow_patterns=list(HUB_ALLOW_PATTERNS))) == SAVED_FILES
    assert resolve_pipeline_folder(saved) == saved
