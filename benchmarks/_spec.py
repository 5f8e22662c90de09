"""A benchmark's run: one grid cell expanded from the default config, so that every key is the pipeline's own, and
its datasets generated once under a scratch folder (imported by the scripts in this folder)."""

from __future__ import annotations

from pathlib import Path

import yaml

from rnngrad import config as configuration
from rnngrad import tasks

ROOT = Path(__file__).resolve().parents[1]


def default_config() -> dict:
    """config/config.yaml, with the temporal-order task Pascanu et al.'s shapes need."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["tasks"].setdefault("temporal_order", {"variant": "pascanu", "solved_accuracy": 0.99})
    return config


def one_run_spec(config: dict, grid: dict, train: dict, root: Path, prefix: str) -> dict:
    """The spec of the one run ``grid`` (one value an axis) and ``train`` make of ``config``, its datasets generated
    under ``root`` as ``{prefix}-{T}-{split}.npz`` unless there already (no training file with fresh data), on CPU."""
    config["experiments"] = {"bench": {"grid": [grid], "train": train}}
    config["figures"] = {}
    config["logging"].update(every=None, spectra_every=None, at=[])
    (spec,) = configuration.expand(config)
    for split in ("train", "test"):
        path = root / f"{prefix}-{spec['T']}-{split}.npz"
        if not path.exists():
            seed, n = config["data"][f"{split}_seed"], config["data"][f"n_{split}"]
            tasks.generate_file(path, spec["task"], spec["T"], n, seed, spec["variant"], **spec["task_params"])
        spec[f"{split}_data"] = None if split == "train" and spec["fresh_data"] else str(path)
    return {**spec, "device": "cpu"}
