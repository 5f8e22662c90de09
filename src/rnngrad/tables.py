"""Aggregate run directories into tidy experiment tables: one row an observation, every spec field a column.

Whether a run solved its task is decided here, by the task's success criterion on the run's final metric and
baseline with the thresholds given, not by training: changing a threshold rebuilds the tables and retrains nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnngrad import tasks
from rnngrad.config import ConfigError, gamma
from rnngrad.contract import SPEC_COLUMNS, TABLES
from rnngrad.io import file_sha256, read_json, write_parquet


def spec_columns(spec: dict) -> dict:
    """The spec fields every table row carries (lstm: activation and init 'none', scale and clip NaN)."""
    row = {key: spec.get(key) for key in SPEC_COLUMNS}
    row["gamma"] = gamma(spec)
    for key in ("activation", "init"):
        row[key] = row[key] or "none"
    for key in ("scale", "clip"):
        row[key] = float("nan") if row[key] is None else float(row[key])
    return row


class RunFileError(ValueError):
    """A run file that differs from what its run wrote (edited, truncated or replaced)."""


def verify_run(run_dir: Path, status: dict) -> None:
    for name, expected in status["sha256"].items():
        if not (run_dir / name).exists() or file_sha256(run_dir / name) != expected:
            raise RunFileError(
                f"{run_dir / name} is missing or differs from what its run wrote (sha256 in status.json); "
                f"delete {run_dir} and rerun snakemake to retrain it"
            )


def solved(task: str, status: dict, success: dict[str, float]) -> bool:
    """The task's success criterion on a completed run (a diverged run solved nothing)."""
    if task not in success:
        raise ConfigError(f"no success threshold for task {task!r}; given: {success} (--success)")
    completed = status["status"] == "completed"
    return completed and tasks.get(task).solved(status["final_metric"], status["baseline_loss"], success[task])


def read_run(run_dir: str | Path, success: dict[str, float]) -> dict[str, pd.DataFrame]:
    """One run's frames, each with the spec columns joined, after checking every file's sha256; ``success`` maps
    each task to its success threshold."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    verify_run(run_dir, status)
    status.pop("sha256")
    spec = spec_columns(read_json(run_dir / "spec.json"))
    status["solved"] = solved(spec["task"], status, success)
    status["diverged_at"] = float("nan") if status["diverged_at"] is None else float(status["diverged_at"])
    frames = {"runs": pd.DataFrame([{**spec, **status}])}
    for name in TABLES[1:]:
        frame = pd.read_parquet(run_dir / f"{name}.parquet")
        joined = {key: value for key, value in spec.items() if key not in frame.columns}  # metrics has its own lr
        frames[name] = frame.assign(**joined)[[*joined, *frame.columns]]
    return frames


def aggregate(run_dirs: list[str | Path], success: dict[str, float]) -> dict[str, pd.DataFrame]:
    per_run = [read_run(run_dir, success) for run_dir in sorted(run_dirs)]
    tables = {}
    for name in TABLES:
        frames = [frames[name] for frames in per_run if not frames[name].empty]
        tables[name] = pd.concat(frames, ignore_index=True) if frames else per_run[0][name]
    return tables


def write_tables(run_dirs: list[str | Path], out_dir: str | Path, success: dict[str, float]) -> dict[str, Path]:
    """Write every table of :data:`TABLES` as ``out_dir/{name}.parquet`` (each atomically)."""
    tables = aggregate(run_dirs, success)
    return {name: write_parquet(Path(out_dir) / f"{name}.parquet", frame) for name, frame in tables.items()}


def read_tables(tables_dir: str | Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(Path(tables_dir) / f"{name}.parquet") for name in names}
