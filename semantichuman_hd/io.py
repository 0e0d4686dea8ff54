"""Atomic writes: a file or folder is either fully written or not there at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_file_mode())  # mkstemp makes 0600 files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def partial_folder(path: str | os.PathLike) -> Path:
    """The staging folder ``.partial-NAME`` beside ``path`` (its name only; :func:`fresh_partial_folder`
    makes it)."""
    path = Path(path)
    return path.parent / f".partial-{path.name}"


def fresh_partial_folder(path: str | os.PathLike) -> Path:
    """Make :func:`partial_folder` of ``path`` anew, empty (a leftover of an interrupted write is removed)."""
    partial = partial_folder(path)
    partial.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return partial


def swap_in(partial: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the finished folder ``partial`` in place of ``path``: the old folder, if any, is moved aside
    first and removed only after the new one is in place, so a crash leaves one of them whole."""
    path = Path(path)
    previous = path.parent / f".previous-{path.name}"
    shutil.rmtree(previous, ignore_errors=True)
    if path.exists():
        os.replace(path, previous)
    os.replace(partial, path)
    shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder ``.partial-NAME`` beside ``path``; on success swap it in for ``path``
    (:func:`swap_in`). If the body raises, the partial folder is removed and ``path`` is untouched."""
    partial = fresh_partial_folder(path)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_in(partial, path)


_DEFAULT_FILE_MODE = 0o666
"""Mode of a newly created file before the umask, as ``open()`` would create it."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file here: ``0o666`` less the process's umask."""
    return _DEFAULT_FILE_MODE & ~_current_umask()
