"""Who carries the memory further: the share of seeds that solve the task against the sequence length T, one line
per arm on the same axes, in the style of Pascanu, Mikolov and Bengio 2013, Fig. 7.

An arm is a model (the runs table's ``label``: RNN-tanh, RNN-relu, IRNN, LSTM, ...; with the initialisation or
the scale where a label comes with several) with or without gradient clipping. Colour is the model; filled circles
are runs without clipping, open squares the same model clipped. Columns: the share of seeds solved (the task's
success criterion on the final test metric); the share of seeds whose training diverged (NaN or Inf loss or
gradient; drawn when any run diverged); and the median over the solved seeds of ``steps_to_solve``, the first
evaluation step whose test metric met the criterion (drawn when any run solved). A remedy that works keeps its
line up as T grows where plain tanh falls.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs",)

NO_CLIP = "no clipping"
INIT_ORDER = ("orthogonal", "gaussian", "identity", "none")
SOLVED, DIVERGED, STEPS = "share of seeds solved", "share of seeds diverged", "median steps to solve"


def shares(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, arm and T: seeds, share solved, share diverged, median steps_to_solve over the solved seeds."""
    model, arm = common.arm_labels(runs)
    solved = runs["solved"].astype("boolean").fillna(False).astype(bool)
    steps = runs["steps_to_solve"] if "steps_to_solve" in runs else pd.Series(np.nan, index=runs.index)
    frame = runs.assign(
        model_key=model,
        arm=arm,
        diverged=runs["status"] == common.DIVERGED,
        solved=solved,
        solve_steps=pd.to_numeric(steps, errors="coerce").astype(float).where(solved),
    )
    grouped = frame.groupby(["task", "model_key", "arm", "label", "init", "clip", "T"], dropna=False, sort=False)
    return grouped.agg(
        seeds=("run_id", "nunique"),
        solved_share=("solved", "mean"),
        diverged_share=("diverged", "mean"),
        steps_to_solve=("solve_steps", "median"),
    ).reset_index()


def arm_order(table: pd.DataFrame) -> list[str]:
    """Arms by model (RNN-tanh, RNN-sigmoid, RNN-relu, IRNN, LSTM, others), init, then unclipped before clipped."""
    label_rank = {label: i for i, label in enumerate(common.label_order(table["label"]))}
    init_rank = {init: i for i, init in enumerate(INIT_ORDER)}
    ranked = table.assign(
        _l=table["label"].map(label_rank),
        _i=table["init"].map(init_rank).fillna(len(INIT_ORDER)),
        _c=table["clip"].astype(float).fillna(-1.0),
    )
    return list(dict.fromkeys(ranked.sort_values(["_l", "_i", "model_key", "_c"])["arm"]))


def _seed_count(seeds: pd.Series) -> str:
    low, high = int(seeds.min()), int(seeds.max())
    return (f"{low}" if low == high else f"{low}-{high}") + (" seed" if high == 1 else " seeds")


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    if runs.empty:
        common.empty_figure(
            out_path, "success vs sequence length (no runs)", xlabel="sequence length T", ylabel="share of seeds"
        )
        return
    table = shares(runs)
    arms = arm_order(table)
    first = table.drop_duplicates("arm").set_index("arm")
    palette = common.model_palette(list(dict.fromkeys(first.loc[arms, "model_key"])))
    # dodge arms sideways (in log2 units of T) so that equal shares do not hide each other
    offsets = dict(zip(arms, 0.05 * (np.arange(len(arms)) - (len(arms) - 1) / 2), strict=True))
    columns = [SOLVED]
    if (table["diverged_share"] > 0).any():
        columns.append(DIVERGED)
    if table["steps_to_solve"].notna().any():
        columns.append(STEPS)
    tasks = sorted(table["task"].unique())

    fig, axes = common.panels(len(tasks), len(columns), 1.2 + 2.4 * len(tasks), sharex=True)
    for r, task in enumerate(tasks):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            for arm in arms:
                curve = table[(table["task"] == task) & (table["arm"] == arm)].sort_values("T")
                value = {SOLVED: "solved_share", DIVERGED: "diverged_share", STEPS: "steps_to_solve"}[column]
                curve = curve[np.isfinite(curve[value].astype(float))]
                if curve.empty:
                    continue
                clipped = not math.isnan(float(first.loc[arm, "clip"]))
                colour = palette[first.loc[arm, "model_key"]]
                x = curve["T"].to_numpy(dtype=float) * 2.0 ** offsets[arm]
                ax.plot(
                    x,
                    curve[value],
                    color=colour,
                    lw=1.4,
                    marker="s" if clipped else "o",
                    ms=4.5,
                    markerfacecolor="white" if clipped else colour,
                    markeredgewidth=1.2,
                )
            if column == STEPS:
                ax.set_yscale("log")
                ax.set_ylabel("training steps (solved seeds)")
            else:
                ax.set_ylim(-0.05, 1.05)
                ax.set_ylabel("share of seeds" if c == 0 else "")
            ax.set_title(f"{task}: {column}" if len(tasks) > 1 else column, fontsize=9)
    common.log2_scale_axis(axes[0, 0], table["T"])
    fig.supxlabel("sequence length T (log scale)", fontsize="medium")
    common.readable_log_ticks(axes)

    handles = []
    for arm in arms:
        clipped = not math.isnan(float(first.loc[arm, "clip"]))
        colour = palette[first.loc[arm, "model_key"]]
        count = _seed_count(table.loc[table["arm"] == arm, "seeds"])
        handles.append(
            common.legend_line(
                f"{arm} ({count})",
                colour,
                marker="s" if clipped else "o",
                ms=4.5,
                linewidth=1.4,
                markerfacecolor="white" if clipped else colour,
                markeredgewidth=1.2,
            )
        )
    common.legend(fig, handles, ncol=3)
    common.footnote(
        fig,
        [
            "Each point: the runs of one arm at one length (seeds per point in the legend), dodged sideways so that"
            " equal values stay visible. Solved: the task's success criterion met by the final test metric."
            " Diverged: training stopped at a NaN/Inf loss or gradient."
            + (
                " Steps to solve: the first evaluation whose test metric met the criterion, median over the solved"
                " seeds; no point where no seed solved."
                if STEPS in columns
                else ""
            ),
        ],
    )
    style.save(fig, out_path)
