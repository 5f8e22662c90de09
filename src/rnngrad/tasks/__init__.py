"""Task datasets: one module a task, registered by being in this package; verified save and load shared here.

Generation is a pure function of its arguments (numpy ``Generator(PCG64(seed))``), so any dataset can be rebuilt
byte for byte. Files are ``.npz`` plus a ``.json`` sidecar holding the sha256 of every array; loading checks them,
so a corrupted or stale file stops a run instead of silently training on the wrong data.

Mixed lengths, for any task (``min_T``; Pascanu et al. 2013's test set "of different lengths"): each sequence's T
is drawn uniformly from [min_T, T] and the sequence generated at that T; the arrays have the shapes of T, each
sequence right-padded with zeros where no loss is scored (mask False), and carry ``length``, each sequence's own
(not for a variant whose lengths vary already, adding's "hochreiter"). A causal model's outputs up to a
sequence's end never see its padding, so its loss and metrics are those of the unpadded sequence.

Every module of this package whose name does not start with ``_`` is a task, named by its module, and defines
(tests/test_task_conformance.py holds each one to it):

- ``VARIANTS`` (generator rules), ``MIN_T`` ({variant: shortest T}), ``PARAMS`` ({name: default} of the task's own
  generator parameters, positive integers, e.g. copy_len);
- ``N_INPUTS``, ``N_OUTPUTS`` (features per input step, model outputs per step), ``METRIC_NAME``, ``SUCCESS_KEY``
  (the key of the success threshold in the config's ``tasks.<task>``);
- ``generate(rng, T, n, variant, **params)`` -> arrays, ``layout(n, T, variant, **params)`` -> {name: (shape,
  dtype)}, ``sequence_length(T, variant, **params)`` (the shortest sequence the model sees),
  ``baseline_loss(T, variant, **params)`` (the loss of the best memoryless predictor: one that knows the
  position but not the inputs);
- ``to_model(arrays)`` -> (inputs float32 [n, L, D], targets [n, L], mask bool [n, L]),
  ``position_losses(outputs, targets)`` -> [batch, L], ``metrics(outputs, targets, mask)`` -> (metric, share of
  sequences right) as tensors, over the batch and step axes (the last two of targets; any axes before them, such
  as a group's members, get a value each), ``solved(final_metric, baseline, threshold)``; optionally
  ``ERROR_RULES`` ({name: rule}, the first the default): the papers' per-sequence rules that
  ``metrics(..., error_rule=name)`` counts by.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import zipfile
import zlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from rnngrad import __version__
from rnngrad.io import atomic_write, read_json, write_json

if TYPE_CHECKING:
    import torch

REGISTRY: dict[str, ModuleType] = {
    name: importlib.import_module(f"{__name__}.{name}")
    for _, name, _ in pkgutil.iter_modules(__path__)
    if not name.startswith("_")
}
TASKS = tuple(REGISTRY)
VARIANTS = {name: task.VARIANTS for name, task in REGISTRY.items()}
MIN_T = {(name, variant): minimum for name, task in REGISTRY.items() for variant, minimum in task.MIN_T.items()}

FIX = "delete it and rerun snakemake to regenerate"


class DatasetError(ValueError):
    """A bad generator parameter, or a dataset file that is missing, corrupted or inconsistent with its sidecar."""


def get(task) -> ModuleType:
    """The task's module, or DatasetError naming the known tasks."""
    if task not in REGISTRY:
        raise DatasetError(f"task={task!r} is unknown; allowed: {', '.join(TASKS)}")
    return REGISTRY[task]


def n_inputs(task: str) -> int:
    return get(task).N_INPUTS


def n_outputs(task: str) -> int:
    return get(task).N_OUTPUTS


def task_params(task: str, task_config: dict) -> dict:
    """The task's generator parameters out of its config block ``tasks.<task>``."""
    return {name: task_config[name] for name in get(task).PARAMS}


CRITERIA = ("metric", "errors")
MAX_ERRORS = 0.01  # criterion "errors": Pascanu et al. 2013's "under 1% errors"


def success_criteria(tasks_config: dict) -> dict[str, dict]:
    """{task: its success criterion} out of the config's ``tasks`` section: ``{"criterion": "metric", "threshold":
    t}`` (the task's own rule on its test metric) or ``{"criterion": "errors", "max_errors": e}``."""
    criteria = {}
    for name, block in tasks_config.items():
        rule = block.get("criterion", "metric")
        if rule == "metric":
            criteria[name] = {"criterion": rule, "threshold": block[get(name).SUCCESS_KEY]}
        else:
            criteria[name] = {"criterion": rule, "max_errors": block.get("max_errors", MAX_ERRORS)}
    return criteria


def reached(task: str, criterion: dict | float, metric: float, error_rate: float, baseline: float) -> bool:
    """Whether one evaluation meets the task's success criterion (a bare number is a ``metric`` threshold):
    ``metric``, the task's own ``solved(metric, baseline, threshold)``; ``errors``, the share of test sequences
    counted wrong (by the run's error rule) strictly below ``max_errors``. NaN never succeeds."""
    if not isinstance(criterion, dict):
        criterion = {"criterion": "metric", "threshold": criterion}
    if criterion["criterion"] == "errors":
        return error_rate < criterion["max_errors"]  # False for NaN
    if criterion["criterion"] != "metric":
        raise ValueError(f"success criterion {criterion['criterion']!r} is unknown; allowed: {list(CRITERIA)}")
    return metric == metric and bool(get(task).solved(metric, baseline, criterion["threshold"]))


def generate(task: str, T: int, n: int, seed: int, variant: str, **params) -> dict[str, np.ndarray]:  # noqa: N803
    """``n`` sequences of the task; ``params`` are its own parameters (defaults: its PARAMS) and optionally
    ``min_T``: mixed lengths, each sequence's T drawn uniformly from [min_T, T] (module docstring). Same arguments,
    same bytes."""
    checked = _check_params(task=task, variant=variant, T=T, n=n, seed=seed, **params)
    rng = np.random.Generator(np.random.PCG64(checked["seed"]))
    if "min_T" in checked:
        return _generate_mixed(rng, checked)
    return get(task).generate(rng, checked["T"], checked["n"], variant, **_own(checked))


def _generate_mixed(rng: np.random.Generator, checked: dict) -> dict[str, np.ndarray]:
    """Each sequence's T drawn from [min_T, T] (one draw of the seed's stream), then the sequences of each drawn T,
    shortest T first, from the same stream, placed in their rows and right-padded with zeros to T's shapes."""
    module, n, variant, own = get(checked["task"]), checked["n"], checked["variant"], _own(checked)
    drawn = rng.integers(checked["min_T"], checked["T"] + 1, size=n)
    arrays = {name: np.zeros(shape, dtype) for name, (shape, dtype) in _layout(checked).items()}
    for length in np.unique(drawn):
        rows = np.flatnonzero(drawn == length)
        part = module.generate(rng, int(length), len(rows), variant, **own)
        part["length"] = np.full(len(rows), length, dtype=np.int32)
        _place(arrays, rows, part)
    return arrays


def pad(task: str, arrays: dict[str, np.ndarray], T: int, variant: str, **params) -> dict[str, np.ndarray]:  # noqa: N803
    """Sequences of one shorter length (``arrays``, as :func:`generate` gives them) right-padded with zeros to T's
    shapes, mask False on the padding, as a mixed-length set's rows are: so that batches drawn at different lengths
    (``train_lengths``) share one tensor on the stacked path (:mod:`rnngrad.batched`)."""
    n = len(arrays["mask"])
    checked = _check_params(task=task, variant=variant, T=T, n=n, seed=0, **params)
    layout = get(task).layout(n, checked["T"], variant, **_own(checked))
    padded = {name: np.zeros(shape, dtype) for name, (shape, dtype) in layout.items()}
    _place(padded, slice(None), arrays)
    return padded


def _place(arrays: dict[str, np.ndarray], rows, part: dict[str, np.ndarray]) -> None:
    """Write ``part`` into ``rows`` of ``arrays``; arrays with a time axis (axis 1) from its start (right-padding)."""
    for name, values in part.items():
        arrays[name][(rows, slice(0, values.shape[1])) if values.ndim > 1 else rows] = values


def baseline_loss(task: str, T: int, variant: str, **params) -> float:  # noqa: N803
    """Loss of the best memoryless predictor (one that knows the position but not the inputs)."""
    checked = _check_params(task=task, variant=variant, T=T, n=1, seed=0, **params)
    return get(task).baseline_loss(checked["T"], variant, **_own(checked))


def input_moments(task: str, T: int, variant: str, **params) -> tuple[np.ndarray, float]:  # noqa: N803
    """E_t[x_t] and E_t ||x_t||^2 of the model's inputs over a sequence's steps: what the mean-field theory needs
    of a task (rnngrad.theory)."""
    checked = _check_params(task=task, variant=variant, T=T, n=1, seed=0, **params)
    return get(task).input_moments(checked["T"], variant, **_own(checked))


def sequence_length(task: str, T: int, variant: str, **params) -> int:  # noqa: N803
    """Number of input steps the model sees (the shortest sequence for variable lengths)."""
    checked = _check_params(task=task, variant=variant, T=T, n=1, seed=0, **params)
    return get(task).sequence_length(checked["T"], variant, **_own(checked))


def save(path: str | Path, arrays: dict[str, np.ndarray], params: dict) -> None:
    """Write the arrays to ``path`` (.npz) and then the sidecar ``path.with_suffix('.json')``, both atomically.

    ``params`` are the generator arguments (task, variant, T, n, seed and the task's own parameters); the arrays
    must have the shapes and dtypes those parameters produce.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise DatasetError(f"path={str(path)!r} is invalid: a dataset file must end in '.npz'")
    names = _param_names(params.get("task"), "min_T" in params)
    if set(params) != set(names):
        raise DatasetError(f"params keys {sorted(params)} are invalid; allowed: exactly {sorted(names)}")
    params = _check_params(**params)
    layout = _layout(params)
    if set(arrays) != set(layout):
        raise DatasetError(f"arrays={sorted(arrays)} do not fit the parameters {params}; allowed: {sorted(layout)}")
    for name, (shape, dtype) in layout.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise DatasetError(
                f"array {name!r} has shape {arrays[name].shape} and dtype {arrays[name].dtype}, but the parameters "
                f"{params} give shape {shape} and dtype {np.dtype(dtype)}"
            )
    sidecar = {
        **params,
        "sequence_length": layout["mask"][0][1],
        "arrays": {
            name: {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": _sha256(array)}
            for name, array in arrays.items()
        },
        "baseline_loss": _baseline_loss(params, arrays),
        "rnngrad_version": __version__,
    }

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append '.npz' to the temporary name
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write_npz)
    write_json(path.with_suffix(".json"), sidecar)


def generate_file(path: str | Path, task: str, T: int, n: int, seed: int, variant: str, **params) -> dict:  # noqa: N803
    """Generate and save a dataset; returns the sidecar as written."""
    checked = _check_params(task=task, variant=variant, T=T, n=n, seed=seed, **params)
    save(path, generate(**checked), checked)
    return read_json(Path(path).with_suffix(".json"))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a dataset file, each verified against the sha256, shape and dtype in its sidecar."""
    return _read(Path(path))[0]


def load(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs float32 [n, L, D], targets, mask bool [n, L]) as the model sees them (see each task's to_model)."""
    arrays, sidecar = _read(Path(path))
    return get(sidecar["task"]).to_model(arrays)


# --- validation and files -----------------------------------------------------------------------------------


def _check_int(name: str, value, minimum: int, where: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DatasetError(f"{name}={value!r} is invalid{where}; allowed: an integer >= {minimum}")
    return int(value)


def _check_params(task, variant, T, n, seed, min_T=None, **params) -> dict:  # noqa: N803
    """The generator arguments as plain Python values (the task's defaults filled in; ``min_T`` kept only where
    given), or DatasetError naming the first bad one."""
    module = get(task)
    if variant not in module.VARIANTS:
        raise DatasetError(f"variant={variant!r} is unknown for task {task!r}; allowed: {', '.join(module.VARIANTS)}")
    checked = {
        "task": task,
        "variant": variant,
        "T": _check_int("T", T, module.MIN_T[variant], f" for task {task!r}, variant {variant!r}"),
        "n": _check_int("n", n, 1),
        "seed": _check_int("seed", seed, 0),
    }
    unknown = sorted(set(params) - set(module.PARAMS))
    if unknown:
        raise DatasetError(
            f"task parameter {unknown[0]!r} is unknown for task {task!r}; allowed: {sorted(module.PARAMS) or 'none'}"
        )
    for name, default in module.PARAMS.items():
        checked[name] = _check_int(name, params.get(name, default), 1)
    if min_T is not None:
        where = f" for task {task!r}, variant {variant!r} at T={checked['T']}"
        checked["min_T"] = _check_int("min_T", min_T, module.MIN_T[variant], where)
        if checked["min_T"] > checked["T"]:
            raise DatasetError(f"min_T={min_T!r} is invalid{where}; allowed: {module.MIN_T[variant]} to T")
        if "length" in module.layout(1, checked["T"], variant, **_own(checked)):
            raise DatasetError(f"min_T={min_T!r} is invalid{where}: its lengths vary already; allowed: none")
    return checked


def _own(checked: dict) -> dict:
    """The task's own parameters out of checked generator arguments."""
    return {name: checked[name] for name in get(checked["task"]).PARAMS}


def _param_names(task, mixed: bool = False) -> tuple[str, ...]:
    """The generator arguments a dataset of ``task`` records (``min_T`` too for mixed lengths)."""
    return ("task", "variant", "T", "n", "seed", *get(task).PARAMS, *(("min_T",) if mixed else ()))


def _layout(params: dict) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of every array the parameters produce (mixed lengths: T's, and each sequence's length)."""
    layout = get(params["task"]).layout(params["n"], params["T"], params["variant"], **_own(params))
    if "min_T" in params:
        layout["length"] = ((params["n"],), np.int32)
    return layout


def _baseline_loss(params: dict, arrays: dict[str, np.ndarray]) -> float:
    """The memoryless baseline of the set: the task's at T, or with mixed lengths the mean over the set's loss
    positions of each sequence's baseline at its drawn T (the training loss is a mean over loss positions)."""
    module, variant, own = get(params["task"]), params["variant"], _own(params)
    if "min_T" not in params:
        return module.baseline_loss(params["T"], variant, **own)
    positions = arrays["mask"].sum(1)
    lengths, inverse = np.unique(arrays["length"], return_inverse=True)
    per_length = np.array([module.baseline_loss(int(length), variant, **own) for length in lengths])
    return float((per_length[inverse] * positions).sum() / positions.sum())


def _sha256(array: np.ndarray) -> str:
    """sha256 of the array's little-endian bytes, so the digest is the same on any machine."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and sidecar of a dataset file, after checking every array against the sidecar."""
    sidecar_path = path.with_suffix(".json")
    if not path.exists():
        raise DatasetError(f"dataset {path} is missing; rerun snakemake to generate it")
    if not sidecar_path.exists():
        raise DatasetError(
            f"dataset {path}: its sidecar {sidecar_path.name} is missing, so it cannot be verified; {FIX}"
        )
    try:
        sidecar = read_json(sidecar_path)
        recorded = dict(sidecar["arrays"])
        names = _param_names(sidecar["task"], "min_T" in sidecar)
        layout = _layout(_check_params(**{key: sidecar[key] for key in names}))
    except (ValueError, KeyError, TypeError) as err:  # JSON errors and DatasetError are ValueErrors
        raise DatasetError(
            f"dataset {path}: its sidecar {sidecar_path.name} is unreadable or invalid ({err!r}); {FIX}"
        ) from err
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"dataset {path} cannot be opened ({err}); {FIX}") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError(f"dataset {path} is not an .npz archive; {FIX}")
    arrays = {}
    with npz:
        if set(npz.files) != set(layout) or set(recorded) != set(layout):
            raise DatasetError(
                f"dataset {path} holds arrays {sorted(npz.files)}, its sidecar lists {sorted(recorded)}, "
                f"the parameters need {sorted(layout)}; {FIX}"
            )
        for name, (shape, dtype) in layout.items():
            try:
                array = npz[name]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise DatasetError(f"dataset {path}: array {name!r} cannot be read ({err}); {FIX}") from err
            actual = {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": _sha256(array)}
            if recorded[name] != actual or (array.shape, array.dtype) != (shape, np.dtype(dtype)):
                raise DatasetError(
                    f"dataset {path}: array {name!r} does not match the shape, dtype and sha256 recorded in "
                    f"{sidecar_path.name} (corrupted or stale); {FIX}"
                )
            arrays[name] = array
    return arrays, sidecar
