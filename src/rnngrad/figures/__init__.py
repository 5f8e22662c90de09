"""One module a figure. Each module has ``TABLES`` (the experiment tables it reads, by name) and
``render(tables, out_path)``, which draws from a dict of tidy DataFrames and writes ``out_path`` (PNG) and the
same figure as PDF beside it."""

from __future__ import annotations

import importlib
from types import ModuleType


def figure_module(name: str) -> ModuleType:
    """The module that draws figure ``name``; a clear error for an unknown name."""
    try:
        module = importlib.import_module(f"rnngrad.figures.{name}")
    except ModuleNotFoundError as err:
        raise ValueError(f"figures: unknown figure {name!r}") from err
    if not hasattr(module, "render"):
        raise ValueError(f"figures: {name!r} is not a figure module")
    return module
