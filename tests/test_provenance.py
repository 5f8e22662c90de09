"""Provenance and progress: which code made a run, stale runs found and warned about, jobs that are never silent."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from test_train import datasets, make_spec  # noqa: F401 - datasets is a fixture

from rnngrad import tables
from rnngrad.io import file_sha256, read_json, write_json
from rnngrad.provenance import code_sha256, training_code
from rnngrad.train import train, train_group


def test_status_records_the_code_and_the_machine(datasets, tmp_path):  # noqa: F811
    status = train(make_spec(datasets, steps=4), tmp_path)
    provenance = status["provenance"]
    assert provenance["code_sha256"] == code_sha256() and len(provenance["code_sha256"]) == 64
    assert provenance["torch"] == torch.__version__ and provenance["python"] == platform.python_version()
    assert provenance["device"] == "cpu" and provenance["threads"] == torch.get_num_threads()
    assert {"git_commit", "git_dirty"} <= set(provenance)
    assert read_json(tmp_path / "status.json") == status


def test_training_code_is_exactly_what_training_imports():
    """The files whose hash marks a run's code version (and that the train rule takes as inputs) are the package
    files `rnngrad.train` and `rnngrad.batched` load: nothing training runs is left out, and no figure or table
    module makes runs stale."""
    script = (
        "import sys, rnngrad.train, rnngrad.batched; "
        "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.startswith('rnngrad'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    imported = {Path(line) for line in result.stdout.splitlines()}
    assert imported == set(training_code())
    assert not {"tables.py", "summary.py", "manifest.py", "style.py"} & {path.name for path in imported}


def test_runs_of_other_code_are_listed_and_warned_about(datasets, tmp_path, capsys):  # noqa: F811
    results = tmp_path / "results"
    for seed in (0, 1):
        train(make_spec(datasets, steps=4, seed=seed), results / "runs" / "e" / f"s{seed}")
    assert tables.stale_runs(results) == []
    status_file = results / "runs" / "e" / "s1" / "status.json"
    status = read_json(status_file)
    status["provenance"]["code_sha256"] = "0" * 64
    write_json(status_file, status)
    assert tables.stale_runs(results) == [(str(status_file.parent), "0" * 64)]
    capsys.readouterr()
    run_dirs = [results / "runs" / "e" / "s0", results / "runs" / "e" / "s1"]
    tables.write_tables(run_dirs, tmp_path / "tables", success={"adding": 0.01})
    warning = capsys.readouterr().err
    assert "mix runs made by different training code" in warning and "000000000000: 1 runs, e.g. r" in warning


def test_a_group_reports_its_member_and_each_run_its_progress(datasets, tmp_path, capsys):  # noqa: F811
    specs = [make_spec(datasets, run_id=f"m{seed}", seed=seed, steps=20, eval_every=10) for seed in (0, 1)]
    train_group(specs, tmp_path, stack=False)
    log = capsys.readouterr().out
    assert "group of 2 runs: 0 complete and kept, 2 to train\n2 runs from m0 one after another" in log
    assert "group member 1/2: m0" in log and "group member 2/2: m1" in log
    assert "m1: step 10/20: train loss" in log and "steps/s, ETA" in log
    assert "m0: completed after 20 steps" in log


def test_a_users_cell_file_is_part_of_its_runs_code_version(datasets, tmp_path, monkeypatch):  # noqa: F811
    """status.json names the cell's module, file and sha256; a run is kept while that file is unchanged, and is
    retrained (not kept by its group) and listed as stale once the file is edited."""
    from rnngrad.run_files import completed_status

    monkeypatch.setattr(sys, "path", [str(tmp_path / "mine"), *sys.path])
    (tmp_path / "mine").mkdir()
    cell_file = tmp_path / "mine" / "status_oscillator.py"
    shutil.copy(Path(__file__).parent / "cells" / "oscillator_cell.py", cell_file)
    target = "status_oscillator:CoupledOscillator"
    spec = make_spec(datasets, model="osc", cell=target, activation=None, init=None, scale=None, label="osc", steps=3)
    run_dir = tmp_path / "results" / "runs" / "e" / "osc"
    status = train(spec, run_dir)
    recorded = {"target": target, "module": "status_oscillator", "file": str(cell_file.resolve())}
    assert status["provenance"]["cell"] == {**recorded, "sha256": file_sha256(cell_file)}
    assert completed_status(spec, run_dir) == status and tables.stale_runs(tmp_path / "results") == []
    cell_file.write_text(cell_file.read_text() + "# an edited line\n")
    assert completed_status(spec, run_dir) is None
    assert tables.stale_runs(tmp_path / "results") == [(str(run_dir), code_sha256())]
