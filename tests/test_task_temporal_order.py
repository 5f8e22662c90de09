"""Temporal-order task semantics (Hochreiter and Schmidhuber 1997, Exp. 6a; Pascanu et al. 2013, Fig. 7); the
generic checks (determinism, files, the ln 4 baseline against the best memoryless predictor, perfect and
memoryless predictions) are in test_task_conformance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import digest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngrad import tasks
from rnngrad.losses import masked_loss, metrics
from rnngrad.tasks import temporal_order

X, Y = 0, 1  # the authors' code (tempOrder.py): channels 0 and 1 are the relevant symbols, 2..5 distractors


def test_sizes_and_classes_are_the_authors_code():
    assert tasks.VARIANTS["temporal_order"] == ("pascanu",)
    assert (tasks.n_inputs("temporal_order"), tasks.n_outputs("temporal_order")) == (6, 4)
    assert temporal_order.CLASSES == ("XX", "YX", "XY", "YY")  # the code's targ_vals = v0 + 2 v1
    assert (temporal_order.X, temporal_order.Y) == (X, Y)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(10, 150), n=st.integers(1, 6), seed=st.integers(0, 2**63 - 1))
def test_rules(T, n, seed):  # noqa: N803
    a = tasks.generate("temporal_order", T, n, seed, "pascanu")
    x, y, mask = a["x"], a["y"], a["mask"]
    assert (x.shape, y.shape, mask.shape) == ((n, T), (n,), (n, T))
    assert (x.dtype, y.dtype, mask.dtype) == (np.uint8, np.uint8, np.bool_)
    window = T // 10
    for row, target in zip(x, y, strict=True):
        t1, t2 = np.flatnonzero((row == X) | (row == Y))  # exactly two relevant symbols
        assert window <= t1 < 2 * window and T // 2 <= t2 < T // 2 + window
        others = np.delete(row, [t1, t2])
        assert ((others >= 2) & (others < 6)).all()  # distractors c..f everywhere else, no markers
        assert temporal_order.CLASSES[target] == ("X" if row[t1] == X else "Y") + ("X" if row[t2] == X else "Y")
    assert mask[:, -1].all() and mask.sum() == n


def test_positions_at_t100_are_the_papers_ranges():
    x = tasks.generate("temporal_order", 100, 5000, 4, "pascanu")["x"]
    relevant = (x == X) | (x == Y)
    assert set(np.flatnonzero(relevant[:, :50].any(0))) == set(range(10, 20))
    assert set(np.flatnonzero(relevant[:, 50:].any(0)) + 50) == set(range(50, 60))


def test_classes_and_distractors_are_uniform():
    """Chi-square at the 99.9% quantile: 3 degrees of freedom for the classes, 3 for the distractors."""
    a = tasks.generate("temporal_order", 40, 8000, 5, "pascanu")
    for values, bins in ((a["y"], 4), (a["x"][a["x"] >= 2] - 2, 4)):
        counts = np.bincount(values.ravel(), minlength=bins)
        expected = values.size / bins
        assert ((counts - expected) ** 2 / expected).sum() < 16.27


def test_baseline_is_ln_4():
    assert tasks.baseline_loss("temporal_order", 100, "pascanu") == pytest.approx(math.log(4), rel=1e-15)


def test_generation_is_pinned():
    """A hard-coded digest: a change of numpy's streams or of the rules shows up here, on any machine."""
    expected = "a42b6c6857322666e891bc4e7baca937cd3ffa88ca0ddce1b08f42e042ac3813"
    assert digest(tasks.generate("temporal_order", 20, 3, 7, "pascanu")) == expected


def test_load(tmp_path):
    path = tmp_path / "order.npz"
    tasks.generate_file(path, "temporal_order", 30, 6, 3, "pascanu")
    arrays = tasks.generate("temporal_order", 30, 6, 3, "pascanu")
    inputs, targets, mask = tasks.load(path)
    assert (inputs.shape, inputs.dtype) == ((6, 30, 6), torch.float32)
    assert (targets.shape, targets.dtype) == ((6, 30), torch.int64)
    np.testing.assert_array_equal(inputs.argmax(-1).numpy(), arrays["x"])
    np.testing.assert_array_equal(targets[:, -1].numpy(), arrays["y"])
    assert not targets[:, :-1].any()
    np.testing.assert_array_equal(mask.numpy(), arrays["mask"])


def test_only_the_last_step_is_scored():
    """Outputs before the last step change neither the loss nor the metric."""
    _, targets, mask = temporal_order.to_model(tasks.generate("temporal_order", 20, 16, 8, "pascanu"))
    outputs = torch.randn(16, 20, 4, generator=torch.Generator().manual_seed(0))
    noisy = outputs.clone()
    noisy[:, :-1] = torch.randn(16, 19, 4, generator=torch.Generator().manual_seed(1)) * 100
    for score in (masked_loss, metrics):
        assert score("temporal_order", outputs, targets, mask) == score("temporal_order", noisy, targets, mask)
    expected = float((outputs[:, -1].argmax(-1) == targets[:, -1]).float().mean())
    assert metrics("temporal_order", outputs, targets, mask)["metric"] == expected


def test_success_is_accuracy_at_least_the_threshold():
    assert temporal_order.solved(0.99, math.log(4), 0.99)
    assert not temporal_order.solved(0.985, math.log(4), 0.99)
