"""Aggregate run directories into tidy experiment tables: one row an observation, every spec field a column.

Whether a run solved its task is decided here, by the task's success criterion on the run's final metric and
baseline with the thresholds given, not by training: changing a threshold rebuilds the tables and retrains nothing.
So is ``steps_to_solve``, the first evaluation step at which the run's test metric met that criterion.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rnngrad import tasks
from rnngrad.config import ConfigError, gamma
from rnngrad.contract import SPEC_COLUMNS, STREAMED_TABLES
from rnngrad.io import atomic_write, file_sha256, mismatched_files, read_json, write_parquet


def spec_columns(spec: dict) -> dict:
    """The spec fields every table row carries (cells other than rnn: activation and init 'none', scale NaN; clip
    and forget_bias NaN where unset; input_init as text)."""
    row = {key: spec.get(key) for key in SPEC_COLUMNS}
    row["gamma"] = gamma(spec)
    for key in ("activation", "init"):
        row[key] = row[key] or "none"
    for key in ("scale", "forget_bias", "clip"):
        row[key] = float("nan") if row[key] is None else float(row[key])
    row["input_init"] = str(row["input_init"])  # "fan_in" or sigma, one column type
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


def steps_to_solve(test: pd.DataFrame, task: str, baseline: float, criterion: dict | float) -> float:
    """The first evaluation step at which the run's test metric met the task's success criterion (NaN if none).

    From the run's test rows at its trained length (step 0, every ``eval_every`` steps and the final step of a
    completed run). It is the first time the criterion was met, whatever came after: a run that met it and later
    lost it (or diverged) keeps its step, while ``solved`` says whether it held at the end."""
    for step, metric, right in zip(test["step"], test["metric"], test["seq_solved_frac"], strict=True):
        if tasks.reached(task, criterion, metric, 1.0 - right, baseline):
            return float(step)
    return math.nan


def length_rows(spec: dict, status: dict, final: pd.DataFrame, criterion: dict | float) -> pd.DataFrame:
    """The lengths table's rows of one run: its final test evaluation at the trained length (``trained``; with
    ``test_lengths`` the mixed-length test set, recorded at the run's T) and at every extra length
    (``eval_lengths``, one of which may equal that T), each with the share of sequences wrong, the memoryless
    baseline at that length and whether the success criterion holds there (none for a diverged run)."""
    if status["status"] != "completed":
        final = final.iloc[0:0]
    baselines = [
        tasks.baseline_loss(spec["task"], int(n), spec["variant"], **spec["task_params"]) for n in final.length
    ]
    errors = 1.0 - final["seq_solved_frac"]
    solved = [
        tasks.reached(spec["task"], criterion, metric, error, baseline)
        for metric, error, baseline in zip(final["metric"], errors, baselines, strict=True)
    ]
    rows = {"length": final["length"], "trained": final["split"] == "test", "loss": final["loss"],
            "metric": final["metric"], "error_rate": errors, "baseline_loss": baselines, "solved": solved}  # fmt: skip
    return pd.DataFrame({**spec_columns(spec), **rows})


def read_run(run_dir: str | Path, success: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One run's row of the runs table (spec columns, status, solved, steps_to_solve) and its rows of the lengths
    table, after checking every file's sha256; ``success`` maps each task to its success criterion."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    verify_run(run_dir, status)
    status.pop("sha256")
    provenance = status.pop("provenance", {})
    spec = read_json(run_dir / "spec.json")
    columns = spec_columns(spec)
    task = columns["task"]
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    test = metrics[metrics["split"] == "test"].sort_values("step", kind="stable")
    status["solved"] = solved(task, status, success)
    status["steps_to_solve"] = steps_to_solve(test, task, status["baseline_loss"], success[task])
    status["code_sha256"] = provenance.get("code_sha256")  # which training code made the run
    if "cell" in provenance:  # and which file of a user's cell (a column only in tables that hold such runs)
        status["cell_sha256"] = provenance["cell"]["sha256"]
    for key in ("diverged_at", "solved_at"):
        status[key] = float("nan") if status.get(key) is None else float(status[key])
    status.setdefault("final_error_rate", math.nan)
    final = metrics[metrics["split"].isin(["test", "test_length"]) & (metrics["step"] == status["steps_done"])]
    lengths = length_rows(spec, status, final.drop_duplicates(["split", "length"], keep="last"), success[task])
    return pd.DataFrame([{**columns, **status}]), lengths


def code_versions_warning(runs: pd.DataFrame) -> str | None:
    """A warning listing each training-code version among the runs and its runs (None when all agree): the
    package's code (code_sha256) and, for a user's cell, the file defining it (cell_sha256, per model)."""
    cells = runs["cell_sha256"] if "cell_sha256" in runs else pd.Series(None, index=runs.index, dtype=object)
    version = runs["code_sha256"].map(lambda code: f"code {str(code)[:12]}") + [
        "" if pd.isna(cell) else f", {model} file {cell[:12]}" for model, cell in zip(runs["model"], cells, strict=True)
    ]
    versions = runs.groupby(version, sort=False).run_id.agg(list)
    cell_versions = cells.groupby(runs["model"]).nunique()
    if runs["code_sha256"].nunique(dropna=False) < 2 and (cell_versions < 2).all():
        return None
    lines = [f"  {label}: {len(ids)} runs, e.g. {ids[0]}" for label, ids in versions.items()]
    return (
        "warning: these tables mix runs made by different training code:\n"
        + "\n".join(lines)
        + "\n  `rnngrad stale results/{name}` lists the runs older than this checkout's code; "
        "`snakemake --forcerun train` retrains exactly those (current runs are kept)"
    )


CHUNK_ROWS = 1 << 18  # rows a streamed table holds in memory before it writes them as one row group


def _stream_table(name: str, run_dirs: list[str], specs: pa.Table, path: Path) -> None:
    """Write table ``name`` in row groups of about :data:`CHUNK_ROWS` rows, run after run: memory holds a chunk,
    not the grid's rows. Each run's rows get its row of ``specs`` (columns the run's table lacks) in front, joined
    by one ``take`` a chunk in arrow, without pandas. Runs without rows for it (the LSTM has no Jacobians) add
    none; if no run has any, the table is empty, with the columns of the first run's."""
    writer, chunk, owners = None, [], []

    def flush(last: bool) -> None:
        nonlocal writer
        if not chunk and (writer is not None or not last):
            return
        data = pa.concat_tables(chunk, promote_options="permissive") if chunk else first.slice(0, 0)
        index = pa.array(np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64))
        joined = [key for key in specs.column_names if key not in data.column_names]
        table = pa.Table.from_arrays(
            [*specs.select(joined).take(index).columns, *data.columns], names=[*joined, *data.column_names]
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
        chunk.clear()
        owners.clear()

    first, rows = None, 0
    try:
        for i, run_dir in enumerate(run_dirs):
            table = pq.ParquetFile(Path(run_dir) / f"{name}.parquet").read(use_threads=False)  # read_table: 2x slower
            if first is None:
                first = table
            elif set(table.column_names) != set(first.column_names):
                raise RunFileError(
                    f"{run_dir}/{name}.parquet: columns {table.column_names} differ from "
                    f"the other runs' {first.column_names}; retrain it with this code"
                )
            if table.num_rows:
                chunk.append(table.select(first.column_names))
                owners.append(np.full(table.num_rows, i))
                rows += table.num_rows
            if rows >= CHUNK_ROWS:
                flush(last=False)
                rows = 0
        flush(last=True)
    finally:
        if writer is not None:
            writer.close()


def write_tables(run_dirs: list[str | Path], out_dir: str | Path, success: dict) -> dict[str, Path]:
    """Write every table of :data:`TABLES` as ``out_dir/{name}.parquet`` (each atomically), runs in sorted order.

    The runs and lengths tables are built in memory (a row a run, and a row a run and length); the others are
    streamed run by run, so a grid of thousands
    of runs needs the memory of its largest run, not of its tables."""
    run_dirs = sorted(str(run_dir) for run_dir in run_dirs)
    per_run = [read_run(run_dir, success) for run_dir in run_dirs]
    runs = pd.concat([row for row, _ in per_run], ignore_index=True)
    lengths = pd.concat([rows for _, rows in per_run], ignore_index=True)
    warning = code_versions_warning(runs)
    if warning:
        print(warning, file=sys.stderr)
    specs = pa.Table.from_pandas(runs[list(SPEC_COLUMNS)], preserve_index=False)
    paths = {"runs": write_parquet(Path(out_dir) / "runs.parquet", runs)}
    paths["lengths"] = write_parquet(Path(out_dir) / "lengths.parquet", lengths)
    for name in STREAMED_TABLES:
        path = Path(out_dir) / f"{name}.parquet"
        paths[name] = atomic_write(path, lambda tmp, name=name: _stream_table(name, run_dirs, specs, tmp))
    return paths


def read_tables(tables_dir: str | Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(Path(tables_dir) / f"{name}.parquet") for name in names}


def stale_runs(results: str | Path) -> list[tuple[str, str | None]]:
    """(run folder, its code_sha256) of every finished run under ``results`` made by other training code: other
    package code, or a user's cell whose file no longer has the content the run recorded."""
    from rnngrad.provenance import code_sha256

    stale = []
    for status_file in sorted(Path(results).glob("runs/**/status.json")):
        provenance = read_json(status_file).get("provenance", {})
        code, cell = provenance.get("code_sha256"), provenance.get("cell")
        cell_changed = cell is not None and not (
            Path(cell["file"]).is_file() and file_sha256(cell["file"]) == cell["sha256"]
        )
        if code != code_sha256() or cell_changed:
            stale.append((str(status_file.parent), code))
    return stale
