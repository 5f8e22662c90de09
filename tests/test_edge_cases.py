"""Numerical edge cases and arbitrary schema-valid runs end in a recorded result, never a crash."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_train import make_spec

from rnngrad import tasks
from rnngrad.train import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Datasets for every (task, T) the cases below use, including all-zero adding inputs."""
    root = tmp_path_factory.mktemp("tiny")
    paths = {}
    for task, variant, T in (("copy", "all", 1), ("copy", "all", 3), ("adding", "le", 2), ("adding", "le", 6)):  # noqa: N806
        for split, seed in (("train", 1), ("test", 2)):
            path = root / f"{task}-T{T}-{split}.npz"
            tasks.generate_file(path, task, T, 16, seed, variant, **({"copy_len": 2} if task == "copy" else {}))
            paths[(task, T, split)] = str(path)
    arrays = tasks.load_arrays(paths[("adding", 6, "train")])
    arrays["x"][:] = 0.0
    zero = root / "adding-zero.npz"
    tasks.save(zero, arrays, {"task": "adding", "variant": "le", "T": 6, "n": 16, "seed": 1})
    paths[("adding", "zero", "train")] = paths[("adding", "zero", "test")] = str(zero)
    return paths


def spec_for(data, task, T, **overrides):  # noqa: N803
    key = T
    spec = make_spec({(task, T, s): data[(task, key, s)] for s in ("train", "test")}, task=task, T=T, **overrides)
    return spec | {"task_params": {"copy_len": 2} if task == "copy" else {}, "steps": overrides.get("steps", 4)}


def assert_recorded(status, out_dir):
    assert status["status"] in ("completed", "diverged")
    metrics = pd.read_parquet(out_dir / "metrics.parquet")
    assert len(metrics) >= 1
    if status["status"] == "diverged":
        assert status["diverged_at"] is not None
    else:
        assert math.isfinite(status["final_loss"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"task": "copy", "T": 1},
        {"task": "adding", "T": 2, "hidden": 1},
        {"task": "adding", "T": 6, "batch_size": 1, "log_batch": 1, "jacobian_samples": 1},
        {"task": "adding", "T": 6, "scale": 1e3, "activation": "relu"},
        {"task": "adding", "T": 6, "scale": 1e3, "activation": "tanh"},
        {"task": "adding", "T": 6, "scale": 1e-6, "activation": "sigmoid"},
        {"task": "adding", "T": 6, "scale": 1e-6, "init": "gaussian"},
        {"task": "adding", "T": 6, "init": "identity", "activation": "relu", "scale": 50.0, "lr": 10.0},
        {"task": "copy", "T": 3, "dtype": "float64", "optimizer": "momentum", "lr": 5.0},
        # every update finite, but the last one sends the test loss to Inf (found by the property test below)
        {
            "task": "adding",
            "T": 6,
            "activation": "relu",
            "scale": 0.25,
            "hidden": 3,
            "batch_size": 1,
            "lr": 4.0,
            "optimizer": "sgd",
            "steps": 3,
            "log_at": [1],
        },
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_edge_cases_end_in_a_recorded_result(tiny_data, tmp_path, overrides):
    task, T = overrides.pop("task"), overrides.pop("T")  # noqa: N806
    status = train(spec_for(tiny_data, task, T, **overrides), tmp_path)
    assert_recorded(status, tmp_path)


def test_all_zero_inputs_run(tiny_data, tmp_path):
    spec = make_spec(
        {("adding", 6, s): tiny_data[("adding", "zero", s)] for s in ("train", "test")}, task="adding", T=6, steps=4
    )
    status = train(spec, tmp_path)
    assert status["status"] == "completed"
    grads = pd.read_parquet(tmp_path / "gradients.parquet")
    assert (grads.query("step == 0").contribution_norm == 0).all()  # b = 0 and no input: h stays 0 at first
    assert (grads.contribution_norm_U == 0).all()  # x = 0: U never gets a gradient
    assert (grads.query("step == 4").contribution_norm > 0).any()  # once b has learnt, h moves


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    task_T=st.sampled_from([("copy", 1), ("copy", 3), ("adding", 2), ("adding", 6)]),
    activation=st.sampled_from(["tanh", "sigmoid", "relu"]),
    init=st.sampled_from(["orthogonal", "gaussian", "identity"]),
    scale=st.floats(1e-6, 1e3),
    hidden=st.integers(1, 6),
    batch_size=st.integers(1, 8),
    optimizer=st.sampled_from(["sgd", "momentum", "rmsprop", "adam"]),
    lr=st.floats(1e-5, 10.0),
    clip=st.one_of(st.none(), st.floats(1e-3, 10.0)),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_any_schema_valid_run_records_a_result(tiny_data, tmp_path_factory, task_T, **hyper):
    task, T = task_T  # noqa: N806
    out_dir = tmp_path_factory.mktemp("run")
    status = train(spec_for(tiny_data, task, T, steps=3, log_at=[1], **hyper), out_dir)
    assert_recorded(status, out_dir)
