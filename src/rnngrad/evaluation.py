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


# Sequences x steps x hidden units of states that one evaluation forward holds at once (twice over: the list of
# steps and their stack), 1 GiB a copy in float32: section 4.1.1's test at T = 5,000 on 10,000 sequences of 50
# units would hold 10 GB a copy. Every committed set is at or below it (its long tier: 1,000 x 5,000 x 50).
EVAL_CHUNK_CELLS = 2**28


def chunk_sequences(sequences: int, length: int, hidden: int, cells: int | None = None) -> int:
    """How many sequences of an evaluation set go through one forward: all of them where their states fit ``cells``
    (:data:`EVAL_CHUNK_CELLS`), else as many as fit (at least one)."""
    cells = EVAL_CHUNK_CELLS if cells is None else cells
    return sequences if sequences * length * hidden <= cells else max(1, cells // (length * hidden))


def outputs_in_chunks(model, x: torch.Tensor, hidden: int) -> torch.Tensor:
    """The model's outputs on an evaluation set: one forward where its states fit, as always; else chunks of
    sequences (:func:`chunk_sequences`), whose outputs equal the whole set's up to BLAS rounding (sequences are
    independent), so memory is bounded by the chunk and the outputs."""
    size = chunk_sequences(x.shape[0], x.shape[1], hidden)
    return model(x) if size == x.shape[0] else torch.cat([model(chunk) for chunk in x.split(size)])


def evaluate(run, data: tuple | None = None, split: str = "test", length: int | None = None) -> dict:
    """Loss and metrics of the run's model on the test set (or another evaluation set), recorded as a row of
    ``split``."""
    x, y, mask = run.test_set if data is None else data
    with torch.no_grad():
        outputs = outputs_in_chunks(run.model, x, run.spec["hidden"])
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
