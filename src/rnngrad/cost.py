"""What a grid will cost before it is submitted: CPU-hours and the longest job, from step costs measured here.

For every distinct shape of the grid (model, activation, task, T, hidden, batch, log batch, Jacobian samples),
a real :class:`rnngrad.run.Run` on small generated datasets of that shape is timed: a few training steps, one
evaluation on a test set of the config's size, one contribution-only logging event and one with the spectra.
A run's estimate is steps x step + evaluations x evaluation + events x their cost (its logging cadence from
:func:`rnngrad.run.log_steps`), plus the start-up of its group's process; a group's is the sum of its runs.
Estimates hold for this machine, one thread, the sequential group path. Not counted: the one test of a run at each
extra length of ``train.eval_lengths`` when it ends (its datasets exist only once the workflow has made them).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from rnngrad import tasks
from rnngrad.evaluation import evaluate, log_gradients
from rnngrad.groups import group_specs
from rnngrad.run import Run, log_steps

START_UP_SECONDS = 3.3  # CPU-s of a training job's imports (torch, pandas, pyarrow): startup_s, benchmarks/groups.py
SHAPE_KEYS = ("model", "activation", "task", "variant", "T", "hidden", "batch_size", "dtype", "device")
TIMED_STEPS = 3


def _timed(call, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def shape(spec: dict) -> tuple:
    """What a run's cost depends on (besides its step count and logging cadence)."""
    task_params = tuple(sorted(spec["task_params"].items()))
    return (*(spec[k] for k in SHAPE_KEYS), task_params, spec["log_batch"], spec["jacobian_samples"])


def measure_shape(spec: dict, n_test: int, folder: Path) -> dict[str, float]:
    """Seconds per training step, per evaluation, per contribution event and per spectra event for one shape."""
    n_train = max(spec["batch_size"], 16)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        paths[split] = folder / f"{split}-{abs(hash(shape(spec)))}.npz"
        tasks.generate_file(paths[split], spec["task"], spec["T"], n, seed, spec["variant"], **spec["task_params"])
    timed_spec = {**spec, "train_data": str(paths["train"]), "test_data": str(paths["test"])}
    timed_spec |= {"eval_lengths": [], "eval_data": []}
    run = Run(timed_spec, folder / "run")
    run.train_step()  # warm-up: first calls allocate
    return {
        "step": _timed(run.train_step, TIMED_STEPS),
        "evaluation": _timed(lambda: evaluate(run)),
        "contributions": _timed(lambda: log_gradients(run, spectra=False)),
        "spectra": _timed(lambda: log_gradients(run, spectra=True)),
    }


def estimate(config: dict, specs: list[dict]) -> pd.DataFrame:
    """One row per run: experiment, group and estimated seconds (start-up counted once per group)."""
    torch.set_num_threads(1)
    costs: dict[tuple, dict[str, float]] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for (experiment, group), members in group_specs(specs, **config["groups"]).items():
            for index, spec in enumerate(members):
                key = shape(spec)
                if key not in costs:
                    costs[key] = measure_shape(spec, config["data"]["n_test"], Path(tmp))
                cost = costs[key]
                logged = log_steps(spec)
                seconds = (
                    spec["steps"] * cost["step"]
                    + (spec["steps"] // spec["eval_every"] + 1) * cost["evaluation"]
                    + sum(cost["spectra"] if spectra else cost["contributions"] for spectra in logged.values())
                    + (START_UP_SECONDS if index == 0 else 0.0)
                )
                rows.append({"experiment": experiment, "group": group, "run_id": spec["run_id"], "seconds": seconds})
    return pd.DataFrame(rows)


def report(runs: pd.DataFrame) -> str:
    """Markdown: per experiment the runs, jobs, CPU-hours and longest job; then the totals."""
    jobs = runs.groupby(["experiment", "group"], sort=False).seconds.sum().reset_index()
    table = jobs.groupby("experiment", sort=False).agg(
        jobs=("group", "size"), cpu_hours=("seconds", lambda s: s.sum() / 3600), longest_job_hours=("seconds", "max")
    )
    table.insert(0, "runs", runs.groupby("experiment", sort=False).size())
    table["longest_job_hours"] /= 3600
    longest = jobs.loc[jobs.seconds.idxmax()]
    return (
        table.to_markdown(floatfmt=("", ".0f", ".0f", ".2f", ".2f"))
        + f"\n\nTotal: {len(runs)} runs in {len(jobs)} training jobs, {runs.seconds.sum() / 3600:.1f} CPU-hours "
        f"(one thread, this machine); the longest job is {longest.experiment}/{longest.group}, "
        f"{longest.seconds / 3600:.2f} h.\n"
    )
