"""What a grid will cost before it is submitted: CPU-hours and the longest job, from event costs measured here.

A run is counted in four events of :class:`rnngrad.run.Run`, each timed on a real ``Run`` of the run's shape (model,
cell, activation, task and its parameters, hidden, batch, dtype, device, regulariser on or off, fresh data, logging
batch, Jacobian samples, target steps) with small generated training sets and test sets of the config's size (of
the logging batch's where no evaluation is timed): a training step, an evaluation on the test set, a
contribution-only logging event and one with the Jacobian spectra. With ``cost(event, L)`` an event's CPU seconds at
sequence length L, a run's estimate (:func:`run_terms`) is

    steps x step(T)                              (mixed lengths [T_min, T_max]: (step(T_min) + step(T_max)) / 2)
    + (ceil(steps / eval_every) + 1) x evaluation(T_test)     (every eval_every steps from step 0, and at the end)
    + sum over the logged steps (rnngrad.run.log_steps) of contributions(T_test) or spectra(T_test)
    + sum over train.eval_lengths L of evaluation(L)                                      (one test each at the end)
    + the start-up of its group's process (first run of a group only);

T_test is the test set's length: T, or the longest of ``train.test_lengths``, to which a mixed test set is padded
(the logging batch is the test set's first sequences). The step's cost is linear in T, so the mean of its costs at
both ends is its expected cost with T uniform on [T_min, T_max]. A run that trains ``until_solved`` stops when it
meets its criterion: ``steps`` is the most it takes, and its estimate an upper bound (flagged ``upper_bound``).
A group's estimate is the sum of its runs'.

``cost(event, L)`` (:class:`ShapeCosts`): up to the event's switch length (the longest of its
:data:`FIT_LENGTHS`), the event timed at L. Beyond it, the event timed at its three :data:`FIT_LENGTHS` (the same
shape at shorter lengths, raised to the task's shortest T where needed) and fitted by least squares with
non-negative coefficients (:func:`fit`) to the form its computation has in L:

- step, evaluation: c0 + c1 L (one unroll forward, and for the step one backward pass, through L steps);
- contributions, vanilla RNN (:func:`rnngrad.gradients.log_step`): c0 + c1 L (one float64 unroll, the explicit
  backward recursion from the last step, B x B Gram matrices per step);
- contributions, any other cell (:func:`rnngrad.decompose.log_step`): c0 + c1 L + c2 L^2 (autograd's gradient of
  each of the L per-step weight copies and state nudges is materialised at the size of all L of them and summed);
- spectra: the contributions' fit plus a fit c0 + c1 L of what the event adds to them (its timing less theirs,
  at each length): the step Jacobians, their spectral norms, the product norms for every distance d = 1..L (each
  product is the previous distance's times one Jacobian) and the QR Lyapunov estimate.

The switch lengths were chosen by ``benchmarks/cost.py`` (docs/performance.md, "What a grid costs"), which times
each event at and beyond them on the papers' longest shapes: timing there stays cheap (a step 0.01 to 0.13 s at 128
to 512; an evaluation of 10,000 sequences 5 to 15 s at 256; an LSTM's logging events 7 and 11 s at 128 but 111 and
122 s at 512), and the fits held (fitted / timed: LSTM logging 0.99 to 1.02 at 256 and 512, steps 0.81 to 1.06 at 750
and 1024). A step's cost per time step rose by about a third between 128 and 256 (caches), hence its longer lengths.
Evaluations of 10,000 sequences beyond 256 read low (0.57 to 0.85 at 512 and 750): there the test set's states are
GB-size tensors and kernel time grows faster than L.

A shape whose target steps are not all 'last' is timed at its own lengths only (its logging cost is not a function of
L alone). Timings are CPU seconds, the least of a few repeats (:func:`timed`); they hold for this machine, one
thread, the sequential group path. Not counted: checkpoints, and the table and model files a run writes at its end.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnngrad import tasks
from rnngrad.evaluation import evaluate, log_gradients
from rnngrad.groups import group_specs
from rnngrad.models import MODELS, VanillaRNN
from rnngrad.run import Run, log_steps

START_UP_SECONDS = 3.3  # CPU-s of a training job's imports (torch, pandas, pyarrow): startup_s, benchmarks/groups.py
EVENTS = ("step", "evaluation", "contributions", "spectra")
SHAPE_KEYS = ("model", "cell", "activation", "task", "variant", "hidden", "batch_size", "dtype", "device")
LOGGING_LENGTHS = (32, 64, 128)  # the spectra's fit adds to the contributions': both are timed at the same lengths
FIT_LENGTHS = {  # the lengths an event is timed at for a longer L; up to the last (its switch), timed at L itself
    "step": (128, 256, 512),
    "evaluation": (64, 128, 256),
    "contributions": LOGGING_LENGTHS,
    "spectra": LOGGING_LENGTHS,
}
MIN_TIMED_SECONDS = 0.2  # an event is repeated until this much time is spent (at most MAX_REPEATS times)
MAX_REPEATS = 100

Measure = Callable[[dict, int, set, int, Path], dict]


def timed(call: Callable[[], object], min_seconds: float = MIN_TIMED_SECONDS, max_repeats: int = MAX_REPEATS) -> float:
    """CPU seconds of one call (this process's, ``time.process_time``: other processes sharing the cores do not count,
    though they still share its caches and memory bandwidth): the least of up to ``max_repeats`` calls, repeated
    until ``min_seconds`` are spent (the first call's allocations and other processes only ever slow a call down)."""
    times, spent = [], 0.0
    while len(times) < max_repeats and (not times or spent < min_seconds):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
        spent += times[-1]
    return min(times)


def shape(spec: dict) -> tuple:
    """What a run's per-event costs depend on besides the sequence length (and n_test, one per config)."""
    task_params = tuple(sorted(spec["task_params"].items()))
    flags = (bool(spec["regularizer"]), bool(spec["fresh_data"]), tuple(map(str, spec["targets"])))
    return (*(spec[k] for k in SHAPE_KEYS), task_params, spec["log_batch"], spec["jacobian_samples"], *flags)


def degrees(spec: dict) -> dict[str, int]:
    """The polynomial degree in L of each fitted part (module docstring): the step, the evaluation and the spectra
    tables beyond the contributions 1; the contributions 1 for the vanilla RNN (explicit recursion), 2 for any other
    cell (autograd)."""
    explicit = spec["cell"] is None and issubclass(MODELS[spec["model"]], VanillaRNN)
    return {"step": 1, "evaluation": 1, "contributions": 1 if explicit else 2, "spectra": 1}


def fit(lengths: Iterable[float], seconds: Iterable[float], degree: int) -> np.ndarray:
    """Coefficients c_0..c_degree >= 0 of sum_i c_i L^i fitted to (L, seconds) by least squares: the exact
    non-negative least-squares solution, the best unconstrained fit over every subset of the terms whose
    coefficients are all >= 0 (at most 2^3 subsets). Costs are sums of non-negative parts (a fixed cost, a cost per
    step, a cost per pair of steps); a negative coefficient fitted to noise would make a long L cost less or even
    nothing."""
    lengths, seconds = np.asarray(lengths, dtype=float), np.asarray(seconds, dtype=float)
    if lengths.ndim != 1 or lengths.shape != seconds.shape:
        raise ValueError(f"fit: lengths and seconds must be two 1-d sequences of one size, got {lengths.shape}, "
                         f"{seconds.shape}")  # fmt: skip
    if degree not in (1, 2):
        raise ValueError(f"fit: degree {degree!r}; allowed: 1 (linear in L) or 2 (quadratic)")
    if len(set(lengths.tolist())) < degree + 1:
        raise ValueError(f"fit: a degree-{degree} fit needs {degree + 1} distinct lengths, got {lengths.tolist()}")
    if not (np.isfinite(seconds).all() and (seconds >= 0).all() and (lengths > 0).all()):
        raise ValueError(f"fit: lengths must be > 0 and seconds finite and >= 0, got {lengths.tolist()}, "
                         f"{seconds.tolist()}")  # fmt: skip
    design = lengths[:, None] ** np.arange(degree + 1)
    best, best_residual = np.zeros(degree + 1), float(np.sum(seconds**2))
    for size in range(1, degree + 2):
        for terms in itertools.combinations(range(degree + 1), size):
            solution, *_ = np.linalg.lstsq(design[:, terms], seconds, rcond=None)
            if (solution < 0).any():
                continue
            residual = float(np.sum((design[:, terms] @ solution - seconds) ** 2))
            if residual < best_residual:
                best, best_residual = np.zeros(degree + 1), residual
                best[list(terms)] = solution
    return best


def predict(coefficients: np.ndarray, length: float) -> float:
    """sum_i c_i L^i."""
    return float(np.polyval(coefficients[::-1], length))


def fit_lengths(spec: dict, event: str) -> tuple[int, ...]:
    """The lengths an event of a long shape is timed at: its :data:`FIT_LENGTHS`, scaled up where the task's shortest
    T is above the first of them."""
    lengths = FIT_LENGTHS[event]
    scale = max(1.0, tasks.MIN_T[(spec["task"], spec["variant"])] / lengths[0])
    return tuple(math.ceil(length * scale) for length in lengths)


def switch(event: str) -> int:
    """The longest length at which an event is timed directly: the last of its :data:`FIT_LENGTHS`."""
    return FIT_LENGTHS[event][-1]


def measure(
    spec: dict, length: int, events: set, n_test: int, folder: Path, min_seconds: float = MIN_TIMED_SECONDS
) -> dict[str, float]:
    """CPU seconds of each of ``events`` (:func:`timed`) for a real Run of the spec's shape at sequence length
    T = ``length``, on a generated training set and a test set of ``n_test`` sequences, or of the logging batch's
    where no evaluation is timed (no mixed lengths: the caller picks the length)."""
    timed_spec = {**spec, "T": length, "train_lengths": None, "test_lengths": None, "eval_lengths": []}
    timed_spec |= {"eval_data": [], "until_solved": None}
    tested = n_test if "evaluation" in events else min(spec["log_batch"], n_test)  # logging: the test set's start
    for split, n, seed in (("train", max(spec["batch_size"], 16), 1), ("test", tested, 2)):
        path = folder / f"{split}-{length}-{abs(hash(shape(spec)))}.npz"
        tasks.generate_file(path, spec["task"], length, n, seed, spec["variant"], **spec["task_params"])
        timed_spec[f"{split}_data"] = str(path)
    run = Run(timed_spec, folder / "run")
    calls = {
        "step": run.train_step,
        "evaluation": lambda: evaluate(run),
        "contributions": lambda: log_gradients(run, spectra=False),
        "spectra": lambda: log_gradients(run, spectra=True),
    }
    return {event: timed(calls[event], min_seconds) for event in EVENTS if event in events}


class ShapeCosts:
    """``cost(event, L)`` of one shape (module docstring): timed at L up to the event's :func:`switch`, fitted beyond.

    :meth:`plan` is told every (event, length) the shape's runs need first; :meth:`measure_all` then times each
    length once, with the events needed there (at L itself, or at :func:`fit_lengths` for an event needed beyond its
    switch), in ascending order after a warm-up of its logging events at the task's shortest T, whose timings are
    dropped (the first logging event with the spectra in a process, by torch.func, took 1 to 2 s more than the
    next)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.fitted = all(target == "last" for target in spec["targets"])
        self.needed: dict[int, set] = {}  # length -> events timed there
        self.beyond: set = set()  # events needed beyond their switch: fitted
        self.timings: dict[int, dict[str, float]] = {}
        self.coefficients: dict[str, np.ndarray] = {}

    def direct(self, event: str, length: int) -> bool:
        return not self.fitted or length <= switch(event)

    def plan(self, event: str, length: int) -> None:
        if self.direct(event, length):
            self.needed.setdefault(length, set()).add(event)
        else:  # the spectra event is fitted as the contributions plus what the spectra add
            self.beyond.update({event, "contributions"} if event == "spectra" else {event})

    def measure_all(self, measure: Measure, n_test: int, folder: Path) -> None:
        for event in self.beyond:
            for length in fit_lengths(self.spec, event):
                self.needed.setdefault(length, set()).add(event)
        logging = set().union(*self.needed.values()) & {"contributions", "spectra"}
        if logging:  # warm-up
            measure(self.spec, tasks.MIN_T[(self.spec["task"], self.spec["variant"])], logging, n_test, folder)
        for length, events in sorted(self.needed.items()):
            self.timings[length] = measure(self.spec, length, events, n_test, folder)
        points = {event: [self.timings[n][event] for n in fit_lengths(self.spec, event)] for event in self.beyond}
        if "spectra" in points:  # what the spectra add to the contributions; a noisy point may make it negative
            points["spectra"] = [
                max(0.0, a - b) for a, b in zip(points["spectra"], points["contributions"], strict=True)
            ]
        forms = degrees(self.spec)
        self.coefficients = {
            event: fit(fit_lengths(self.spec, event), seconds, forms[event]) for event, seconds in points.items()
        }

    def cost(self, event: str, length: int) -> float:
        if self.direct(event, length):
            return self.timings[length][event]
        if event == "spectra":
            return predict(self.coefficients["contributions"], length) + predict(self.coefficients["spectra"], length)
        return predict(self.coefficients[event], length)


def tested_length(spec: dict) -> int:
    """The length of the run's test set (and logging batch): T, or the longest of a mixed-length test set."""
    return spec["test_lengths"][1] if spec["test_lengths"] else spec["T"]


def run_terms(spec: dict) -> list[tuple[str, float, float]]:
    """The run's estimate as (event, length, count) terms: its seconds are sum count x cost(event, length)."""
    if spec["steps"] < 0 or spec["eval_every"] < 1:
        raise ValueError(f"cost: run {spec['run_id']}: steps {spec['steps']} and eval_every {spec['eval_every']}; "
                         "allowed: steps >= 0, eval_every >= 1")  # fmt: skip
    steps, tested = spec["steps"], tested_length(spec)
    if spec["train_lengths"]:
        low, high = spec["train_lengths"]
        terms = [("step", low, steps / 2), ("step", high, steps / 2)]
    else:
        terms = [("step", spec["T"], steps)]
    terms.append(("evaluation", tested, math.ceil(steps / spec["eval_every"]) + 1))
    logged = list(log_steps(spec).values())
    terms += [("contributions", tested, logged.count(False)), ("spectra", tested, logged.count(True))]
    terms += [("evaluation", length, 1) for length in spec["eval_lengths"]]
    return [term for term in terms if term[2]]


PARTS = {"step": "steps", "evaluation": "evaluations", "contributions": "logging", "spectra": "logging"}


def estimate(config: dict, specs: list[dict], measure: Measure = measure) -> pd.DataFrame:
    """One row per run: experiment, group, run_id, estimated seconds, upper_bound (the run trains until solved:
    ``steps`` is the most it takes) and the seconds' parts: steps_s, evaluations_s (those at ``eval_lengths``
    included), logging_s and start_up_s (its group's, on the group's first run). ``measure``: how an event is timed
    (:func:`measure`; the tests pass exact costs)."""
    groups = group_specs(specs, **config["groups"])
    shapes: dict[tuple, ShapeCosts] = {}
    for spec in specs:
        costs = shapes.setdefault(shape(spec), ShapeCosts(spec))
        for event, length, _ in run_terms(spec):
            costs.plan(event, length)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for costs in shapes.values():
                costs.measure_all(measure, config["data"]["n_test"], Path(tmp))
    finally:
        torch.set_num_threads(threads)
    rows = []
    for (experiment, group), members in groups.items():
        for index, spec in enumerate(members):
            costs = shapes[shape(spec)]
            parts = {f"{part}_s": 0.0 for part in PARTS.values()}
            parts["start_up_s"] = START_UP_SECONDS if index == 0 else 0.0
            for event, length, count in run_terms(spec):
                parts[f"{PARTS[event]}_s"] += count * costs.cost(event, length)
            row = {"experiment": experiment, "group": group, "run_id": spec["run_id"], "seconds": sum(parts.values())}
            rows.append(row | {"upper_bound": spec["until_solved"] is not None} | parts)
    return pd.DataFrame(rows)


def report(runs: pd.DataFrame) -> str:
    """Markdown: per experiment the runs, the runs trained until solved, jobs, CPU-hours and longest job; then the
    totals, their parts (training steps, evaluations, logging events, start-up), and which estimates are upper
    bounds."""
    jobs = runs.groupby(["experiment", "group"], sort=False).seconds.sum().reset_index()
    table = jobs.groupby("experiment", sort=False).agg(
        jobs=("group", "size"), cpu_hours=("seconds", lambda s: s.sum() / 3600), longest_job_hours=("seconds", "max")
    )
    by_experiment = runs.groupby("experiment", sort=False)
    table.insert(0, "runs", by_experiment.size())
    table.insert(1, "until_solved", by_experiment.upper_bound.sum())
    table["longest_job_hours"] /= 3600
    longest = jobs.loc[jobs.seconds.idxmax()]
    bounded = int(runs.upper_bound.sum())
    bound = (
        f"{bounded} of {len(runs)} runs train until solved: their steps are the most they take, so their estimates, "
        "and those of the experiments and jobs holding them, are upper bounds.\n"
        if bounded
        else ""
    )
    hours = {part: runs[f"{part}_s"].sum() / 3600 for part in (*dict.fromkeys(PARTS.values()), "start_up")}
    return (
        table.to_markdown(floatfmt=("", ".0f", ".0f", ".0f", ".2f", ".2f"))
        + f"\n\nTotal: {len(runs)} runs in {len(jobs)} training jobs, {runs.seconds.sum() / 3600:.1f} CPU-hours "
        f"(one thread, this machine); the longest job is {longest.experiment}/{longest.group}, "
        f"{longest.seconds / 3600:.2f} h. CPU-hours in "
        + ", ".join(f"{part.replace('_', '-')} {value:.1f}" for part, value in hours.items())
        + ".\n"
        + bound
    )
