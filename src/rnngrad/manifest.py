"""figures/{name}/manifest.json: every figure with the sha256 of its files, of the code that drew it, of the tables
it draws and of the config they came from, the training-code versions of its runs, and the plotting software.

Content only, never the checkout's commit: rebuilding the figures of an unchanged tree rewrites the same bytes,
so `git status` stays clean, and a changed hash names what changed (a table, a figure's code, the config)."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from rnngrad.config import figure_experiments
from rnngrad.figures import figure_tables, module_name
from rnngrad.io import file_sha256, write_json

FIGURES_CODE = Path(__file__).resolve().parent / "figures"


def config_sha256(config: dict) -> str:
    """Hash of the config's content (key order and YAML formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def figure_code_sha256(name: str) -> str:
    """Hash of the code a figure's rule takes as input: its module (a tagged name's, for contributions-cells
    contributions.py), common.py and style.py."""
    digest = hashlib.sha256()
    for module in (f"{module_name(name)}.py", "common.py", "style.py"):
        digest.update(module.encode() + b"\0" + (FIGURES_CODE / module).read_bytes() + b"\0")
    return digest.hexdigest()


def runs_code(runs_table: Path) -> list[str]:
    """The training-code versions (code_sha256) of an experiment's runs: one, unless the tables mix versions."""
    runs = pd.read_parquet(runs_table, columns=["code_sha256"])
    return sorted(str(code) for code in runs.code_sha256.unique())


def write_manifest(
    out: str | Path,
    config_hash: str,
    figures: dict[str, str | list[str] | None],
    figures_dir: str | Path,
    runs_tables: dict[str, Path],
) -> dict:
    """``figures``: name -> the experiment whose tables it draws, or a list of them (None for theory-only
    figures); ``runs_tables``: experiment -> its runs.parquet (its other tables lie beside it)."""
    figures_dir = Path(figures_dir)

    def entry(name: str, experiment: str | list[str] | None) -> dict:
        drawn = figure_experiments(experiment)
        tables = {}
        for one in drawn:  # one experiment: {table: sha256}; several: {experiment/table: sha256}
            folder = Path(runs_tables[one]).parent
            prefix = f"{one}/" if len(drawn) > 1 else ""
            tables |= {prefix + table: file_sha256(folder / f"{table}.parquet") for table in figure_tables(name)}
        return {
            "experiment": experiment,
            "code_sha256": figure_code_sha256(name),
            "tables_sha256": tables,
            "runs_code_sha256": sorted({code for one in drawn for code in runs_code(runs_tables[one])}),
            **{ext: file_sha256(figures_dir / f"{name}.{ext}") for ext in ("png", "pdf")},
        }

    manifest = {
        "config_sha256": config_hash,
        "provenance": {
            "python": platform.python_version(),
            **{package: version(package) for package in ("matplotlib", "seaborn", "pandas")},
        },
        "figures": {name: entry(name, experiment) for name, experiment in sorted(figures.items())},
    }
    write_json(out, manifest)
    return manifest
