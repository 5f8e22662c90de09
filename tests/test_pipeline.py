"""The real Snakemake pipeline on config/smoke.yaml in a temporary directory, plus dry runs, lint and format."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow

from rnngrad import config as configuration
from rnngrad import tasks
from rnngrad.contract import RUN_FILES
from rnngrad.figures import figure_module, figure_tables, module_name
from rnngrad.groups import group_specs

BIN = Path(sys.executable).parent
RESULTS = Path("results", "smoke")  # smoke.yaml's output roots
FIGURES = Path("figures", "smoke")
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2", *args]
    result = subprocess.run(command, cwd=workdir, env=env or ENV, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Path:
    """The whole smoke pipeline, run once for every test here."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--configfile", "config/smoke.yaml")
    return workdir


def smoke_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


@pytest.mark.slow
def test_smoke_pipeline_renders_every_figure(smoke):
    for figure in smoke_config()["figures"]:
        png, pdf = smoke / FIGURES / f"{figure}.png", smoke / FIGURES / f"{figure}.pdf"
        assert png.stat().st_size > 10_000, figure
        assert pdf.stat().st_size > 5_000, figure
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_smoke_pipeline_writes_every_run_file_and_tidy_tables(smoke):
    config = smoke_config()
    specs = configuration.expand(config)
    for spec in specs:
        run_dir = smoke / RESULTS / "runs" / spec["experiment"] / spec["run_id"]
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)
        assert 0 in set(pd.read_parquet(run_dir / "gradients.parquet").step)
    for experiment in config["experiments"]:
        tables = smoke / RESULTS / "tables" / experiment
        runs = pd.read_parquet(tables / "runs.parquet")
        assert len(runs) == sum(s["experiment"] == experiment for s in specs)
        gradients = pd.read_parquet(tables / "gradients.parquet")
        assert {"run_id", "activation", "scale", "T", "seed", "step", "k", "contribution_norm"} <= set(gradients)
        assert set(gradients.run_id) == set(runs.run_id)
        metrics = pd.read_parquet(tables / "metrics.parquet")
        assert len(metrics) > len(runs) and {"train", "test"} <= set(metrics.split)
    lengths = pd.read_parquet(smoke / RESULTS / "tables" / "methods" / "lengths.parquet")
    assert sorted(set(lengths.length)) == [8, 20] and set(lengths.regularizer) == {0.0, 2.0}


@pytest.mark.slow
def test_summary_puts_fitted_rates_beside_theory(smoke):
    text = (smoke / RESULTS / "summary.md").read_text()
    assert "Fitted rates against theory" in text and "| scales " in text
    assert "0 violations" in text  # no measured product norm exceeds (gamma sigma_max)^d


@pytest.mark.slow
def test_nothing_to_do_on_a_rerun(smoke):
    result = snakemake(smoke, "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_jobs(workdir: Path, *args: str, env: dict | None = None) -> dict[str, int]:
    """Jobs a dry run would run, by rule (Snakemake's "Job stats" table)."""
    result = snakemake(workdir, "-n", "--quiet", "rules", *args, env=env)
    text = result.stdout + result.stderr
    table = text[text.index("Job stats:") :].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


@pytest.mark.slow
def test_changed_hyperparameter_reruns_exactly_its_runs(smoke, tmp_path):
    config = smoke_config()
    config["experiments"]["clipping"]["train"]["lr"] = 0.02
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    specs = configuration.expand(config)
    clipping_groups = [key for key in group_specs(specs, **config["groups"]) if key[0] == "clipping"]
    expected = {"train": len(clipping_groups), "tables": 1, "figure_clipping": 1, "summary": 1, "manifest": 1, "all": 1}
    assert planned_jobs(smoke, "--configfile", str(changed)) == expected


@pytest.mark.slow
def test_report_builds_offline(smoke):
    snakemake(smoke, "--configfile", "config/smoke.yaml", "--report", "report.html")
    html = (smoke / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "contributions" in html


@pytest.mark.slow
def test_figure_rule_depends_only_on_its_module_and_tables(smoke):
    """Changing one figure's module re-renders that figure (and the manifest that lists it), nothing else."""
    module = smoke / "src" / "rnngrad" / "figures" / "saturation.py"
    original = module.read_text()
    module.write_text(original + "# a changed line\n")
    try:
        planned = planned_jobs(smoke, "--configfile", "config/smoke.yaml")
    finally:
        module.write_text(original)
    assert planned == {"figure_saturation": 1, "manifest": 1, "all": 1}


def test_bad_config_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = smoke_config()
    config["train"]["learning_rate"] = 0.1
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "learning_rate" in result.stderr + result.stdout
    assert not (workdir / "results").exists()


def test_default_config_plans(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", "--quiet", "rules")
    assert "train" in result.stdout and "figure_contributions" in result.stdout


def test_snakemake_lint_is_clean(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = subprocess.run(
        [str(BIN / "snakemake"), "--lint", "--configfile", "config/smoke.yaml"],
        cwd=workdir, env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_and_ruff_are_clean():
    for command in (
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
    ):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_every_configured_figure_has_a_rule_a_caption_and_a_readme_line(tmp_path):
    workdir = copy_workflow(tmp_path)
    rules = subprocess.run(
        [str(BIN / "snakemake"), "--list-rules"], cwd=workdir, env=ENV, capture_output=True, text=True, check=True
    ).stdout.split()
    figures_readme = (ROOT / "figures" / "README.md").read_text()
    for name in yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["figures"]:
        assert f"figure_{name}" in rules
        assert figure_tables(name) == tuple(figure_module(name).TABLES)  # read without import == imported
        assert (ROOT / "workflow" / "report" / f"{module_name(name)}.rst").read_text().strip()
        assert f"| `{name}` |" in figures_readme


def read_tables(workdir: Path) -> dict[str, pd.DataFrame]:
    tables = workdir.glob(f"{RESULTS}/tables/*/*")
    return {path.relative_to(workdir).as_posix(): pd.read_parquet(path) for path in tables}


def start_smoke_workflow(tmp_path: Path) -> tuple[Path, subprocess.Popen]:
    """The smoke workflow copied into tmp_path and started in the background, in its own process group (so that a
    test can signal the whole of it)."""
    workdir = copy_workflow(tmp_path)
    command = [str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2"]
    command += ["--configfile", "config/smoke.yaml"]
    process = subprocess.Popen(
        command, cwd=workdir, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    return workdir, process


@pytest.mark.slow
def test_killed_workflow_reruns_to_the_same_outputs(smoke, tmp_path):
    """SIGKILL the whole workflow once a run has written a checkpoint (smoke's `lengths` runs are long enough);
    after --unlock the rerun resumes that run from its checkpoint, completes, and every table equals those of the
    uninterrupted smoke run, exactly; no half-written file is left under a final name."""
    workdir, process = start_smoke_workflow(tmp_path)
    deadline = time.monotonic() + 300
    while not list(workdir.glob(f"{RESULTS}/runs/lengths/**/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list(workdir.glob(f"{RESULTS}/runs/lengths/**/checkpoint.pt")), "no checkpoint when killed"
    assert not (workdir / RESULTS / "summary.md").exists(), "the workflow ended before it was killed"
    snakemake(workdir, "--configfile", "config/smoke.yaml", "--unlock")  # a killed Snakemake leaves its lock
    snakemake(workdir, "--configfile", "config/smoke.yaml")
    logs = "".join(path.read_text() for path in workdir.glob("logs/smoke/train/lengths/**/*.log"))
    assert "resumed at step" in logs
    assert not list(workdir.glob(f"{RESULTS}/runs/**/checkpoint.pt"))
    clean, resumed = read_tables(smoke), read_tables(workdir)
    assert sorted(resumed) == sorted(clean)
    for name, frame in clean.items():
        pd.testing.assert_frame_equal(resumed[name], frame, check_exact=True, obj=name)
    for name in smoke_config()["figures"]:
        assert (workdir / FIGURES / f"{name}.png").stat().st_size > 10_000


def training_job(workdir: Path, root_pid: int, experiment: str) -> int | None:
    """The pid of a `rnngrad train` process under root_pid (Snakemake) training a group of `experiment` one of
    whose runs holds a checkpoint, read from /proc; None when there is none."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # the process ended meanwhile
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[1:4] != ["-m", "rnngrad", "train"] or f"/groups/{experiment}/" not in argv[argv.index("--specs") + 1]:
            continue
        specs = json.loads((workdir / argv[argv.index("--specs") + 1]).read_text())
        if any((workdir / RESULTS / "runs" / experiment / s["run_id"] / "checkpoint.pt").exists() for s in specs):
            return pid
    return None


@pytest.mark.slow
def test_sigterm_to_a_training_job_loses_no_step_and_a_second_snakemake_is_refused(smoke, tmp_path):
    """SIGTERM to a training job between checkpoints (what a time limit sends first): the job checkpoints each
    active run at the step it reached and fails, Snakemake goes on with the other jobs and ends failed, and the
    rerun resumes those runs at exactly those steps, ending with the uninterrupted run's tables. Meanwhile a second
    Snakemake on the same output root is refused by Snakemake's lock."""
    workdir, process = start_smoke_workflow(tmp_path)
    deadline = time.monotonic() + 300
    while (pid := training_job(workdir, process.pid, "lengths")) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pid is not None, "no lengths training job with a checkpoint was seen"
    time.sleep(0.5)  # on into the steps after the checkpoint (350 of them are left, at about 50 steps/s or more)
    os.kill(pid, signal.SIGTERM)
    second = snakemake(workdir, "--configfile", "config/smoke.yaml", check=False)
    running = process.poll() is None
    assert process.wait(timeout=600) != 0, "the signalled job was taken as done"
    assert running and second.returncode != 0 and "Directory cannot be locked" in second.stdout + second.stderr
    logs = "".join(path.read_text() for path in workdir.glob("logs/smoke/train/lengths/**/*.log"))
    stopped = re.findall(r"^(\S+): stopped by signal SIGTERM at step (\d+)", logs, re.MULTILINE)
    assert stopped, logs[-3000:]
    snakemake(workdir, "--configfile", "config/smoke.yaml")
    logs = "".join(path.read_text() for path in workdir.glob("logs/smoke/train/lengths/**/*.log"))
    for run_id, step in stopped:
        assert f"{run_id}: resumed at step {step} from checkpoint.pt" in logs
    clean, resumed = read_tables(smoke), read_tables(workdir)
    assert sorted(resumed) == sorted(clean)
    for name, frame in clean.items():
        pd.testing.assert_frame_equal(resumed[name], frame, check_exact=True, obj=name)


@pytest.mark.slow
def test_manifest_lists_every_figure_with_the_config_hash(smoke):
    from rnngrad.io import file_sha256, read_json
    from rnngrad.manifest import config_sha256

    manifest = read_json(smoke / FIGURES / "manifest.json")
    assert manifest["config_sha256"] == config_sha256(smoke_config())
    assert sorted(manifest["figures"]) == sorted(smoke_config()["figures"])
    for name, entry in manifest["figures"].items():
        assert entry["png"] == file_sha256(smoke / FIGURES / f"{name}.png")
        assert len(entry["runs_code_sha256"]) == (1 if entry["experiment"] else 0)
    assert {"python", "matplotlib"} <= set(manifest["provenance"]) and "git_commit" not in manifest["provenance"]


@pytest.mark.slow
def test_tables_killed_while_writing_leave_no_half_written_file(smoke, tmp_path):
    """SIGKILL `rnngrad tables` at a spread of moments: every table present afterwards is complete and equal to
    the finished one (atomic rename), and the rerun writes them all."""
    specs = [s for s in configuration.expand(smoke_config()) if s["experiment"] == "scales"]
    run_dirs = [str(smoke / RESULTS / "runs" / "scales" / s["run_id"]) for s in specs]
    finished = {p.name: pd.read_parquet(p) for p in (smoke / RESULTS / "tables" / "scales").glob("*.parquet")}
    out = tmp_path / "tables"
    success = json.dumps(tasks.success_criteria(smoke_config()["tasks"]))
    command = [sys.executable, "-m", "rnngrad", "tables", "--out-dir", str(out), "--success", success, *run_dirs]
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for path in out.glob("*.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(path), finished[path.name], check_exact=True)
    subprocess.run(command, env=ENV, check=True, capture_output=True)
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(finished)
