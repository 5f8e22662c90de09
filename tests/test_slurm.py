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


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run cmd with the venv's bin first on PATH (the rules call `rnngrad`); fail with its output."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def _snakemake(workdir: Path, *args: str) -> str:
    cmd = ["timeout", "-s", "KILL", str(TIMEOUT_S), str(VENV_BIN / "snakemake")]
    return _run([*cmd, "--configfile", "config/smoke.yaml", "--cores", "2", *args, *TARGETS], cwd=workdir)


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
