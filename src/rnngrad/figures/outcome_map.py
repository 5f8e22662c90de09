"""Which settings learn, and how far: for each task, a heatmap over (activation, recurrent scale) and sequence
length T. A cell's colour is the median over its seeds of the final test loss divided by the task's memoryless
baseline loss (``final_loss / baseline_loss`` of the runs table; log colour scale; only runs that completed enter
the median, a diverged run has no final loss). 1 is the baseline: the run learnt nothing that needs memory; the
further below 1, the more it learnt.

The cell text counts seeds: "✓ k/n" when k of the cell's n seeds solved the task (the task's success criterion on
the final test metric), followed by the median over those k runs of ``steps_to_solve`` (the first evaluation step
whose test metric met the criterion); "D k/n" when k of n diverged (NaN or Inf loss or gradient). A cell whose
every seed diverged is hatched.

Read along a row: the longer T, the further back the gradient must reach, so the loss should climb to the baseline
where the Jacobian products vanish (small scale, sigmoid) and runs diverge where they explode (large scale, relu).

A black bar in each RNN row marks the trainable length predicted from the spec alone: TRAINABLE_MULTIPLE times the
mean-field memory time xi = 1/|lambda| (rnngrad.theory.memory_time), placed on the log-T columns.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colormaps, ticker
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from rnngrad import theory
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs",)

TITLE = "final test loss relative to the memoryless baseline"
COLORBAR_LABEL = "final test loss / memoryless baseline\n(median over completed seeds)"
CMAP = f"{style.SEQUENTIAL}_r"  # the baseline (1) dark, learning (far below 1) bright
SOLVED_MARK = "\u2713"  # check mark (DejaVu Sans has it)
NO_RUNS_COLOUR = "0.88"
ALL_DIVERGED_HATCH = "////"
# Schoenholz et al. 2017: trainable up to about 6 xi, xi the depth scale of the squared gradient norm; that is half
# the memory time of the norm (rnngrad.theory.memory_time), so 6 of theirs are 3 of ours.
TRAINABLE_MULTIPLE = 3.0


def row_labels(runs: pd.DataFrame) -> pd.Series:
    """ "tanh, g = 1.5" (with the clip threshold where the runs mix several); other cells by label ("LSTM", "GRU")."""
    labels = common.activation_key(runs).str.cat(common.scale_key(runs), sep=", ")
    labels = labels.where(runs["model"] == "rnn", runs["label"])
    if runs["clip"].fillna(-1.0).nunique() > 1:
        clip = ["no clip" if np.isnan(c) else f"clip {c:g}" for c in runs["clip"]]
        labels = labels.str.cat(pd.Series(clip, index=runs.index), sep=", ")
    return labels


def loss_ratio(runs: pd.DataFrame) -> pd.Series:
    """final_loss / baseline_loss per run; NaN where it is not a positive finite number (a diverged run)."""
    ratio = pd.to_numeric(runs["final_loss"], errors="coerce") / pd.to_numeric(runs["baseline_loss"], errors="coerce")
    ratio = ratio.astype(float)
    return ratio.where(np.isfinite(ratio) & (ratio > 0))


def outcome_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task panel, row label, T): seeds; solved and diverged counts and shares; the median final
    loss ratio over completed runs; the median steps_to_solve over solved runs."""
    solved = runs["solved"].astype("boolean").fillna(False).astype(bool)
    steps = runs["steps_to_solve"] if "steps_to_solve" in runs else pd.Series(np.nan, index=runs.index)
    keyed = runs.assign(
        panel=_panel(runs),
        row=row_labels(runs),
        is_solved=solved.astype(float),
        is_diverged=(runs["status"] == common.DIVERGED).astype(float),
        ratio=loss_ratio(runs).where(runs["status"] != common.DIVERGED),
        solve_steps=pd.to_numeric(steps, errors="coerce").astype(float).where(solved),
        order_act=common.activation_key(runs).map(
            {name: i for i, name in enumerate([*style.ACTIVATION_ORDER, *common.LABEL_ORDER])}
        ),
    )
    cells = keyed.groupby(["panel", "row", "T"], as_index=False).agg(
        seeds=("run_id", "size"),
        n_solved=("is_solved", "sum"),
        n_diverged=("is_diverged", "sum"),
        solved=("is_solved", "mean"),
        diverged=("is_diverged", "mean"),
        loss_ratio=("ratio", "median"),
        steps_to_solve=("solve_steps", "median"),
        order_act=("order_act", "first"),
        init=("init", "first"),
        scale=("scale", "first"),
        clip=("clip", "first"),
    )
    cells = cells.astype({"n_solved": int, "n_diverged": int})
    return cells.sort_values(["order_act", "init", "scale", "clip", "T"], na_position="last")


def format_steps(steps: float) -> str:
    """300 -> "300", 1500 -> "1.5k", 20000 -> "20k"."""
    return f"{steps:.0f}" if steps < 1000 else f"{steps / 1000:.3g}k"


def cell_text(seeds: int, n_solved: int, n_diverged: int, steps: float) -> str:
    """The counts written in a cell: "✓ 2/3 @1.5k" (solved, median steps to solve) and "D 1/3" (diverged)."""
    lines = []
    if n_solved:
        lines.append(f"{SOLVED_MARK}{n_solved}/{seeds}" + (f" @{format_steps(steps)}" if np.isfinite(steps) else ""))
    if n_diverged:
        lines.append(f"D{n_diverged}/{seeds}")
    return "\n".join(lines)


RATIO_CAP = 10.0  # the colour scale ends here: a loss 10 times the baseline is as bad as any worse one


def colour_norm(cells: pd.DataFrame) -> LogNorm:
    """A log colour scale from the smallest ratio (at most 0.1) to the largest (at least 1, the baseline; at most
    RATIO_CAP, so that runs far worse than the baseline do not squeeze the range below it)."""
    ratios = cells["loss_ratio"].dropna().to_numpy(dtype=float)
    low = min(float(ratios.min()), 0.1) if ratios.size else 0.1
    high = min(max(float(ratios.max()), 1.0), RATIO_CAP) if ratios.size else 1.0
    return LogNorm(vmin=low, vmax=high)


def colour_ticks(norm: LogNorm) -> list[float]:
    """Ticks of the colour bar: the decades inside its range, and the largest 1, 2 or 5 x 10^k below its top, so
    that a scale ending between decades (a loss 7 times the baseline) still labels its upper part."""
    low, high = float(norm.vmin), float(norm.vmax)
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    nice = [m * 10.0**k for k in decades for m in (1.0, 2.0, 5.0) if low <= m * 10.0**k <= high * (1 + 1e-12)]
    ticks = [t for t in nice if np.isclose(np.log10(t) % 1, 0) or np.isclose(np.log10(t) % 1, 1)]
    if nice and nice[-1] not in ticks and (not ticks or nice[-1] > 2 * ticks[-1]):
        ticks.append(nice[-1])
    return ticks


def draw_panel(ax: plt.Axes, here: pd.DataFrame, rows: list[str], norm: LogNorm) -> pd.DataFrame:
    """Draw one task's cells on ``ax``; returns the grid drawn (index: row labels, columns: T), in which cell
    (row i, column j) is centred at (j + 0.5, i + 0.5) in data coordinates, for layers drawn on top."""
    cmap = colormaps[CMAP]
    grid = here.pivot(index="row", columns="T", values="loss_ratio").reindex(rows)
    ax.set_facecolor(NO_RUNS_COLOUR)  # cells with no runs (a masked cell shows the background)
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    ax.pcolormesh(values, cmap=cmap, norm=norm, edgecolors="white", linewidth=0.5)
    ax.set_xlim(0, grid.shape[1])
    ax.set_ylim(grid.shape[0], 0)  # first row at the top, as in a table
    ax.set_xticks(np.arange(grid.shape[1]) + 0.5, [str(T) for T in grid.columns])
    ax.set_yticks(np.arange(grid.shape[0]) + 0.5, list(grid.index))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    index = {row: i for i, row in enumerate(grid.index)}
    column = {T: j for j, T in enumerate(grid.columns)}
    for cell in here.itertuples():
        i, j = index[cell.row], column[cell.T]
        if np.isnan(cell.loss_ratio) and cell.n_diverged == cell.seeds:
            ax.add_patch(
                Rectangle((j, i), 1, 1, facecolor="white", edgecolor="0.45", hatch=ALL_DIVERGED_HATCH, linewidth=0)
            )
        text = cell_text(cell.seeds, cell.n_solved, cell.n_diverged, cell.steps_to_solve)
        if not text:
            continue
        if np.isnan(cell.loss_ratio):
            dark = False
        else:
            r, g, b, _ = cmap(norm(np.clip(cell.loss_ratio, norm.vmin, norm.vmax)))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(
            j + 0.5,
            i + 0.5,
            text,
            ha="center",
            va="center",
            fontsize=common.NOTE_SIZE,
            linespacing=1.0,
            color="white" if dark else "black",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6} if np.isnan(cell.loss_ratio) else None,
        )
    ax.grid(False)
    return grid


def _panel(runs: pd.DataFrame) -> pd.Series:
    return common.setting_label(runs.assign(T=0)).str.replace(", T = 0", "", regex=False)


def predicted_lengths(runs: pd.DataFrame) -> pd.DataFrame:
    """TRAINABLE_MULTIPLE x the mean-field memory time xi per (panel, row) of RNN runs, from the spec alone
    (rnngrad.theory, at the runs' median T for the input variance); NaN where no mean field exists."""
    rnn = runs[runs["model"] == "rnn"].assign(panel=_panel(runs), row=row_labels(runs))
    keys = ["panel", "row", "activation", "init", "scale", "task", "variant", "hidden", "input_init"]
    rows = []
    for (panel, row, act, init, g, task, variant, hidden, input_init), group in rnn.groupby(keys, sort=False):
        s2 = (
            theory.input_variance(task, float(group["T"].median()), variant, input_init, hidden)
            if hidden > 1
            else np.nan
        )
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
        else:  # beyond the columns: an arrowhead in the edge cell's upper corner (clear of its text), pointing out
            inside, marker = (0.1, "<") if x <= 0 else (len(log_T) - 0.1, ">")
            ax.plot([inside], [i + 0.22], marker=marker, color="black", markersize=4, zorder=4)
        drawn += 1
    return drawn


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    if runs.empty:
        common.empty_figure(out_path, TITLE, "sequence length T", "activation, scale")
        return
    cells = outcome_cells(runs)
    panels = sorted(cells["panel"].unique())
    rows = list(dict.fromkeys(cells["row"]))
    norm = colour_norm(cells)
    two_lines = ((cells["n_solved"] > 0) & (cells["n_diverged"] > 0)).any()

    fig, axes = common.panels(1, len(panels), 1.7 + (0.36 if two_lines else 0.27) * len(rows), sharey=True)
    n_bars, predicted = 0, predicted_lengths(runs)
    for ax, panel in zip(axes[0], panels, strict=True):
        grid = draw_panel(ax, cells[cells["panel"] == panel], rows, norm)
        n_bars += _draw_predicted_lengths(ax, predicted[predicted["panel"] == panel], rows, grid.columns)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("activation, scale $g$" if ax is axes[0, 0] else "")
        ax.tick_params(axis="y", rotation=0)
    fig.supxlabel("sequence length $T$ (steps)", fontsize="medium")
    capped = bool((cells["loss_ratio"] > RATIO_CAP).any())
    colorbar = fig.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap=colormaps[CMAP]),
        ax=axes[0].tolist(),
        shrink=0.8,
        extend="max" if capped else "neither",
    )
    colorbar.set_label(COLORBAR_LABEL, fontsize=common.NOTE_SIZE + 1)
    colorbar.set_ticks(colour_ticks(norm))
    colorbar.ax.yaxis.set_major_formatter(
        ticker.FuncFormatter(lambda value, _: "1 = baseline" if value == 1 else f"{value:g}")
    )
    fewest, most = int(cells["seeds"].min()), int(cells["seeds"].max())
    seeds = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    no_colour = int((cells["loss_ratio"].isna() & (cells["n_diverged"] < cells["seeds"])).sum())
    common.footnote(
        fig,
        [
            f"Colour: median over a cell's completed seeds ({seeds} seed(s) a cell) of the final test loss divided"
            " by the memoryless baseline (1: no better than the best predictor without memory). "
            f"Cell text: {SOLVED_MARK}k/n: k of n seeds solved the task (success criterion on the final test"
            " metric), @: their median steps to solve (first evaluation that met the criterion); Dk/n: k of n"
            " seeds diverged (NaN or Inf loss or gradient). Hatched: every seed diverged; grey: no runs.",
            f"{no_colour} cell(s) without a finite positive final loss left uncoloured." if no_colour else "",
            f"Ratios above {RATIO_CAP:g} take the colour of {RATIO_CAP:g}." if capped else "",
            f"Black bars ({n_bars}): the predicted trainable length {TRAINABLE_MULTIPLE:g} xi, xi = 1/|lambda| the"
            " mean-field memory time from the spec alone (rnngrad.theory), placed on the log-T columns; an arrowhead at"
            " the edge when it lies beyond them; none for cells other than the RNN or where no mean field exists."
            if n_bars
            else "",
        ],
    )
    style.save(fig, out_path)
