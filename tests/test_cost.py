"""The cost estimate's arithmetic: the fits of event costs against the sequence length and the bookkeeping that adds
them up per run, with exact costs in place of timings (no timing is asserted here)."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import yaml
from conftest import ROOT

from rnngrad import config as configuration
from rnngrad import tasks
from rnngrad.cost import (
    EVENTS,
    FIT_LENGTHS,
    START_UP_SECONDS,
    estimate,
    fit,
    fit_lengths,
    predict,
    report,
    run_terms,
    shape,
    switch,
)

LENGTHS = (32.0, 64.0, 128.0, 256.0)


@pytest.mark.parametrize(
    ("degree", "coefficients"), [(1, (2e-3, 1e-4)), (1, (0.0, 3e-5)), (2, (1e-2, 2e-4, 5e-7)), (2, (0.0, 0.0, 1e-6))]
)
def test_fit_recovers_exact_polynomial_costs(degree, coefficients):
    seconds = [sum(c * length**i for i, c in enumerate(coefficients)) for length in LENGTHS[: degree + 2]]
    fitted = fit(LENGTHS[: degree + 2], seconds, degree)
    np.testing.assert_allclose(fitted, coefficients, rtol=1e-9, atol=1e-15)
    assert predict(fitted, 750) == pytest.approx(sum(c * 750**i for i, c in enumerate(coefficients)), rel=1e-9)


def test_fit_is_least_squares_over_non_negative_coefficients():
    """Points whose unconstrained line has a negative intercept: the fit is the best line through the origin."""
    lengths, seconds = np.array([32.0, 64.0, 128.0]), np.array([0.0, 0.05, 0.15])
    assert np.polyfit(lengths, seconds, 1)[1] < 0  # what an unconstrained fit would give
    np.testing.assert_allclose(fit(lengths, seconds, 1), [0.0, lengths @ seconds / (lengths @ lengths)])
    # a quadratic whose noise makes the unconstrained L^2 term negative: no term below zero, the least residual
    concave = [1.0, 1.9, 3.5]
    fitted = fit(lengths, concave, 2)
    assert (fitted >= 0).all() and fitted[2] == 0.0
    np.testing.assert_allclose(fitted[:2], np.linalg.lstsq(np.c_[np.ones(3), lengths], concave, rcond=None)[0])


@pytest.mark.parametrize(
    ("lengths", "seconds", "degree", "message"),
    [
        ([32, 32, 64], [1, 1, 2], 2, "needs 3 distinct lengths"),
        ([32, 64], [1, 2], 3, "allowed: 1"),
        ([32, 64], [1, -2], 1, ">= 0"),
        ([32, 64], [1, math.nan], 1, "finite"),
        ([32, 64, 128], [1, 2], 1, "one size"),
    ],
)
def test_fit_rejects_bad_points_with_a_clear_error(lengths, seconds, degree, message):
    with pytest.raises(ValueError, match=message):
        fit(lengths, seconds, degree)


def test_fit_lengths_respect_the_tasks_shortest_sequence(monkeypatch):
    adding = {"task": "adding", "variant": "le"}
    for event in EVENTS:
        assert fit_lengths(adding, event) == FIT_LENGTHS[event] and switch(event) == FIT_LENGTHS[event][-1]
    assert FIT_LENGTHS["spectra"] == FIT_LENGTHS["contributions"]  # the spectra's fit adds to the contributions'
    shortest = 2 * FIT_LENGTHS["evaluation"][0] + 1
    monkeypatch.setitem(tasks.MIN_T, ("adding", "le"), shortest)
    scale = shortest / FIT_LENGTHS["evaluation"][0]
    assert fit_lengths(adding, "evaluation") == tuple(math.ceil(n * scale) for n in FIT_LENGTHS["evaluation"])
    assert fit_lengths(adding, "evaluation")[0] == shortest


# Exact event costs (seconds) as functions of the length, linear or quadratic as each event is for its cell.
def exact_cost(spec: dict, event: str, length: float) -> float:
    quadratic = spec["model"] != "rnn" and event in ("contributions", "spectra")
    linear = {"step": (1e-3, 2e-4), "evaluation": (5e-3, 1e-3), "contributions": (2e-3, 3e-4), "spectra": (1e-2, 4e-3)}
    c0, c1 = linear[event]
    return c0 + c1 * length + (1e-6 * length**2 if quadratic else 0.0)


class ExactMeasure:
    """A stand-in for rnngrad.cost.measure: exact costs, and a record of the lengths it was asked to time."""

    def __init__(self):
        self.calls: list[tuple[tuple, int, int, frozenset]] = []  # (shape, task's shortest T, length, events)

    def __call__(self, spec, length, events, n_test, folder):
        self.calls.append((shape(spec), tasks.MIN_T[(spec["task"], spec["variant"])], length, frozenset(events)))
        return {event: exact_cost(spec, event, length) for event in events}


def specs_of(config: dict) -> list[dict]:
    return configuration.expand(config)


@pytest.fixture
def config() -> dict:
    """smoke-reproduce: runs with fresh data, the regulariser, until_solved, eval_lengths, an LSTM; T = 8 to 100."""
    return yaml.safe_load((ROOT / "config" / "smoke-reproduce.yaml").read_text())


def by_hand(spec: dict) -> dict[str, float]:
    """A run's seconds by part, from the module docstring's formula written out with the exact costs."""
    tested = spec["test_lengths"][1] if spec["test_lengths"] else spec["T"]
    if spec["train_lengths"]:
        step = sum(exact_cost(spec, "step", length) for length in spec["train_lengths"]) / 2
    else:
        step = exact_cost(spec, "step", spec["T"])
    evaluations = len(range(0, spec["steps"], spec["eval_every"])) + 1
    logged = {0, spec["steps"], *spec["log_at"]}  # no logging.every or spectra_every here: all with the spectra
    extra = sum(exact_cost(spec, "evaluation", length) for length in spec["eval_lengths"])
    return {
        "steps_s": spec["steps"] * step,
        "evaluations_s": evaluations * exact_cost(spec, "evaluation", tested) + extra,
        "logging_s": len(logged) * exact_cost(spec, "spectra", tested),
    }


def test_estimate_adds_steps_evaluations_events_and_extra_lengths(config):
    config["experiments"]["gradients"]["grid"][0]["T"] = [8, 100, 750]  # 750: beyond every switch, extrapolated
    config["experiments"]["gradients"]["grid"][1]["T"] = [8, 300]
    config["experiments"]["fig7"]["train"] |= {"train_lengths": [10, 400], "test_lengths": [10, 600]}
    config["experiments"]["fig7"]["train"]["eval_lengths"] = [20, 300, 5000]
    config["train"]["steps"] = 1003  # not a multiple of eval_every: the last evaluation is at step 1002
    specs = specs_of(config)
    measure = ExactMeasure()
    runs = estimate(config, specs, measure=measure)
    assert len(runs) and sorted(runs.run_id) == sorted(spec["run_id"] for spec in specs)
    expected = {spec["run_id"]: by_hand(spec) for spec in specs}
    first_of_group = ~runs.duplicated(["experiment", "group"])
    for row, first in zip(runs.to_dict("records"), first_of_group, strict=True):
        parts = expected[row["run_id"]] | {"start_up_s": START_UP_SECONDS if first else 0.0}
        parts["seconds"] = sum(parts.values())
        assert {key: row[key] for key in parts} == pytest.approx(parts, rel=1e-9)
    assert "CPU-hours in steps " in report(runs)
    for event in EVENTS:  # long lengths are never timed directly; each event's fit lengths are, when needed
        timed = {length for _, _, length, events in measure.calls if event in events}
        assert max(timed) <= switch(event) and set(FIT_LENGTHS[event]) <= timed, event
    assert {8, 10, 20} <= {length for _, _, length, _ in measure.calls}  # short lengths at those the runs use
    times = Counter(call[:3] for call in measure.calls)  # each length of a shape once, after a warm-up
    assert all(n == 1 or (n == 2 and length == shortest) for (_, shortest, length), n in times.items())
    assert {key for key, _, _ in times} == {shape(spec) for spec in specs}


def test_mixed_training_lengths_cost_a_step_at_their_mean_length(config):
    spec = specs_of(config)[0] | {"train_lengths": [100, 300], "steps": 10}
    assert [term for term in run_terms(spec) if term[0] == "step"] == [("step", 100, 5.0), ("step", 300, 5.0)]
    mean = sum(count * exact_cost(spec, event, length) for event, length, count in run_terms(spec)[:2])
    assert mean == pytest.approx(10 * exact_cost(spec, "step", 200))  # linear: the mean of both ends


def test_runs_trained_until_solved_are_flagged_as_upper_bounds(config):
    specs = specs_of(config)
    runs = estimate(config, specs, measure=ExactMeasure())
    solving = {spec["run_id"] for spec in specs if spec["until_solved"] is not None}
    assert solving and set(runs.run_id[runs.upper_bound]) == solving
    text = report(runs)
    assert f"{len(solving)} of {len(specs)} runs train until solved" in text and "upper bounds" in text
    config_without = copy.deepcopy(config)
    config_without["experiments"]["fig7"]["train"]["until_solved"] = False
    runs = estimate(config_without, specs_of(config_without), measure=ExactMeasure())
    assert not runs.upper_bound.any() and "upper bound" not in report(runs)


def test_a_bad_spec_is_refused_with_a_clear_error(config):
    spec = specs_of(config)[0]
    with pytest.raises(ValueError, match="eval_every 0; allowed"):
        run_terms(spec | {"eval_every": 0})
    with pytest.raises(ValueError, match=r"steps -1 .*allowed: steps >= 0"):
        run_terms(spec | {"steps": -1})
