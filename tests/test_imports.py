"""How the package's modules import each other: ``pipelines/`` (installed as
``semantichuman_hd.pipelines``) imports the package by its absolute name, the module-level import
graph of ``semantichuman_hd`` has no cycle, and the layering of docs/method.md §9 holds (the inference
package never imports training code, rendering never imports the models, the body package imports
neither). Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "semantichuman_hd"
PACKAGE_FOLDERS: dict[str, Path] = {PACKAGE: REPO / PACKAGE, f"{PACKAGE}.pipelines": REPO / "pipelines"}
"""Module-name prefix → source folder (``pipelines/`` is installed as ``semantichuman_hd.pipelines``)."""

FORBIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    PACKAGE: ("training",),
    f"{PACKAGE}.rendering": (f"{PACKAGE}.models", f"{PACKAGE}.pipelines"),
    f"{PACKAGE}.body": (f"{PACKAGE}.rendering", f"{PACKAGE}.models", f"{PACKAGE}.pipelines"),
}
"""Module prefix → module prefixes it must not import, anywhere in its files (docs/method.md §9)."""


def _modules() -> dict[str, Path]:
    modules = {}
    for prefix, folder in PACKAGE_FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [prefix, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: list[ast.stmt]):
    """Import statements run when the module is imported: top level, and inside module-level ``if``
    (except ``if TYPE_CHECKING``) and ``try``; not inside functions or classes."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(handler.body for handler in node.handlers)):
                yield from _module_level_imports(block)


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement of ``module`` may bind (a module, or a module's attribute)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = {
            name for node in _module_level_imports(tree.body) for name in _imported_names(module, node) if name in MODULES and name != module
        }
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return path[path.index(successor) :] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_covers_the_package():
    assert f"{PACKAGE}.pipelines.pipeline_semantic_human" in MODULES
    assert f"{PACKAGE}.data.dataset" in MODULES
    graph = _import_graph()
    assert f"{PACKAGE}.data.dataset" in graph[f"{PACKAGE}.data.preview"]
    assert f"{PACKAGE}.models.mapper" in graph[f"{PACKAGE}.pipelines.pipeline_semantic_human"]


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_has_no_import_cycle():
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").rglob("*.py")), ids=lambda path: path.name)
def test_pipelines_import_the_package_by_absolute_name(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    relative = [f"line {node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, f"{path.name}: relative imports at {relative}; write `from {PACKAGE}.… import …`"


def test_layering():
    problems = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        for prefix, forbidden in FORBIDDEN_IMPORTS.items():
            if module != prefix and not module.startswith(prefix + "."):
                continue
            for node in imports:
                for name in _imported_names(module, node):
                    if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                        problems.append(f"{module} line {node.lineno} imports {name}")
    assert not problems, problems
