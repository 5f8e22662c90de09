"""Configs: every shipped config is valid; malformed ones are rejected naming the key and what is allowed."""

from __future__ import annotations

import copy
import shutil
import sys

import pytest
import yaml
from conftest import ROOT

from rnngrad import config as configuration

SHIPPED = ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml"]


def default() -> dict:
    with open(ROOT / "config" / "config.yaml") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid(name):
    config = configuration.load(ROOT / name)
    specs = configuration.expand(config)
    assert len({(s["experiment"], s["run_id"]) for s in specs}) == len(specs)


def test_default_grid_spans_the_science():
    specs = [s for s in configuration.expand(default()) if s["experiment"] == "scales"]
    for activation in ("tanh", "sigmoid", "relu"):
        scales = {s["scale"] for s in specs if s["activation"] == activation}
        gamma = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}[activation]
        assert min(scales) * gamma < 1 < max(scales) * gamma  # from vanishing to exploding bounds
    assert {s["task"] for s in specs} == {"copy", "adding"}
    assert all(len({s["T"] for s in specs if s["task"] == task}) >= 2 for task in ("copy", "adding"))
    assert len({s["seed"] for s in specs}) >= 2


def test_run_ids_are_readable_paths():
    spec = {"task": "copy", "T": 100, "model": "rnn", "activation": "tanh", "init": "orthogonal", "scale": 1.5,
            "forget_bias": None, "clip": None, "regularizer": 0, "seed": 0}  # fmt: skip
    assert configuration.run_id(spec) == "copy/T100/tanh/orthogonal-1.5/noclip/seed0"
    assert configuration.run_id({**spec, "model": "lstm", "clip": 1.0}) == "copy/T100/lstm/clip1/seed0"
    assert configuration.run_id({**spec, "model": "lstm", "forget_bias": 1.0}) == "copy/T100/lstm-fb1/noclip/seed0"
    assert configuration.run_id({**spec, "model": "gru"}) == "copy/T100/gru/noclip/seed0"
    regularized = {**spec, "init": "sparse", "scale": 0.95, "clip": 1.0, "regularizer": 4.0}
    assert configuration.run_id(regularized) == "copy/T100/tanh/sparse-0.95/clip1-reg4/seed0"


def _set(path: str, value):
    def mutate(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


DELETE = object()
SCALES = "experiments.scales.grid.0"

# (mutation, words the error must contain: the key and what is allowed)
BAD_CONFIGS = {
    "unknown top-level key": (_set("colour", "red"), ["colour", "allowed keys"]),
    "unknown train key": (_set("train.learning_rate", 0.1), ["train", "learning_rate"]),
    "unknown grid axis": (_set(f"{SCALES}.depth", [2]), ["depth"]),
    "hidden is a string": (_set("train.hidden", "32"), ["train.hidden", "integer"]),
    "hidden zero": (_set("train.hidden", 0), ["train.hidden", "minimum"]),
    "negative lr": (_set("train.lr", -0.1), ["train.lr"]),
    "steps zero": (_set("train.steps", 0), ["train.steps"]),
    "batch size float": (_set("train.batch_size", 3.5), ["train.batch_size"]),
    "unknown optimizer": (_set("train.optimizer", "adagrad"), ["train.optimizer", "adam"]),
    "unknown dtype": (_set("train.dtype", "float16"), ["train.dtype", "float64"]),
    "unknown device": (_set("device", "tpu"), ["device", "cuda"]),
    "threads zero": (_set("threads", 0), ["threads"]),
    "unknown activation": (_set(f"{SCALES}.activation", ["gelu"]), ["activation", "sigmoid"]),
    "unknown init": (_set(f"{SCALES}.init", ["xavier"]), ["init", "orthogonal"]),
    "unknown task": (_set(f"{SCALES}.task", ["parity"]), ["task", "adding"]),
    "scale zero": (_set(f"{SCALES}.scale", [0.0, 1.0]), ["scale"]),
    "negative scale": (_set(f"{SCALES}.scale", [-1.0]), ["scale"]),
    "empty scale axis": (_set(f"{SCALES}.scale", []), ["scale"]),
    "duplicate scales": (_set(f"{SCALES}.scale", [1.0, 1.0]), ["scale", "unique"]),
    "duplicate seeds": (_set(f"{SCALES}.seed", [0, 0]), ["seed", "unique"]),
    "T zero": (_set(f"{SCALES}.T", [0]), ["T"]),
    "T not a list": (_set(f"{SCALES}.T", 10), ["T", "array"]),
    "missing seed axis": (_set(f"{SCALES}.seed", DELETE), ["seed"]),
    "rnn block without activation": (_set(f"{SCALES}.activation", DELETE), ["activation"]),
    "empty grid": (_set("experiments.scales.grid", []), ["experiments.scales.grid"]),
    "no experiments": (_set("experiments", {}), ["experiments"]),
    "missing train section": (_set("train", DELETE), ["train"]),
    "missing data section": (_set("data", DELETE), ["data"]),
    "copy_len zero": (_set("tasks.copy.copy_len", 0), ["tasks.copy.copy_len"]),
    "copy_len too large": (_set("tasks.copy.copy_len", 1000), ["tasks.copy.copy_len"]),
    "unknown copy variant": (_set("tasks.copy.variant", "some"), ["tasks.copy.variant", "copied"]),
    "unknown adding variant": (_set("tasks.adding.variant", "gers"), ["tasks.adding.variant", "hochreiter"]),
    "hochreiter needs T >= 20": (_set("tasks.adding.variant", "hochreiter"), ["scales", "T=5", ">= 20"]),
    "clip zero": (_set("experiments.clipping.grid.0.clip", [0.0]), ["clip"]),
    "negative clip": (_set("experiments.clipping.grid.0.clip", [-1.0, None]), ["clip"]),
    "target beyond the sequence": (_set("logging.targets", [500]), ["logging.targets", "beyond", "allowed"]),
    "target zero": (_set("logging.targets", [0]), ["logging.targets"]),
    "unknown figure": (_set("figures.spaghetti", "scales"), ["figures.spaghetti", "unknown figure"]),
    "figure of a missing experiment": (_set("figures.contributions", "nope"), ["figures.contributions", "nope"]),
    "same train and test seed": (_set("data.test_seed", 1), ["data.test_seed", "train_seed"]),
    "n_train zero": (_set("data.n_train", 0), ["data.n_train"]),
    "lstm block with activation": (
        _set("experiments.baselines.grid.2.activation", ["tanh"]),
        ["baselines.grid.2"],
    ),
    "forget bias on a gru block": (
        _set(
            "experiments.baselines.grid.2",
            {"task": ["copy"], "T": [5], "seed": [0], "model": "gru", "forget_bias": [1.0]},
        ),
        ["baselines.grid.2"],
    ),  # fmt: skip
    "unknown model": (_set("experiments.baselines.grid.2.model", "elman"), ["baselines.grid.2.model", "elman", "gru"]),
    "unknown model in a list": (
        _set("experiments.baselines.grid.2.model", ["lstm", "elman"]),
        ["baselines.grid.2.model.1: unknown value 'elman'", "allowed", "gru"],
    ),
    "activation on a list without rnn": (
        _set(
            "experiments.baselines.grid.2",
            {"task": ["adding"], "T": [8], "seed": [0], "model": ["gru", "lru"], "activation": ["tanh"]},
        ),
        ["baselines.grid.2"],
    ),
    "forget bias on a list without lstm": (
        _set(
            "experiments.baselines.grid.2",
            {"task": ["adding"], "T": [8], "seed": [0], "model": ["gru", "lru"], "forget_bias": [1.0]},
        ),
        ["baselines.grid.2"],
    ),
    "repeated model in a list": (_set("experiments.baselines.grid.2.model", ["lstm", "lstm"]), ["grid.2.model"]),
    "cells_path folder missing": (_set("cells_path", ["no/such/folder"]), ["cells_path.0", "no/such/folder"]),
    "user cell without a colon": (_set("cells", {"mine": "my_cells"}), ["cells.mine"]),
    "user cell not importable": (_set("cells", {"mine": "no_such_module_x:Cell"}), ["cells.mine", "no_such_module_x"]),
    "user cell not a module": (_set("cells", {"mine": "math:pi"}), ["cells.mine", "nn.Module"]),
    "user cell with a wrong signature": (
        _set("cells", {"mine": "torch.nn:Linear"}),
        ["cells.mine", "forward(x_t, state)"],
    ),
    "user cell named like a built-in": (_set("cells", {"gru": "torch.nn:GRUCell"}), ["cells.gru", "built-in"]),
    "task used but not configured": (_set("tasks.copy", DELETE), ["tasks.copy", "missing", "scales"]),
    "solved accuracy above 1": (_set("tasks.copy.solved_accuracy", 1.5), ["tasks.copy.solved_accuracy"]),
    "experiment name with a slash": (_set("experiments.a/b", {"grid": []}), ["experiments", "a/b"]),
    "mixed lengths from a stored set": (_set("train.train_lengths", [5, 10]), ["train_lengths", "fresh_data"]),
    "negative regulariser": (_set(f"{SCALES}.regularizer", [-1.0]), ["regularizer"]),
    "regulariser on the lstm": (_set("experiments.baselines.grid.2.regularizer", [4.0]), ["baselines.grid.2"]),
    "input init neither fan_in nor sigma": (_set("train.input_init", "xavier"), ["train.input_init"]),
    "readout init zero": (_set("train.readout_init", 0), ["train.readout_init"]),
    "unknown clip mode": (_set("train.clip_mode", "elementwise"), ["train.clip_mode", "norm", "value"]),
    "rmsprop denominator can be zero": (
        _set("train.rmsprop_eps", 0),
        ["train.rmsprop_eps", "rmsprop_init > 0"],
    ),
    "negative rmsprop start": (_set("train.rmsprop_init", -1e-3), ["train.rmsprop_init"]),
    "sparse init with no weights": (_set("train.init_nonzero", 0), ["train.init_nonzero"]),
    "eval length too short": (_set("train.eval_lengths", [1]), ["train.eval_lengths", "T=1"]),
    "test lengths not a pair": (_set("train.test_lengths", [10]), ["train.test_lengths"]),
    "test lengths empty": (_set("train.test_lengths", [20, 10]), ["train.test_lengths", "[20, 10] is empty", "T_min"]),
    "test length too short": (_set("train.test_lengths", [1, 10]), ["train.test_lengths", "min_T=1", "allowed"]),
    "unknown criterion": (_set("tasks.adding.criterion", "loss"), ["tasks.adding.criterion", "errors"]),
    "unknown error rule": (_set("tasks.adding.error_rule", "mine"), ["tasks.adding.error_rule", "pascanu"]),
    "error rule of a classification task": (_set("tasks.copy.error_rule", "pascanu"), ["tasks.copy", "error_rule"]),
    "max_errors above 1": (_set("tasks.adding.max_errors", 2), ["tasks.adding.max_errors"]),
}


def with_methods(config: dict, **train) -> dict:
    """The default config with train options of the papers' methods set for every experiment."""
    config["train"].update(train)
    return config


def test_empty_length_range_is_refused():
    config = with_methods(default(), fresh_data=True, train_lengths=[20, 10])
    with pytest.raises(configuration.ConfigError, match=r"train_lengths: \[20, 10\] is empty"):
        configuration.validate(config)


def test_arjovsky_s_methods_reach_the_spec():
    """glorot, clipping by value and Arjovsky et al.'s RMSprop are accepted, and an experiment may override them."""
    config = with_methods(default(), input_init="glorot", readout_init="glorot", clip_mode="value", rmsprop_eps=0,
                          rmsprop_init=1e-3)  # fmt: skip
    config["experiments"]["scales"]["train"] = {"clip_mode": "norm"}
    configuration.validate(config)
    specs = {s["experiment"]: s for s in configuration.expand(config)}
    assert (specs["lengths"]["clip_mode"], specs["scales"]["clip_mode"]) == ("value", "norm")
    assert specs["lengths"]["input_init"] == "glorot" and specs["lengths"]["readout_init"] == "glorot"
    assert (specs["lengths"]["rmsprop_eps"], specs["lengths"]["rmsprop_init"]) == (0, 1e-3)


def test_papers_methods_reach_the_spec():
    config = default()
    config["tasks"]["adding"].update(criterion="errors", error_rule="pascanu")
    config["experiments"]["lengths"]["train"] = {"fresh_data": True, "until_solved": True, "train_lengths": [5, 8],
                                                 "eval_lengths": [80]}  # fmt: skip
    configuration.validate(config)
    specs = {s["experiment"]: s for s in configuration.expand(config)}
    fresh, stored = specs["lengths"], specs["scales"]
    assert fresh["train_data"] is None and stored["train_data"].endswith("train-seed1.npz")
    assert fresh["until_solved"] == {"criterion": "errors", "max_errors": 0.01} and stored["until_solved"] is None
    assert fresh["error_rule"] == "pascanu" and fresh["train_lengths"] == [5, 8]
    assert fresh["eval_data"] == ["results/default/data/adding/le/T80/test-seed2.npz"] and stored["eval_data"] == []
    assert {s["regularizer"] for s in specs.values()} == {0}


def test_a_mixed_length_test_set_reaches_the_spec_and_its_dataset_rule():
    """test_lengths replaces the run's test file by one of mixed lengths, named by its range (so a changed range
    is another file, regenerated, and another spec, retrained); the dataset rule's pattern takes that name."""
    import re

    config = default()
    config["experiments"]["lengths"]["train"] = {"test_lengths": [5, 8]}
    configuration.validate(config)
    specs = {s["experiment"]: s for s in configuration.expand(config)}
    mixed, fixed = specs["lengths"], specs["scales"]
    assert mixed["test_lengths"] == [5, 8] and fixed["test_lengths"] is None
    assert mixed["test_data"] == "results/default/data/adding/le/T5-8/test-seed2.npz"
    assert re.fullmatch(r"results/default/data/adding/le/T\d+/test-seed2\.npz", fixed["test_data"])
    rule = (ROOT / "workflow" / "rules" / "data.smk").read_text()
    pattern = re.search(r'T=r"(.+)",', rule).group(1)
    folder = mixed["test_data"].split("/")[-2]
    assert re.fullmatch(pattern, folder[1:]) and re.fullmatch(pattern, fixed["test_data"].split("/")[-2][1:])


def test_today_s_configs_get_today_s_methods():
    """Defaults that leave every shipped config's training as it was: stored data, fixed length, no regulariser,
    clipping by norm, torch's RMSprop."""
    for spec in configuration.expand(default()):
        assert (spec["input_init"], spec["readout_init"], spec["regularizer"]) == ("fan_in", "fan_in", 0)
        assert (spec["clip_mode"], spec["rmsprop_eps"], spec["rmsprop_init"]) == ("norm", 1e-8, 0.0)
        assert not spec["fresh_data"] and spec["until_solved"] is None and spec["train_lengths"] is None


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_malformed_config_is_rejected_naming_the_key(case):
    mutate, words = BAD_CONFIGS[case]
    config = default()
    mutate(config)
    with pytest.raises(configuration.ConfigError) as error:
        configuration.validate(config)
    message = str(error.value)
    for word in words:
        assert word in message, f"{case}: {word!r} missing from: {message}"


def test_at_least_thirty_bad_configs_are_tried():
    assert len(BAD_CONFIGS) >= 30


def test_config_is_not_mutated_by_expansion():
    config = default()
    before = copy.deepcopy(config)
    configuration.expand(config)
    assert config == before


@pytest.mark.parametrize(
    ("activation", "init", "scale", "hidden", "expected"),
    [
        ("relu", "identity", 1.0, 32, "IRNN"),  # Le et al. 2015: W = I
        ("relu", "identity", 0.9, 32, "RNN-relu"),  # identity-initialised, but not the IRNN
        ("relu", "identity", 1.0, 1, "RNN-relu"),  # one unit: the scalar case
        ("relu", "orthogonal", 1.0, 32, "RNN-relu"),
        ("tanh", "identity", 1.0, 32, "RNN-tanh"),
    ],
)
def test_irnn_label_only_for_the_model_of_le_et_al(activation, init, scale, hidden, expected):
    spec = {"model": "rnn", "activation": activation, "init": init, "scale": scale, "hidden": hidden}
    spec.update(forget_bias=None, cell=None)
    assert configuration.label(spec) == expected
    assert configuration.label({**spec, "model": "lstm"}) == "LSTM"
    assert configuration.label({**spec, "model": "lstm", "forget_bias": 1.0}) == "LSTM b_f=1"
    assert configuration.label({**spec, "model": "lru"}) == "LRU"
    assert configuration.label({**spec, "model": "mine", "cell": "my_cells:Mine"}) == "mine"


def test_a_users_cell_named_under_cells_expands_into_runs():
    """torch.nn.GRUCell has the cell signature (Class(n_in, hidden), forward(x_t, h) -> h): a config can train it."""
    config = default()
    config["cells"] = {"torchgru": "torch.nn:GRUCell"}
    config["experiments"]["baselines"]["grid"].append({"task": ["adding"], "T": [8], "seed": [0], "model": "torchgru"})
    configuration.validate(config)
    spec = next(s for s in configuration.expand(config) if s["model"] == "torchgru")
    assert spec["cell"] == "torch.nn:GRUCell" and spec["label"] == "torchgru"
    assert spec["run_id"] == "adding/T8/torchgru/noclip/seed0"


def test_model_takes_a_list_like_every_grid_axis():
    """A list of models is the union of the blocks of one model each, in grid order; a one-name list and the
    scalar give the same runs (ids unchanged), and the per-model axes reach only their model's runs."""
    config = default()
    config["cells"] = {"torchgru": "torch.nn:GRUCell"}
    block = {"task": ["adding"], "T": [8], "seed": [0, 1], "activation": ["tanh"], "init": ["orthogonal"],
             "scale": [1.0], "regularizer": [0, 2.0], "forget_bias": [1.0]}  # fmt: skip
    config["experiments"] = {"mixed": {"grid": [{**block, "model": ["rnn", "lstm", "torchgru"]}]}}
    config["figures"] = {}
    configuration.validate(config)
    listed = [s["run_id"] for s in configuration.expand(config)]
    assert listed == [
        f"adding/T8/{arch}/seed{seed}"
        for arch in ("tanh/orthogonal-1/noclip", "tanh/orthogonal-1/noclip-reg2", "lstm-fb1/noclip", "torchgru/noclip")
        for seed in (0, 1)
    ]
    config["experiments"] = {"mixed": {"grid": [{**block, "model": ["rnn"]}]}}
    one = configuration.expand(config)
    config["experiments"] = {"mixed": {"grid": [{**block, "model": "rnn"}]}}
    assert one == configuration.expand(config)
    lstm = {"task": ["adding"], "T": [8], "seed": [0], "forget_bias": [1.0]}
    config["experiments"] = {"mixed": {"grid": [{**lstm, "model": ["lstm", "gru"]}]}}
    ids = [s["run_id"] for s in configuration.expand(config)]
    assert ids == ["adding/T8/lstm-fb1/noclip/seed0", "adding/T8/gru/noclip/seed0"]  # no forget bias on the GRU


def test_a_bad_model_in_a_list_names_the_entry_and_the_configs_cells():
    config = default()
    config["cells"] = {"torchgru": "torch.nn:GRUCell"}
    config["experiments"]["baselines"]["grid"][2]["model"] = ["lstm", "torchgur"]
    with pytest.raises(configuration.ConfigError) as error:
        configuration.validate(config)
    message = str(error.value)
    assert "experiments.baselines.grid.2.model.1: unknown value 'torchgur'" in message
    assert "'torchgru'" in message.split("allowed:")[1] and "'lstm'" in message.split("allowed:")[1]


def test_cells_path_puts_a_users_folder_on_the_import_path(tmp_path, monkeypatch):
    """A cell module in a folder named by cells_path (relative to the working directory) imports and trains."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    shutil.copy(ROOT / "tests" / "cells" / "oscillator_cell.py", tmp_path / "mine" / "path_oscillator.py")
    config = default()
    config["cells"] = {"osc": "path_oscillator:CoupledOscillator"}
    config["experiments"]["baselines"]["grid"][2]["model"] = ["lstm", "osc"]
    with pytest.raises(configuration.ConfigError, match="cells.osc: cannot import module 'path_oscillator'"):
        configuration.validate(config)
    config["cells_path"] = ["mine"]
    configuration.validate(config)
    assert str(tmp_path / "mine") in sys.path and configuration.cell_folders(config) == [str(tmp_path / "mine")]
