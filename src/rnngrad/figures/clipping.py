"""What gradient clipping does to training: the gradient norm (measured before clipping) against the step, with and
without clipping, on a log axis, with the clip threshold drawn. Explosions show as spikes of several decades;
NaN/Inf steps (a run diverging) are marked at the top. With clipping the step taken is at most the threshold, so
a spike no longer throws the parameters off the error surface's wall (Pascanu et al. 2013, Sect. 3.2 and
Algorithm 1)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "metrics")

XLABEL = "training step"
YLABEL = r"$\|\nabla_\theta L\|_2$ before clipping"
TITLE = "gradient norms with and without clipping"
NO_CLIP = "no clipping"


def clip_label(clip: float) -> str:
    return NO_CLIP if np.isnan(clip) else f"clipped at {clip:g}"


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, metrics = tables["runs"], tables["metrics"]
    train = metrics[metrics["split"] == "train"]
    if train.empty:
        common.empty_figure(out_path, TITLE, XLABEL, YLABEL, "no data (no training rows)")
        return
    data = common.with_outcome(train, runs)
    data = data.assign(
        clipping=[clip_label(c) for c in data["clip"]],
        column=common.activation_key(data),
        row=common.setting_label(data).str.cat(common.scale_key(data), sep=", "),
    )
    clips = sorted(data["clip"].dropna().unique())
    order = ([NO_CLIP] if data["clip"].isna().any() else []) + [clip_label(c) for c in clips]
    colours = sns.color_palette(style.PALETTE, 10)
    palette = dict(zip(order, [colours[3], colours[0], colours[2], colours[4], colours[8]], strict=False))
    columns = common.ordered_activations(data)
    rows = list(dict.fromkeys(data.sort_values(["task", "variant", "T", "scale"])["row"]))

    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(common.WIDTH, 1.0 + 2.2 * len(rows)),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    dropped = []
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            here = data[(data["row"] == row) & (data["column"] == column)]
            dropped.append(common.run_lines(ax, here, "step", "grad_norm", "clipping", palette))
            for clip in here["clip"].dropna().unique():
                ax.axhline(clip, color=palette[clip_label(clip)], zorder=1, **common.THEORY_STYLE)
            if here.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_title(column if r == 0 else "", fontsize=9)
            ax.set_xlabel(XLABEL if r == len(rows) - 1 else "")
            ax.set_ylabel(f"{row}\n{YLABEL}" if c == 0 else "")
    dropped = pd.concat(dropped, ignore_index=True)
    common.readable_log_ticks(axes)
    handles = common.palette_handles(palette) + common.outcome_handles(data)
    if clips:
        handles.append(common.legend_line("clip threshold", **common.THEORY_STYLE))
    if not common.at_top(dropped, "grad_norm").empty:
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles)
    common.footnote(
        fig,
        [
            "Training split; one line per run (seed). The norm is logged before clipping, so the clipped runs'"
            " lines show what the threshold cut.",
            common.describe_dropped("the gradient norm", common.count_dropped(dropped, "grad_norm"), "NaN/+Inf at top"),
        ],
    )
    style.save(fig, out_path)
