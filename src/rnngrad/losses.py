"""Task losses and metrics on model outputs [batch, T, O], each task's own through the task registry.

L_t is the loss at output step t averaged over the batch (the task's per-position loss: cross-entropy over
symbols for copy, squared error for adding), counting only sequences whose mask marks t as a loss position. The
training loss is the mean of the per-position losses over all loss positions (for fixed-position masks: the mean
of L_t over the loss steps).
"""

from __future__ import annotations

import torch

from rnngrad import tasks


def position_losses(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss at every (sequence, step): [batch, T]."""
    return tasks.get(task).position_losses(outputs, targets)


def masked_loss(task: str, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean loss over the loss positions (the training objective)."""
    losses = position_losses(task, outputs, targets)
    return (losses * mask).sum() / mask.sum()


def step_loss(task: str, output_t: torch.Tensor, target_t: torch.Tensor, mask_t: torch.Tensor) -> torch.Tensor:
    """L_t: the loss at one output step, summed over masked sequences and divided by the batch size."""
    losses = position_losses(task, output_t[:, None], target_t[:, None])[:, 0]
    return (losses * mask_t).sum() / output_t.shape[0]


def metrics(
    task: str, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, error_rule: str | None = None
) -> dict[str, float]:
    """The task's metric, its name, and the share of sequences fully right (the task's rule, or the named one of
    its ``ERROR_RULES``)."""
    module = tasks.get(task)
    rule = {} if error_rule is None else {"error_rule": error_rule}
    with torch.no_grad():
        metric, seq_solved_frac = module.metrics(outputs, targets, mask, **rule)
    return {"metric": metric, "metric_name": module.METRIC_NAME, "seq_solved_frac": seq_solved_frac}
