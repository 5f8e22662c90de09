"""Temporal order task (Hochreiter and Schmidhuber 1997, Experiment 6a; Pascanu, Mikolov, Bengio 2013, Fig. 7):
classify a sequence by the order in which two relevant symbols, each X or Y, appeared.

Variant "pascanu" is the generator of Pascanu et al.'s code (github.com/pascanur/trainingRNNs, tempOrder.py):
six symbols, X and Y (their A and B) and four distractors {c, d, e, f}; every step holds a distractor drawn
uniformly, except two positions t1 and t2 that each hold X or Y (uniformly, independently). The 1997 paper's
start and end markers (E, B) are not part of it. The target, scored only at the last step, is one of four
classes numbered as that code numbers them, v1 + 2 v2 with v = 0 for X and 1 for Y: XX, YX, XY, YY (ids 0..3).

Positions: the length is exactly T and the positions scale with it as in that code: t1 uniform in
[T//10, 2 (T//10)), t2 uniform in [T//2, T//2 + T//10), 0-based. At T = 100 that is t1 in 10..19 and t2 in
50..59, the 1997 paper's ranges for its lengths of 100 to 110 (which this variant fixes at T). T >= 10 keeps
both windows non-empty and t1 before t2.

Inputs reach the model one-hot over the 6 symbols, in the code's channel order (X, Y, then the distractors);
outputs are logits over the 4 classes. The memoryless baseline is ln 4: the classes are equally likely and
nothing before the inputs tells them apart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rnngrad.tasks._shared import accuracy_reached, cross_entropy, one_hot, targets_at_mask

if TYPE_CHECKING:
    import torch

VARIANTS = ("pascanu",)
MIN_T = {"pascanu": 10}
PARAMS: dict[str, int] = {}
X, Y = 0, 1  # the relevant symbols (the code's A and B, channels 0 and 1)
DISTRACTORS = 4  # symbol ids 2..5: c, d, e, f
N_SYMBOLS = 2 + DISTRACTORS
CLASSES = ("XX", "YX", "XY", "YY")
N_INPUTS = N_SYMBOLS
N_OUTPUTS = len(CLASSES)
position_losses = cross_entropy  # the loss at every (sequence, step); only the last step is scored
METRIC_NAME = "accuracy"
SUCCESS_KEY = "solved_accuracy"
solved = accuracy_reached


def sequence_length(T: int, variant: str) -> int:  # noqa: N803 - T is the papers' name
    return T


def layout(n: int, T: int, variant: str) -> dict:  # noqa: N803
    return {"x": ((n, T), np.uint8), "y": ((n,), np.uint8), "mask": ((n, T), np.bool_)}


def generate(rng: np.random.Generator, T: int, n: int, variant: str) -> dict[str, np.ndarray]:  # noqa: N803
    rows = np.arange(n)
    window = T // 10
    x = rng.integers(Y + 1, Y + 1 + DISTRACTORS, size=(n, T), dtype=np.uint8)
    t1 = window + rng.integers(0, window, size=n)
    t2 = T // 2 + rng.integers(0, window, size=n)
    is_y = rng.integers(0, 2, size=(n, 2), dtype=np.uint8)  # per relevant position: X (0) or Y (1)
    x[rows, t1] = X + is_y[:, 0]
    x[rows, t2] = X + is_y[:, 1]
    y = is_y[:, 0] + 2 * is_y[:, 1]  # the code's numbering: XX, YX, XY, YY
    mask = np.zeros((n, T), dtype=bool)
    mask[:, -1] = True
    return {"x": x, "y": y, "mask": mask}


def input_moments(T: int, variant: str) -> tuple[np.ndarray, float]:  # noqa: N803
    """E_t[x_t] and E_t ||x_t||^2 over the T steps (one-hot, so the mean square is 1): two relevant symbols
    each X or Y with chance 1/2, the other T - 2 steps uniform over the 4 distractors."""
    mean = np.full(N_SYMBOLS, (T - 2) / (DISTRACTORS * T))
    mean[[X, Y]] = 1.0 / T
    return mean, 1.0


def baseline_loss(T: int, variant: str) -> float:  # noqa: N803
    """ln 4: the best memoryless prediction gives each of the four equally likely classes probability 1/4."""
    return math.log(N_OUTPUTS)


def to_model(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs one-hot over the 6 symbols; targets int64 [n, T] holding the class at the last step, 0 elsewhere."""
    import torch

    targets = targets_at_mask(arrays["mask"], arrays["y"], torch.int64)
    return one_hot(arrays["x"], N_SYMBOLS), targets, torch.from_numpy(arrays["mask"])


def metrics(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy of the class at the scored step; a sequence is right when its class is, so both are the same."""
    accuracy = ((outputs.argmax(-1) == targets) & mask).sum((-2, -1)) / mask.sum((-2, -1))
    return accuracy, accuracy
