"""Copy task (Arjovsky, Shah, Bengio 2016): remember ``copy_len`` symbols over T steps and repeat them.

Inputs: ``copy_len`` symbols drawn from 8, T-1 blanks, a delimiter, ``copy_len`` blanks; the target repeats the
symbols after the delimiter. Variant "all" scores every step, "copied" the last copy_len. Inputs reach the model
one-hot over the 10 symbols; the outputs are logits over them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rnngrad.tasks._shared import accuracy_reached, cross_entropy, one_hot

if TYPE_CHECKING:
    import torch

VARIANTS = ("all", "copied")
MIN_T = {"all": 1, "copied": 1}
PARAMS = {"copy_len": 10}
N_SYMBOLS = 10  # ids 0..7 data, 8 blank, 9 delimiter
N_DATA = 8
BLANK = 8
DELIMITER = 9
N_INPUTS = N_OUTPUTS = N_SYMBOLS
position_losses = cross_entropy  # the loss at every (sequence, step)
METRIC_NAME = "accuracy"
SUCCESS_KEY = "solved_accuracy"
solved = accuracy_reached


def sequence_length(T: int, variant: str, copy_len: int) -> int:  # noqa: N803 - T is the papers' name
    return T + 2 * copy_len


def layout(n: int, T: int, variant: str, copy_len: int) -> dict:  # noqa: N803
    length = sequence_length(T, variant, copy_len)
    return {"x": ((n, length), np.uint8), "y": ((n, length), np.uint8), "mask": ((n, length), np.bool_)}


def generate(rng: np.random.Generator, T: int, n: int, variant: str, copy_len: int) -> dict[str, np.ndarray]:  # noqa: N803
    length = sequence_length(T, variant, copy_len)
    symbols = rng.integers(0, N_DATA, size=(n, copy_len), dtype=np.uint8)
    x = np.full((n, length), BLANK, dtype=np.uint8)
    x[:, :copy_len] = symbols
    x[:, copy_len + T - 1] = DELIMITER
    y = np.full((n, length), BLANK, dtype=np.uint8)
    y[:, T + copy_len :] = symbols
    mask = np.ones((n, length), dtype=bool)
    if variant == "copied":
        mask[:, : T + copy_len] = False
    return {"x": x, "y": y, "mask": mask}


def input_moments(T: int, variant: str, copy_len: int) -> tuple[np.ndarray, float]:  # noqa: N803
    """E_t[x_t] and E_t ||x_t||^2 over the T + 2 copy_len steps (one-hot, so the mean square is 1): copy_len data
    symbols uniform over 8, T - 1 + copy_len blanks, one delimiter."""
    counts = np.zeros(N_SYMBOLS)
    counts[:N_DATA] = copy_len / N_DATA
    counts[BLANK] = T - 1 + copy_len
    counts[DELIMITER] = 1
    return counts / (T + 2 * copy_len), 1.0


def baseline_loss(T: int, variant: str, copy_len: int) -> float:  # noqa: N803
    """Blanks are certain and each copied symbol is uniform over 8, so the mean cross-entropy over the loss
    positions is copy_len*ln 8/(T + 2 copy_len) for "all" and ln 8 for "copied"."""
    per_symbol = math.log(N_DATA)
    return per_symbol if variant == "copied" else copy_len * per_symbol / (T + 2 * copy_len)


def to_model(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs one-hot over the 10 symbols, targets int64 symbol ids [n, L]."""
    import torch

    return one_hot(arrays["x"], N_SYMBOLS), torch.from_numpy(arrays["y"]).long(), torch.from_numpy(arrays["mask"])


def metrics(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy on the copied symbols (targets that are data symbols where a loss is scored: a right-padded
    sequence's padding, zeros, is no symbol to copy); a sequence is right when all of them are."""
    copied = (targets < BLANK) & mask
    correct = (outputs.argmax(-1) == targets) & copied
    accuracy = correct.sum((-2, -1)) / copied.sum((-2, -1))
    all_right = (correct.sum(-1) == copied.sum(-1)).float().mean(-1)
    return accuracy, all_right
