"""Copy and adding datasets: the task rules, the memoryless baselines, determinism and verified files."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnngrad
from rnngrad import tasks
from rnngrad.tasks import DatasetError

seeds = st.integers(0, 2**63 - 1)
sizes = st.integers(1, 6)
FIX = "delete it and rerun snakemake to regenerate"


def digest(arrays: dict[str, np.ndarray]) -> str:
    """One sha256 over every array's name and raw (little-endian) bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(arrays[name].tobytes())
    return h.hexdigest()


def test_api_constants():
    assert tasks.TASKS == ("adding", "copy")
    assert tasks.VARIANTS == {"adding": ("le", "hochreiter"), "copy": ("all", "copied")}
    assert (tasks.n_inputs("copy"), tasks.n_outputs("copy")) == (10, 10)
    assert (tasks.n_inputs("adding"), tasks.n_outputs("adding")) == (2, 1)


# --- the task rules ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 60), n=sizes, seed=seeds, copy_len=st.integers(1, 12), variant=st.sampled_from(["all", "copied"])
)
def test_copy_rules(T, n, seed, copy_len, variant):
    a = tasks.generate("copy", T, n, seed, variant, copy_len=copy_len)
    x, y, mask = a["x"], a["y"], a["mask"]
    length = T + 2 * copy_len
    assert set(a) == {"x", "y", "mask"}
    assert x.shape == y.shape == mask.shape == (n, length)
    assert (x.dtype, y.dtype, mask.dtype) == (np.uint8, np.uint8, np.bool_)
    symbols = x[:, :copy_len]
    assert symbols.max() < 8
    assert (x[:, copy_len : copy_len + T - 1] == 8).all()  # T - 1 blanks
    assert (x[:, copy_len + T - 1] == 9).all() and ((x == 9).sum(axis=1) == 1).all()  # one delimiter
    assert (x[:, copy_len + T :] == 8).all()  # copy_len blanks while the model answers
    assert (y[:, : T + copy_len] == 8).all()
    np.testing.assert_array_equal(y[:, T + copy_len :], symbols)
    expected_mask = np.ones((n, length), bool)
    if variant == "copied":
        expected_mask[:, : T + copy_len] = False
    np.testing.assert_array_equal(mask, expected_mask)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(2, 80), n=sizes, seed=seeds)
def test_adding_le_rules(T, n, seed):
    a = tasks.generate("adding", T, n, seed, "le")
    x, y, mask = a["x"], a["y"], a["mask"]
    assert set(a) == {"x", "y", "mask"}
    assert (x.shape, y.shape, mask.shape) == ((n, T, 2), (n,), (n, T))
    assert (x.dtype, y.dtype, mask.dtype) == (np.float32, np.float32, np.bool_)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert np.isin(markers, [0, 1]).all()
    assert (markers[:, : T // 2].sum(axis=1) == 1).all() and (markers[:, T // 2 :].sum(axis=1) == 1).all()
    marked_sum = (values.astype(np.float64) * markers).sum(axis=1)
    np.testing.assert_array_equal(y, marked_sum.astype(np.float32))
    assert (mask[:, -1]).all() and mask.sum() == n


@settings(max_examples=40, deadline=None)
@given(T=st.integers(20, 130), n=sizes, seed=seeds)
def test_adding_hochreiter_rules(T, n, seed):
    a = tasks.generate("adding", T, n, seed, "hochreiter")
    x, y, mask, length = a["x"], a["y"], a["mask"], a["length"]
    longest = T + T // 10
    assert set(a) == {"x", "y", "mask", "length"}
    assert (x.shape, y.shape, mask.shape, length.shape) == ((n, longest, 2), (n,), (n, longest), (n,))
    assert (x.dtype, y.dtype, mask.dtype, length.dtype) == (np.float32, np.float32, np.bool_, np.int32)
    assert ((length >= T) & (length <= longest)).all()
    for values, markers, target, row_mask, steps in zip(x[..., 0], x[..., 1], y, mask, length, strict=True):
        assert ((values >= -1) & (values < 1)).all()
        assert not values[steps:].any() and not markers[steps:].any()  # zero padding
        first, second = np.flatnonzero(markers == 1)  # exactly two marked pairs
        window = T // 2 - 1
        assert (first < 10 and second < window) or (second < 10 and first < window)
        assert markers[steps - 1] == -1
        assert markers[0] == (1 if first == 0 else -1)
        assert (markers == -1).sum() == (1 if first == 0 else 2)
        if first == 0:
            assert values[0] == 0  # the paper: a marked first pair has its value set to zero
        expected = 0.5 + (np.float64(values[first]) + np.float64(values[second])) / 4
        assert target == np.float32(expected)
        assert np.flatnonzero(row_mask).tolist() == [steps - 1]


def test_hochreiter_lengths_cover_the_range():
    length = tasks.generate("adding", 40, 2000, 3, "hochreiter")["length"]
    assert set(length.tolist()) == set(range(40, 45))


@pytest.mark.parametrize("variant", ["all", "copied"])
def test_copy_symbols_are_uniform(variant):
    """The 8 data symbols appear equally often (chi-square at 8 - 1 degrees of freedom)."""
    symbols = tasks.generate("copy", 5, 5000, 11, variant, copy_len=10)["x"][:, :10]
    counts = np.bincount(symbols.ravel(), minlength=8)
    expected = symbols.size / 8
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # 99.9% quantile of chi-square(7)


# --- baselines -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("T", "value"), [(100, 0.1733), (200, 0.0945), (300, 0.0650), (500, 0.0400)])
def test_copy_baseline_matches_arjovsky(T, value):
    assert tasks.baseline_loss("copy", T, "all") == pytest.approx(value, abs=5e-5)
    assert tasks.baseline_loss("copy", T, "all") == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-15)


def test_closed_form_baselines():
    assert tasks.baseline_loss("copy", 100, "copied") == pytest.approx(math.log(8), rel=1e-15)
    assert tasks.baseline_loss("copy", 7, "all", copy_len=3) == pytest.approx(3 * math.log(8) / 13, rel=1e-15)
    assert tasks.baseline_loss("adding", 100, "le") == pytest.approx(1 / 6, rel=1e-15)
    # hochreiter: (2 - q)/48, q = P(first pair marked) = 1/10 + (9/10) * 1/(T//2 - 2) once T//2 - 1 >= 10
    # (X1 on pair 0, or X2 on pair 0 among the window's T//2 - 2 pairs other than X1's). At T = 100: q = 0.11875.
    assert tasks.baseline_loss("adding", 100, "hochreiter") == pytest.approx((2 - 0.11875) / 48, rel=1e-15)
    # T = 20: the window is pairs 0..8; X1 = 9 lies outside it, so X2 has 9 choices then, else 8.
    q20 = 0.1 + 0.1 * (8 / 8 + 1 / 9)
    assert tasks.baseline_loss("adding", 20, "hochreiter") == pytest.approx((2 - q20) / 48, rel=1e-15)
    # without the zeroing rule the variance would be Var(X1 + X2)/16 = (2/3)/16 = 1/24
    assert tasks.baseline_loss("adding", 10**6, "hochreiter") == pytest.approx(1.9 / 48, rel=1e-5)


def copy_memoryless_loss(T: int, copy_len: int, variant: str) -> tuple[float, float, float]:
    """Cross-entropy of per-position symbol frequencies fitted on 20k sequences, on 20k fresh ones.

    Returns (loss, standard error over sequences, bias bound): a fitted distribution is worse than the true one
    by KL ~ (K - 1)/(2 N) nats per copied position, which the fresh-data estimate includes.
    """
    n = 20_000
    fit = tasks.generate("copy", T, n, 0, variant, copy_len=copy_len)
    test = tasks.generate("copy", T, n, 1, variant, copy_len=copy_len)
    counts = np.stack([np.bincount(column, minlength=10) for column in fit["y"].T])  # [L, 10]
    log_p = np.log(np.maximum(counts, 1e-300) / n)
    token_loss = -log_p[np.arange(test["y"].shape[1]), test["y"]]  # [n, L]
    mask = test["mask"]
    per_sequence = (token_loss * mask).sum(axis=1) / mask.sum(axis=1)
    bias = 7 / n * copy_len / mask[0].sum()
    return per_sequence.mean(), per_sequence.std() / math.sqrt(n), bias


@pytest.mark.parametrize("variant", ["all", "copied"])
def test_copy_memoryless_predictor_reaches_baseline(variant):
    loss, se, bias = copy_memoryless_loss(20, 10, variant)
    assert abs(loss - tasks.baseline_loss("copy", 20, variant)) < 4 * se + bias


def test_adding_le_constant_predictor_reaches_baseline():
    a = tasks.generate("adding", 30, 20_000, 5, "le")
    errors = (a["y"].astype(np.float64) - 1) ** 2
    assert abs(errors.mean() - 1 / 6) < 4 * errors.std() / math.sqrt(errors.size)


@pytest.mark.parametrize("T", [20, 100])
def test_adding_hochreiter_constant_predictor_reaches_baseline(T):
    a = tasks.generate("adding", T, 20_000, 6, "hochreiter")
    errors = (a["y"].astype(np.float64) - 0.5) ** 2
    assert abs(errors.mean() - tasks.baseline_loss("adding", T, "hochreiter")) < 4 * errors.std() / math.sqrt(
        errors.size
    )
    # where the first pair is unmarked both values are U[-1, 1): the variance is (2/3)/16 = 1/24
    unmarked = a["x"][:, 0, 1] == -1
    errors = errors[unmarked]
    assert abs(errors.mean() - 1 / 24) < 4 * errors.std() / math.sqrt(errors.size)


# --- determinism and files -----------------------------------------------------------------------------------

CASES = {
    "copy-all": (
        ("copy", 6, 3, 7, "all", {"copy_len": 4}),
        "7bd89b17de26d51ec8d7d49689469c7cc25390d459370ced53259014e3de68ec",
    ),
    "copy-copied": (
        ("copy", 6, 3, 7, "copied", {"copy_len": 4}),
        "3c34c0ab4d37c31e340d62e9af3f344d95dd7e3d6a7d300a47e87e830d2443b3",
    ),
    "adding-le": (("adding", 8, 3, 7, "le", {}), "10bb11c989fbc8ad2d5b664edaa9ddf0d829c72ae489fa6fc91e25457c3fda53"),
    "adding-hochreiter": (
        ("adding", 20, 3, 7, "hochreiter", {}),
        "a4af7235fb46c289f282ffd2c44ff561d8706068bc4303d35d74b814d77763cc",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_generation_is_pinned(case):
    """A hard-coded digest: a change of numpy's streams or of the rules shows up here, on any machine."""
    (*args, params), expected = CASES[case]
    assert digest(tasks.generate(*args, **params)) == expected


@settings(max_examples=25, deadline=None)
@given(
    task_variant=st.sampled_from([("copy", "all"), ("copy", "copied"), ("adding", "le"), ("adding", "hochreiter")]),
    T=st.integers(20, 50),
    n=sizes,
    seed=seeds,
)
def test_generation_is_a_pure_function(task_variant, T, n, seed):
    task, variant = task_variant
    first = tasks.generate(task, T, n, seed, variant)
    assert digest(first) == digest(tasks.generate(task, T, n, seed, variant))
    assert digest(first) == digest(tasks.generate(task, np.int64(T), np.int32(n), np.uint64(seed), variant))
    assert digest(first) != digest(tasks.generate(task, T, n, seed + 1, variant))


@pytest.mark.parametrize("case", CASES)
def test_save_and_load_arrays_round_trip(tmp_path, case):
    (task, T, n, seed, variant, rest), _ = CASES[case]
    path = tmp_path / "sub" / "train-seed7.npz"
    sidecar = tasks.generate_file(path, task, T, n, seed, variant, **rest)
    arrays = tasks.generate(task, T, n, seed, variant, **rest)
    assert sorted(p.name for p in path.parent.iterdir()) == ["train-seed7.json", "train-seed7.npz"]
    assert sidecar == json.loads(path.with_suffix(".json").read_text())
    params = {"task": task, "variant": variant, "T": T, "n": n, "seed": seed, **rest}
    assert {key: sidecar[key] for key in params} == params
    assert sidecar["baseline_loss"] == tasks.baseline_loss(task, T, variant, **rest)
    assert sidecar["rnngrad_version"] == rnngrad.__version__
    assert sidecar["sequence_length"] == arrays["mask"].shape[1]
    for name, array in arrays.items():
        meta = sidecar["arrays"][name]
        assert meta == {
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
        }
    loaded = tasks.load_arrays(path)
    assert digest(loaded) == digest(arrays)
    assert {name: a.dtype for name, a in loaded.items()} == {name: a.dtype for name, a in arrays.items()}
    tasks.generate_file(path, task, T, n, seed, variant, **rest)  # regenerating writes the same sidecar
    assert json.loads(path.with_suffix(".json").read_text()) == sidecar


def test_copy_file_stays_small(tmp_path):
    path = tmp_path / "copy.npz"
    tasks.generate_file(path, "copy", 1000, 1000, 0, "all")
    assert path.stat().st_size < 2_000_000  # 3 MB raw in uint8/bool, mostly blanks


# --- corruption ----------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "adding.npz"
    tasks.generate_file(path, "adding", 30, 50, 1, "hochreiter")
    return path


def assert_fails(path, *words):
    with pytest.raises(DatasetError) as info:
        tasks.load_arrays(path)
    message = str(info.value)
    for word in (str(path), *words):
        assert word in message
    with pytest.raises(DatasetError):
        tasks.load(path)


@pytest.mark.parametrize("where", [0.0, 0.3, 0.6, 0.9])
def test_flipped_byte_in_an_array_is_caught(dataset, where):
    """Flip a byte of x's compressed data. (Not the very last: it may hold only the end-of-block code, which
    numpy never reads, so the array stays intact and loading it is right.)"""
    with zipfile.ZipFile(dataset) as archive:
        info = archive.getinfo("x.npy")
    raw = bytearray(dataset.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    data_start = info.header_offset + 30 + name_len + extra_len  # the compressed bytes follow the local header
    offset = data_start + round(where * (info.compress_size - 1))
    raw[offset] ^= 0xFF
    dataset.write_bytes(bytes(raw))
    assert_fails(dataset, "'x'", FIX)


def test_rewritten_array_is_caught(dataset):
    arrays = dict(np.load(dataset))
    arrays["y"] = arrays["y"].copy()
    arrays["y"][3] += np.float32(0.25)
    with open(dataset, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    assert_fails(dataset, "'y'", FIX)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["arrays"]["mask"].update(sha256="0" * 64),
        lambda s: s["arrays"]["length"].update(dtype="int64"),
        lambda s: s.update(T=31),
        lambda s: s.update(task="copy", copy_len=10),
        lambda s: s.update(variant="le"),
        lambda s: s.pop("seed"),
        lambda s: s.update(arrays=[]),
    ],
)
def test_edited_sidecar_is_caught(dataset, edit):
    sidecar_path = dataset.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    edit(sidecar)
    sidecar_path.write_text(json.dumps(sidecar))
    assert_fails(dataset, FIX)


def test_truncated_sidecar_is_caught(dataset):
    sidecar_path = dataset.with_suffix(".json")
    sidecar_path.write_text(sidecar_path.read_text()[:40])
    assert_fails(dataset, FIX)


def test_missing_files_are_caught(dataset):
    dataset.with_suffix(".json").unlink()
    assert_fails(dataset, "adding.json", FIX)
    dataset.unlink()
    assert_fails(dataset, "rerun snakemake")


def test_extra_array_is_caught(dataset):
    arrays = dict(np.load(dataset))
    with open(dataset, "wb") as handle:
        np.savez_compressed(handle, extra=np.zeros(3), **arrays)
    assert_fails(dataset, "extra", FIX)


def test_not_an_archive_is_caught(dataset):
    dataset.write_bytes(b"not a zip file at all")
    assert_fails(dataset, FIX)


# --- load ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["all", "copied"])
def test_load_copy(tmp_path, variant):
    path = tmp_path / "copy.npz"
    tasks.generate_file(path, "copy", 9, 5, 2, variant, copy_len=4)
    arrays = tasks.generate("copy", 9, 5, 2, variant, copy_len=4)
    inputs, targets, mask = tasks.load(path)
    assert (inputs.shape, inputs.dtype) == ((5, 17, 10), torch.float32)
    assert (targets.shape, targets.dtype) == ((5, 17), torch.int64)
    assert (mask.shape, mask.dtype) == ((5, 17), torch.bool)
    assert (inputs.sum(-1) == 1).all() and set(inputs.unique().tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(inputs.argmax(-1).numpy(), arrays["x"])
    np.testing.assert_array_equal(targets.numpy(), arrays["y"])
    np.testing.assert_array_equal(mask.numpy(), arrays["mask"])


@pytest.mark.parametrize(("variant", "T"), [("le", 12), ("hochreiter", 40)])
def test_load_adding(tmp_path, variant, T):
    path = tmp_path / "adding.npz"
    tasks.generate_file(path, "adding", T, 6, 3, variant)
    arrays = tasks.generate("adding", T, 6, 3, variant)
    inputs, targets, mask = tasks.load(path)
    length = arrays["x"].shape[1]
    assert (inputs.shape, inputs.dtype) == ((6, length, 2), torch.float32)
    assert (targets.shape, targets.dtype) == ((6, length), torch.float32)
    assert (mask.shape, mask.dtype) == ((6, length), torch.bool)
    np.testing.assert_array_equal(inputs.numpy(), arrays["x"])
    np.testing.assert_array_equal(mask.numpy(), arrays["mask"])
    last = arrays["length"] - 1 if variant == "hochreiter" else np.full(6, T - 1)
    expected = np.zeros((6, length), np.float32)
    expected[np.arange(6), last] = arrays["y"]
    np.testing.assert_array_equal(targets.numpy(), expected)


# --- parameters ----------------------------------------------------------------------------------------------

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


def test_minimum_T_is_accepted():
    for (task, variant), minimum in tasks.MIN_T.items():
        tasks.generate(task, minimum, 2, 0, variant)


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
