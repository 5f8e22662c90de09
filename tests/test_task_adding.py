"""Adding task semantics (Le et al. 2015; Hochreiter and Schmidhuber 1997, Exp. 4); the generic checks are in
test_task_conformance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import digest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngrad import tasks
from rnngrad.tasks import adding

seeds = st.integers(0, 2**63 - 1)
sizes = st.integers(1, 6)


def test_sizes():
    assert tasks.VARIANTS["adding"] == ("le", "hochreiter")
    assert (tasks.n_inputs("adding"), tasks.n_outputs("adding")) == (2, 1)


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


def test_closed_form_baselines():
    assert tasks.baseline_loss("adding", 100, "le") == pytest.approx(1 / 6, rel=1e-15)
    # hochreiter: (2 - q)/48, q = P(first pair marked) = 1/10 + (9/10) * 1/(T//2 - 2) once T//2 - 1 >= 10
    # (X1 on pair 0, or X2 on pair 0 among the window's T//2 - 2 pairs other than X1's). At T = 100: q = 0.11875.
    assert tasks.baseline_loss("adding", 100, "hochreiter") == pytest.approx((2 - 0.11875) / 48, rel=1e-15)
    # T = 20: the window is pairs 0..8; X1 = 9 lies outside it, so X2 has 9 choices then, else 8.
    q20 = 0.1 + 0.1 * (8 / 8 + 1 / 9)
    assert tasks.baseline_loss("adding", 20, "hochreiter") == pytest.approx((2 - q20) / 48, rel=1e-15)
    # without the zeroing rule the variance would be Var(X1 + X2)/16 = (2/3)/16 = 1/24
    assert tasks.baseline_loss("adding", 10**6, "hochreiter") == pytest.approx(1.9 / 48, rel=1e-5)


@pytest.mark.parametrize("T", [20, 100])
def test_hochreiter_zeroing_rule_is_what_lowers_the_baseline(T):  # noqa: N803
    """Where the first pair is unmarked both values are U[-1, 1): the variance is (2/3)/16 = 1/24."""
    a = tasks.generate("adding", T, 20_000, 6, "hochreiter")
    errors = (a["y"].astype(np.float64) - 0.5) ** 2
    unmarked = a["x"][:, 0, 1] == -1
    errors = errors[unmarked]
    assert abs(errors.mean() - 1 / 24) < 4 * errors.std() / math.sqrt(errors.size)


@pytest.mark.parametrize(
    ("variant", "T", "expected"),
    [
        ("le", 8, "10bb11c989fbc8ad2d5b664edaa9ddf0d829c72ae489fa6fc91e25457c3fda53"),
        ("hochreiter", 20, "a4af7235fb46c289f282ffd2c44ff561d8706068bc4303d35d74b814d77763cc"),
    ],
)
def test_generation_is_pinned(variant, T, expected):  # noqa: N803
    """A hard-coded digest: a change of numpy's streams or of the rules shows up here, on any machine."""
    assert digest(tasks.generate("adding", T, 3, 7, variant)) == expected


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


def test_each_paper_counts_wrong_sequences_its_own_way():
    """Hochreiter and Schmidhuber: wrong when |error| >= 0.04; Pascanu et al.'s code: wrong when error^2 > 0.04."""
    errors = torch.tensor([0.03, -0.039, 0.05, 0.19, -0.21])
    outputs, targets = (0.5 + errors)[:, None, None], torch.full((5, 1), 0.5)
    mask = torch.ones(5, 1, dtype=torch.bool)
    assert adding.metrics(outputs, targets, mask)[1] == pytest.approx(2 / 5)
    assert adding.metrics(outputs, targets, mask, "hochreiter")[1] == pytest.approx(2 / 5)
    assert adding.metrics(outputs, targets, mask, "pascanu")[1] == pytest.approx(4 / 5)
