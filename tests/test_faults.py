"""Faults a cluster user meets (issue 24): a stop signal at a time limit, a checkpoint that is tampered with or
damaged, a full disk, a gradient that overflows while the loss does not, and two processes on one run folder.
The Snakemake halves (a signalled training job, a second invocation on one output root) are in test_pipeline.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_batched import diverging_group, same_files
from test_train import datasets, make_spec, run_files  # noqa: F401 - datasets is a fixture

from rnngrad import checkpoints
from rnngrad.batched import train_batched
from rnngrad.checkpoints import content_sha256
from rnngrad.contract import RUN_FILES
from rnngrad.run import Run
from rnngrad.train import train, train_group

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def cli_train(folder: Path, specs: list[dict], runs_dir: Path, *flags: str) -> subprocess.Popen:
    """`rnngrad train` on the specs (saved as folder/specs.json) in a child process; output in folder/train.log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "specs.json").write_text(json.dumps(specs))
    command = [sys.executable, "-m", "rnngrad", "train", "--specs", str(folder / "specs.json"), *flags]
    with open(folder / "train.log", "w") as log:  # the child holds its own copy of the descriptor
        return subprocess.Popen([*command, "--runs-dir", str(runs_dir)], stdout=log, stderr=log, env=ENV)


def long_group(datasets, n: int = 2) -> list[dict]:  # noqa: F811
    """Runs long enough to be signalled after a checkpoint; evaluated every 7 steps, so the log shows progress
    between the checkpoints (every 50 steps)."""
    return [
        make_spec(datasets, run_id=f"m{seed}", seed=seed, steps=400, checkpoint_every=50, eval_every=7, hidden=32)
        for seed in range(n)
    ]


def wait_past_checkpoint(process: subprocess.Popen, log: Path, run_dir: Path, every: int = 50) -> int:
    """Wait until run_dir holds a periodic checkpoint (every `every` steps) and the log shows that run at a step
    past it; return the step of that checkpoint."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        steps = [int(s) for s in re.findall(rf"^{run_dir.name}: step (\d+)/", log.read_text(), re.MULTILINE)]
        if (run_dir / "checkpoint.pt").exists() and steps and steps[-1] > every and steps[-1] % every:
            return steps[-1] // every * every
        time.sleep(0.01)
    raise AssertionError(f"the job ended (or hung) before {run_dir.name} passed a checkpoint: make its runs longer")


@pytest.mark.parametrize(("signum", "flags"), [(signal.SIGTERM, ("--sequential",)), (signal.SIGUSR1, ())])
def test_stop_signal_checkpoints_and_the_rerun_loses_no_step(datasets, tmp_path, capsys, signum, flags):  # noqa: F811
    """SIGTERM (a time limit) on the sequential path, SIGUSR1 (SLURM's early --signal) on the batched one: the job
    finishes its step, checkpoints every active run at the step it reached (past the last periodic checkpoint),
    exits with 128 + the signal (failed, for Snakemake), and the rerun resumes from exactly that step and ends with
    the files of an uninterrupted job, byte for byte."""
    specs = long_group(datasets)
    train_group(specs, tmp_path / "clean", stack=not flags)
    runs = tmp_path / "stopped"
    process = cli_train(tmp_path, specs, runs, *flags)
    active = ["m1"] if flags else ["m0", "m1"]  # one after another, m0 has finished when m1 runs
    periodic = wait_past_checkpoint(process, tmp_path / "train.log", runs / active[-1])
    process.send_signal(signum)
    assert process.wait(timeout=60) == 128 + signum
    log = (tmp_path / "train.log").read_text()
    name = signal.Signals(signum).name
    stopped = {int(step) for step in re.findall(rf"stopped by signal {name} at step (\d+)", log)}
    assert len(stopped) == 1 and (step := stopped.pop()) > periodic, log[-2000:]
    for run_id in active:
        assert f"{run_id}: stopped by signal {name} at step {step}" in log
        assert torch.load(runs / run_id / "checkpoint.pt", weights_only=True)["step"] == step
        assert not (runs / run_id / "status.json").exists()
    capsys.readouterr()
    train_group(specs, runs, stack=not flags)
    out = capsys.readouterr().out
    for run_id in active:
        assert f"{run_id}: resumed at step {step} from checkpoint.pt" in out
    for spec in specs:
        assert run_files(runs / spec["run_id"]) == run_files(tmp_path / "clean" / spec["run_id"])


class WritesAFile:
    """Unpickling this opens (creates) a file: what a tampered checkpoint could do with a less harmless call."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def stopped_run(spec: dict, out_dir: Path, steps: int) -> Run:
    """A run trained `steps` steps by the training loop's own parts, as a job would leave it."""
    run = Run(spec, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run.start()
    for _ in range(steps):
        run.before_step()
        run.end_step(run.train_step())
    return run


def test_checkpoint_that_would_run_code_is_refused_and_nothing_in_it_runs(datasets, tmp_path, capsys):  # noqa: F811
    """A run folder's checkpoint.pt replaced by a pickle that would create a file when loaded unsafely: the run
    refuses it (naming it, saying what happens), creates nothing, and trains from step 0 to the clean run's files."""
    spec = make_spec(datasets, steps=20)
    train(spec, tmp_path / "clean")
    run_dir, marker = tmp_path / "run", tmp_path / "written-by-the-checkpoint"
    run_dir.mkdir()
    torch.save({"spec": spec, "step": 10, "payload": WritesAFile(marker)}, run_dir / "checkpoint.pt")
    shutil.copy(run_dir / "checkpoint.pt", tmp_path / "tampered.pt")
    status = train(spec, run_dir)
    assert not marker.exists()
    err = capsys.readouterr().err
    assert f"refused checkpoint {run_dir / 'checkpoint.pt'}" in err and "restarts from its initial state" in err
    assert status["status"] == "completed" and run_files(run_dir) == run_files(tmp_path / "clean")
    torch.load(tmp_path / "tampered.pt", weights_only=False)  # the test's premise: an unsafe load runs it
    assert marker.exists()


def flip_a_byte_in_a_tensor(path: Path) -> None:
    """Flip one bit in the first tensor's data inside the checkpoint's zip archive (stored, uncompressed)."""
    with zipfile.ZipFile(path) as archive:
        info = next(info for info in archive.infolist() if "/data/" in info.filename)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + 5] ^= 0x40
    path.write_bytes(bytes(data))


def test_content_sha256_tells_every_change_of_content_and_nothing_else():
    """The checkpoint's hash: equal content gives equal digests (whichever objects hold it); a changed tensor
    bit, shape or dtype, a changed number, a number's type (1, 1.0, True), a key, or the order of a list changes
    it."""
    rows = [{"loss": 0.5, "split": "train"}, {"loss": 0.25, "split": "test"}]
    state = {"step": 3, "model": {"W": torch.arange(6.0).view(2, 3)}, "rows": rows}
    digest = content_sha256(state)
    copied = {"step": 3, "model": {"W": state["model"]["W"].clone()}, "rows": json.loads(json.dumps(rows))}
    assert content_sha256(copied) == digest
    flipped = torch.arange(6.0).view(2, 3)
    flipped[0, 0] = 1e-45  # the smallest float32 above 0: one bit
    changed = [
        {**state, "model": {"W": flipped}},
        {**state, "model": {"W": torch.arange(6.0).view(3, 2)}},
        {**state, "model": {"W": torch.arange(6.0, dtype=torch.float64).view(2, 3)}},
        {**state, "step": 3.0},
        {**state, "step": True},
        {**state, "steps": 3},
        {**state, "rows": [{"loss": 0.5000000000000001, "split": "train"}, rows[1]]},
        {**state, "rows": rows[::-1]},
    ]
    assert len({content_sha256(other) for other in changed} | {digest}) == len(changed) + 1


@pytest.mark.parametrize("damage", ["truncated", "flipped byte in a tensor", "another file"])
def test_damaged_checkpoint_is_refused_and_the_run_restarts_from_step_0(datasets, tmp_path, capsys, damage):  # noqa: F811
    spec = make_spec(datasets, steps=20)
    train(spec, tmp_path / "clean")
    run_dir = tmp_path / "run"
    run = stopped_run(spec, run_dir, 13)
    checkpoints.save_checkpoint(run)
    path = run_dir / "checkpoint.pt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "flipped byte in a tensor":
        flip_a_byte_in_a_tensor(path)
        assert torch.load(path, weights_only=True)["step"] == 13  # it still loads: only its sha256 tells
    else:
        path.write_text("not a checkpoint")
    capsys.readouterr()
    status = train(spec, run_dir)
    captured = capsys.readouterr()
    assert f"refused checkpoint {path}" in captured.err and "resumed" not in captured.out
    assert status["steps_done"] == 20 and run_files(run_dir) == run_files(tmp_path / "clean")


def test_finite_loss_with_an_infinite_gradient_norm_ends_the_run_before_the_update(datasets, tmp_path):  # noqa: F811
    """test_train's exploding relu run (W = 8 Q, SGD): at step 1 the loss is still finite (~1e28) while the
    gradient norm overflows float32. The run ends diverged at that step with the parameters from before it (those
    of the same run stopped after 1 step); taking the update would diverge one step later, with other files."""
    spec = make_spec(datasets, T=5, activation="relu", scale=8.0, optimizer="sgd", lr=0.1, steps=40)
    status = train(spec, tmp_path / "diverged")
    last = pd.read_parquet(tmp_path / "diverged" / "metrics.parquet").query("split == 'train'").iloc[-1]
    assert abs(last.loss) < float("inf") and last.grad_norm == float("inf")  # the half of the rule under test
    step = int(last.step)
    assert status["status"] == "diverged" and status["diverged_at"] == status["steps_done"] == step > 0
    train({**spec, "steps": step}, tmp_path / "before")
    diverged, before = (torch.load(tmp_path / d / "model_final.pt") for d in ("diverged", "before"))
    assert all(torch.equal(diverged[name], before[name]) for name in before)


def test_batched_member_with_a_finite_loss_and_infinite_gradient_norm_stops_alone(datasets, tmp_path):  # noqa: F811
    """The same on the batched path: the member ends diverged at that step with the parameters of the same member
    stopped after its last good step, and the other members end bit for bit as in a group without it."""
    specs = diverging_group(datasets)
    statuses = train_batched(specs, [tmp_path / f"g{i}" for i in range(3)])
    last = pd.read_parquet(tmp_path / "g0" / "metrics.parquet").query("split == 'train'").iloc[-1]
    assert abs(last.loss) < float("inf") and last.grad_norm == float("inf")
    step = int(last.step)
    assert [s["status"] for s in statuses] == ["diverged", "completed", "completed"]
    assert statuses[0]["diverged_at"] == statuses[0]["steps_done"] == step > 0
    train_batched([{**specs[0], "steps": step}], [tmp_path / "before"])
    diverged, before = (torch.load(tmp_path / d / "model_final.pt") for d in ("g0", "before"))
    assert all(torch.equal(diverged[name], before[name]) for name in before)
    train_batched(specs[1:], [tmp_path / "h1", tmp_path / "h2"])
    assert same_files(tmp_path / "g1", tmp_path / "h1") and same_files(tmp_path / "g2", tmp_path / "h2")


def test_run_folder_locked_by_a_live_job_is_not_written(datasets, tmp_path):  # noqa: F811
    """While a training job trains a group, a second one on the same folders stops before writing, naming the
    folder and the live job (pid and host); the first job ends with the files of an undisturbed one. The first job
    is paused (SIGSTOP) while the second runs: alive and holding its locks however fast its runs train, so the test
    does not race the second job's start-up against the first job's end."""
    specs = long_group(datasets, 3)
    train_group(specs, tmp_path / "clean", stack=False)
    runs = tmp_path / "runs"
    process = cli_train(tmp_path, specs, runs, "--sequential")
    wait_past_checkpoint(process, tmp_path / "train.log", runs / "m0")
    os.kill(process.pid, signal.SIGSTOP)
    try:
        assert cli_train(tmp_path / "second", specs, runs, "--sequential").wait(timeout=120) == 2
    finally:
        os.kill(process.pid, signal.SIGCONT)
    log = (tmp_path / "second" / "train.log").read_text()
    assert f"rnngrad train: {runs / 'm0'} is being written by pid {process.pid} on host" in log
    assert "group of" not in log  # it stopped before looking at the runs
    assert process.wait(timeout=120) == 0
    for spec in specs:
        assert run_files(runs / spec["run_id"]) == run_files(tmp_path / "clean" / spec["run_id"])
        assert sorted(p.name for p in (runs / spec["run_id"]).iterdir()) == sorted(RUN_FILES)  # lock file gone


def test_lock_file_of_a_dead_job_does_not_block(datasets, tmp_path):  # noqa: F811
    from rnngrad.io import LOCK_NAME

    spec = make_spec(datasets, steps=3)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / LOCK_NAME).write_text("pid 1 on host gone\n")  # held by nobody: its process has ended
    assert train_group([spec], tmp_path, stack=False)["runs"][0]["status"] == "completed"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(RUN_FILES)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a filesystem that really runs full (needs root and CAP_SYS_ADMIN to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: cannot make a size-limited filesystem")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root and CAP_SYS_ADMIN): {result.stderr!r}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_fails_the_job_naming_the_path_and_a_rerun_completes(datasets, tmp_path, small_disk):  # noqa: F811
    """Training onto a disk with less space than a run's files fails with the path and the cause, leaves no partial
    file under a final name, and after space is freed the rerun ends with the uninterrupted run's files."""
    spec = make_spec(datasets, run_id="r", steps=30)
    train_group([spec], tmp_path / "clean", stack=False)
    clean = run_files(tmp_path / "clean" / "r")
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - sum(map(len, clean.values())) // 2))
    process = cli_train(tmp_path, [spec], small_disk / "runs", "--sequential")
    assert process.wait(timeout=120) == 2
    log = (tmp_path / "train.log").read_text()
    cause = r"rnngrad train: \[Errno 28\] no space left on the device \(or quota exceeded\)"
    assert re.search(rf"{cause} while writing {small_disk}/runs/r/\S+; nothing was written under that name", log)
    assert "Traceback" not in log
    left = {p.name: p.read_bytes() for p in (small_disk / "runs" / "r").iterdir()}
    assert set(left) < set(RUN_FILES) | {"checkpoint.pt"}  # no temporary file, and not every run file
    assert all(content == clean[name] for name, content in left.items() if name in clean)
    (small_disk / "filler").unlink()
    assert cli_train(tmp_path, [spec], small_disk / "runs", "--sequential").wait(timeout=120) == 0
    assert run_files(small_disk / "runs" / "r") == clean
