"""Copy and adding task datasets: generation, memoryless baselines, verified save and load.

Generation is a pure function of its arguments (numpy ``Generator(PCG64(seed))``), so any dataset can be rebuilt
byte for byte. Files are ``.npz`` plus a ``.json`` sidecar holding the sha256 of every array; loading checks them,
so a corrupted or stale file stops a run instead of silently training on the wrong data.

- copy (Arjovsky, Shah, Bengio 2016): ``copy_len`` symbols from 8, T-1 blanks, a delimiter, ``copy_len`` blanks;
  the target repeats the symbols after the delimiter. Variant "all" scores every step, "copied" the last copy_len.
- adding "le" (Le, Jaitly, Hinton 2015; Arjovsky et al. 2016): values U[0,1), one marked in each half, target
  the sum, scored at the last step.
- adding "hochreiter" (Hochreiter and Schmidhuber 1997, Experiment 4): values U[-1,1), lengths T..T+T//10,
  target 0.5 + (X1+X2)/4, scored at each sequence's last step. Rules where the paper is loose:
  X1 is uniform over pairs 0..9; X2 uniform over pairs 0..T//2-2 other than X1's; the first and the last valid
  pair carry marker -1 unless marked; whichever marked pair is the first one has its value set to 0 (the paper:
  "in the rare case where the first pair gets marked, we set X1 to zero"); padding after a sequence's end is 0.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rnngrad import __version__
from rnngrad.io import atomic_write, read_json, write_json

if TYPE_CHECKING:
    import torch

TASKS = ("copy", "adding")
VARIANTS = {"copy": ("all", "copied"), "adding": ("le", "hochreiter")}
# Shortest T each variant supports: the adding task needs one step per half; Hochreiter's first ten pairs must
# lie in the first half of the sequence.
MIN_T = {("copy", "all"): 1, ("copy", "copied"): 1, ("adding", "le"): 2, ("adding", "hochreiter"): 20}

N_SYMBOLS = 10  # copy alphabet: ids 0..7 data, 8 blank, 9 delimiter
N_DATA = 8
BLANK = 8
DELIMITER = 9
HOCHREITER_FIRST_PAIRS = 10  # X1 is marked among the first ten pairs

FIX = "delete it and rerun snakemake to regenerate"


class DatasetError(ValueError):
    """A bad generator parameter, or a dataset file that is missing, corrupted or inconsistent with its sidecar."""


def n_inputs(task: str) -> int:
    """Input features per step: one-hot symbols for copy, (value, marker) for adding."""
    return N_SYMBOLS if _check_task(task) == "copy" else 2


def n_outputs(task: str) -> int:
    """Model outputs per step: logits over the symbols for copy, one regression value for adding."""
    return N_SYMBOLS if _check_task(task) == "copy" else 1


def generate(task: str, T: int, n: int, seed: int, variant: str, copy_len: int = 10) -> dict[str, np.ndarray]:
    """``n`` sequences of the task; ``copy_len`` is used by copy only. Same arguments, same bytes."""
    params = _check_params(task=task, variant=variant, T=T, n=n, seed=seed, copy_len=copy_len)
    rng = np.random.Generator(np.random.PCG64(params["seed"]))
    if task == "copy":
        return _copy(rng, params["T"], params["n"], params["copy_len"], variant)
    if variant == "le":
        return _adding_le(rng, params["T"], params["n"])
    return _adding_hochreiter(rng, params["T"], params["n"])


def baseline_loss(task: str, T: int, variant: str, copy_len: int = 10) -> float:
    """Loss of the best memoryless predictor (one that knows the position but not the inputs).

    copy: blanks are certain, each copied symbol is uniform over 8, so the mean cross-entropy over the loss
    positions is copy_len*ln 8/(T + 2 copy_len) for "all" and ln 8 for "copied".
    adding: the best constant is the target's mean and its MSE the target's variance: 2/12 = 1/6 for "le";
    (2 - q)/48 for "hochreiter", where q is the chance that the first pair is marked (its value is then 0):
    without that rule it would be 1/24.
    """
    params = _check_params(task=task, variant=variant, T=T, n=1, seed=0, copy_len=copy_len)
    if task == "copy":
        copy_len = params["copy_len"]
        per_symbol = math.log(N_DATA)
        return per_symbol if variant == "copied" else copy_len * per_symbol / (params["T"] + 2 * copy_len)
    if variant == "le":
        return 1 / 6
    window = params["T"] // 2 - 1
    q = Fraction(1, HOCHREITER_FIRST_PAIRS)  # X1 on the first pair
    for first in range(1, HOCHREITER_FIRST_PAIRS):  # X2 on the first pair, given X1 elsewhere
        q += Fraction(1, HOCHREITER_FIRST_PAIRS) / (window - (first < window))
    return float((2 - q) / 48)


def save(path: str | Path, arrays: dict[str, np.ndarray], params: dict) -> None:
    """Write the arrays to ``path`` (.npz) and then the sidecar ``path.with_suffix('.json')``, both atomically.

    ``params`` are the generator arguments (task, variant, T, n, seed, and copy_len for copy); the arrays must
    have the shapes and dtypes those parameters produce.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise DatasetError(f"path={str(path)!r} is invalid: a dataset file must end in '.npz'")
    names = _param_names(params.get("task"))
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
        "baseline_loss": baseline_loss(params["task"], params["T"], params["variant"], params.get("copy_len", 10)),
        "rnngrad_version": __version__,
    }

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append '.npz' to the temporary name
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write_npz)
    write_json(path.with_suffix(".json"), sidecar)


def generate_file(path: str | Path, task: str, T: int, n: int, seed: int, variant: str, copy_len: int = 10) -> dict:
    """Generate and save a dataset; returns the sidecar as written."""
    params = {"task": task, "variant": variant, "T": T, "n": n, "seed": seed}
    if task == "copy":
        params["copy_len"] = copy_len
    save(path, generate(task, T, n, seed, variant, copy_len), params)
    return read_json(Path(path).with_suffix(".json"))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a dataset file, each verified against the sha256, shape and dtype in its sidecar."""
    return _read(Path(path))[0]


def load(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs float32 [n, L, D], targets, mask bool [n, L]) as the model sees them.

    copy: inputs one-hot over the 10 symbols, targets int64 symbol ids [n, L].
    adding: inputs (value, marker) [n, L, 2], zeros after a sequence's end; targets float32 [n, L] holding the
    target at the loss position and 0 elsewhere.
    """
    import torch  # here, not at the top: the Snakefile imports this module and torch costs seconds

    arrays, sidecar = _read(Path(path))
    mask = torch.from_numpy(arrays["mask"])
    if sidecar["task"] == "copy":
        inputs = torch.nn.functional.one_hot(torch.from_numpy(arrays["x"]).long(), N_SYMBOLS).float()
        return inputs, torch.from_numpy(arrays["y"]).long(), mask
    targets = torch.zeros(mask.shape, dtype=torch.float32)
    targets[mask] = torch.from_numpy(arrays["y"])  # exactly one loss position per row, rows in order
    return torch.from_numpy(arrays["x"]), targets, mask


# --- generators ---------------------------------------------------------------------------------------------


def _copy(rng: np.random.Generator, T: int, n: int, copy_len: int, variant: str) -> dict[str, np.ndarray]:
    length = T + 2 * copy_len
    symbols = rng.integers(0, N_DATA, size=(n, copy_len), dtype=np.uint8)
    x = np.full((n, length), BLANK, dtype=np.uint8)
    x[:, :copy_len] = symbols
    x[:, copy_len + T - 1] = DELIMITER
    y = np.full((n, length), BLANK, dtype=np.uint8)
    y[:, T + copy_len :] = symbols
    mask = np.ones((n, length), dtype=bool)
    if variant == "copied":
        mask[:, : T + copy_len] = False
    return {"x": x, "y": y, "mask": mask}


def _adding_le(rng: np.random.Generator, T: int, n: int) -> dict[str, np.ndarray]:
    rows = np.arange(n)
    values = rng.random((n, T), dtype=np.float32)
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    markers = np.zeros((n, T), dtype=np.float32)
    markers[rows, first] = 1
    markers[rows, second] = 1
    y = (values[rows, first].astype(np.float64) + values[rows, second]).astype(np.float32)
    mask = np.zeros((n, T), dtype=bool)
    mask[:, -1] = True
    return {"x": np.stack([values, markers], axis=-1), "y": y, "mask": mask}


def _adding_hochreiter(rng: np.random.Generator, T: int, n: int) -> dict[str, np.ndarray]:
    rows = np.arange(n)
    longest = T + T // 10
    window = T // 2 - 1  # X2 lies among the first T/2 - 1 pairs
    length = rng.integers(T, longest + 1, size=n, dtype=np.int32)
    values = rng.random((n, longest), dtype=np.float32) * 2 - 1  # exact in float32: U[-1, 1)
    first = rng.integers(0, HOCHREITER_FIRST_PAIRS, size=n)
    second = rng.integers(0, window - (first < window))  # uniform over the window without X1's pair
    second += second >= first
    values[np.arange(longest) >= length[:, None]] = 0
    values[(first == 0) | (second == 0), 0] = 0
    markers = np.zeros((n, longest), dtype=np.float32)
    markers[:, 0] = -1
    markers[rows, length - 1] = -1
    markers[rows, first] = 1
    markers[rows, second] = 1
    marked_sum = values[rows, first].astype(np.float64) + values[rows, second]
    y = (0.5 + marked_sum / 4).astype(np.float32)
    mask = np.zeros((n, longest), dtype=bool)
    mask[rows, length - 1] = True
    return {"x": np.stack([values, markers], axis=-1), "y": y, "mask": mask, "length": length}


# --- validation and files -----------------------------------------------------------------------------------


def _check_task(task) -> str:
    if task not in TASKS:
        raise DatasetError(f"task={task!r} is unknown; allowed: {', '.join(TASKS)}")
    return task


def _check_int(name: str, value, minimum: int, where: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DatasetError(f"{name}={value!r} is invalid{where}; allowed: an integer >= {minimum}")
    return int(value)


def _check_params(task, variant, T, n, seed, copy_len=10) -> dict:
    """The generator arguments as plain Python values, or DatasetError naming the first bad one."""
    _check_task(task)
    if variant not in VARIANTS[task]:
        raise DatasetError(f"variant={variant!r} is unknown for task {task!r}; allowed: {', '.join(VARIANTS[task])}")
    params = {
        "task": task,
        "variant": variant,
        "T": _check_int("T", T, MIN_T[task, variant], f" for task {task!r}, variant {variant!r}"),
        "n": _check_int("n", n, 1),
        "seed": _check_int("seed", seed, 0),
    }
    if task == "copy":
        params["copy_len"] = _check_int("copy_len", copy_len, 1)
    return params


def _param_names(task) -> tuple[str, ...]:
    """The generator arguments a dataset of ``task`` records."""
    return ("task", "variant", "T", "n", "seed") + (("copy_len",) if task == "copy" else ())


def _layout(params: dict) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of every array the parameters produce."""
    n, T = params["n"], params["T"]
    if params["task"] == "copy":
        length = T + 2 * params["copy_len"]
        return {"x": ((n, length), np.uint8), "y": ((n, length), np.uint8), "mask": ((n, length), np.bool_)}
    length = T + T // 10 if params["variant"] == "hochreiter" else T
    layout = {"x": ((n, length, 2), np.float32), "y": ((n,), np.float32), "mask": ((n, length), np.bool_)}
    if params["variant"] == "hochreiter":
        layout["length"] = ((n,), np.int32)
    return layout


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
        layout = _layout(_check_params(**{key: sidecar[key] for key in _param_names(sidecar["task"])}))
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
