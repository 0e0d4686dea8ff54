"""Where the package keeps files it generates on first use (body model, SDF prior caches)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "SEMANTICHUMAN_CACHE"
"""Environment variable that overrides the cache directory."""


def user_cache_dir() -> Path:
    """The user cache directory: ``$SEMANTICHUMAN_CACHE``, else ``$XDG_CACHE_HOME/semantichuman_hd``,
    else ``~/.cache/semantichuman_hd``. Created if missing."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        path = Path(override).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "semantichuman_hd"
    path.mkdir(parents=True, exist_ok=True)
    return path
