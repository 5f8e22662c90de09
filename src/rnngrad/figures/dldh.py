"""The gradient reaching each state: mean ||dL_t/ds_k|| against k, for every model (RNN-tanh, RNN-relu, IRNN,
LSTM, GRU, LRU, ...), at initialisation and after training, on a log axis (in the style of Arjovsky et al. 2016,
Fig. 4). s_k is the whole state: h_k for the RNN and the GRU, (h_k, c_k) for the LSTM, the LRU's complex state.

Read from the right (k = t, where the loss is) to the left: a line that falls steeply means that early inputs
hardly reach the gradient (vanishing); a flat one means they do. "LSTM" has torch's default initialisation (every
weight and bias uniform(-1/sqrt(H), 1/sqrt(H))), so its forget gates start near sigmoid(0) = 1/2; "LSTM b_f=1" has
the forget gate's bias set to 1. IRNN: relu with W = I (Le et al. 2015); other identity runs are RNN-relu."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "gradients")

XLABEL = "time step $k$ of the state $s_k$"
YLABEL = r"mean $\|\partial L_t / \partial s_k\|$"
TITLE = "gradient norm reaching each hidden state"
KEYS = ["run_id", "step", "t", "k"]  # dL_t/ds_k is one number per row key, repeated on each weight's row
LSTM_NOTE = "LSTM: torch's default initialisation (forget-gate bias not set to 1) unless its label gives b_f."


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, gradients = tables["runs"], tables["gradients"]
    if not common.drawable(gradients, out_path, TITLE, XLABEL, YLABEL):
        return
    data = common.last_target(common.with_stage(common.with_outcome(gradients.drop_duplicates(KEYS), runs)))
    data = data.assign(setting=common.setting_label(data))
    palette = common.model_palette(common.label_order(data["label"]))
    settings = common.setting_order(data)
    stages = [s for s in common.STAGES if (data["stage"] == s).any()]

    fig, axes = common.panels(len(settings), len(stages), 1.0 + 2.6 * len(settings), sharex="row", sharey="row")
    dropped = []
    for r, setting in enumerate(settings):
        for c, stage in enumerate(stages):
            ax = axes[r, c]
            here = data[(data["setting"] == setting) & (data["stage"] == stage)]
            dropped.append(common.run_lines(ax, here, "k", "dLdh_norm", "label", palette))
            ax.set_title(f"{setting} · {stage}", fontsize=9)
            ax.set_xlabel(XLABEL if r == len(settings) - 1 else "")
            ax.set_ylabel(YLABEL if c == 0 else "")
    dropped = pd.concat(dropped, ignore_index=True)
    common.readable_log_ticks(axes)
    handles = common.palette_handles(palette) + common.outcome_handles(data)
    common.legend(fig, common.with_nonfinite(handles, dropped, "dLdh_norm"))
    common.footnote(
        fig,
        [
            "t is each run's last target step (the last loss step); one line per run (seed).",
            LSTM_NOTE if (data["model"] == "lstm").any() else "",
            common.describe_dropped("the gradient norm", common.count_dropped(dropped, "dLdh_norm"), "NaN/+Inf at top"),
        ],
    )
    style.save(fig, out_path)
