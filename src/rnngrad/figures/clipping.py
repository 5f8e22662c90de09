"""What gradient clipping does to training, as Pascanu, Mikolov and Bengio 2013 (Sect. 3.2, Algorithm 1) showed it:
for each setting (task, T, activation and recurrent scale; one row each), the training loss (left) and the
gradient norm measured before clipping (right) against the step, on log axes, one line per run coloured by its arm
(no clipping, or clipping at a threshold, drawn dashed on the right).

Explosions show as spikes of several decades in the gradient norm; without clipping a spike throws the parameters
off the error surface's wall and the loss jumps or the run diverges (NaN or Inf loss or gradient: an x at the top
edge at the step it happened). With clipping the update is at most the threshold long.

Each row's legend counts the runs of every arm: diverged (training stopped at a NaN/Inf), failed (completed but
not solved) and solved (the task's success criterion on the final test metric), out of the arm's runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "metrics")

XLABEL = "training step"
LOSS_LABEL = "training loss"
NORM_LABEL = r"$\|\nabla_\theta L\|_2$ before clipping"
TITLE = "training loss and gradient norms with and without clipping"
NO_CLIP = "no clipping"
BASELINE_COLOUR = "0.35"
QUANTITIES = (("loss", LOSS_LABEL), ("grad_norm", NORM_LABEL))
MAX_ROWS = 5


def clip_label(clip: float) -> str:
    return NO_CLIP if np.isnan(clip) else f"clipped at {clip:g}"


def row_key(frame: pd.DataFrame) -> pd.Series:
    """ "adding, T = 50 · tanh, g = 2": one row of the figure per task, length, activation and scale."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    what = common.activation_key(frame).str.cat(common.scale_key(frame), sep=", ")
    what = what.where(frame["model"] == "rnn", frame["label"])
    return common.setting_label(frame).str.cat(what, sep=" \u00b7 ")


def arm_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per row and arm: runs, diverged (status), solved (the runs table's verdict) and failed (the rest: completed,
    not solved)."""
    frame = runs.assign(
        row=row_key(runs),
        clipping=[clip_label(c) for c in runs["clip"].astype(float)],
        is_diverged=runs["status"] == common.DIVERGED,
        is_solved=runs["solved"].astype("boolean").fillna(False).astype(bool) & (runs["status"] != common.DIVERGED),
    )
    counts = frame.groupby(["row", "clipping"], sort=False).agg(
        runs=("run_id", "nunique"), diverged=("is_diverged", "sum"), solved=("is_solved", "sum")
    )
    counts["failed"] = counts["runs"] - counts["diverged"] - counts["solved"]
    return counts.astype(int).reset_index()


def count_text(row: pd.Series) -> str:
    """ "4/6 diverged, 2/6 failed, 0/6 solved"."""
    n = row["runs"]
    return f"{row['diverged']}/{n} diverged, {row['failed']}/{n} failed, {row['solved']}/{n} solved"


def thin_ticks(ax: plt.Axes, most: int = 5) -> None:
    """At most ``most`` labelled y ticks: a log axis spanning less than a decade falls back to linear ticks
    (0.13, 0.14, ...), too many for a short panel."""
    low, high = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if low <= t <= high]
    if len(ticks) > most:
        step = -(-len(ticks) // most)
        ax.yaxis.set_major_locator(ticker.FixedLocator(ticks[::step]))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, metrics = tables["runs"], tables["metrics"]
    train = metrics[metrics["split"] == "train"]
    if runs.empty and train.empty:
        common.empty_figure(out_path, TITLE, XLABEL, NORM_LABEL, "no data (no runs)")
        return
    data = common.with_outcome(train, runs)
    data = data.assign(clipping=[clip_label(c) for c in data["clip"].astype(float)], row=row_key(data))
    info = runs.assign(clipping=[clip_label(c) for c in runs["clip"].astype(float)], row=row_key(runs))
    clips = sorted(info["clip"].dropna().unique())
    order = ([NO_CLIP] if info["clip"].isna().any() else []) + [clip_label(c) for c in clips]
    colours = sns.color_palette(style.PALETTE, 10)
    palette = dict(zip(order, [colours[3], colours[0], colours[2], colours[4], colours[8]], strict=False))
    keys = ["task", "variant", "T", "activation", "scale", "row"]
    rows = list(dict.fromkeys(pd.concat([info[keys], data[keys]]).sort_values(keys[:-1])["row"]))
    counts = arm_counts(runs)

    # one setting a row; more than MAX_ROWS settings go two abreast, and the figure stays within a page
    per_line = 1 if len(rows) <= MAX_ROWS else 2
    lines = -(-len(rows) // per_line)
    height = min(2.3, 8.2 / lines)
    fig = plt.figure(figsize=(common.WIDTH, 0.9 + height * lines), layout="constrained")
    subfigs = fig.subfigures(lines, per_line, squeeze=False).ravel()
    dropped = {column: [] for column, _ in QUANTITIES}
    n_diverged = 0
    for r, (subfig, row) in enumerate(zip(subfigs, rows, strict=False)):
        axes = subfig.subplots(1, len(QUANTITIES), sharex=True)
        here = data[data["row"] == row]
        row_info = info[info["row"] == row]
        blown = row_info[np.isfinite(row_info["diverged_at"].astype(float))]
        n_diverged += len(blown)
        for ax, (column, label) in zip(axes, QUANTITIES, strict=True):
            dropped[column].append(common.run_lines(ax, here, "step", column, "clipping", palette))
            if column == "grad_norm":
                for clip in here["clip"].dropna().unique():
                    ax.axhline(clip, color=palette[clip_label(clip)], zorder=1, **common.THEORY_STYLE)
            else:
                for baseline in np.unique(row_info["baseline_loss"].dropna()):
                    ax.axhline(baseline, color=BASELINE_COLOUR, zorder=1, **common.THEORY_STYLE)
            if not blown.empty:
                common.mark_diverged(ax, blown["diverged_at"], [palette[arm] for arm in blown["clipping"]])
            if here.empty:
                common.no_data(ax, "no training rows")
            ax.set_title(label if r < per_line else "", fontsize=9)  # the quantity, over the first line
            ax.set_ylabel("")
            ax.set_xlabel(XLABEL if r >= len(rows) - per_line else "")
        common.readable_log_ticks(axes)
        for ax in axes:
            thin_ticks(ax)
        row_counts = counts[counts["row"] == row].set_index("clipping")
        handles = [
            common.legend_line(f"{arm}: {count_text(row_counts.loc[arm])}", palette[arm], linewidth=1.8)
            for arm in order
            if arm in row_counts.index
        ]
        if not handles:  # training rows of runs the runs table does not hold: nothing to count
            subfig.suptitle(row, fontsize=10)
            continue
        subfig.legend(
            handles=handles,
            title=row,
            loc="outside upper center",
            ncol=1,
            frameon=False,
            fontsize=common.NOTE_SIZE,
            title_fontsize=10,
        )
    handles = common.outcome_handles(data) if len(data) else []
    handles.append(common.legend_line("clip threshold / memoryless baseline", **common.THEORY_STYLE))
    if n_diverged:
        handles.append(common.diverged_handle())
    dropped = {column: pd.concat(frames, ignore_index=True) for column, frames in dropped.items()}
    if any(not common.at_top(frame, column).empty for column, frame in dropped.items()):
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles, ncol=4)
    common.footnote(
        fig,
        [
            "Training split (the loss of each step's minibatch); one line per run (seed). The norm is logged before"
            " clipping, so the clipped runs' lines show what the threshold cut. Counts: diverged, training stopped"
            " at a NaN/Inf loss or gradient; solved, the task's success criterion met by the final test metric;"
            " failed, completed without solving.",
            common.describe_dropped(
                "the training loss", common.count_dropped(dropped["loss"], "loss"), "NaN/+Inf at top"
            ),
            common.describe_dropped(
                "the gradient norm", common.count_dropped(dropped["grad_norm"], "grad_norm"), "NaN/+Inf at top"
            ),
        ],
    )
    style.save(fig, out_path)
