"""One module a figure. Each module has ``TABLES`` (the experiment tables it reads, by name) and
``render(tables, out_path)``, which draws from a dict of tidy DataFrames and writes ``out_path`` (PNG) and the
same figure as PDF beside it.

A config names a figure by its module, or by its module and a tag (``contributions-cells``) to draw the same figure
from another experiment: the tag only names the output file."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType


def module_name(name: str) -> str:
    """The figure module of a config's figure name: ``contributions-cells`` -> ``contributions``."""
    return name.split("-", 1)[0]


def figure_module(name: str) -> ModuleType:
    """The module that draws figure ``name``; a clear error for an unknown name."""
    try:
        module = importlib.import_module(f"rnngrad.figures.{module_name(name)}")
    except ModuleNotFoundError as err:
        raise ValueError(f"figures: unknown figure {name!r}") from err
    if not hasattr(module, "render"):
        raise ValueError(f"figures: {name!r} is not a figure module")
    return module


def figure_tables(name: str) -> tuple[str, ...]:
    """A figure module's ``TABLES``, read from its source without importing it.

    The Snakefile needs every figure's tables to wire its rule; importing the modules would pull matplotlib and
    seaborn (seconds) into every Snakemake start, and every cluster job starts Snakemake anew.
    """
    path = Path(__file__).with_name(f"{module_name(name)}.py")
    if not module_name(name).isidentifier() or not path.exists():
        raise ValueError(f"figures: unknown figure {name!r}")
    for node in ast.parse(path.read_text()).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "TABLES":
            return tuple(ast.literal_eval(node.value))
    raise ValueError(f"figures: {name!r} is not a figure module (no TABLES)")
