"""figures/manifest.json: every figure with the sha256 of its files and of the config it came from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rnngrad.io import file_sha256, write_json


def config_sha256(config: dict) -> str:
    """Hash of the config's content (key order and YAML formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def write_manifest(out: str | Path, config_hash: str, figures: dict[str, str | None], figures_dir: str | Path) -> dict:
    """``figures``: name -> the experiment whose tables it draws (None for theory-only figures)."""
    figures_dir = Path(figures_dir)
    manifest = {
        "config_sha256": config_hash,
        "figures": {
            name: {
                "experiment": experiment,
                **{ext: file_sha256(figures_dir / f"{name}.{ext}") for ext in ("png", "pdf")},
            }
            for name, experiment in sorted(figures.items())
        },
    }
    write_json(out, manifest)
    return manifest
