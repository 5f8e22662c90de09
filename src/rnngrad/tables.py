"""Aggregate run directories into tidy experiment tables: one row an observation, every spec field a column.

Whether a run solved its task is decided here, by the task's success criterion on the run's final metric and
baseline with the thresholds given, not by training: changing a threshold rebuilds the tables and retrains nothing.
So is ``steps_to_solve``, the first evaluation step at which the run's test metric met that criterion.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rnngrad import tasks
from rnngrad.config import ConfigError, gamma
from rnngrad.contract import SPEC_COLUMNS, TABLES
from rnngrad.io import atomic_write, mismatched_files, read_json, write_parquet


def spec_columns(spec: dict) -> dict:
    """The spec fields every table row carries (cells other than rnn: activation and init 'none', scale NaN; clip
    and forget_bias NaN where unset)."""
    row = {key: spec.get(key) for key in SPEC_COLUMNS}
    row["gamma"] = gamma(spec)
    for key in ("activation", "init"):
        row[key] = row[key] or "none"
    for key in ("scale", "forget_bias", "clip"):
        row[key] = float("nan") if row[key] is None else float(row[key])
    return row


class RunFileError(ValueError):
    """A run file that differs from what its run wrote (edited, truncated or replaced)."""


def verify_run(run_dir: Path, status: dict) -> None:
    for name in mismatched_files(run_dir, status["sha256"]):
        raise RunFileError(
            f"{run_dir / name} is missing or differs from what its run wrote (sha256 in status.json); "
            f"delete {run_dir} and rerun snakemake with --forcerun train to retrain it (runs that are complete "
            "and current are kept, not retrained)"
        )


def solved(task: str, status: dict, success: dict) -> bool:
    """The task's success criterion on a completed run (a diverged run solved nothing)."""
    if task not in success:
        raise ConfigError(f"no success criterion for task {task!r}; given: {success} (--success)")
    if status["status"] != "completed":
        return False
    return tasks.reached(
        task, success[task], status["final_metric"], status.get("final_error_rate", math.nan), status["baseline_loss"]
    )


def steps_to_solve(run_dir: str | Path, task: str, baseline: float, criterion: dict | float) -> float:
    """The first evaluation step at which the run's test metric met the task's success criterion (NaN if none).

    Read from the run's metrics.parquet (its test rows at the trained length: step 0, every ``eval_every`` steps
    and the final step of a completed run). It is the first time the criterion was met, whatever came after: a run
    that met it and later lost it (or diverged) keeps its step, while ``solved`` says whether it held at the end."""
    test = pd.read_parquet(Path(run_dir) / "metrics.parquet")
    test = test[(test["split"] == "test") & main_length(test)].sort_values("step", kind="stable")
    for step, metric, right in zip(test["step"], test["metric"], test["seq_solved_frac"], strict=True):
        if tasks.reached(task, criterion, metric, 1.0 - right, baseline):
            return float(step)
    return math.nan


def main_length(metrics: pd.DataFrame) -> pd.Series:
    """The rows of the run's own test set, not of an extra evaluation length (runs without a length column have
    only those)."""
    if "eval_length" not in metrics.columns:
        return pd.Series(True, index=metrics.index)
    return metrics["eval_length"].isna()


def read_status(run_dir: str | Path, success: dict) -> pd.DataFrame:
    """One run's row of the runs table (spec columns, status, solved, steps_to_solve), after checking every
    file's sha256; ``success`` maps each task to its success threshold."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    verify_run(run_dir, status)
    status.pop("sha256")
    provenance = status.pop("provenance", {})
    spec = spec_columns(read_json(run_dir / "spec.json"))
    status["solved"] = solved(spec["task"], status, success)
    status["steps_to_solve"] = steps_to_solve(run_dir, spec["task"], status["baseline_loss"], success[spec["task"]])
    status.setdefault("final_error_rate", math.nan)
    status["code_sha256"] = provenance.get("code_sha256")  # which training code made the run
    status["diverged_at"] = float("nan") if status["diverged_at"] is None else float(status["diverged_at"])
    return pd.DataFrame([{**spec, **status}])


def read_run_table(run_dir: str | Path, name: str, spec: dict) -> pd.DataFrame:
    """One run's table ``name`` with the spec columns joined in front (metrics keeps its own lr)."""
    frame = pd.read_parquet(Path(run_dir) / f"{name}.parquet")
    joined = {key: value for key, value in spec.items() if key not in frame.columns}
    return frame.assign(**joined)[[*joined, *frame.columns]]


def code_versions_warning(runs: pd.DataFrame) -> str | None:
    """A warning listing each training-code version among the runs and its runs (None when all agree)."""
    versions = runs.groupby("code_sha256", dropna=False, sort=False).run_id.agg(list)
    if len(versions) < 2:
        return None
    lines = [f"  code {str(code)[:12]}: {len(ids)} runs, e.g. {ids[0]}" for code, ids in versions.items()]
    return (
        "warning: these tables mix runs made by different training code:\n"
        + "\n".join(lines)
        + "\n  `rnngrad stale results/{name}` lists the runs older than this checkout's code; "
        "`snakemake --forcerun train` retrains exactly those (current runs are kept)"
    )


def _stream_table(name: str, run_dirs: list[str], specs: list[dict], path: Path) -> None:
    """Write table ``name`` one run at a time (a row group each): memory holds one run's rows, not the grid's.
    Runs without rows for it (spectra never logged) add none; if no run has any, the table is empty."""
    writer = None
    try:
        for run_dir, spec in zip(run_dirs, specs, strict=True):
            frame = read_run_table(run_dir, name, spec)
            if frame.empty:
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                if set(table.schema.names) != set(writer.schema.names):
                    raise RunFileError(
                        f"{run_dir}/{name}.parquet: columns {table.schema.names} differ from "
                        f"the other runs' {writer.schema.names}; retrain it with this code"
                    )
                table = table.select(writer.schema.names).cast(writer.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        read_run_table(run_dirs[0], name, specs[0]).to_parquet(path, index=False)


def write_tables(run_dirs: list[str | Path], out_dir: str | Path, success: dict) -> dict[str, Path]:
    """Write every table of :data:`TABLES` as ``out_dir/{name}.parquet`` (each atomically), runs in sorted order.

    The runs table is built in memory (a row a run); the others are streamed run by run, so a grid of thousands
    of runs needs the memory of its largest run, not of its tables."""
    run_dirs = sorted(str(run_dir) for run_dir in run_dirs)
    runs = pd.concat([read_status(run_dir, success) for run_dir in run_dirs], ignore_index=True)
    warning = code_versions_warning(runs)
    if warning:
        print(warning, file=sys.stderr)
    specs = runs[list(SPEC_COLUMNS)].to_dict("records")
    paths = {"runs": write_parquet(Path(out_dir) / "runs.parquet", runs)}
    for name in TABLES[1:]:
        path = Path(out_dir) / f"{name}.parquet"
        paths[name] = atomic_write(path, lambda tmp, name=name: _stream_table(name, run_dirs, specs, tmp))
    return paths


def read_tables(tables_dir: str | Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(Path(tables_dir) / f"{name}.parquet") for name in names}


def stale_runs(results: str | Path) -> list[tuple[str, str | None]]:
    """(run folder, its code_sha256) of every finished run under ``results`` made by other training code."""
    from rnngrad.provenance import code_sha256

    stale = []
    for status_file in sorted(Path(results).glob("runs/**/status.json")):
        code = read_json(status_file).get("provenance", {}).get("code_sha256")
        if code != code_sha256():
            stale.append((str(status_file.parent), code))
    return stale
