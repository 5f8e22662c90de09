"""Which settings learn at all: for each task, a heatmap over (activation, recurrent scale) and sequence length T of
the share of seeds that solved the task, with the share that diverged written in the cell ("D").

Read along a row: the longer T, the further back the gradient must reach, so success should fade where the
Jacobian products vanish (small scale, sigmoid) and turn into divergence where they explode (large scale, relu)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps

from rnngrad import theory
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs",)

TITLE = "solved and diverged runs"
COLORBAR_LABEL = "share of seeds that solved the task"
# Schoenholz et al. 2017: trainable up to about 6 xi, xi the depth scale of the squared gradient norm; that is half
# the memory time of the norm (rnngrad.theory.memory_time), so 6 of theirs are 3 of ours.
TRAINABLE_MULTIPLE = 3.0


def row_labels(runs: pd.DataFrame) -> pd.Series:
    """ "tanh, g = 1.5" (with the clip threshold where the runs mix several), "LSTM" for lstm runs."""
    labels = common.activation_key(runs).str.cat(common.scale_key(runs), sep=", ")
    labels = labels.where(runs["model"] != "lstm", common.LSTM)
    if runs["clip"].fillna(-1.0).nunique() > 1:
        clip = ["no clip" if np.isnan(c) else f"clip {c:g}" for c in runs["clip"]]
        labels = labels.str.cat(pd.Series(clip, index=runs.index), sep=", ")
    return labels


def outcome_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task panel, row label, T): seeds, solved share and diverged share."""
    keyed = runs.assign(
        panel=_panel(runs),
        row=row_labels(runs),
        is_solved=runs["solved"].astype("boolean").fillna(False).astype(float),
        is_diverged=(runs["status"] == common.DIVERGED).astype(float),
        order_act=common.activation_key(runs).map(
            {name: i for i, name in enumerate([*style.ACTIVATION_ORDER, common.LSTM])}
        ),
    )
    cells = keyed.groupby(["panel", "row", "T"], as_index=False).agg(
        seeds=("run_id", "size"),
        solved=("is_solved", "mean"),
        diverged=("is_diverged", "mean"),
        order_act=("order_act", "first"),
        init=("init", "first"),
        scale=("scale", "first"),
        clip=("clip", "first"),
    )
    return cells.sort_values(["order_act", "init", "scale", "clip", "T"], na_position="last")


def _panel(runs: pd.DataFrame) -> pd.Series:
    return common.setting_label(runs.assign(T=0)).str.replace(", T = 0", "", regex=False)


def predicted_lengths(runs: pd.DataFrame) -> pd.DataFrame:
    """TRAINABLE_MULTIPLE x the mean-field memory time xi per (panel, row) of RNN runs, from the spec alone
    (rnngrad.theory, at the runs' median T for the input variance); NaN where no mean field exists."""
    rnn = runs[runs["model"] == "rnn"].assign(panel=_panel(runs), row=row_labels(runs))
    keys = ["panel", "row", "activation", "init", "scale", "task", "variant", "hidden"]
    rows = []
    for (panel, row, act, init, g, task, variant, hidden), group in rnn.groupby(keys, sort=False):
        s2 = theory.input_variance(task, float(group["T"].median()), variant) if hidden > 1 else np.nan
        xi = theory.memory_time(act, init, g, s2)
        rows.append({"panel": panel, "row": row, "length": TRAINABLE_MULTIPLE * xi})
    return pd.DataFrame(rows, columns=["panel", "row", "length"])


def _draw_predicted_lengths(ax: plt.Axes, lengths: pd.DataFrame, rows: list[str], lengths_T) -> int:
    """A bar in each row at T = TRAINABLE_MULTIPLE xi on the log-interpolated T columns (an arrowhead at the edge
    when it lies beyond them); returns how many were drawn."""
    log_T = np.log(np.asarray(lengths_T, dtype=float))
    centres = np.arange(len(log_T)) + 0.5
    drawn = 0
    for row, length in zip(lengths["row"], lengths["length"], strict=True):
        if row not in rows or np.isnan(length):
            continue
        if len(log_T) > 1:
            x = np.interp(np.log(length), log_T, centres, left=0.0, right=len(log_T))
        else:  # one column: left edge if shorter than its T, right edge if longer
            x = 0.5 + 0.5 * np.sign(np.log(length) - log_T[0])
        i = rows.index(row)
        if 0 < x < len(log_T):
            ax.plot([x, x], [i + 0.1, i + 0.9], color="black", lw=2.0, solid_capstyle="butt", zorder=4)
        else:  # beyond the columns: an arrowhead inside the edge cell, pointing out
            inside, marker = (0.12, "<") if x <= 0 else (len(log_T) - 0.12, ">")
            ax.plot([inside], [i + 0.5], marker=marker, color="black", markersize=5, zorder=4)
        drawn += 1
    return drawn


def _cell_text(solved: float, diverged: float) -> str:
    if np.isnan(solved):
        return ""
    return f"{solved:.0%}" + (f" D{diverged:.0%}" if diverged > 0 else "")


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    if runs.empty:
        common.empty_figure(out_path, TITLE, "sequence length T", "activation, scale")
        return
    cells = outcome_cells(runs)
    panels = sorted(cells["panel"].unique())
    rows = list(dict.fromkeys(cells["row"]))
    cmap = colormaps[style.SEQUENTIAL]

    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(common.WIDTH, 1.6 + 0.26 * len(rows)),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    n_bars, predicted = 0, predicted_lengths(runs)
    for ax, panel in zip(axes[0], panels, strict=True):
        here = cells[cells["panel"] == panel]
        solved = here.pivot(index="row", columns="T", values="solved").reindex(rows)
        diverged = here.pivot(index="row", columns="T", values="diverged").reindex(rows)
        text = np.vectorize(_cell_text, otypes=[str])(solved.to_numpy(), diverged.to_numpy())
        ax.set_facecolor("0.88")  # cells with no runs
        sns.heatmap(
            solved,
            vmin=0.0,
            vmax=1.0,
            cmap=cmap,
            cbar=False,
            linewidths=0.5,
            linecolor="white",
            ax=ax,
        )
        for (i, j), label in np.ndenumerate(text):
            if label:
                r, g, b, _ = cmap(solved.to_numpy()[i, j])
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    label,
                    ha="center",
                    va="center",
                    fontsize=common.NOTE_SIZE,
                    color="white" if dark else "black",
                )
        n_bars += _draw_predicted_lengths(ax, predicted[predicted["panel"] == panel], rows, solved.columns)
        ax.grid(False)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("sequence length $T$ (steps)")
        ax.set_ylabel("activation, scale $g$" if ax is axes[0, 0] else "")
        ax.tick_params(axis="y", rotation=0)
    colorbar = fig.colorbar(
        plt.cm.ScalarMappable(norm=plt.Normalize(0.0, 1.0), cmap=cmap), ax=axes[0].tolist(), shrink=0.8
    )
    colorbar.set_label(COLORBAR_LABEL)
    fewest, most = int(cells["seeds"].min()), int(cells["seeds"].max())
    seeds = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    common.footnote(
        fig,
        [
            f"Cell text: the solved share over {seeds} seed(s); 'D' and the share of seeds whose run diverged"
            " (NaN or Inf loss or gradient). Grey cells: no runs.",
            f"Black bars ({n_bars}): the predicted trainable length {TRAINABLE_MULTIPLE:g} xi, xi = 1/|lambda| the"
            " mean-field memory time from the spec alone (rnngrad.theory), placed on the log-T columns; an arrowhead at"
            " the edge when it lies beyond them; none for the LSTM or where no mean field exists."
            if n_bars
            else "",
        ],
    )
    style.save(fig, out_path)
