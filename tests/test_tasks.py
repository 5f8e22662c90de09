"""The task package: the registry, parameter checks and the save guard; each task's semantics are in
test_task_{name}.py and the checks every task must pass in test_task_conformance.py."""

from __future__ import annotations

import pkgutil

import pytest

from rnngrad import tasks
from rnngrad.tasks import DatasetError


def test_every_public_module_is_a_registered_task():
    modules = sorted(m.name for m in pkgutil.iter_modules(tasks.__path__) if not m.name.startswith("_"))
    assert list(tasks.TASKS) == modules
    assert all(tasks.get(name) is tasks.REGISTRY[name] for name in modules)


def test_config_helpers_pick_the_task_s_own_keys():
    block = {"variant": "all", "copy_len": 4, "solved_accuracy": 0.9}
    assert tasks.task_params("copy", block) == {"copy_len": 4}
    adding = {"variant": "le", "solved_mse_fraction": 0.02}
    assert tasks.success_criteria({"copy": block, "adding": adding}) == {
        "copy": {"criterion": "metric", "threshold": 0.9},
        "adding": {"criterion": "metric", "threshold": 0.02},
    }
    errors = {**adding, "criterion": "errors"}
    assert tasks.success_criteria({"adding": errors}) == {"adding": {"criterion": "errors", "max_errors": 0.01}}
    assert tasks.success_criteria({"adding": {**errors, "max_errors": 0.05}})["adding"]["max_errors"] == 0.05


@pytest.mark.parametrize(
    ("criterion", "metric", "error_rate", "expected"),
    [
        ({"criterion": "metric", "threshold": 0.01}, 0.001, 0.5, True),  # MSE <= 1% of the baseline 1/6
        ({"criterion": "metric", "threshold": 0.01}, 0.01, 0.0, False),
        (0.01, 0.001, 0.5, True),  # a bare number is a metric threshold (the CLI's short form)
        ({"criterion": "errors", "max_errors": 0.01}, 1.0, 0.0099, True),
        ({"criterion": "errors", "max_errors": 0.01}, 0.0, 0.01, False),  # "under 1% errors": strictly below
        ({"criterion": "errors", "max_errors": 0.01}, 0.0, float("nan"), False),
        ({"criterion": "metric", "threshold": 0.01}, float("nan"), 0.0, False),
    ],
)
def test_success_criteria_decide_each_evaluation(criterion, metric, error_rate, expected):
    assert tasks.reached("adding", criterion, metric, error_rate, 1 / 6) is expected


def test_unknown_criterion_is_refused():
    with pytest.raises(ValueError, match="allowed"):
        tasks.reached("adding", {"criterion": "vibes"}, 0.0, 0.0, 1.0)


GOOD = {"task": "copy", "T": 5, "n": 2, "seed": 0, "variant": "all", "copy_len": 3}


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"task": "copyy"}, "task='copyy'"),
        ({"task": None}, "task=None"),
        ({"variant": "le"}, "variant='le'"),
        ({"variant": "ALL"}, "variant='ALL'"),
        ({"T": 0}, "T=0"),
        ({"T": -4}, "T=-4"),
        ({"T": 2.0}, "T=2.0"),
        ({"T": True}, "T=True"),
        ({"T": "5"}, "T='5'"),
        ({"n": 0}, "n=0"),
        ({"n": 1.5}, "n=1.5"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 0.5}, "seed=0.5"),
        ({"copy_len": 0}, "copy_len=0"),
        ({"copy_len": -2}, "copy_len=-2"),
        ({"copy_len": None}, "copy_len=None"),
        ({"task": "adding", "variant": "le", "T": 1}, "T=1"),
        ({"task": "adding", "variant": "hochreiter", "T": 19}, "T=19"),
        ({"task": "adding", "variant": "all"}, "variant='all'"),
    ],
)
def test_bad_parameters_name_the_parameter(change, name):
    params = {**GOOD, **change}
    with pytest.raises(DatasetError, match="allowed") as info:
        tasks.generate(**params)
    assert name in str(info.value)
    if "n" not in change and "seed" not in change:
        with pytest.raises(DatasetError) as info:
            tasks.baseline_loss(params["task"], params["T"], params["variant"], copy_len=params["copy_len"])
        assert name in str(info.value)


def test_another_task_s_parameter_is_refused():
    with pytest.raises(DatasetError, match="task parameter 'copy_len' is unknown for task 'adding'; allowed: none"):
        tasks.generate("adding", 10, 3, 0, "le", copy_len=10)


@pytest.mark.parametrize("task", ["lm", "", None])
def test_bad_task_for_sizes(task):
    for function in (tasks.n_inputs, tasks.n_outputs):
        with pytest.raises(DatasetError, match="task=.*allowed: adding, copy"):
            function(task)


def test_save_rejects_inconsistent_input(tmp_path):
    arrays = tasks.generate("copy", 5, 2, 0, "all", copy_len=3)
    params = {"task": "copy", "variant": "all", "T": 5, "n": 2, "seed": 0, "copy_len": 3}
    with pytest.raises(DatasetError, match="path="):
        tasks.save(tmp_path / "data.json", arrays, params)
    with pytest.raises(DatasetError, match="params keys"):
        tasks.save(tmp_path / "data.npz", arrays, {**params, "extra": 1})
    with pytest.raises(DatasetError, match="array 'x'"):
        tasks.save(tmp_path / "data.npz", arrays, {**params, "T": 6})
    with pytest.raises(DatasetError, match="arrays="):
        tasks.save(tmp_path / "data.npz", {"x": arrays["x"]}, params)
    with pytest.raises(DatasetError, match="copy_len=0"):
        tasks.save(tmp_path / "data.npz", arrays, {**params, "copy_len": 0})
    assert list(tmp_path.iterdir()) == []
