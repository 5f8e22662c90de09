"""Task losses and metrics on model outputs [batch, T, O].

L_t is the loss at output step t averaged over the batch (cross-entropy over symbols for copy, squared error for
adding), counting only sequences whose mask marks t as a loss position. The training loss is the mean of the
per-position losses over all loss positions (for fixed-position masks: the mean of L_t over the loss steps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's convention

BLANK = 8  # copy-task symbol id of the blank; data symbols are 0..7
ADDING_TOLERANCE = 0.04  # |error| below which an adding sequence counts as right (Hochreiter & Schmidhuber)


def position_losses(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss at every (sequence, step): [batch, T]."""
    if task == "copy":
        return F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none")
    return (outputs[..., 0] - targets) ** 2


def masked_loss(task: str, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean loss over the loss positions (the training objective)."""
    losses = position_losses(task, outputs, targets)
    return (losses * mask).sum() / mask.sum()


def step_loss(task: str, output_t: torch.Tensor, target_t: torch.Tensor, mask_t: torch.Tensor) -> torch.Tensor:
    """L_t: the loss at one output step, summed over masked sequences and divided by the batch size."""
    losses = position_losses(task, output_t[:, None], target_t[:, None])[:, 0]
    return (losses * mask_t).sum() / output_t.shape[0]


def metrics(task: str, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Task metric and the share of sequences fully right.

    copy:   metric = accuracy on the copied symbols (targets that are data symbols), sequences right when every
            copied symbol is right;
    adding: metric = mean squared error at the loss positions, sequences right when |error| < 0.04.
    """
    with torch.no_grad():
        if task == "copy":
            copied = targets < BLANK
            correct = (outputs.argmax(-1) == targets) & copied
            accuracy = correct.sum() / copied.sum()
            all_right = (correct.sum(1) == copied.sum(1)).float().mean()
            return {"metric": float(accuracy), "metric_name": "accuracy", "seq_solved_frac": float(all_right)}
        errors = (outputs[..., 0] - targets)[mask]
        return {
            "metric": float((errors**2).mean()),
            "metric_name": "mse",
            "seq_solved_frac": float((errors.abs() < ADDING_TOLERANCE).float().mean()),
        }
