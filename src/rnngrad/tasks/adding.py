"""Adding task: the sum of two marked values, scored at a sequence's last step (inputs: value, marker).

- "le" (Le, Jaitly, Hinton 2015; Arjovsky et al. 2016): values U[0,1), one marked in each half, target the sum.
- "hochreiter" (Hochreiter and Schmidhuber 1997, Experiment 4): values U[-1,1), lengths T..T+T//10,
  target 0.5 + (X1+X2)/4, scored at each sequence's last step. Rules where the paper is loose:
  X1 is uniform over pairs 0..9; X2 uniform over pairs 0..T//2-2 other than X1's; the first and the last valid
  pair carry marker -1 unless marked; whichever marked pair is the first one has its value set to 0 (the paper:
  "in the rare case where the first pair gets marked, we set X1 to zero"); padding after a sequence's end is 0.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from rnngrad.tasks._shared import squared_error, targets_at_mask

if TYPE_CHECKING:
    import torch

VARIANTS = ("le", "hochreiter")
# The "le" variant needs one step per half; Hochreiter's first ten pairs must lie in the first half.
MIN_T = {"le": 2, "hochreiter": 20}
PARAMS: dict[str, int] = {}
HOCHREITER_FIRST_PAIRS = 10  # X1 is marked among the first ten pairs
TOLERANCE = 0.04  # |error| below which a sequence counts as right (Hochreiter & Schmidhuber)
N_INPUTS = 2
N_OUTPUTS = 1
position_losses = squared_error  # the loss at every (sequence, step)
METRIC_NAME = "mse"
SUCCESS_KEY = "solved_mse_fraction"


def sequence_length(T: int, variant: str) -> int:  # noqa: N803 - T is the papers' name
    """The shortest sequence (hochreiter's lengths vary from T to T + T//10)."""
    return T


def layout(n: int, T: int, variant: str) -> dict:  # noqa: N803
    length = T + T // 10 if variant == "hochreiter" else T
    arrays = {"x": ((n, length, 2), np.float32), "y": ((n,), np.float32), "mask": ((n, length), np.bool_)}
    if variant == "hochreiter":
        arrays["length"] = ((n,), np.int32)
    return arrays


def generate(rng: np.random.Generator, T: int, n: int, variant: str) -> dict[str, np.ndarray]:  # noqa: N803
    return _le(rng, T, n) if variant == "le" else _hochreiter(rng, T, n)


def input_moments(T: int, variant: str) -> tuple[np.ndarray, float]:  # noqa: N803
    """E_t[x_t] and E_t ||x_t||^2 over the T steps (the theory's input drive): values U[0,1) ("le": mean 1/2) or
    U[-1,1) ("hochreiter": mean 0), mean square 1/3; markers two 1s ("le") or two 1s and two -1s ("hochreiter")."""
    if variant == "le":
        return np.array([0.5, 2.0 / T]), 1.0 / 3.0 + 2.0 / T
    return np.zeros(2), 1.0 / 3.0 + 4.0 / T


def baseline_loss(T: int, variant: str) -> float:  # noqa: N803
    """The best constant is the target's mean and its MSE the target's variance: 2/12 = 1/6 for "le";
    (2 - q)/48 for "hochreiter", where q is the chance that the first pair is marked (its value is then 0):
    without that rule it would be 1/24."""
    if variant == "le":
        return 1 / 6
    window = T // 2 - 1
    q = Fraction(1, HOCHREITER_FIRST_PAIRS)  # X1 on the first pair
    for first in range(1, HOCHREITER_FIRST_PAIRS):  # X2 on the first pair, given X1 elsewhere
        q += Fraction(1, HOCHREITER_FIRST_PAIRS) / (window - (first < window))
    return float((2 - q) / 48)


def to_model(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs (value, marker) [n, L, 2], zeros after a sequence's end; targets float32 [n, L] holding the target
    at the loss position and 0 elsewhere."""
    import torch

    targets = targets_at_mask(arrays["mask"], arrays["y"], torch.float32)
    return torch.from_numpy(arrays["x"]), targets, torch.from_numpy(arrays["mask"])


ERROR_RULES = {  # when a sequence counts as right, as each paper counts it (the first is the default)
    "hochreiter": lambda error: error.abs() < TOLERANCE,  # Hochreiter & Schmidhuber 1997: wrong when |error| >= 0.04
    "pascanu": lambda error: error**2 <= TOLERANCE,  # Pascanu et al. 2013's code (RNN.py): wrong when error^2 > 0.04
}


def metrics(
    outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, error_rule: str = "hochreiter"
) -> tuple[float, float]:
    """Mean squared error at the loss positions, and the share of sequences right by the error rule."""
    errors = (outputs[..., 0] - targets)[mask]
    return float((errors**2).mean()), float(ERROR_RULES[error_rule](errors).float().mean())


def solved(final_metric: float, baseline: float, threshold: float) -> bool:
    """Solved when the MSE is at most ``threshold`` times the memoryless baseline."""
    return final_metric <= threshold * baseline


def _le(rng: np.random.Generator, T: int, n: int) -> dict[str, np.ndarray]:  # noqa: N803
    rows = np.arange(n)
    values = rng.random((n, T), dtype=np.float32)
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    markers = np.zeros((n, T), dtype=np.float32)
    markers[rows, first] = 1
    markers[rows, second] = 1
    y = (values[rows, first].astype(np.float64) + values[rows, second]).astype(np.float32)
    mask = np.zeros((n, T), dtype=bool)
    mask[:, -1] = True
    return {"x": np.stack([values, markers], axis=-1), "y": y, "mask": mask}


def _hochreiter(rng: np.random.Generator, T: int, n: int) -> dict[str, np.ndarray]:  # noqa: N803
    rows = np.arange(n)
    longest = T + T // 10
    window = T // 2 - 1  # X2 lies among the first T/2 - 1 pairs
    length = rng.integers(T, longest + 1, size=n, dtype=np.int32)
    values = rng.random((n, longest), dtype=np.float32) * 2 - 1  # exact in float32: U[-1, 1)
    first = rng.integers(0, HOCHREITER_FIRST_PAIRS, size=n)
    second = rng.integers(0, window - (first < window))  # uniform over the window without X1's pair
    second += second >= first
    values[np.arange(longest) >= length[:, None]] = 0
    values[(first == 0) | (second == 0), 0] = 0
    markers = np.zeros((n, longest), dtype=np.float32)
    markers[:, 0] = -1
    markers[rows, length - 1] = -1
    markers[rows, first] = 1
    markers[rows, second] = 1
    marked_sum = values[rows, first].astype(np.float64) + values[rows, second]
    y = (0.5 + marked_sum / 4).astype(np.float32)
    mask = np.zeros((n, longest), dtype=bool)
    mask[rows, length - 1] = True
    return {"x": np.stack([values, markers], axis=-1), "y": y, "mask": mask, "length": length}
