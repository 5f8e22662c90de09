"""Training: determinism, divergence as a result, clipping, and resume after SIGKILL with identical metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from rnngrad import tasks
from rnngrad.contract import METHODS_OFF, RUN_FILES
from rnngrad.run import log_steps
from rnngrad.train import train, train_group


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Small adding and copy datasets, generated once for the module."""
    root = tmp_path_factory.mktemp("data")
    paths = {}
    for task, variant, T in (("adding", "le", 20), ("adding", "le", 5), ("copy", "all", 5)):  # noqa: N806
        for split, seed, n in (("train", 1, 256), ("test", 2, 64)):
            path = root / f"{task}-T{T}-{split}.npz"
            tasks.generate_file(path, task, T, n, seed, variant, **({"copy_len": 3} if task == "copy" else {}))
            paths[(task, T, split)] = str(path)
    return paths


def make_spec(datasets, **overrides) -> dict:
    task = overrides.get("task", "adding")
    T = overrides.get("T", 20 if task == "adding" else 5)  # noqa: N806
    spec = {
        "experiment": "test", "run_id": "r", "task": task, "variant": "le" if task == "adding" else "all",
        "task_params": {"copy_len": 3} if task == "copy" else {}, "T": T, "model": "rnn",
        "activation": "tanh", "init": "orthogonal", "scale": 1.0, "clip": None, "seed": 0, "hidden": 16,
        "optimizer": "adam", "lr": 0.01, "momentum": 0.9, "rmsprop_alpha": 0.9, "batch_size": 16, "steps": 30,
        "eval_every": 10, "checkpoint_every": 10, "dtype": "float32", "log_every": None, "log_at": [15],
        "log_spectra_every": None, **METHODS_OFF,
        "log_batch": 8, "jacobian_samples": 2, "targets": ["last"], "device": "cpu", "threads": 1,
        "label": "RNN-tanh", "forget_bias": None, "cell": None,
        "train_data": datasets[(task, T, "train")], "test_data": datasets[(task, T, "test")],
    }  # fmt: skip
    spec.update(overrides)
    return spec


def read_run(out_dir: Path) -> dict[str, pd.DataFrame]:
    names = ["metrics", "gradients", "jacobians", "products", "spectrum"]
    return {name: pd.read_parquet(out_dir / f"{name}.parquet") for name in names}


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_run_writes_every_file_and_logs_at_step_zero(datasets, tmp_path, task):
    status = train(make_spec(datasets, task=task), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RUN_FILES)
    assert status["status"] == "completed" and status["steps_done"] == 30
    frames = read_run(tmp_path)
    assert set(frames["gradients"].step) == {0, 15, 30}
    assert set(frames["jacobians"].step) == {0, 15, 30}
    metrics = frames["metrics"]
    assert list(metrics[metrics.split == "test"].step) == [0, 10, 20, 30]
    assert (metrics[metrics.split == "train"].grad_norm > 0).all()
    state = torch.load(tmp_path / "model_final.pt")
    assert sorted(state) == ["U", "V", "W", "b", "c"]
    assert not torch.equal(state["W"], torch.load(tmp_path / "model_init.pt")["W"])


def test_every_logs_contributions_and_spectra_every_logs_spectra(datasets, tmp_path):
    spec = make_spec(datasets, log_every=10, steps=30)
    train(spec, tmp_path / "a")
    frames = read_run(tmp_path / "a")
    assert set(frames["gradients"].step) == {0, 10, 15, 20, 30}
    for name in ("jacobians", "products", "spectrum"):
        assert set(frames[name].step) == {0, 15, 30}, name
    train({**spec, "log_spectra_every": 20}, tmp_path / "b")
    frames_b = read_run(tmp_path / "b")
    assert set(frames_b["jacobians"].step) == {0, 15, 20, 30}
    for name in ("gradients", "jacobians"):  # the cadence changes what is logged, never the numbers
        logged = frames_b[name][frames_b[name].step.isin(set(frames[name].step))].reset_index(drop=True)
        pd.testing.assert_frame_equal(logged, frames[name], check_exact=True)


def test_same_spec_and_seed_give_identical_files(datasets, tmp_path):
    spec = make_spec(datasets)
    train(spec, tmp_path / "a")
    train(spec, tmp_path / "b")
    for name, frame in read_run(tmp_path / "a").items():
        pd.testing.assert_frame_equal(frame, read_run(tmp_path / "b")[name], check_exact=True)
    other = make_spec(datasets, seed=1)
    train(other, tmp_path / "c")
    assert not read_run(tmp_path / "a")["metrics"].equals(read_run(tmp_path / "c")["metrics"])


def test_exploding_relu_diverges_cleanly_and_clipping_prevents_it(datasets, tmp_path):
    """relu with W = 8 Q: finite at first (T = 5), then SGD's huge steps blow it up to Inf/NaN, which is recorded,
    not raised; with clipping the same run stays finite."""
    spec = make_spec(datasets, T=5, activation="relu", scale=8.0, optimizer="sgd", lr=0.1, steps=40)
    status = train(spec, tmp_path / "free")
    assert status["status"] == "diverged" and "solved" not in status
    assert 0 < status["diverged_at"] == status["steps_done"] < 40
    metrics = pd.read_parquet(tmp_path / "free" / "metrics.parquet")
    last = metrics[metrics.split == "train"].iloc[-1]
    assert not (pd.notna(last.loss) and abs(last.loss) < float("inf") and abs(last.grad_norm) < float("inf"))
    assert set(pd.read_parquet(tmp_path / "free" / "gradients.parquet").step) >= {0}

    clipped = train({**spec, "clip": 1.0}, tmp_path / "clipped")
    assert clipped["status"] == "completed"
    train_rows = pd.read_parquet(tmp_path / "clipped" / "metrics.parquet").query("split == 'train'")
    assert train_rows.clipped.any() and train_rows.loss.notna().all()


def test_log_steps_always_include_start_and_end():
    spec = {"steps": 100, "log_at": [7, 500], "log_every": 40, "log_spectra_every": None}
    assert log_steps(spec) == {0: True, 7: True, 40: False, 80: False, 100: True}
    assert log_steps({**spec, "log_every": None}) == {0: True, 7: True, 100: True}
    assert log_steps({**spec, "log_every": 25, "log_spectra_every": 50}) == {
        0: True, 7: True, 25: False, 50: True, 75: False, 100: True
    }  # fmt: skip


def run_files(out_dir: Path) -> dict[str, bytes]:
    return {name: (out_dir / name).read_bytes() for name in RUN_FILES}


def test_group_members_write_the_files_they_write_alone(datasets, tmp_path):
    """The sequential group path: every member's files equal, byte for byte, those of the run trained alone."""
    specs = [
        make_spec(datasets, run_id=f"g{scale}", scale=scale, activation=activation, steps=12)
        for scale, activation in ((0.5, "tanh"), (2.0, "relu"), (1.0, "sigmoid"))
    ]
    status = train_group(specs, tmp_path / "group", stack=False)
    assert [m["path"] for m in status["runs"]] == ["sequential"] * 3
    assert [m["run_id"] for m in status["runs"]] == ["g0.5", "g2.0", "g1.0"]
    assert not any(m["kept"] for m in status["runs"])
    for spec in specs:
        train(spec, tmp_path / "alone" / spec["run_id"])
        assert run_files(tmp_path / "group" / spec["run_id"]) == run_files(tmp_path / "alone" / spec["run_id"])


def test_group_keeps_current_members_and_retrains_changed_or_damaged_ones(datasets, tmp_path):
    specs = [make_spec(datasets, run_id=f"s{seed}", seed=seed, steps=8) for seed in (0, 1, 2)]
    train_group(specs, tmp_path, stack=False)
    before = {spec["run_id"]: run_files(tmp_path / spec["run_id"]) for spec in specs}
    (tmp_path / "s1" / "metrics.parquet").write_bytes(b"damaged")
    specs[2] = {**specs[2], "lr": 0.02}
    status = train_group(specs, tmp_path, stack=False)
    assert [m["kept"] for m in status["runs"]] == [True, False, False]
    assert run_files(tmp_path / "s0") == before["s0"] and run_files(tmp_path / "s1") == before["s1"]
    assert run_files(tmp_path / "s2") != before["s2"]


def test_group_takes_the_batched_path_where_it_is_faster(datasets, tmp_path):
    specs = [make_spec(datasets, run_id=f"s{seed}", seed=seed, steps=8) for seed in (0, 1, 2)]
    assert [m["path"] for m in train_group(specs, tmp_path)["runs"]] == ["batched"] * 3
    assert train_group(specs, tmp_path)["runs"] == [
        {"run_id": s["run_id"], "status": "completed", "kept": True, "path": None} for s in specs
    ]
    big = [make_spec(datasets, run_id=f"b{seed}", seed=seed, steps=2, hidden=128, batch_size=64) for seed in (0, 1)]
    paths = [m["path"] for m in train_group(big, tmp_path)["runs"]]
    assert paths == ["sequential"] * 2  # hidden x batch above the batched path's limit


def test_packed_group_trains_each_cell_as_its_own_group_would(datasets, tmp_path):
    """A group packing several cells (groups.pack_cells) stacks the runs that share their shapes, interleaved
    or not, trains a lone run of its part one after another, and every member's files equal those of the cell's
    own group, byte for byte."""
    tanh = [make_spec(datasets, run_id=f"tanh{seed}", seed=seed, steps=6) for seed in (0, 1)]
    relu = [make_spec(datasets, run_id=f"relu{seed}", seed=seed, steps=6, activation="relu") for seed in (0, 1)]
    copy = [make_spec(datasets, run_id="copy0", steps=6, task="copy")]
    packed = [tanh[0], relu[0], copy[0], tanh[1], relu[1]]
    status = train_group(packed, tmp_path / "packed")
    paths = {m["run_id"]: m["path"] for m in status["runs"]}
    assert paths == {"tanh0": "batched", "relu0": "batched", "copy0": "sequential", "tanh1": "batched",
                     "relu1": "batched"}  # fmt: skip
    assert [m["run_id"] for m in status["runs"]] == [s["run_id"] for s in packed]
    for cell in (tanh, relu, copy):
        train_group(cell, tmp_path / "cells")
        for spec in cell:
            assert run_files(tmp_path / "packed" / spec["run_id"]) == run_files(tmp_path / "cells" / spec["run_id"])


def test_group_resumes_after_sigkill_with_identical_files(datasets, tmp_path):
    """Kill a group's process (the sequential path) once its second member has written a checkpoint, and delete
    model_init.pt, as Snakemake deleted it when it was a declared output; the rerun keeps the first member, resumes
    the second from its checkpoint, and every file equals those of an uninterrupted group, byte for byte."""
    specs = [
        make_spec(datasets, run_id=f"m{seed}", seed=seed, steps=400, checkpoint_every=50, eval_every=50, hidden=32)
        for seed in (0, 1)
    ]
    (tmp_path / "specs.json").write_text(json.dumps(specs))
    train_group(specs, tmp_path / "clean", stack=False)
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "rnngrad", "train", "--sequential", "--specs", str(tmp_path / "specs.json")]
    process = subprocess.Popen(
        [*command, "--runs-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = killed / "m1" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    process.wait()
    assert checkpoint.exists(), "the group ended before its second member's first checkpoint: make it longer"
    assert not (killed / "m1" / "status.json").exists()
    resumed_from = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < resumed_from < 400
    (killed / "m1" / "model_init.pt").unlink()
    status = train_group(specs, killed, stack=False)
    assert [m["kept"] for m in status["runs"]] == [True, False]
    assert not checkpoint.exists()
    for spec in specs:
        assert run_files(killed / spec["run_id"]) == run_files(tmp_path / "clean" / spec["run_id"])


def test_checkpoint_of_another_spec_is_not_resumed(datasets, tmp_path):
    spec = make_spec(datasets, steps=20)
    train(spec, tmp_path / "a")
    changed = {**spec, "lr": 0.02}
    torch.save({"spec": spec, "step": 10}, tmp_path / "b.pt")
    (tmp_path / "b").mkdir()
    (tmp_path / "b.pt").rename(tmp_path / "b" / "checkpoint.pt")
    status = train(changed, tmp_path / "b")
    assert status["steps_done"] == 20


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_every_optimizer_and_model_trains(datasets, tmp_path, optimizer):
    status = train(make_spec(datasets, optimizer=optimizer, steps=5), tmp_path / optimizer)
    assert status["status"] == "completed"


def test_lstm_logs_every_table_through_the_generic_decomposition(datasets, tmp_path):
    spec = make_spec(datasets, model="lstm", activation=None, init=None, scale=None, label="LSTM", steps=5)
    train(spec, tmp_path)
    grads = pd.read_parquet(tmp_path / "gradients.parquet")
    assert (grads.dLdh_norm > 0).all() and (grads.weight == "W_hh").all()
    assert (grads.contribution_norm[grads.k > 1] > 0).all()
    jacobians = pd.read_parquet(tmp_path / "jacobians.parquet")
    assert (jacobians.jac_norm > 0).all() and jacobians.deriv_mean.isna().all()


def test_adding_training_reduces_the_loss(datasets, tmp_path):
    status = train(make_spec(datasets, steps=150, lr=0.01), tmp_path)
    metrics = pd.read_parquet(tmp_path / "metrics.parquet").query("split == 'test'")
    assert status["final_loss"] < metrics.loss.iloc[0]


SUCCESS = {"adding": 0.01, "copy": 0.99}


def test_solved_is_decided_when_tables_are_built(datasets, tmp_path):
    """status.json holds no verdict; the runs table applies the thresholds given, so changing one retrains
    nothing."""
    from rnngrad import tables
    from rnngrad.config import ConfigError

    status = train(make_spec(datasets, steps=5), tmp_path)
    assert "solved" not in status and "solved_mse_fraction" not in make_spec(datasets)
    ratio = status["final_metric"] / status["baseline_loss"]
    assert not tables.read_run(tmp_path, {"adding": ratio / 2})[0].solved.item()
    assert tables.read_run(tmp_path, {"adding": ratio * 2})[0].solved.item()
    with pytest.raises(ConfigError, match="no success criterion for task 'adding'"):
        tables.read_run(tmp_path, {"copy": 0.99})[0]


def test_modified_run_file_is_detected_with_the_fix(datasets, tmp_path):
    from rnngrad import tables

    train(make_spec(datasets, steps=5), tmp_path)
    assert len(tables.read_run(tmp_path, SUCCESS)[0]) == 1
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    metrics.loc[0, "loss"] = 0.0
    metrics.to_parquet(tmp_path / "metrics.parquet")
    with pytest.raises(tables.RunFileError, match="metrics.parquet.*delete .* and rerun snakemake"):
        tables.read_run(tmp_path, SUCCESS)[0]


@pytest.mark.parametrize(("model", "cell"), [("gru", None), ("lru", None), ("torchgru", "torch.nn:GRUCell")])
def test_every_cell_trains_and_logs_its_contributions(datasets, tmp_path, model, cell):
    spec = make_spec(datasets, model=model, cell=cell, activation=None, init=None, scale=None, label=model, steps=3)
    assert train(spec, tmp_path)["status"] == "completed"
    frames = read_run(tmp_path)
    assert (frames["gradients"].contribution_norm[frames["gradients"].k > 1] > 0).all()
    assert (frames["products"].product_norm > 0).all() and frames["spectrum"].lyapunov_qr.notna().all()
