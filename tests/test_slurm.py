"""The cluster path end to end: a real one-node SLURM (scripts/slurm/up.sh) runs the smoke pipeline through
workflow/profiles/slurm, every non-local job must go through sbatch, and the results must equal a local run's.

Needs root (or passwordless sudo) and apt-get: up.sh installs slurm and munge when they are missing."""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_workflow

from rnngrad import config as configuration

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "slurm"
VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 600  # a hung workflow is killed (SIGKILL) rather than blocking CI

# No slurmdbd here, so `sacct` fails and the plugin would wait forever on it: ask squeue instead (it sees
# finished jobs for MinJobAge, 600 s in up.sh's slurm.conf), and check 2 s after submission, not 40 s.
SLURM_FLAGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
# Every kind of rule (generate, train, tables, figure_*) on the smallest smoke experiment: each SLURM job
# starts its own snakemake, so the whole smoke grid would take many minutes on two cores.
TARGETS = ["figures/smoke/scalar_case.png"]


def _root_prefix() -> list[str] | None:
    """The command prefix that runs as root ([] or sudo), or None where packages cannot be installed."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n"]
    return None


# the venv's bin first on PATH: the rules call `rnngrad`
ENV = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run cmd with :data:`ENV`; fail with its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-6000:]}"
    return proc.stdout


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node cluster for the session; down.sh runs at teardown whatever happened before."""
    prefix = _root_prefix()
    if prefix is None:
        reason = "bringing up SLURM needs apt-get and root (or passwordless sudo) to install slurm and munge"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)
    run_dir = tmp_path_factory.mktemp("slurm")
    try:
        _run([*prefix, str(SCRIPTS / "up.sh"), str(run_dir)])
        yield run_dir
    finally:
        subprocess.run([*prefix, str(SCRIPTS / "down.sh"), str(run_dir)], timeout=120)


def _snakemake_command(configfile: str, *args: str) -> list[str]:
    cmd = ["timeout", "-s", "KILL", str(TIMEOUT_S), str(VENV_BIN / "snakemake")]
    return [*cmd, "--configfile", configfile, "--cores", "2", *args]


def _snakemake(workdir: Path, *args: str) -> str:
    return _run([*_snakemake_command("config/smoke.yaml", *args), *TARGETS], cwd=workdir)


def _submitted_jobs(log: str) -> collections.Counter:
    """Jobs per rule that snakemake planned to submit: its 'Job stats' table less the local rules."""
    table = re.search(r"Job stats:\n.*\n[- ]+\n(.*?)\ntotal", log, re.S)
    assert table, f"no job stats in the snakemake output:\n{log[-3000:]}"
    counts = collections.Counter({rule: int(n) for rule, n in (row.split() for row in table[1].splitlines())})
    for rule in set(re.findall(r"^localrule (\S+):", log, re.M)):
        del counts[rule]
    return counts


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and ".snakemake" not in p.parts}


def test_slurm_run_equals_local_run(slurm_cluster, tmp_path):
    cluster = copy_workflow(tmp_path / "cluster")
    log = _snakemake(cluster, "--profile", "workflow/profiles/slurm", *SLURM_FLAGS)

    # Every job that is not a local rule ran as a SLURM job of this workflow run and completed.
    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    squeue = _run(["squeue", "--states=all", "--noheader", "--name", run_id, "--format=%T|%k"])
    assert {line.split("|")[0] for line in squeue.splitlines()} == {"COMPLETED"}, squeue
    ran = collections.Counter(
        re.match(r"rule_(.+?)(_wildcards_|$)", line.split("|")[1])[1] for line in squeue.splitlines()
    )
    assert ran == _submitted_jobs(log) and ran["train"] > 0

    local = copy_workflow(tmp_path / "local")
    _snakemake(local)
    assert _files(cluster) == _files(local)
    metrics = sorted((cluster / "results" / "smoke" / "runs").rglob("metrics.parquet"))
    scalar_runs = [s for s in configuration.expand(configuration.load(ROOT / "config" / "smoke.yaml"))
                   if s["experiment"] == "scalar"]  # fmt: skip
    assert len(metrics) == len(scalar_runs)
    for path in sorted((cluster / "results").rglob("*.parquet")):
        relative = path.relative_to(cluster)
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(local / relative), check_exact=True)


# The recipe of docs/scaling-out.md ("A reproduction's paper budget"), at a tiny budget: section 4.1.1's paper tier
# (10 runs, one stacked job, trained on lengths 50-200, tested at lengths up to 5000), 400 steps a run.
REHEARSAL = [
    ["tier", "config/reproduce/pascanu2013_s411.yaml", "paper", "--out", "results/tiers/paper.yaml"],
    ["miniature", "results/tiers/paper.yaml", "--steps", "400", "--out", "results/tiers/rehearsal.yaml"],
]
REHEARSAL_NAME = "reproduce-pascanu2013_s411-paper-tiny"


def _prepare_rehearsal(workdir: Path) -> Path:
    copy_workflow(workdir)
    for command in REHEARSAL:
        _run([str(VENV_BIN / "python"), "-m", "rnngrad", *command], cwd=workdir)
    return workdir


def _stop_training_after_its_first_checkpoint(workdir: Path, process: subprocess.Popen) -> str:
    """What a time limit does (the profile's --signal=TERM@120): SIGTERM to the running training job's steps, sent
    once a checkpoint exists; returns the SLURM job id signalled."""
    runs = workdir / "results" / REHEARSAL_NAME / "runs"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if any(runs.rglob("checkpoint.pt")):
            running = _run(["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"]).splitlines()
            train = [line.split("|")[0] for line in running if line.split("|")[1].startswith("rule_train")]
            if train:
                _run(["scancel", "--signal=TERM", train[0]])
                return train[0]
        time.sleep(0.2)
    raise AssertionError(f"no training job was running with a checkpoint (snakemake exited {process.poll()})")


def test_a_paper_tier_rehearsed_on_slurm_survives_a_time_limit_signal_and_ends_in_the_local_report(
    slurm_cluster, tmp_path
):
    """The paper-budget recipe on the one-node cluster: its training job is signalled as at a time limit after its
    first checkpoint, fails, is resubmitted by the profile's retries, resumes, and the report, verdicts and tables
    equal those of an uninterrupted local run."""
    cluster = _prepare_rehearsal(tmp_path / "cluster")
    command = _snakemake_command("results/tiers/rehearsal.yaml", "--profile", "workflow/profiles/slurm", *SLURM_FLAGS)
    with subprocess.Popen(
        command, cwd=cluster, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        signalled = _stop_training_after_its_first_checkpoint(cluster, process)
        log = process.communicate()[0]
    assert process.returncode == 0, log[-6000:]

    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    squeue = _run(["squeue", "--states=all", "--noheader", "--name", run_id, "--format=%i|%T|%k"]).splitlines()
    train_jobs = {
        job: state for job, state, comment in (line.split("|") for line in squeue) if comment.startswith("rule_train")
    }
    assert train_jobs.pop(signalled) == "FAILED" and set(train_jobs.values()) == {"COMPLETED"}, squeue
    train_log = (cluster / "logs" / REHEARSAL_NAME / "train" / "s411" / "packed" / "g0.log").read_text()
    resumed = {int(step) for step in re.findall(r"resumed at step (\d+) from checkpoint.pt", train_log)}
    assert len(resumed) == 1 and 100 <= resumed.pop() < 400, train_log[-3000:]

    local = _prepare_rehearsal(tmp_path / "local")
    _run(_snakemake_command("results/tiers/rehearsal.yaml"), cwd=local)
    figures = Path("figures") / REHEARSAL_NAME
    for name in ("reproduction.md", "verdicts.json"):
        assert (cluster / figures / name).read_text() == (local / figures / name).read_text()
    tables = sorted((cluster / "results" / REHEARSAL_NAME).rglob("*.parquet"))
    assert tables and _files(cluster / "results") == _files(local / "results")
    for path in tables:
        relative = path.relative_to(cluster)
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(local / relative), check_exact=True)
