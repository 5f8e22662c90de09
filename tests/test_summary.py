"""Outcome and regime labels of the summary."""

import math

import pandas as pd

from rnngrad.summary import REGIME_TOLERANCE, far_contributions, outcome, regime


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


def test_far_contributions_per_cell_and_stage():
    """||C_t,2|| / ||C_t,t|| at the last target, per cell, at step 0 and trained; the LRU's two recurrent weights
    count together (sqrt of the summed squares); experiments of vanilla RNNs alone add no rows."""
    runs, grads = [], []
    for run_id, label, model, far in (("a", "RNN-tanh", "rnn", 1e-3), ("b", "LRU", "lru", 0.5)):
        runs.append({"run_id": run_id, "experiment": "cells", "label": label, "model": model, "T": 5, "solved": False})
        for step, shrink in ((0, 1.0), (100, 0.1)):
            for weight in ("nu", "theta") if model == "lru" else ("W",):
                for k in range(1, 6):
                    norm = 0.0 if k == 1 else (far * shrink if k == 2 else 1.0)
                    grads.append({"run_id": run_id, "step": step, "t": 5, "k": k, "weight": weight,
                                  "contribution_norm": norm})  # fmt: skip
    cells = {"runs": pd.DataFrame(runs), "gradients": pd.DataFrame(grads)}
    vanilla = {"runs": cells["runs"].iloc[:1], "gradients": cells["gradients"].query("run_id == 'a'")}
    table = far_contributions([cells, vanilla]).set_index("label")
    assert list(table.index) == ["LRU", "RNN-tanh"]
    assert table.loc["LRU", "far/near step 0"] == 0.5 and table.loc["LRU", "far/near trained"] == 0.05
    assert table.loc["RNN-tanh", "far/near step 0"] == 1e-3 and table.loc["RNN-tanh", "runs"] == 1
