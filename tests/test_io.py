"""Atomic writes of files and folders."""

import pytest

from semantichuman_hd.io import atomic_folder, atomic_path


def test_atomic_path_replaces_the_file_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_path(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_folder_swaps_the_folder_in_only_on_success(tmp_path):
    target = tmp_path / "pipeline"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(ValueError):
        with atomic_folder(target) as partial:
            (partial / "weights").write_text("half")
            raise ValueError("a check failed")
    assert (target / "weights").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["pipeline"]
    with atomic_folder(target) as partial:
        (partial / "weights").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["weights"] and (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline"]
    with atomic_folder(tmp_path / "fresh") as partial:  # no folder before
        (partial / "x").write_text("1")
    assert (tmp_path / "fresh" / "x").read_text() == "1"
