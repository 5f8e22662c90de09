"""Layering: training imports only what a training job needs, so a job starts fast and the config machinery
(YAML, JSON schema) and the plotting code stay out of it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_train_imports_no_config_or_figures():
    banned = ("rnngrad.figures", "rnngrad.config", "jsonschema", "yaml", "matplotlib", "seaborn")
    code = (
        "import sys, rnngrad.train\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {banned!r} or m in {banned!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


PACKAGE = ROOT / "src" / "rnngrad"


def module_name(path: Path) -> str:
    """rnngrad.x.y of a source file (a package by its __init__.py)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, read from its AST: ``import x``,
    ``from x import y`` (y itself where it is a module) and relative imports, at any depth (inside functions too)."""
    files = {module_name(path): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = (
            name if path.name == "__init__.py" else name.rpartition(".")[0]
        )  # the package a relative import starts in
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names
                )
        graph[name] = {target for target in targets if target in files and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_graph_reads_imports_at_any_depth():
    graph = import_graph()
    assert "rnngrad.tasks" in graph["rnngrad.config"]  # `from rnngrad import tasks`: the module, not the package
    assert "rnngrad.train" in graph["rnngrad.cli"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    """Imports go one way: a reader entering at any module never comes back to it through its imports."""
    assert find_cycle(import_graph()) is None
