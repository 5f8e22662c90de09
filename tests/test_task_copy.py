"""Copy task semantics (Arjovsky, Shah, Bengio 2016); the generic checks are in test_task_conformance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import digest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngrad import tasks

seeds = st.integers(0, 2**63 - 1)
sizes = st.integers(1, 6)


def test_sizes():
    assert tasks.VARIANTS["copy"] == ("all", "copied")
    assert (tasks.n_inputs("copy"), tasks.n_outputs("copy")) == (10, 10)


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


@pytest.mark.parametrize("variant", ["all", "copied"])
def test_copy_symbols_are_uniform(variant):
    """The 8 data symbols appear equally often (chi-square at 8 - 1 degrees of freedom)."""
    symbols = tasks.generate("copy", 5, 5000, 11, variant, copy_len=10)["x"][:, :10]
    counts = np.bincount(symbols.ravel(), minlength=8)
    expected = symbols.size / 8
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # 99.9% quantile of chi-square(7)


@pytest.mark.parametrize(("T", "value"), [(100, 0.1733), (200, 0.0945), (300, 0.0650), (500, 0.0400)])
def test_copy_baseline_matches_arjovsky(T, value):
    assert tasks.baseline_loss("copy", T, "all") == pytest.approx(value, abs=5e-5)
    assert tasks.baseline_loss("copy", T, "all") == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-15)


def test_closed_form_baselines():
    assert tasks.baseline_loss("copy", 100, "copied") == pytest.approx(math.log(8), rel=1e-15)
    assert tasks.baseline_loss("copy", 7, "all", copy_len=3) == pytest.approx(3 * math.log(8) / 13, rel=1e-15)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("all", "7bd89b17de26d51ec8d7d49689469c7cc25390d459370ced53259014e3de68ec"),
        ("copied", "3c34c0ab4d37c31e340d62e9af3f344d95dd7e3d6a7d300a47e87e830d2443b3"),
    ],
)
def test_generation_is_pinned(variant, expected):
    """A hard-coded digest: a change of numpy's streams or of the rules shows up here, on any machine."""
    assert digest(tasks.generate("copy", 6, 3, 7, variant, copy_len=4)) == expected


def test_copy_file_stays_small(tmp_path):
    path = tmp_path / "copy.npz"
    tasks.generate_file(path, "copy", 1000, 1000, 0, "all")
    assert path.stat().st_size < 2_000_000  # 3 MB raw in uint8/bool, mostly blanks


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
