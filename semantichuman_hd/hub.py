"""Where pipeline weights come from: a local folder written by ``save_pretrained``, or a Hub repo id
fetched into the local Hub cache with ``huggingface_hub.snapshot_download`` (DESIGN.md §8).

Only JSON configs, safetensors weights and the model card are ever fetched: nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_ALLOW_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.md")
"""Files ``snapshot_download`` fetches for a pipeline repo."""

PIPELINE_INDEX: str = "model_index.json"
"""The file that makes a folder a pipeline folder."""


def looks_like_repo_id(name: str) -> bool:
    """``owner/name``: two non-empty path components, not a relative or absolute path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_pipeline_folder(
    pretrained_model_name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local folder holding the pipeline ``pretrained_model_name_or_path``.

    A local folder is used as is; a repo id goes through ``snapshot_download`` (which honours
    ``HF_HUB_OFFLINE`` and ``HF_HOME``/``HF_HUB_CACHE``). Raises ``ValueError`` when the result is not a
    pipeline folder, naming the argument and what is allowed.
    """
    name = str(pretrained_model_name_or_path)
    path = Path(name).expanduser()
    if not path.is_dir():
        if path.exists() or not looks_like_repo_id(name):
            raise ValueError(
                f"`pretrained_model_name_or_path` must be a folder written by save_pretrained or a Hub repo id "
                f"('owner/name'), got {name!r}."
            )
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(
                name,
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=local_files_only,
                allow_patterns=list(HUB_ALLOW_PATTERNS),
            )
        )
    if not (path / PIPELINE_INDEX).is_file():
        raise ValueError(
            f"`pretrained_model_name_or_path` {name!r} is not a pipeline folder: it has no {PIPELINE_INDEX}."
        )
    return path
