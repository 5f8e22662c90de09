"""Does training get anywhere: test loss against step per task and sequence length (rows) and activation
(columns), one line per run coloured by the recurrent scale, against the task's memoryless baseline (the loss of
the best predictor that ignores the past: 10 ln 8 / (T + 20) for copy, 1/6 for adding; Arjovsky et al. 2016).

A run that stays on the baseline has learnt nothing that needs memory; an x at the top marks where a run
diverged (NaN or Inf loss or gradient)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "metrics")

XLABEL = "training step"
YLABEL = "test loss"
TITLE = "training curves"
BASELINE_COLOUR = "0.35"


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, test = tables["runs"], common.evaluation_rows(tables["metrics"], out_path, TITLE, XLABEL, YLABEL)
    if test is None:
        return
    data = common.with_outcome(test, runs)
    data = data.assign(
        series=common.scale_key(data), setting=common.setting_label(data), column=common.activation_key(data)
    )
    palette = common.scale_palette(data)
    columns = common.ordered_activations(data)
    settings = common.setting_order(data)
    run_info = runs.assign(series=common.scale_key(runs), setting=common.setting_label(runs))
    run_info = run_info.assign(column=common.activation_key(run_info))

    fig, axes = common.panels(len(settings), len(columns), 1.0 + 1.9 * len(settings), sharex=True, sharey="row")
    dropped, n_diverged = [], 0
    for r, setting in enumerate(settings):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            here = data[(data["setting"] == setting) & (data["column"] == column)]
            dropped.append(common.run_lines(ax, here, "step", "loss", "series", palette))
            info = run_info[(run_info["setting"] == setting) & (run_info["column"] == column)]
            for baseline in np.unique(info["baseline_loss"].dropna()):
                ax.axhline(baseline, color=BASELINE_COLOUR, zorder=1, **common.THEORY_STYLE)
            blown = info[np.isfinite(info["diverged_at"])]
            if not blown.empty:
                n_diverged += len(blown)
                common.mark_diverged(ax, blown["diverged_at"], [palette.get(key, "0.2") for key in blown["series"]])
            if here.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_title(column if r == 0 else "", fontsize=9)
            ax.set_xlabel(XLABEL if r == len(settings) - 1 else "")
            ax.set_ylabel(f"{setting}\n{YLABEL}" if c == 0 else "")
    dropped = pd.concat(dropped, ignore_index=True)
    common.readable_log_ticks(axes)
    handles = common.palette_handles(palette) + common.outcome_handles(data)
    handles.append(common.legend_line("memoryless baseline", BASELINE_COLOUR, **common.THEORY_STYLE))
    if n_diverged:
        handles.append(common.diverged_handle())
    common.legend(fig, common.with_nonfinite(handles, dropped, "loss"))
    common.footnote(
        fig,
        [
            "Test split; one line per run (seed).",
            common.describe_dropped("the test loss", common.count_dropped(dropped, "loss"), "NaN/+Inf at top"),
        ],
    )
    style.save(fig, out_path)
