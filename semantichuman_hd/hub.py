"""Pipeline folders and the Hugging Face Hub (docs/method.md §8).

A pipeline folder, as :meth:`SemanticHumanPipeline.save_pretrained` writes it and as a Hub repo holds it::

    model_index.json                 pipeline class, its settings and [module, class] of each component
    weights_sha256.json              SHA-256 of every weights file, checked on loading
    README.md                        model card (written when the folder has none)
    mapper/config.json               one folder per component (diffusers ``ModelMixin``)
    mapper/diffusion_pytorch_model.safetensors          (``.fp16.safetensors`` for ``variant="fp16"``)
    local_generators/…  super_resolution/…

:func:`resolve_pipeline_folder` turns a folder or a Hub repo id into a local folder (a repo id through
``huggingface_hub.snapshot_download``, which honours ``HF_HOME``, ``HF_HUB_CACHE`` and
``HF_HUB_OFFLINE``); :func:`check_pipeline_folder` checks it before diffusers loads it, so that a
missing, truncated or altered weights file, weights with missing or unexpected tensors, a folder that
is not a pipeline, or a component class other than the expected one fails with a message naming the
file and what is allowed. Weights are only ever read from safetensors: nothing is unpickled, and no
code named by a repository is imported (each component must name exactly its expected class, which the
pipeline has already imported). A folder without ``weights_sha256.json`` is refused unless the caller
passes ``trust_unverified_weights=True``: the manifest guards against altered or corrupted files, so
deleting it must not switch the check off. (It is not a signature: whoever can rewrite the weights can
rewrite the manifest too; trust the folder's source.)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import HfApi, ModelCard, ModelCardData, snapshot_download
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import HFValidationError, LocalEntryNotFoundError, validate_repo_id

from .parts import PARTS

PIPELINE_INDEX: str = "model_index.json"
"""The file that makes a folder a pipeline folder."""

COMPONENT_CONFIG: str = "config.json"
"""Each component folder's configuration."""

WEIGHTS_NAME: str = "diffusion_pytorch_model.safetensors"
"""A component's weights (diffusers' ``SAFETENSORS_WEIGHTS_NAME``)."""

WEIGHTS_INDEX_NAME: str = "diffusion_pytorch_model.safetensors.index.json"
"""A sharded component's index of weight files (diffusers' ``SAFE_WEIGHTS_INDEX_NAME``)."""

WEIGHTS_MANIFEST: str = "weights_sha256.json"
"""SHA-256 of each weights file, written by ``save_pretrained`` and checked by ``from_pretrained``
(safetensors has no checksum: altered tensor bytes would otherwise load silently). A folder without it
is refused unless :data:`TRUST_UNVERIFIED_WEIGHTS` is passed."""

TRUST_UNVERIFIED_WEIGHTS: str = "trust_unverified_weights"
"""``from_pretrained`` keyword that loads a folder without :data:`WEIGHTS_MANIFEST` (or with weights files
it does not list), e.g. one written by another tool. Off by default: otherwise deleting the manifest
would silently switch the integrity check off."""

MODEL_CARD: str = "README.md"
"""The model card, as the Hub names it."""

HUB_ALLOW_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.md")
"""Files ``snapshot_download`` fetches and ``push_to_hub`` uploads: configs, weights and the card."""

PICKLE_SUFFIXES: tuple[str, ...] = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files that are never loaded (pickles can run code)."""

LIBRARY_NAME: str = "semantichuman-hd"
"""``library_name`` of the model card: the package's distribution name. Not ``diffusers``, for which the Hub
shows a ``DiffusionPipeline.from_pretrained`` snippet that cannot resolve this pipeline (docs/method.md §8)."""

MODEL_CARD_TAGS: tuple[str, ...] = ("3d-human-generation", "semantic-disentanglement", "virtual-try-on", "neural-rendering", "semantichuman-hd")
"""Tags of the model card (those of the project's ``model_card.md``)."""

MODEL_CARD_LICENSE: str = "apache-2.0"
"""Licence of the model card (the project's, as in ``model_card.md``)."""

BUNDLED_MODEL_DIR: Path = Path(__file__).resolve().parent / "checkpoints" / "demo"
"""The trained ``demo`` checkpoint shipped inside the package (the project's ``model_card.md`` describes
it): what ``SemanticHumanPipeline.from_pretrained()`` with no argument, the command line and the Space
load by default, offline."""

BUNDLED_VARIANT: str = "fp16"
"""Weights variant of the bundled checkpoint: fp16 safetensors (``*.fp16.safetensors``), loaded into
float32 models (geometry runs in full precision, :mod:`semantichuman_hd.precision`)."""

BUNDLED_MAX_BYTES: int = 25_000_000
"""Most bytes the bundled checkpoint's files may take together (the installed package stays small)."""


def bundled_model_folder() -> Path:
    """:data:`BUNDLED_MODEL_DIR`, if this installation has it.

    Raises:
        FileNotFoundError: when the folder has no ``model_index.json`` (an installation from which the
            bundled weights were removed); names the folder and the alternatives.
    """
    if not (BUNDLED_MODEL_DIR / PIPELINE_INDEX).is_file():
        raise FileNotFoundError(
            f"the bundled demo checkpoint is missing from this installation ({BUNDLED_MODEL_DIR} has no {PIPELINE_INDEX}); "
            "reinstall the package, pass a pipeline folder or Hub repo id, or use SemanticHumanPipeline.from_preset('demo') for random weights."
        )
    return BUNDLED_MODEL_DIR


REJECTED_LOADING_OPTIONS: Mapping[str, str] = {
    "custom_pipeline": "the pipeline class is SemanticHumanPipeline itself",
    "trust_remote_code": "no code is imported from a repository",
    "use_flashpack": "weights are read from safetensors only",
    "from_flax": "weights are read from safetensors only",
}
"""``DiffusionPipeline.from_pretrained`` options that ``SemanticHumanPipeline.from_pretrained`` refuses."""


# -- where a pipeline comes from -------------------------------------------------------------------


def looks_like_repo_id(name: str) -> bool:
    """``owner/name`` with the Hub's allowed characters (not a relative or absolute path)."""
    parts = name.split("/")
    if len(parts) != 2 or not all(parts) or name.startswith((".", "~")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_pipeline_folder(
    pretrained_model_name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """The local folder holding the pipeline ``pretrained_model_name_or_path``.

    A local folder is used as is; a repo id ``owner/name`` goes through ``snapshot_download`` (only
    :data:`HUB_ALLOW_PATTERNS` files), which honours ``HF_HUB_OFFLINE`` and ``HF_HOME``/``HF_HUB_CACHE``.

    Raises:
        FileNotFoundError: the path does not exist and is not a repo id, or the repo is not in the local
            Hub cache while the Hub is offline (or unreachable).
        ValueError: the path is a file, or the result is not a pipeline folder (no ``model_index.json``).
    """
    name = os.fspath(pretrained_model_name_or_path)
    path = Path(name).expanduser()
    if path.is_file():
        raise ValueError(
            f"`pretrained_model_name_or_path` must be a pipeline folder written by save_pretrained or a Hub repo id "
            f"('owner/name'), got the file {name!r}."
        )
    if not path.is_dir():
        if not looks_like_repo_id(name):
            raise FileNotFoundError(
                f"`pretrained_model_name_or_path` {name!r} is neither an existing folder nor a Hub repo id: allowed are a "
                f"pipeline folder written by save_pretrained, or 'owner/name' with letters, digits, '-', '_' and '.'."
            )
        path = _download_snapshot(name, revision, cache_dir, token, local_files_only, force_download)
    if not (path / PIPELINE_INDEX).is_file():
        hint = ""
        if (path / COMPONENT_CONFIG).is_file():
            hint = f" It holds a single component ({COMPONENT_CONFIG}): load it with that component's class instead."
        raise ValueError(
            f"`pretrained_model_name_or_path` {name!r} is not a pipeline folder: it has no {PIPELINE_INDEX}. Allowed is a "
            f"folder written by SemanticHumanPipeline.save_pretrained (or a Hub repo holding one).{hint}"
        )
    return path


def _download_snapshot(repo_id, revision, cache_dir, token, local_files_only, force_download) -> Path:
    """``snapshot_download`` of a pipeline repo, with a clear error when it is not cached and cannot be fetched."""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
            allow_patterns=list(HUB_ALLOW_PATTERNS),
        )
    except LocalEntryNotFoundError as error:
        cache = Path(cache_dir if cache_dir is not None else hub_constants.HF_HUB_CACHE).expanduser()
        if local_files_only:
            why = "and `local_files_only=True` forbids downloading it"
        elif hub_constants.HF_HUB_OFFLINE:
            why = "and the Hub is offline (HF_HUB_OFFLINE is set)"
        else:
            why = "and the Hub could not be reached"
        raise FileNotFoundError(
            f"`pretrained_model_name_or_path` {repo_id!r} (revision {revision or 'main'!r}) is not in the local Hub cache "
            f"{str(cache)!r} {why}. Download it once with network access (or set HF_HOME/HF_HUB_CACHE or `cache_dir` "
            f"to the cache that holds it), or pass a folder written by save_pretrained. ({error})"
        ) from error
    return Path(folder)


# -- what a pipeline folder must hold --------------------------------------------------------------


def check_loading_options(kwargs: Mapping[str, Any]) -> None:
    """Refuse ``from_pretrained`` options that would load pickles or import code from a repository."""
    if kwargs.get("use_safetensors", True) is not True:
        raise ValueError(
            f"`use_safetensors` must be True (or left out), got {kwargs['use_safetensors']!r}: SemanticHumanPipeline "
            "loads weights from safetensors only and never unpickles them."
        )
    for option, reason in REJECTED_LOADING_OPTIONS.items():
        if kwargs.get(option):
            raise ValueError(f"`{option}` is not supported by SemanticHumanPipeline.from_pretrained ({reason}), got {kwargs[option]!r}.")


def check_safe_serialization(safe_serialization: bool) -> None:
    """``save_pretrained``/``push_to_hub`` write safetensors only."""
    if safe_serialization is not True:
        raise ValueError(
            f"`safe_serialization` must be True, got {safe_serialization!r}: SemanticHumanPipeline writes its weights as "
            "safetensors only (pickled .bin files can run code when loaded)."
        )


def component_classes(pipeline_class: type) -> dict[str, type]:
    """``{component name: expected class}`` from the annotations of ``pipeline_class.__init__``."""
    from diffusers import ModelMixin

    hints = typing.get_type_hints(pipeline_class.__init__)
    names = [name for name in inspect.signature(pipeline_class.__init__).parameters if name != "self"]
    return {name: hints[name] for name in names if isinstance(hints.get(name), type) and issubclass(hints[name], ModelMixin)}


def variant_name(filename: str, variant: str | None) -> str:
    """``name.safetensors`` → ``name.<variant>.safetensors`` (diffusers' naming of weight variants)."""
    if variant is None:
        return filename
    stem, suffix = filename.rsplit(".", 1)
    return f"{stem}.{variant}.{suffix}"


def check_pipeline_folder(
    folder: str | os.PathLike,
    pipeline_class: type,
    variant: str | None = None,
    passed_components: typing.Iterable[str] = (),
    trust_unverified_weights: bool = False,
) -> list[Path]:
    """Check that ``folder`` holds a loadable ``pipeline_class``, before anything of it is loaded.

    ``model_index.json`` must name ``pipeline_class`` and, for each component, exactly the class the
    pipeline annotates for it (e.g. ``["semantichuman_hd.models.mapper", "SemanticMapper"]``); nothing
    is imported on the folder's word. Each component not in ``passed_components`` needs its
    ``config.json`` and its safetensors weights for ``variant`` (one file, or a sharded index and its
    shards), each with a valid safetensors header, listed in ``weights_sha256.json`` with the SHA-256
    it has, and holding exactly the tensors the component built from its config has (no missing, no
    unexpected keys).

    Parameters:
        folder: the local pipeline folder.
        pipeline_class: the pipeline class being loaded (its ``__init__`` annotations name the components).
        variant: weights variant (``None`` for ``diffusion_pytorch_model.safetensors``, ``"fp16"`` ...).
        passed_components: components given to ``from_pretrained`` instead of being loaded.
        trust_unverified_weights: load weights that ``weights_sha256.json`` does not vouch for (no
            manifest, or a file it does not list), e.g. a folder written by another tool. Files that
            the manifest lists are checked all the same.

    Returns:
        The weights files that will be loaded.

    Raises:
        ValueError: bad ``model_index.json``, a component class other than the expected one, bad
            ``config.json``, a corrupted or unverified weights file, missing or unexpected tensors.
        FileNotFoundError: a component folder, its ``config.json`` or a weights file is missing.
    """
    folder = Path(folder)
    index_path = folder / PIPELINE_INDEX
    index = _read_json(index_path)
    if index.get("_class_name") != pipeline_class.__name__:
        raise ValueError(
            f"{index_path} describes a {index.get('_class_name')!r} pipeline; {pipeline_class.__name__}.from_pretrained "
            f"loads only folders whose `_class_name` is {pipeline_class.__name__!r}."
        )
    expected = component_classes(pipeline_class)
    unknown = sorted(key for key, value in index.items() if isinstance(value, list) and key not in expected)
    if unknown:
        raise ValueError(f"{index_path} names unknown components {unknown}; allowed components: {sorted(expected)}.")
    for name, expected_class in expected.items():
        _check_component_class(index_path, name, index.get(name), expected_class)
    passed = set(passed_components)
    manifest = _read_manifest(folder, trust_unverified_weights)
    weights: list[Path] = []
    for name, expected_class in expected.items():
        if name in passed:
            continue
        component = folder / name
        config = component / COMPONENT_CONFIG
        if not config.is_file():
            raise FileNotFoundError(f"{config} is missing: component `{name}` needs the {COMPONENT_CONFIG} written by save_pretrained.")
        config_values = _read_json(config)
        files = _component_weights(component, name, variant)
        keys: set[str] = set()
        for path in files:
            keys |= _check_safetensors(path)
            _check_checksum(folder, path, manifest, trust_unverified_weights)
        _check_state_dict_keys(config, name, expected_class, config_values, keys)
        weights.extend(files)
    return weights


def prepare_pretrained_folder(pipeline_class: type, pretrained_model_name_or_path: str | os.PathLike, kwargs: dict[str, Any]) -> Path:
    """What ``from_pretrained`` does before diffusers loads: resolve the folder, refuse unsafe options
    and check the folder (:func:`check_pipeline_folder`).

    Pops from ``kwargs`` the Hub options (``revision``, ``cache_dir``, ``token``, ``local_files_only``,
    ``force_download``) and :data:`TRUST_UNVERIFIED_WEIGHTS`, and sets ``use_safetensors=True``: what
    remains is for ``DiffusionPipeline.from_pretrained``. Returns the local folder.
    """
    path = resolve_pipeline_folder(
        pretrained_model_name_or_path,
        revision=kwargs.pop("revision", None),
        cache_dir=kwargs.pop("cache_dir", None),
        token=kwargs.pop("token", None),
        local_files_only=kwargs.pop("local_files_only", False),
        force_download=kwargs.pop("force_download", False),
    )
    trust = kwargs.pop(TRUST_UNVERIFIED_WEIGHTS, False)
    if not isinstance(trust, bool):
        raise ValueError(f"`{TRUST_UNVERIFIED_WEIGHTS}` must be True or False, got {trust!r}.")
    check_loading_options(kwargs)
    check_pipeline_folder(path, pipeline_class, variant=kwargs.get("variant"), passed_components=kwargs, trust_unverified_weights=trust)
    kwargs["use_safetensors"] = True
    return path


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-save the pipeline with save_pretrained.") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}.")
    return value


def _write_json(path: Path, value: dict) -> None:
    """``value`` as diffusers writes configs: sorted keys, two-space indent, a final newline."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _check_component_class(index_path: Path, name: str, entry: Any, expected_class: type) -> None:
    """``entry`` must be exactly ``[expected_class.__module__, expected_class.__name__]``.

    Nothing is imported here: the expected class is already imported by the pipeline module, and any
    other module name (another module of this package, ``semantichuman_hd.__main__``, a plug-in) is
    refused without being looked up, so that a folder never chooses code to run.
    """
    allowed = [expected_class.__module__, expected_class.__name__]
    if entry != allowed:
        raise ValueError(
            f"{index_path}: component `{name}` is {entry!r}, which is not the class this pipeline loads for it; "
            f"allowed: {json.dumps(allowed)} exactly (a folder never chooses which code is imported)."
        )


def _component_weights(component: Path, name: str, variant: str | None) -> list[Path]:
    """The weights files of one component for ``variant``: the single file, or the shards of its index."""
    single = component / variant_name(WEIGHTS_NAME, variant)
    if single.is_file():
        return [single]
    index = component / variant_name(WEIGHTS_INDEX_NAME, variant)
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index} has no `weight_map`: re-save the pipeline with save_pretrained.")
        shards = [component / shard for shard in sorted(set(weight_map.values()))]
        for shard in shards:
            if not shard.is_file():
                raise FileNotFoundError(f"{shard} is missing: {index.name} of component `{name}` lists it.")
        return shards
    found = sorted(path.name for path in component.glob("*") if path.suffix in (".safetensors", *PICKLE_SUFFIXES)) if component.is_dir() else []
    hints = []
    if not component.is_dir():
        hints.append(f"the component folder {component} does not exist")
    others = [f for f in found if f.endswith(".safetensors")]
    if others:
        hints.append(f"found {others}: choose the matching `variant` (None for {WEIGHTS_NAME}, 'fp16' for {variant_name(WEIGHTS_NAME, 'fp16')})")
    if any(f.endswith(PICKLE_SUFFIXES) for f in found):
        hints.append("pickled weights (.bin and the like) are never loaded")
    raise FileNotFoundError(
        f"{single} is missing: component `{name}` needs its weights as {single.name} (or a sharded {index.name})"
        f" for variant={variant!r}" + (f"; {'; '.join(hints)}." if hints else ".")
    )


def _check_safetensors(path: Path) -> set[str]:
    """A readable safetensors header whose tensors fit in the file (catches truncation and garbled headers).
    Returns the tensor names."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return set(handle.keys())
    except Exception as error:  # safetensors raises its own SafetensorError and OSError subclasses
        raise ValueError(
            f"{path} is not a valid safetensors file ({error}); it is truncated or corrupted: save the pipeline again "
            f"or download it again."
        ) from error


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 24) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path, trust_unverified_weights: bool = False) -> dict[str, str]:
    path = folder / WEIGHTS_MANIFEST
    if not path.is_file():
        if trust_unverified_weights:
            return {}
        raise FileNotFoundError(
            f"{path} is missing: it records the SHA-256 of every weights file, and without it altered or replaced "
            f"weights would load unnoticed, so the folder is refused. Save the pipeline again with save_pretrained "
            f"(which writes it), or, for a folder written by another tool whose weights you trust, pass "
            f"`{TRUST_UNVERIFIED_WEIGHTS}=True` to from_pretrained."
        )
    checksums = _read_json(path).get("sha256")
    if not isinstance(checksums, dict) or not all(isinstance(value, str) for value in checksums.values()):
        raise ValueError(f"{path} must hold {{'sha256': {{relative path: hex digest}}}}; re-save the pipeline with save_pretrained.")
    return checksums


def _check_checksum(folder: Path, path: Path, manifest: Mapping[str, str], trust_unverified_weights: bool = False) -> None:
    relative = path.relative_to(folder).as_posix()
    expected = manifest.get(relative)
    if expected is None:
        if trust_unverified_weights:
            return
        raise ValueError(
            f"{path} is not listed in {WEIGHTS_MANIFEST} (which lists {sorted(manifest)}), so its integrity cannot be "
            f"checked and it is refused. Save the whole pipeline with save_pretrained so that {WEIGHTS_MANIFEST} is "
            f"rewritten, or pass `{TRUST_UNVERIFIED_WEIGHTS}=True` to from_pretrained if you trust the file."
        )
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path} is corrupted: its SHA-256 is {actual}, but {WEIGHTS_MANIFEST} recorded {expected} when the pipeline "
            f"was saved. Download or save it again (if the file was replaced on purpose, save the whole pipeline with "
            f"save_pretrained so that {WEIGHTS_MANIFEST} is rewritten)."
        )


MAX_KEYS_SHOWN: int = 8
"""Missing or unexpected tensor names listed in an error (then a count of the rest)."""


def _some(keys: typing.Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    return shown + (f" and {len(keys) - MAX_KEYS_SHOWN} more" if len(keys) > MAX_KEYS_SHOWN else "")


def _check_state_dict_keys(config: Path, name: str, expected_class: type, config_values: dict, keys: set[str]) -> None:
    """The weights of component ``name`` hold exactly the tensors of ``expected_class`` built from its config
    (built on the meta device: no memory, no computation)."""
    import torch

    try:
        with torch.device("meta"):
            model = expected_class.from_config(config_values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config} does not describe a valid {expected_class.__name__} for component `{name}`: {error}") from error
    wanted = set(model.state_dict().keys())
    missing, unexpected = wanted - keys, keys - wanted
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} tensor(s): {_some(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} tensor(s): {_some(unexpected)}")
        raise ValueError(
            f"the weights of component `{name}` ({config.parent}) do not match its {COMPONENT_CONFIG}: {'; '.join(problems)}. "
            f"Were they saved from another model or truncated? Save the pipeline again with save_pretrained."
        )


def write_weights_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """Record the SHA-256 of every ``<component>/*.safetensors`` of ``folder`` in ``weights_sha256.json``."""
    folder = Path(folder)
    checksums = {path.relative_to(folder).as_posix(): file_sha256(path) for path in sorted(folder.glob("*/*.safetensors"))}
    _write_json(folder / WEIGHTS_MANIFEST, {"sha256": checksums})
    return checksums


# -- model card and upload -------------------------------------------------------------------------


def model_card(pipeline, name: str, variant: str | None = None) -> ModelCard:
    """The model card of ``pipeline``: metadata, components, settings, usage and caveats.

    The usage example loads ``name`` (the repo id, or the folder's name) with ``variant`` (the variant
    the folder holds when it holds no default weights).
    """
    rows = []
    for component in component_classes(type(pipeline)):
        module = getattr(pipeline, component)
        count = sum(parameter.numel() for parameter in module.parameters())
        rows.append(f"| `{component}` | `{type(module).__name__}` | {count:,} | {str(module.dtype).removeprefix('torch.')} |")
    config = pipeline.config
    load_arguments = f'"{name}"' + (f', variant="{variant}"' if variant is not None else "")
    body = f"""
# SemanticHuman-HD pipeline

Weights of a SemanticHuman-HD `SemanticHumanPipeline`: a semantic mapper, one local tri-plane
generator per part ({", ".join(PARTS)}) and a 3D-aware super-resolution module.
Generated people are volume-rendered with per-part masks, depth and normals, at
{config.low_resolution}² (stage 1) and {config.high_resolution}² (stage 2, guided super-resolution).

| component | class | parameters | dtype |
|---|---|---:|---|
{chr(10).join(rows)}

The weights are safetensors files (`{variant_name(WEIGHTS_NAME, variant)}` in each component's
folder); `{WEIGHTS_MANIFEST}` records their SHA-256, which loading checks.

## Usage

```python
import torch
from semantichuman_hd import SemanticHumanPipeline

pipe = SemanticHumanPipeline.from_pretrained({load_arguments})
latents = pipe.sample_latents(1, generator=torch.Generator().manual_seed(0))
output = pipe(latents=latents, resolution="high")
output.images[0].save("person.png")
```

Load it with `SemanticHumanPipeline.from_pretrained`: `diffusers.DiffusionPipeline.from_pretrained`
cannot resolve this pipeline's classes.

## Limitations

The body model is not part of these weights: the pipeline poses the open procedural body, or the SMPL
model named by `$SEMANTICHUMAN_SMPL_PATH` (SMPL files carry their own licence and are never bundled).
Use the weights with the body model they were trained with.
"""
    data = ModelCardData(
        license=MODEL_CARD_LICENSE, library_name=LIBRARY_NAME, tags=list(MODEL_CARD_TAGS), pipeline_tag="unconditional-image-generation"
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


SOURCE_PATH_KEY: str = "_name_or_path"
"""Config key in which diffusers records where a loaded pipeline or model came from: a path of the machine
that saved it, for a pipeline loaded from a folder. Saved folders leave it out."""


def forget_source_paths(folder: str | os.PathLike) -> None:
    """Drop :data:`SOURCE_PATH_KEY` from ``model_index.json`` and every component's ``config.json`` of a saved
    pipeline folder, so that a folder (a Hub upload, the bundled checkpoint) names no path of the machine
    that wrote it. Loading sets the key again, to where the folder is then loaded from."""
    folder = Path(folder)
    for path in (folder / PIPELINE_INDEX, *sorted(folder.glob("*/config.json"))):
        if not path.is_file():
            continue
        config = _read_json(path)
        if config.pop(SOURCE_PATH_KEY, None) is not None:
            _write_json(path, config)


def finish_pipeline_folder(folder: str | os.PathLike, pipeline, variant: str | None = None, repo_id: str | None = None) -> None:
    """After diffusers' ``save_pretrained``: no source paths in the configs (:func:`forget_source_paths`),
    the weights manifest, and a model card if the folder has none (its usage loads ``repo_id``, or else the
    folder's name, with ``variant``)."""
    folder = Path(folder)
    forget_source_paths(folder)
    write_weights_manifest(folder)
    if not (folder / MODEL_CARD).exists():
        model_card(pipeline, repo_id or folder.resolve().name, variant=variant).save(folder / MODEL_CARD)
    give_usual_permissions(folder)


def give_usual_permissions(folder: str | os.PathLike) -> None:
    """Give the weights files of a saved folder the mode its other files get (``0o666`` less the umask,
    as ``open()`` creates files): diffusers writes them through private temporary files (mode ``0600``)."""
    from .io import default_file_mode

    mode = default_file_mode()
    for path in Path(folder).glob("*/*.safetensors"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def upload_pipeline_folder(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    path_in_repo: str | None = None,
    keep_remote_card: bool = True,
):
    """Upload the :data:`HUB_ALLOW_PATTERNS` files of a pipeline folder to ``repo_id`` in one commit.

    With ``keep_remote_card``, a ``README.md`` already on the Hub is left as it is (as diffusers keeps
    an existing card). Returns huggingface_hub's ``CommitInfo``.
    """
    api = HfApi(token=token)
    ignore = []
    if keep_remote_card and (Path(folder) / MODEL_CARD).exists():
        remote_card = f"{path_in_repo.strip('/')}/{MODEL_CARD}" if path_in_repo else MODEL_CARD
        if api.file_exists(repo_id, remote_card, token=token):
            ignore.append(MODEL_CARD)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(folder),
        path_in_repo=path_in_repo,
        commit_message=commit_message or "Upload SemanticHumanPipeline",
        token=token,
        create_pr=create_pr,
        allow_patterns=list(HUB_ALLOW_PATTERNS),
        ignore_patterns=ignore or None,
    )


def upload_saved_pipeline(
    pipeline,
    folder: str | os.PathLike,
    variant: str | None = None,
    repo_id: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """``save_pretrained(..., push_to_hub=True)``: create ``repo_id`` (default: the folder's name) if needed,
    finish the folder (manifest, a model card naming ``repo_id`` if it has none) and upload it as it is.
    Returns the ``CommitInfo``."""
    repo_id = HfApi(token=token).create_repo(repo_id or Path(folder).resolve().name, private=private, token=token, exist_ok=True).repo_id
    finish_pipeline_folder(folder, pipeline, variant=variant, repo_id=repo_id)
    return upload_pipeline_folder(folder, repo_id, token=token, commit_message=commit_message, create_pr=create_pr, keep_remote_card=False)


def push_pipeline_to_hub(
    pipeline,
    repo_id: str,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    variant: str | None = None,
    subfolder: str | None = None,
):
    """Create ``repo_id`` if needed, save ``pipeline`` to a temporary folder with a model card naming
    ``repo_id``, and upload it (see :func:`upload_pipeline_folder`). Returns the ``CommitInfo``."""
    repo_id = HfApi(token=token).create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        pipeline.save_pretrained(folder, variant=variant)
        if subfolder:
            (Path(folder) / MODEL_CARD).unlink()
        else:
            model_card(pipeline, repo_id, variant=variant).save(Path(folder) / MODEL_CARD)
        return upload_pipeline_folder(folder, repo_id, token=token, commit_message=commit_message, create_pr=create_pr, path_in_repo=subfolder)
