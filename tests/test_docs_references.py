"""Every ``docs/...`` reference in the repository names a file that exists and, where it names sections
(``docs/method.md §3``, ``§3–§5``, ``§1, §7``), sections that exist; and the method document's sections
are the numbered ones the code cites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED_FOLDERS: tuple[str, ...] = ("semantichuman_hd", "pipelines", "training", "benchmarks", "tests", "spaces", "docs", ".ci")
"""Folders whose files are scanned for references, besides the top-level files."""

SCANNED_SUFFIXES: tuple[str, ...] = (".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg")

REFERENCE = re.compile(r"(?<![\w/.:-])docs/(?P<path>[\w./-]*\w)`?(?P<sections>(?:\s*(?:,|and|or|–|-)?\s*§\s*\d+)*)")
"""``docs/FILE`` (not a URL's ``…/docs/…``) optionally followed by section numbers (``§3``, ``§3–§5``,
``§3–4``, ``§1, §7``, ``§4 and §5``; also after a closing backtick: ```docs/method.md` §6``)."""

SECTION_NUMBERS = re.compile(r"§\s*(\d+)(?:\s*[–-]\s*§?\s*(\d+))?")
HEADING = re.compile(r"^## §(\d+) \S", re.MULTILINE)
EXPECTED_SECTIONS: tuple[int, ...] = tuple(range(1, 10))
"""§1 parts and labels … §7 evaluation, §8 Hub format and packaging, §9 layering."""


def _scanned_files() -> list[Path]:
    files = [path for path in REPO.iterdir() if path.is_file() and path.suffix in SCANNED_SUFFIXES]
    for folder in SCANNED_FOLDERS:
        if (REPO / folder).is_dir():
            files += [path for path in (REPO / folder).rglob("*") if path.is_file() and path.suffix in SCANNED_SUFFIXES]
    return sorted(files)


def _sections(path: Path) -> set[int]:
    return {int(number) for number in HEADING.findall(path.read_text(encoding="utf-8"))}


def _references() -> list[tuple[str, int, str, list[int]]]:
    found = []
    for path in _scanned_files():
        if path.name == Path(__file__).name:  # this file's examples
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            for match in REFERENCE.finditer(line):
                sections = []
                for first, last in SECTION_NUMBERS.findall(match.group("sections")):
                    sections += list(range(int(first), int(last or first) + 1))
                found.append((f"{path.relative_to(REPO)}:{number}", number, match.group("path"), sections))
    return found


def test_method_document_has_the_numbered_sections():
    assert tuple(sorted(_sections(REPO / "docs" / "method.md"))) == EXPECTED_SECTIONS


def test_the_code_cites_the_method_document():
    cited = [ref for ref in _references() if ref[2] == "method.md"]
    assert len(cited) >= 20
    assert {section for ref in cited for section in ref[3]} >= {1, 2, 3, 4, 5, 6, 8, 9}


def test_every_docs_reference_exists():
    problems = []
    for where, _, target, sections in _references():
        path = REPO / "docs" / target
        if not path.exists():
            problems.append(f"{where}: docs/{target} does not exist")
        elif sections:
            missing = sorted(set(sections) - _sections(path))
            if missing:
                problems.append(f"{where}: docs/{target} has no section {missing}")
    assert not problems, "\n".join(problems)


def test_reference_parser():
    line = (
        "see docs/method.md §3–§5 and docs/method.md §1, §7; docs/dataset_format.md. (docs/method.md §4 and §5) "
        "`docs/method.md` §6, https://huggingface.co/docs/accelerate"
    )
    matches = [(m.group("path"), [n for pair in SECTION_NUMBERS.findall(m.group("sections")) for n in pair if n]) for m in REFERENCE.finditer(line)]
    assert matches == [("method.md", ["3", "5"]), ("method.md", ["1", "7"]), ("dataset_format.md", []), ("method.md", ["4", "5"]), ("method.md", ["6"])]


@pytest.mark.parametrize("name", ["DESIGN.md"])
def test_no_reference_to_documents_outside_the_repository(name):
    hits = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _scanned_files()
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1)
        if name in line
    ]
    assert not hits, hits


@pytest.mark.parametrize("name", ["README.md", "model_card.md", "spaces/README.md", "training/README.md"])
def test_no_unfilled_placeholders(name):
    """Measured figures are written into the documents; a ``@@NAME@@`` placeholder must never ship."""
    text = (REPO / name).read_text(encoding="utf-8")
    assert not re.findall(r"@@\w+@@", text), sorted(set(re.findall(r"@@\w+@@", text)))
