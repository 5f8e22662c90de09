"""The runs table's verdicts, decided when tables are built: ``solved`` from the final metric and
``steps_to_solve`` from the first test evaluation that met the task's criterion, on hand-written run folders whose
metrics are chosen (no training needed)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rnngrad.io import file_sha256, write_json, write_parquet
from rnngrad.tables import read_run, write_tables

SUCCESS = {"adding": 0.01, "copy": 0.99}
BASELINE = {"adding": 1 / 6, "copy": 0.5}


def write_run(run_dir: Path, task: str, test_metrics: list[float], status: str = "completed", seed: int = 0) -> None:
    """A run folder with test evaluations every 10 steps holding ``test_metrics`` (the last is the final one of a
    completed run), a train row per evaluation, and a status.json whose sha256 covers the files written."""
    run_dir.mkdir(parents=True)
    spec = {
        "experiment": "test", "run_id": f"{task}/T10/tanh/orthogonal-1/seed{seed}", "task": task,
        "variant": "le" if task == "adding" else "all", "T": 10, "model": "rnn", "activation": "tanh",
        "init": "orthogonal", "scale": 1.0, "clip": None, "seed": seed, "hidden": 8, "optimizer": "adam",
        "lr": 1e-3, "batch_size": 8, "steps": 10 * (len(test_metrics) - 1), "label": "RNN-tanh",
        "task_params": {"copy_len": 3} if task == "copy" else {},
    }  # fmt: skip
    write_json(run_dir / "spec.json", spec)
    name = "mse" if task == "adding" else "accuracy"
    rows = []
    for i, metric in enumerate(test_metrics):
        row = {"step": 10 * i, "loss": metric, "metric": metric, "metric_name": name, "seq_solved_frac": 0.0,
               "length": 10}  # fmt: skip
        rows.append({**row, "split": "train", "grad_norm": 1.0, "clipped": False, "lr": 1e-3})
        rows.append({**row, "split": "test", "grad_norm": math.nan, "clipped": False, "lr": 1e-3})
    write_parquet(run_dir / "metrics.parquet", pd.DataFrame(rows))
    for table in ("gradients", "jacobians", "products", "spectrum"):
        write_parquet(run_dir / f"{table}.parquet", pd.DataFrame({"step": [0]}))
    diverged = status == "diverged"
    final = math.nan if diverged else test_metrics[-1]
    files = ["spec.json", "metrics.parquet", "gradients.parquet", "jacobians.parquet", "products.parquet"]
    write_json(
        run_dir / "status.json",
        {
            "status": status,
            "steps_done": spec["steps"],
            "diverged_at": spec["steps"] if diverged else None,
            "final_loss": final,
            "final_metric": final,
            "metric_name": name,
            "baseline_loss": BASELINE[task],
            "sha256": {f: file_sha256(run_dir / f) for f in [*files, "spectrum.parquet"]},
        },
    )


def test_steps_to_solve_is_the_first_evaluation_that_meets_the_criterion(tmp_path):
    """Adding: solved at MSE <= 1% of 1/6 = 0.001667; met first at step 20 (0.0015), lost at 30, met again."""
    write_run(tmp_path / "run", "adding", [0.17, 0.05, 0.0015, 0.002, 0.001])
    row = read_run(tmp_path / "run", SUCCESS)[0]
    assert row.steps_to_solve.item() == 20.0
    assert row.solved.item()


def test_steps_to_solve_is_nan_for_a_run_that_never_meets_the_criterion(tmp_path):
    write_run(tmp_path / "run", "adding", [0.17, 0.1, 0.05, 0.01])
    row = read_run(tmp_path / "run", SUCCESS)[0]
    assert math.isnan(row.steps_to_solve.item()) and not row.solved.item()


def test_steps_to_solve_follows_the_threshold_and_the_tasks_direction(tmp_path):
    """Copy's metric is an accuracy (met from above); a looser threshold is met earlier, with no retraining."""
    write_run(tmp_path / "run", "copy", [0.1, 0.6, 0.95, 0.995])
    assert read_run(tmp_path / "run", SUCCESS)[0].steps_to_solve.item() == 30.0
    assert read_run(tmp_path / "run", {"copy": 0.5})[0].steps_to_solve.item() == 10.0


def test_a_diverged_run_keeps_the_step_it_first_met_the_criterion(tmp_path):
    """The first time counts even if the run diverged later; `solved` (the final verdict) stays False."""
    write_run(tmp_path / "run", "adding", [0.17, 0.001, math.nan], status="diverged")
    row = read_run(tmp_path / "run", SUCCESS)[0]
    assert row.steps_to_solve.item() == 10.0 and not row.solved.item()


def test_runs_table_carries_steps_to_solve(tmp_path):
    write_run(tmp_path / "runs" / "a", "adding", [0.17, 0.001], seed=0)
    write_run(tmp_path / "runs" / "b", "adding", [0.17, 0.17], seed=1)
    paths = write_tables([tmp_path / "runs" / "a", tmp_path / "runs" / "b"], tmp_path / "tables", SUCCESS)
    runs = pd.read_parquet(paths["runs"]).set_index("seed")
    assert runs.loc[0, "steps_to_solve"] == 10.0 and math.isnan(runs.loc[1, "steps_to_solve"])
    assert runs["steps_to_solve"].dtype == float
