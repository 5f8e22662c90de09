"""A user's cell outside src/ through the real pipeline: one found on the user's PYTHONPATH, one in a folder the
config names (cells_path), both with a tuple state; each trains in its jobs, is logged, gets its tables and its
figure, and is named in its runs' provenance; editing its file plans its training jobs again, and only those."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow
from test_pipeline import ENV, planned_jobs, smoke_config, snakemake

from rnngrad import config as configuration
from rnngrad import tables
from rnngrad.contract import RUN_FILES
from rnngrad.groups import group_specs
from rnngrad.io import file_sha256, read_json

CELL = ROOT / "tests" / "cells" / "oscillator_cell.py"
RESULTS = Path("results", "usercells")
TARGETS = [f"{RESULTS}/tables/cells/runs.parquet", "figures/usercells/contributions-cells.png"]


def user_cells_config() -> dict:
    """smoke.yaml's settings with one experiment: two users' cells and the LSTM in one block (a list of models)."""
    config = smoke_config()
    config.update(name="usercells", groups={"max_runs": 4})
    config["cells"] = {"osc": "oscillator_cell:CoupledOscillator", "envosc": "env_oscillator:CoupledOscillator"}
    config["cells_path"] = ["mycells"]  # relative to the working directory
    config["experiments"] = {
        "cells": {
            "description": "users' cells with a tuple state beside the LSTM",
            "grid": [{"task": ["adding"], "T": [6], "model": ["osc", "envosc", "lstm"], "seed": [0, 1]}],
        }
    }
    config["figures"] = {"contributions-cells": "cells"}
    return config


@pytest.fixture(scope="module")
def user_cells(tmp_path_factory) -> tuple[Path, dict]:
    """The workflow run once on that config; env_oscillator lives outside the working directory, on PYTHONPATH."""
    workdir = copy_workflow(tmp_path_factory.mktemp("usercells"))
    (workdir / "mycells").mkdir()
    shutil.copy(CELL, workdir / "mycells" / "oscillator_cell.py")
    elsewhere = tmp_path_factory.mktemp("users_python_path")
    shutil.copy(CELL, elsewhere / "env_oscillator.py")
    (workdir / "usercells.yaml").write_text(yaml.safe_dump(user_cells_config()))
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(elsewhere), ENV.get("PYTHONPATH")]))}
    snakemake(workdir, "--configfile=usercells.yaml", *TARGETS, env=env)
    return workdir, env


@pytest.mark.slow
def test_users_cells_train_are_logged_and_get_tables(user_cells):
    workdir, _ = user_cells
    specs = configuration.expand(user_cells_config())
    assert sorted({s["model"] for s in specs}) == ["envosc", "lstm", "osc"] and len(specs) == 6
    runs = pd.read_parquet(workdir / RESULTS / "tables" / "cells" / "runs.parquet")
    assert sorted(runs.run_id) == sorted(s["run_id"] for s in specs)
    assert (runs.status == "completed").all()
    gradients = pd.read_parquet(workdir / RESULTS / "tables" / "cells" / "gradients.parquet")
    for model in ("osc", "envosc"):
        logged = gradients[gradients.model == model]
        assert set(logged.weight) == {"W"} and (logged.contribution_norm[logged.k > 1] > 0).all()
        run_dir = workdir / RESULTS / "runs" / "cells" / f"adding/T6/{model}/noclip/seed0"
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)
    assert (workdir / "figures" / "usercells" / "contributions-cells.png").stat().st_size > 10_000


@pytest.mark.slow
def test_provenance_names_the_cells_module_file_and_sha256(user_cells):
    workdir, _ = user_cells
    runs = workdir / RESULTS / "runs" / "cells" / "adding" / "T6"
    cell_file = workdir / "mycells" / "oscillator_cell.py"
    cell = read_json(runs / "osc" / "noclip" / "seed0" / "status.json")["provenance"]["cell"]
    assert cell == {"target": "oscillator_cell:CoupledOscillator", "module": "oscillator_cell",
                    "file": str(cell_file.resolve()), "sha256": file_sha256(cell_file)}  # fmt: skip
    other = read_json(runs / "envosc" / "noclip" / "seed0" / "status.json")["provenance"]["cell"]
    assert other["module"] == "env_oscillator" and other["sha256"] == cell["sha256"]  # the same code, elsewhere
    assert "cell" not in read_json(runs / "lstm" / "noclip" / "seed0" / "status.json")["provenance"]
    table = pd.read_parquet(workdir / RESULTS / "tables" / "cells" / "runs.parquet").set_index("model")
    assert set(table.loc["osc", "cell_sha256"]) == {cell["sha256"]} and table.loc["lstm", "cell_sha256"].isna().all()


@pytest.mark.slow
def test_editing_a_cells_file_plans_its_training_jobs_again(user_cells):
    workdir, env = user_cells
    done = snakemake(workdir, "-n", "--configfile=usercells.yaml", *TARGETS, env=env)
    assert "Nothing to be done" in done.stdout + done.stderr
    cell_file = workdir / "mycells" / "oscillator_cell.py"
    original = cell_file.read_text()
    cell_file.write_text(original + "# an edited line\n")
    try:
        planned = planned_jobs(workdir, "--configfile=usercells.yaml", *TARGETS, env=env)
        stale = tables.stale_runs(workdir / RESULTS)
    finally:
        cell_file.write_text(original)
    specs = configuration.expand(user_cells_config())
    osc = sorted(str(workdir / RESULTS / "runs" / "cells" / s["run_id"]) for s in specs if s["model"] == "osc")
    groups = {key for key, members in group_specs(specs, max_runs=4).items() if members[0]["model"] == "osc"}
    assert planned == {"train": len(groups), "tables": 1, "figure_contributions-cells": 1}
    assert sorted(run for run, _ in stale) == osc  # `rnngrad stale` lists them too
