"""Outcome and regime labels of the summary."""

import math

import pandas as pd

from rnngrad.summary import REGIME_TOLERANCE, outcome, regime


def test_regime_thresholds():
    assert regime(-2 * REGIME_TOLERANCE) == "vanishing"
    assert regime(2 * REGIME_TOLERANCE) == "exploding"
    assert regime(0.0) == "marginal"
    assert regime(math.nan) == "n/a"


def test_outcome_labels_in_priority_order():
    runs = pd.DataFrame(
        {
            "solved": [True, False, False, False],
            "status": ["completed", "diverged", "completed", "completed"],
            "final_loss": [0.001, math.nan, 0.17, 0.05],
            "baseline_loss": [1 / 6] * 4,
        }
    )
    assert list(outcome(runs)) == ["solved", "diverged", "baseline", "learning"]
