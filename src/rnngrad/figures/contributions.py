"""How much each earlier step k adds to the gradient of the loss at step t: ||C_{t,k}||_F against the distance
t - k, on a log axis, per activation and recurrent scale (and per cell: LSTM, GRU, LRU, a user's), at
initialisation and after training. For a cell other than the vanilla RNN, C_{t,k} is the gradient of L_t with
respect to step k's own copy of its recurrent weights (all of them together; rnngrad.decompose).

C_{t,k} = delta_{t,k} h_{k-1}^T (summed over the batch). A straight line on the log axis is an exponential; its
slope is about the rate of delta_{t,k} (the Jacobian products, which the bound (gamma sigma_max(W))^(t-k) of Pascanu
et al. 2013 caps) minus the growth rate of ||h_{k-1}|| in k, so C itself is not bounded by it. Where h is bounded
(tanh, sigmoid) the two rates are close (within 0.16 per step in the default run); for relu with growing
states (g >= 1.5 at initialisation) the early h_{k-1} are as small as the products are large, and the lines are flat
(rnngrad.theory.mean_field_contribution_rate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnngrad import analysis
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "gradients")

XLABEL = "distance $t-k$ (steps)"
YLABEL = r"$\|C_{t,k}\|_F$"
TITLE = "gradient contributions by distance"


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, gradients = tables["runs"], tables["gradients"]
    if not common.drawable(gradients, out_path, TITLE, XLABEL, YLABEL):
        return
    gradients = analysis.recurrent_contributions(gradients)
    data = common.last_target(common.longest_T(common.with_stage(common.with_outcome(gradients, runs))))
    data = data.assign(
        series=common.scale_key(data), setting=common.setting_label(data), facet=common.activation_key(data)
    )
    palette = common.scale_palette(data)
    activations = common.ordered_activations(data)
    rows = [(setting, stage) for setting in common.setting_order(data) for stage in common.STAGES]
    rows = [(se, st) for se, st in rows if ((data["setting"] == se) & (data["stage"] == st)).any()]

    fig, axes = common.panels(len(rows), len(activations), 0.9 + 1.9 * len(rows), sharex="row", sharey="row")
    dropped = []
    for r, (setting, stage) in enumerate(rows):
        for c, act in enumerate(activations):
            ax = axes[r, c]
            here = data[(data["setting"] == setting) & (data["stage"] == stage) & (data["facet"] == act)]
            dropped.append(common.run_lines(ax, here, "distance", "contribution_norm", "series", palette))
            ax.set_title(act if r == 0 else "", fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel(f"{setting}\n{common.STAGE_SHORT[stage]}\n{YLABEL}" if c == 0 else "")
    fig.supxlabel(XLABEL, fontsize="medium")
    dropped = pd.concat(dropped, ignore_index=True)
    common.readable_log_ticks(axes)
    at_k1 = (dropped["k"] == 1) & (dropped["contribution_norm"] == 0)
    notes = [
        common.describe_dropped(
            "C_t,1 (exactly 0 because s_0 = 0)", common.count_dropped(dropped[at_k1], "contribution_norm")
        ),
        common.describe_dropped(
            "other contributions", common.count_dropped(dropped[~at_k1], "contribution_norm"), "NaN/+Inf at top"
        ),
        "Cells other than the RNN: C_t,k of all recurrent weights together (LSTM, GRU: W_hh; LRU: nu and theta)."
        if (data["model"] != "rnn").any()
        else "",
        f"Each task at its longest T; the last target step t of each run; {common.STAGE_SHORT[common.STAGE_TRAINED]}"
        " = the run's last logged step.",
    ]
    handles = common.palette_handles(palette) + common.outcome_handles(data)
    common.legend(fig, common.with_nonfinite(handles, dropped, "contribution_norm"))
    common.footnote(fig, notes)
    style.save(fig, out_path)
