"""Pieces more than one task uses: one-hot symbol inputs, the two per-position losses, accuracy success."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def one_hot(symbols, n_symbols: int) -> torch.Tensor:
    """Symbol ids (uint8 array) as float32 one-hot inputs [n, L, n_symbols]."""
    import torch  # here, not at the top: the Snakefile imports the tasks and torch costs seconds

    return torch.nn.functional.one_hot(torch.from_numpy(symbols).long(), n_symbols).float()


def targets_at_mask(mask, values, dtype) -> torch.Tensor:
    """[n, L] targets holding one value per row at its loss position (rows in order) and 0 elsewhere."""
    import torch

    targets = torch.zeros(mask.shape, dtype=dtype)
    targets[torch.from_numpy(mask)] = torch.from_numpy(values).to(dtype)
    return targets


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits [batch, L, K] against class ids [batch, L], at every position."""
    import torch

    return torch.nn.functional.cross_entropy(outputs.transpose(1, 2), targets, reduction="none")


def squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared error of one regression output [batch, L, 1] against targets [batch, L], at every position."""
    return (outputs[..., 0] - targets) ** 2


def accuracy_reached(final_metric: float, baseline: float, threshold: float) -> bool:
    """Success for an accuracy metric: at least ``threshold`` (the baseline plays no part)."""
    return final_metric >= threshold
