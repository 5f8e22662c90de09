"""figures/{name}/manifest.json: every figure with the sha256 of its files, of the config it came from, and the
provenance of the code and software that drew it and of the training code behind its runs."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from rnngrad.config import figure_experiments
from rnngrad.io import file_sha256, write_json
from rnngrad.provenance import git_state


def config_sha256(config: dict) -> str:
    """Hash of the config's content (key order and YAML formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


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
    figures); ``runs_tables``: experiment -> its runs.parquet."""
    figures_dir = Path(figures_dir)
    manifest = {
        "config_sha256": config_hash,
        "provenance": {
            **git_state(),
            "python": platform.python_version(),
            **{package: version(package) for package in ("matplotlib", "seaborn", "pandas")},
        },
        "figures": {
            name: {
                "experiment": experiment,
                "runs_code_sha256": sorted(
                    {code for drawn in figure_experiments(experiment) for code in runs_code(runs_tables[drawn])}
                ),
                **{ext: file_sha256(figures_dir / f"{name}.{ext}") for ext in ("png", "pdf")},
            }
            for name, experiment in sorted(figures.items())
        },
    }
    write_json(out, manifest)
    return manifest
