"""Share of seeds that solve the task against the sequence length T, with and without gradient clipping, in the
style of Pascanu, Mikolov and Bengio 2013, Fig. 7.

One panel per model (activation and initialisation); colour and marker say whether gradients were clipped.
Solid lines: share of seeds solved; dotted lines with crosses: share of seeds whose training diverged (NaN/Inf
loss or gradient), drawn for the settings where any run diverged. A model that learns long dependencies keeps
the solid line up as T grows.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs",)

NO_CLIP = "no clipping"
INIT_ORDER = ("orthogonal", "gaussian", "identity", "none")
MARKERS = ("o", "s", "D", "v", "P")


def _clip_label(clip: float) -> str:
    return NO_CLIP if math.isnan(clip) else f"clip at {common.format_number(clip)}"


def _panel_label(frame: pd.DataFrame) -> pd.Series:
    """ "RNN-tanh, orthogonal"; "IRNN" and "LSTM" alone (their initialisation is fixed); the task in front where
    the table holds several."""
    several_tasks = frame["task"].nunique() > 1
    labels = [
        (f"{task}: " if several_tasks else "") + (label if label in ("IRNN", common.LSTM) else f"{label}, {init}")
        for task, label, init in zip(frame["task"], frame["label"], frame["init"], strict=True)
    ]
    return pd.Series(labels, index=frame.index, dtype=object)


def shares(runs: pd.DataFrame) -> pd.DataFrame:
    """Per panel, clipping setting and T: seeds, share solved, share diverged."""
    frame = runs.assign(
        panel=_panel_label(runs),
        clipping=[_clip_label(float(c)) for c in runs["clip"]],
        diverged=runs["status"] == common.DIVERGED,
        solved=runs["solved"].astype(bool),
    )
    grouped = frame.groupby(["panel", "task", "label", "init", "clipping", "clip", "T"], dropna=False, sort=False)
    return grouped.agg(
        seeds=("run_id", "nunique"), solved_share=("solved", "mean"), diverged_share=("diverged", "mean")
    ).reset_index()


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    if runs.empty:
        common.empty_figure(
            out_path, "success vs sequence length (no runs)", xlabel="sequence length T", ylabel="share of seeds"
        )
        return
    table = shares(runs)
    label_rank = {label: i for i, label in enumerate(common.label_order(table["label"]))}
    init_rank = {init: i for i, init in enumerate(INIT_ORDER)}
    ranked = table.assign(_l=table["label"].map(label_rank), _i=table["init"].map(init_rank).fillna(len(INIT_ORDER)))
    panels = list(dict.fromkeys(ranked.sort_values(["task", "_l", "_i"])["panel"]))
    clip_values = sorted(table["clip"].astype(float), key=lambda c: (not math.isnan(c), c))
    clippings = list(dict.fromkeys(_clip_label(c) for c in clip_values))  # no clipping first, then by threshold
    palette = dict(zip(clippings, sns.color_palette(style.PALETTE), strict=False))
    markers = dict(zip(clippings, MARKERS, strict=False))
    # dodge clipping settings sideways (in log2 units of T) so that equal shares do not hide each other
    offsets = dict(zip(clippings, 0.06 * (np.arange(len(clippings)) - (len(clippings) - 1) / 2), strict=True))

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(common.WIDTH, 0.9 + 1.9 * nrows), sharex=True, sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, panel in zip(axes.flat, panels, strict=False):
        data = table[table["panel"] == panel]
        for clipping in clippings:
            curve = data[data["clipping"] == clipping].sort_values("T")
            if curve.empty:
                continue
            x = curve["T"].to_numpy(dtype=float) * 2.0 ** offsets[clipping]
            colour, marker = palette[clipping], markers[clipping]
            ax.plot(x, curve["solved_share"], color=colour, marker=marker, ms=4.5, lw=1.4)
            if (curve["diverged_share"] > 0).any():
                ax.plot(x, curve["diverged_share"], color=colour, marker="x", ms=4.5, lw=1.0, ls=":")
        ax.set_title(panel)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    common.log2_scale_axis(axes[0, 0], table["T"])
    axes[0, 0].set_ylim(-0.05, 1.05)
    for ax in axes.flat[: len(panels)]:
        ax.tick_params(labelbottom=True)
    fig.supxlabel("sequence length T (log scale)", fontsize="medium")
    fig.supylabel("share of seeds", fontsize="medium")

    handles = [
        common.legend_line(clipping, palette[clipping], marker=markers[clipping], linewidth=1.4)
        for clipping in clippings
    ]
    handles += [
        common.legend_line("solved", "0.3", linestyle="-", marker="o", ms=4),
        common.legend_line("diverged", "0.3", linestyle=":", marker="x", ms=4),
    ]
    common.legend(fig, handles, ncol=4)
    seeds = table["seeds"]
    count = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()} to {seeds.max()}"
    common.footnote(
        fig,
        [
            f"Each point: share of {count} seeds. Solved: the task's success criterion met at the end of training. "
            "Diverged (dotted, drawn where any run diverged): training stopped at a NaN/Inf loss or gradient."
        ],
    )
    style.save(fig, out_path)
