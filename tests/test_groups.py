"""Run groups: the grouping rule, the plan files, the tiny paper grid and the cost estimate."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_workflow

from rnngrad import config as configuration
from rnngrad.cost import estimate, measure, report
from rnngrad.groups import CELL_AXES, group_specs, read_run_list, run_list_path, specs_path, write_plan

BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["smoke", "config", "paper"])
def test_every_run_is_in_one_group_of_runs_that_share_their_cell(name):
    config = load(name)
    specs = configuration.expand(config)
    groups = group_specs(specs, **config["groups"])
    members = [(spec["experiment"], spec["run_id"]) for group in groups.values() for spec in group]
    assert sorted(members) == sorted((spec["experiment"], spec["run_id"]) for spec in specs)
    for (experiment, _), group in groups.items():
        assert 1 <= len(group) <= config["groups"]["max_runs"]
        assert {spec["experiment"] for spec in group} == {experiment}
        assert len({tuple(spec[axis] for axis in CELL_AXES) for spec in group}) == 1
        assert len({(spec["train_data"], spec["test_data"], spec["steps"], spec["hidden"]) for spec in group}) == 1


def test_packed_groups_join_consecutive_cells_within_max_runs():
    """miniature's pack_cells: each run once, in grid order, each job within one experiment and max_runs, and
    made of whole groups of the cell rule."""
    tiny = configuration.miniature(load("paper"))
    specs = configuration.expand(tiny)
    cells = group_specs(specs, tiny["groups"]["max_runs"])
    packed = group_specs(specs, **tiny["groups"])
    assert tiny["groups"]["pack_cells"] and len(packed) < len(cells) // 5
    assert [s["run_id"] for group in packed.values() for s in group] == [s["run_id"] for s in specs]
    cell_sizes = iter(len(group) for group in cells.values())
    for (experiment, group_id), group in packed.items():
        assert group_id.startswith("packed/g") and {s["experiment"] for s in group} == {experiment}
        taken = 0
        while taken < len(group):
            taken += next(cell_sizes)
        assert taken == len(group) <= tiny["groups"]["max_runs"]  # whole cell groups only


def test_bad_group_size_is_refused():
    with pytest.raises(ValueError, match="groups.max_runs"):
        group_specs(configuration.expand(load("smoke")), 0)


def plan(config: dict, folder: Path, monkeypatch) -> dict:
    """The plan written under folder/results (the same relative paths for every folder)."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    return write_plan(group_specs(configuration.expand(config), **config["groups"]), "results")


def test_a_changed_hyperparameter_changes_exactly_its_experiments_groups(tmp_path, monkeypatch):
    config = load("config")
    before = plan(config, tmp_path / "a", monkeypatch)
    changed = copy.deepcopy(config)
    changed["experiments"]["clipping"]["train"]["lr"] = 0.5
    after = plan(changed, tmp_path / "b", monkeypatch)
    assert set(before) == set(after)
    differing = {key for key in before if before[key] != after[key]}
    assert differing and all(isinstance(key, tuple) and key[0] == "clipping" for key in differing)


def test_a_changed_grid_axis_changes_only_the_cells_it_touches(tmp_path, monkeypatch):
    config = load("config")
    before = plan(config, tmp_path / "a", monkeypatch)
    changed = copy.deepcopy(config)
    changed["experiments"]["scales"]["grid"][1]["scale"].append(3.0)  # the adding block only
    after = plan(changed, tmp_path / "b", monkeypatch)
    differing = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert "scales" in differing  # the experiment's run list
    groups = {key for key in differing if isinstance(key, tuple)}
    assert groups and all(key[0] == "scales" and key[1].startswith("adding/") for key in groups)


def test_plan_files_are_rewritten_only_when_they_change(tmp_path, monkeypatch):
    config = load("smoke")
    first = plan(config, tmp_path / "a", monkeypatch)
    experiment, group = next(iter(group_specs(configuration.expand(config), **config["groups"])))
    specs_file = Path(specs_path("results", experiment, group))
    stamp = specs_file.stat().st_mtime_ns
    assert write_plan(group_specs(configuration.expand(config), **config["groups"]), "results") == first
    assert specs_file.stat().st_mtime_ns == stamp
    run_dirs = read_run_list(run_list_path("results", experiment))
    assert len(run_dirs) == sum(spec["experiment"] == experiment for spec in configuration.expand(config))


def test_miniature_keeps_every_run_and_figure_at_two_steps():
    paper = load("paper")
    tiny = configuration.miniature(paper)
    configuration.validate(tiny)
    specs, tiny_specs = configuration.expand(paper), configuration.expand(tiny)
    assert [s["run_id"] for s in tiny_specs] == [s["run_id"] for s in specs]
    assert tiny["figures"] == paper["figures"] and tiny["name"] == "paper-tiny"
    assert {s["steps"] for s in tiny_specs} == {2}
    assert {s["hidden"] for s in tiny_specs} == {1, 8}
    assert paper["train"]["steps"] == 20000  # not mutated
    rehearsal = configuration.expand(configuration.miniature(paper, steps=40))
    assert {(s["steps"], s["eval_every"], s["checkpoint_every"]) for s in rehearsal} == {(40, 10, 10)}
    with pytest.raises(configuration.ConfigError, match="miniature steps: 0 must be a positive"):
        configuration.miniature(paper, steps=0)


@pytest.fixture(scope="module")
def tiny_paper_plan(tmp_path_factory) -> tuple[Path, dict, str]:
    """The tiny paper grid planned by `snakemake -n --printshellcmds` in a copy of the workflow: its folder, its
    config and what Snakemake printed."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny-paper"))
    tiny_config = configuration.miniature(load("paper"))
    tiny = workdir / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(tiny_config))
    result = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--printshellcmds", "--configfile", str(tiny), "--cores", "1"],
        cwd=workdir, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return workdir, tiny_config, result.stdout


def test_no_command_line_grows_with_the_grid(tiny_paper_plan):
    """The paper grid's plan: every job's shell command is short (one argument is capped at 128 kB by Linux)."""
    _, _, printed = tiny_paper_plan
    commands = [line for line in printed.splitlines() if "python -m rnngrad" in line]
    assert any(" train " in c for c in commands) and any(" tables " in c for c in commands)
    assert max(len(c) for c in commands) < 1000


def test_a_packed_job_takes_every_members_datasets_as_inputs(tiny_paper_plan):
    """The tiny paper grid packs cells of several lengths into a job: Snakemake must make every member's datasets
    (and each extra evaluation length's) before the job starts, not only its first member's."""
    workdir, tiny_config, printed = tiny_paper_plan
    jobs = re.findall(r"^rule train:\n    input: (.*)\n    output: (\S+)/status.json$", printed, re.MULTILINE)
    assert len(jobs) == len(group_specs(configuration.expand(tiny_config), **tiny_config["groups"]))
    lengths_seen = set()
    for inputs, group_dir in jobs:
        members = json.loads((workdir / group_dir / "specs.json").read_text())
        needed = {p for s in members for p in (s["train_data"], s["test_data"], *s["eval_data"]) if p}
        assert needed <= set(inputs.split(", ")), group_dir
        lengths_seen.add(len({s["T"] for s in members}))
    assert max(lengths_seen) > 1  # some job does pack several lengths


QUICK = functools.partial(measure, min_seconds=0.0)  # each event timed once: these tests count, they do not time


def test_cost_estimate_counts_every_run_and_job():
    config = load("smoke")
    specs = configuration.expand(config)
    runs = estimate(config, specs, QUICK)
    assert len(runs) == len(specs) and (runs.seconds > 0).all()
    jobs = len(group_specs(specs, **config["groups"]))
    assert f"Total: {len(specs)} runs in {jobs} training jobs" in report(runs)
    longer = copy.deepcopy(config)
    longer["train"]["steps"] *= 1000  # far beyond the noise of timing the same shapes twice
    assert estimate(longer, configuration.expand(longer), QUICK).seconds.sum() > runs.seconds.sum()


def test_cost_estimate_needs_no_workflow_datasets(tmp_path):
    """A grid tested at extra lengths is costed before the workflow has made those lengths' datasets."""
    config = load("smoke-reproduce")
    specs = configuration.expand(config)
    with_lengths = [{**spec, "eval_data": [str(tmp_path / "missing.npz")]} for spec in specs if spec["eval_data"]]
    assert with_lengths
    runs = estimate(config, with_lengths, QUICK)
    assert len(runs) == len(with_lengths) and (runs.seconds > 0).all()
