"""Load and check a config, expand each experiment's grid into run specs, and name their files.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and keys; :func:`check` adds the checks
that need more than one key at a time (a target step beyond the sequence, a figure naming a missing experiment).
Both run before any job, in the Snakefile and in ``rnngrad validate``.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rnngrad import tasks
from rnngrad.contract import METHODS_OFF, data_path
from rnngrad.figures import figure_tables

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
TRAIN_METHOD_KEYS = ("input_init", "readout_init", "clip_mode", "rmsprop_eps", "rmsprop_init", "init_nonzero",
                     "fresh_data", "until_solved", "train_lengths", "test_lengths", "eval_lengths")  # fmt: skip
CLIP_MODES = ("norm", "value")  # train.clip_mode (rnngrad.run.clip_gradients)
GRID_AXES = ("task", "T", "model", "activation", "init", "scale", "forget_bias", "clip", "regularizer", "seed")
# The train keys of the papers' methods (docs/papers-methods.md), off unless a config sets them.
TRAIN_DEFAULTS = {key: METHODS_OFF[key] for key in TRAIN_METHOD_KEYS} | {"until_solved": False}


class ConfigError(ValueError):
    """A config that cannot run; the message names the key, the bad value and what is allowed."""


def load(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read a YAML config, validate it against the schema and the cross-key checks, return it."""
    with open(path) as handle:
        config = yaml.safe_load(handle)
    validate(config, schema_path)
    return config


def validate(config: Any, schema_path: str | Path = SCHEMA_PATH) -> None:
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("\n".join(describe_schema_error(e) for e in errors))
    check(config)


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    """One line naming where the error is (dotted key path) and what the schema allows there."""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    allowed = ""
    if error.validator == "enum":
        allowed = f"; allowed: {error.validator_value}"
    elif error.validator == "additionalProperties":
        allowed = f"; allowed keys: {sorted(error.schema.get('properties', {}))}"
    return f"config key {where}: {error.message}{allowed}"


def check(config: dict, specs: list[dict] | None = None) -> None:
    """Cross-key checks the schema cannot express; raises ConfigError naming the key.

    ``specs`` is ``expand(config)`` where the caller has it already (the Snakefile), so the grid expands once.
    """
    if config["data"]["train_seed"] == config["data"]["test_seed"]:
        raise ConfigError(
            "config key data.test_seed: must differ from data.train_seed (train and test sets come from "
            f"independent seeds), both are {config['data']['train_seed']}"
        )
    for name, drawn in config["figures"].items():
        try:
            tables = figure_tables(name)
        except ValueError as err:
            raise ConfigError(f"config key figures.{name}: {err}") from err
        for figure_experiment in figure_experiments(drawn) if tables else []:
            if figure_experiment not in config["experiments"]:
                raise ConfigError(
                    f"config key figures.{name}: experiment {figure_experiment!r} is not defined; "
                    f"allowed: {sorted(config['experiments'])}"
                )
    check_models(config)
    for name, experiment in config["experiments"].items():
        _check_methods(
            f"experiments.{name}.train", _merged(_merged(TRAIN_DEFAULTS, config["train"]), experiment.get("train"))
        )
    if "reproduce" in config:
        _check_reproduce(config)
    checked = set()  # (experiment, task, T): a grid has thousands of runs but few datasets
    for spec in expand(config) if specs is None else specs:
        dataset = (spec["experiment"], spec["task"], spec["T"])
        if dataset in checked:
            continue
        checked.add(dataset)
        try:  # the generator's own parameter checks (e.g. the shortest T each task variant allows)
            length = tasks.sequence_length(spec["task"], spec["T"], spec["variant"], **spec["task_params"])
        except tasks.DatasetError as err:
            raise ConfigError(f"config key experiments.{spec['experiment']}.grid: {err}") from err
        other_lengths = {"eval_lengths": spec["eval_lengths"], "train_lengths": (spec["train_lengths"] or [])[:1]}
        if spec["test_lengths"]:  # the shortest T allowed, and a task whose lengths do not vary already
            low, high = spec["test_lengths"]
            try:
                tasks.sequence_length(spec["task"], high, spec["variant"], min_T=low, **spec["task_params"])
            except tasks.DatasetError as err:
                raise ConfigError(f"config key experiments.{spec['experiment']}.train.test_lengths: {err}") from err
        for key, lengths in other_lengths.items():
            for other in lengths:
                try:
                    tasks.sequence_length(spec["task"], other, spec["variant"], **spec["task_params"])
                except tasks.DatasetError as err:
                    raise ConfigError(f"config key experiments.{spec['experiment']}.train.{key}: {err}") from err
        targets = spec["targets"]
        for target in targets:
            if target != "last" and target > length:
                raise ConfigError(
                    f"config key experiments.{spec['experiment']}.logging.targets: step {target} is beyond the "
                    f"sequence ({spec['task']} at T={spec['T']} has {length} steps); allowed: 'last' or 1..{length}"
                )


def figure_experiments(drawn: str | list[str] | None) -> list[str]:
    """The experiments a figure draws (a ``figures`` value: none, one, or a list whose tables are concatenated)."""
    return [] if drawn is None else [drawn] if isinstance(drawn, str) else list(drawn)


def _check_reproduce(config: dict) -> None:
    """Each scored claim is in the claims file and is scored on an experiment of this config; the paper's budget
    (``reproduce.paper``) is itself a valid config."""
    block = config["reproduce"]
    if not Path(block["published"]).is_file():
        raise ConfigError(
            f"config key reproduce.published: no file {block['published']} (relative to the working directory, "
            "the repository root)"
        )
    published = {claim["id"] for claim in yaml.safe_load(Path(block["published"]).read_text())["claims"]}
    for claim, experiment in block["claims"].items():
        if claim not in published:
            raise ConfigError(
                f"config key reproduce.claims.{claim}: not a claim of {block['published']}; "
                f"allowed: {sorted(published)}"
            )
        if experiment not in config["experiments"]:
            raise ConfigError(
                f"config key reproduce.claims.{claim}: experiment {experiment!r} is not defined; "
                f"allowed: {sorted(config['experiments'])}"
            )
    for tier in TIERS:
        if tier in block:
            try:
                validate(tier_config(config, tier))
            except ConfigError as err:
                raise ConfigError(f"config key reproduce.{tier} (the {tier} tier): {err}") from err


def check_models(config: dict) -> None:
    """Every grid block names a built-in cell or one of ``cells``, and every user cell imports and steps."""
    from rnngrad.models import MODELS  # here: the Snakefile imports this module, torch costs seconds

    user = config.get("cells", {})
    for clash in sorted(set(user) & set(MODELS)):
        raise ConfigError(f"config key cells.{clash}: a built-in model has this name; allowed: any other name")
    allowed = [*MODELS, *user]
    for name, experiment in config["experiments"].items():
        for i, block in enumerate(experiment["grid"]):
            listed = isinstance(block.get("model"), list)
            for j, model in enumerate(block_models(block)):
                if model not in allowed:
                    raise ConfigError(
                        f"config key experiments.{name}.grid.{i}.model{f'.{j}' if listed else ''}: unknown value "
                        f"{model!r}; allowed: {allowed} (a user's cell needs an entry in cells: name: module:Class)"
                    )
    for i, folder in enumerate(cell_folders(config)):
        if not Path(folder).is_dir():
            raise ConfigError(
                f"config key cells_path.{i}: no folder {config['cells_path'][i]!r} ({folder}); allowed: a folder "
                "relative to the working directory (where snakemake runs), or an absolute one"
            )
    if user:
        from rnngrad.models import check_cell

        use_cell_folders(config)

        for key, target in user.items():
            try:
                check_cell(target)
            except ValueError as err:
                raise ConfigError(f"config key cells.{key}: {err}") from err


def block_models(block: dict) -> list[str]:
    """The cells a grid block trains: its ``model``, one name or a list of them (rnn where absent)."""
    model = block.get("model", "rnn")
    return [model] if isinstance(model, str) else list(model)


def cell_folders(config: dict) -> list[str]:
    """``cells_path`` as absolute folders (relative ones from the working directory, where snakemake runs)."""
    return [str(Path(folder).absolute()) for folder in config.get("cells_path", [])]


def use_cell_folders(config: dict) -> None:
    """Put ``cells_path`` on this process's import path (after what is there), so that the check and the plan
    import the users' cells from where the jobs will (the Snakefile puts the same folders on the jobs' PYTHONPATH)."""
    sys.path.extend(folder for folder in cell_folders(config) if folder not in sys.path)


def _check_methods(where: str, train: dict) -> None:
    """The papers' methods that need each other: mixed training lengths need fresh data, in a range that is not
    empty; a mixed-length test set needs a range that is not empty; a known clipping mode; an RMSProp denominator
    that cannot be 0 (eps and the accumulator's start not both 0)."""
    if train["clip_mode"] not in CLIP_MODES:
        raise ConfigError(
            f"config key {where}.clip_mode: unknown value {train['clip_mode']!r}; allowed: {list(CLIP_MODES)}"
        )
    if train["rmsprop_eps"] == 0 and train["rmsprop_init"] == 0:
        raise ConfigError(
            f"config key {where}.rmsprop_eps: 0 with rmsprop_init 0 divides a zero gradient by 0 at the first "
            "step; allowed: rmsprop_eps > 0, or rmsprop_init > 0 (Arjovsky et al. 2016's code: eps 0, init 1e-3)"
        )
    lengths = train["train_lengths"]
    if lengths is not None:
        if not train["fresh_data"]:
            raise ConfigError(
                f"config key {where}.train_lengths: {lengths} needs fresh_data: true (a stored training set has one "
                "length); allowed: null, or fresh_data: true"
            )
        if lengths[0] > lengths[1]:
            raise ConfigError(
                f"config key {where}.train_lengths: {lengths} is empty; allowed: [T_min, T_max], T_min <= T_max"
            )
    lengths = train["test_lengths"]
    if lengths is not None and lengths[0] > lengths[1]:
        raise ConfigError(
            f"config key {where}.test_lengths: {lengths} is empty; allowed: null, or [T_min, T_max] with T_min <= T_max"
        )


def _merged(defaults: dict, override: dict | None) -> dict:
    merged = copy.deepcopy(defaults)
    merged.update(override or {})
    return merged


def _block_points(block: dict) -> list[dict]:
    """The grid points of one block: the product of its axes in GRID_AXES order (only an rnn run has an
    activation, init, scale and regulariser, only an lstm run a forget_bias)."""
    points = []
    for task, length, model in itertools.product(block["task"], block["T"], block_models(block)):
        rnn = model == "rnn"
        axes = {
            "task": [task],
            "T": [length],
            "model": [model],
            "activation": block["activation"] if rnn else [None],
            "init": block["init"] if rnn else [None],
            "scale": block["scale"] if rnn else [None],
            "forget_bias": block.get("forget_bias", [None]) if model == "lstm" else [None],
            "clip": block.get("clip", [None]),
            "regularizer": block.get("regularizer", [0]) if rnn else [0],
            "seed": block["seed"],
        }
        points += [dict(zip(GRID_AXES, combo, strict=True)) for combo in itertools.product(*axes.values())]
    return points


def run_id(spec: dict) -> str:
    """Readable run path from the grid axes, e.g. ``copy/T100/tanh/orthogonal-1.5/noclip/seed0``; a regulariser
    weight alpha > 0 joins the clip part (``clip1-reg4``), an LSTM's forget-gate bias its name (``lstm-fb1``)."""
    arch = f"{spec['activation']}/{spec['init']}-{spec['scale']:g}" if spec["model"] == "rnn" else spec["model"]
    if spec["forget_bias"] is not None:
        arch += f"-fb{spec['forget_bias']:g}"
    clip = "noclip" if spec["clip"] is None else f"clip{spec['clip']:g}"
    if spec["regularizer"]:
        clip += f"-reg{spec['regularizer']:g}"
    return f"{spec['task']}/T{spec['T']}/{arch}/{clip}/seed{spec['seed']}"


def label(spec: dict) -> str:
    """IRNN only for the model of Le et al. 2015: relu with W = I (g = 1) and more than one unit; a built-in cell by
    its upper-case name (with its forget-gate bias where set), a user's cell by its name in the config."""
    if spec["model"] != "rnn":
        name = spec["model"] if spec["cell"] else spec["model"].upper()
        return name if spec["forget_bias"] is None else f"{name} b_f={spec['forget_bias']:g}"
    if (spec["activation"], spec["init"], spec["scale"]) == ("relu", "identity", 1.0) and spec["hidden"] > 1:
        return "IRNN"
    return f"RNN-{spec['activation']}"


def results_root(config: dict) -> str:
    """Where a config's datasets, runs and tables go: its own folder, so configs never mix their outputs."""
    return f"results/{config['name']}"


def figures_root(config: dict) -> str:
    return f"figures/{config['name']}"


def expand(config: dict) -> list[dict]:
    """Every run of every experiment as a flat, resolved spec (all a training job needs, nothing global)."""
    specs = []
    results = results_root(config)
    for name, experiment in config["experiments"].items():
        train = _merged(_merged(TRAIN_DEFAULTS, config["train"]), experiment.get("train"))
        logging = _merged(config["logging"], experiment.get("logging"))
        seen = set()
        for block in experiment["grid"]:
            for point in _block_points(block):
                if point["task"] not in config["tasks"]:
                    raise ConfigError(
                        f"config key tasks.{point['task']}: missing, and experiment {name} uses task "
                        f"{point['task']!r}; allowed: its variant, parameters and success threshold"
                    )
                task_config = config["tasks"][point["task"]]
                spec = {
                    "experiment": name,
                    **point,
                    "cell": config.get("cells", {}).get(point["model"]),
                    "variant": task_config["variant"],
                    "task_params": tasks.task_params(point["task"], task_config),
                    **train,
                    "log_every": logging["every"],
                    "log_spectra_every": logging["spectra_every"],
                    "log_at": sorted(logging["at"]),
                    "log_batch": logging["log_batch"],
                    "jacobian_samples": logging["jacobian_samples"],
                    "targets": logging["targets"],
                    "device": config["device"],
                    **{
                        f"{split}_data": data_path(
                            results,
                            point["task"],
                            task_config["variant"],
                            point["T"],
                            split,
                            config["data"][f"{split}_seed"],
                        )
                        for split in ("train", "test")
                    },
                }
                _papers_methods(spec, task_config, results, config["data"]["test_seed"])
                spec["run_id"] = run_id(spec)
                spec["label"] = label(spec)
                if spec["run_id"] in seen:
                    raise ConfigError(f"config key experiments.{name}.grid: run {spec['run_id']} appears twice")
                seen.add(spec["run_id"])
                specs.append(spec)
    return specs


def _papers_methods(spec: dict, task_config: dict, results: str, test_seed: int) -> None:
    """The spec keys of the papers' methods, resolved: no training file with fresh data, the test file of mixed
    lengths (``test_lengths``) in place of the one at T, the success criterion that stops a run where it trains
    until solved (else None, so a changed threshold retrains nothing), the task's error rule, and one test file per
    extra evaluation length."""
    if spec["fresh_data"]:
        spec["train_data"] = None
    if spec["test_lengths"]:
        spec["test_data"] = data_path(results, spec["task"], spec["variant"], spec["test_lengths"], "test", test_seed)
    criterion = tasks.success_criteria({spec["task"]: task_config})[spec["task"]]
    spec["until_solved"] = criterion if spec["until_solved"] else None
    spec["error_rule"] = task_config.get("error_rule")
    spec["eval_data"] = [
        data_path(results, spec["task"], spec["variant"], length, "test", test_seed) for length in spec["eval_lengths"]
    ]


def gamma(spec: dict) -> float:
    """max |f'| of the run's activation (NaN for every other cell)."""
    from rnngrad.models import ACTIVATIONS  # here: the Snakefile imports this module, torch costs seconds

    return ACTIVATIONS[spec["activation"]].gamma if spec["model"] == "rnn" else math.nan


MINIATURE = {  # what `miniature` sets everywhere: the sizes that make a grid's every run take a fraction of a second
    "train": {"steps": 2, "hidden": 8, "batch_size": 4, "eval_every": 1, "checkpoint_every": 1},
    "logging": {"every": None, "spectra_every": None, "at": [], "log_batch": 2, "jacobian_samples": 1},
    "data": {"n_train": 16, "n_test": 8},
    "groups": {"max_runs": 390, "pack_cells": True},  # six paper grid cells per job: the same runs and rules in 13 jobs
}


def _deep_merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged key by key into its mappings; lists and scalars are replaced whole."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


TIERS = ("long", "paper")  # the budget tiers a reproduction config may carry beside its reduced one


def tier_figures(config: dict) -> dict[str, str]:
    """The figures folder of every budget tier of a reproduction config, its own included: the reduced tier's is
    the config's name, a derived tier's that name plus ``-{tier}`` (:func:`tier_config`)."""
    tier = config["reproduce"].get("tier", "reduced")
    base = config["name"] if tier == "reduced" else config["name"].removesuffix(f"-{tier}")
    names = {"reduced": base} | {name: f"{base}-{name}" for name in TIERS}
    return {tier: figures_root({"name": name}) for tier, name in names.items()}


def tier_config(config: dict, tier: str) -> dict:
    """A reproduction config at one of its budget tiers: ``reproduce.<tier>``'s overrides merged in (mappings key by
    key, lists such as a grid replaced whole), under its own output root ``{name}-{tier}``, with
    ``reproduce.tier`` naming it. ``long``: the papers' shortest lengths on one machine in about an hour;
    ``paper``: the paper's budget (for a cluster). The config itself is the reduced tier. A claim the tier maps to
    null (``reproduce: {claims: {id: null}}``) is not scored at that tier (a contrast across lengths at one length);
    a figure it maps to false (``figures: {learning_curves: false}``; null already names a theory figure) is not
    drawn there (curves that would all lie on the baseline at that budget)."""
    if tier not in TIERS:
        raise ConfigError(f"tier: {tier!r} is unknown; allowed: {list(TIERS)}")
    block = config.get("reproduce", {})
    if tier not in block:
        raise ConfigError(f"config key reproduce.{tier}: missing; this config has no {tier} tier to apply")
    derived = _deep_merged(config, block[tier])
    derived["name"] = f"{config['name']}-{tier}"
    for name in TIERS:
        derived["reproduce"].pop(name, None)
    derived["reproduce"]["claims"] = {
        claim: experiment for claim, experiment in derived["reproduce"]["claims"].items() if experiment is not None
    }
    derived["figures"] = {figure: value for figure, value in derived["figures"].items() if value is not False}
    derived["reproduce"]["tier"] = tier
    return derived


def miniature(config: dict, steps: int = 2) -> dict:
    """The same grid (every experiment, every run and group, every figure) at tiny sizes, under its own output
    root ``{name}-tiny``: a check that a big grid runs end to end through every rule before it is submitted.
    One-unit experiments keep hidden = 1; cells are packed into jobs of up to 390 runs (``groups.pack_cells``),
    so that process start-up does not dominate the check. ``steps`` above 2 makes each run long enough to be
    stopped between checkpoints (a cluster rehearsal): it evaluates and checkpoints every ``steps // 4`` steps."""
    if steps < 1:
        raise ConfigError(f"miniature steps: {steps} must be a positive number of training steps")
    every = max(1, steps // 4)
    train = MINIATURE["train"] | {"steps": steps, "eval_every": every, "checkpoint_every": every}
    tiny = copy.deepcopy(config)
    tiny["name"] = f"{config['name']}-tiny"
    tiny["data"].update(MINIATURE["data"])
    tiny["train"].update(train)
    tiny["logging"].update(MINIATURE["logging"])
    tiny["groups"].update(MINIATURE["groups"])
    for experiment in tiny["experiments"].values():
        overrides = experiment.get("train", {})
        for key in set(overrides) & set(train):
            overrides[key] = 1 if key == "hidden" and overrides[key] == 1 else train[key]
        experiment.pop("logging", None)
    return tiny
