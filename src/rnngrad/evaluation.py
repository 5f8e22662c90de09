"""What a run measures besides its training loss: test evaluations (rows of metrics.parquet), the success
criterion of a run that trains until solved, and the gradient logs on the fixed logging batch."""

from __future__ import annotations

import math

import torch

from rnngrad import decompose, gradients, tasks
from rnngrad.losses import masked_loss, metrics
from rnngrad.models import VanillaRNN


def row_extras(spec: dict, length: int, grad_norm: float = math.nan, clipped: bool = False, omega: float = math.nan):
    """The columns of a metrics row after its loss and metrics."""
    return {"grad_norm": grad_norm, "clipped": clipped, "lr": spec["lr"], "length": length, "omega": omega}


def evaluate(run, data: tuple | None = None, split: str = "test", length: int | None = None) -> dict:
    """Loss and metrics of the run's model on the test set (or another evaluation set), recorded as a row of
    ``split``."""
    x, y, mask = run.test_set if data is None else data
    with torch.no_grad():
        outputs = run.model(x)
        loss = float(masked_loss(run.spec["task"], outputs, y, mask))
    scores = metrics(run.spec["task"], outputs, y, mask, run.spec["error_rule"])
    row = {"step": run.step, "split": split, "loss": loss, **scores}
    run.rows.append({**row, **row_extras(run.spec, length or run.spec["T"])})
    return row


def has_solved(run, row: dict) -> bool:
    """Whether a run that trains until solved meets its success criterion at this test evaluation."""
    criterion = run.spec["until_solved"]
    error_rate = 1.0 - row["seq_solved_frac"]
    return criterion is not None and tasks.reached(run.spec["task"], criterion, row["metric"], error_rate, run.baseline)


def log_gradients(run, spectra: bool) -> None:
    """The gradient contributions (and, with ``spectra``, the Jacobian spectra) on the run's logging batch."""
    if not all(torch.isfinite(p).all() for p in run.model.parameters()):
        return  # the next loss is NaN/Inf: the run is about to be recorded as diverged
    explicit = isinstance(run.model, VanillaRNN)  # the lecture's recursion; any other cell by autograd
    tables = (gradients.log_step if explicit else decompose.log_step)(
        run.model, run.log_batch, run.spec["task"], run.spec["targets"], run.spec["jacobian_samples"], spectra
    )
    for name, frame in tables.items():
        run.logs[name].append(frame.assign(step=run.step))
