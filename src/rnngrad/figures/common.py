"""Helpers the figures share: which rows to draw (logging stage, last target step, longest T), how to label
and colour them, and how to show what a log axis cannot (zeros, NaN, Inf) instead of silently losing it.

Conventions kept across every figure:
- completed runs are solid lines, diverged runs dotted (``OUTCOME_DASHES``); dashed lines are theory or bounds;
- a non-finite value (NaN/Inf, a diverged run) is a triangle at the top edge of its axes, in its series colour;
- what was not drawn is counted in a footnote under the figure.
"""

from __future__ import annotations

import re
import textwrap
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps, ticker
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from rnngrad.figures import style

WIDTH = 7.0  # inches: the widest a figure may be (a page column)
NOTE_SIZE = 8  # points: the smallest text any figure uses

STAGE_INIT = "at initialisation (step 0)"
STAGE_TRAINED = "after training (last logged step)"
STAGES = (STAGE_INIT, STAGE_TRAINED)
STAGE_SHORT = {STAGE_INIT: "at init", STAGE_TRAINED: "trained"}

COMPLETED, DIVERGED = "completed", "diverged"
OUTCOMES = (COMPLETED, DIVERGED)
OUTCOME_DASHES = {COMPLETED: "", DIVERGED: (1.2, 1.2)}
THEORY_STYLE = {"linestyle": "--", "linewidth": 0.9}
NONFINITE_MARKER = "^"

LABEL_ORDER = ["RNN-tanh", "RNN-sigmoid", "RNN-relu", "IRNN", "LSTM", "GRU", "LRU"]
LSTM = "LSTM"


def ordered_activations(frame: pd.DataFrame) -> list[str]:
    """The RNN activations present, in the shared order, then the other cells' labels ("LSTM", "GRU", ...)."""
    present = set(frame["activation"][frame["model"] == "rnn"]) if len(frame) else set()
    order = [name for name in style.ACTIVATION_ORDER if name in present]
    order += sorted(present - set(style.ACTIVATION_ORDER) - {"none"})
    others = frame["model"] != "rnn" if len(frame) else pd.Series([], dtype=bool)
    return order + (label_order(frame.loc[others, "label"]) if others.any() else [])


def activation_key(frame: pd.DataFrame) -> pd.Series:
    """The activation to facet on: the RNN's nonlinearity, or the cell's label ("LSTM", "GRU", ...) for the others."""
    return frame["activation"].where(frame["model"] == "rnn", frame["label"])


def format_number(value: float, fraction: bool = False) -> str:
    """1.5 -> "1.5", 4.0 -> "4"; with ``fraction``, unit fractions as such (0.25 -> "1/4", for gamma)."""
    frac = Fraction(value).limit_denominator(16)
    if fraction and frac.numerator == 1 and frac.denominator != 1 and abs(float(frac) - value) < 1e-12:
        return f"1/{frac.denominator}"
    return f"{value:g}"


def scale_key(frame: pd.DataFrame) -> pd.Series:
    """Legend label of a run's recurrent scale ("g = 1.5"; the init too where several are mixed); another cell's
    label ("LSTM", "GRU", ...). Each distinct (init, scale) is formatted once: the tables hold a row per step."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    rnn = (frame["model"] == "rnn").to_numpy()
    several_inits = frame.loc[rnn, "init"].nunique() > 1
    settings = frame.loc[rnn, ["init", "scale"]].drop_duplicates()
    text = {
        (init, scale): f"{init} g = {format_number(scale)}" if several_inits else f"g = {format_number(scale)}"
        for init, scale in settings.itertuples(index=False)
    }
    keys = pd.MultiIndex.from_frame(frame[["init", "scale"]])
    labels = np.where(rnn, pd.Series(text, dtype=object).reindex(keys).to_numpy(), frame["label"].to_numpy())
    return pd.Series(labels, index=frame.index, dtype=object)


def scale_palette(frame: pd.DataFrame) -> dict[str, tuple]:
    """A sequential (viridis) colour per scale label, in increasing scale; other cells in their model colours
    (LSTM black).

    The light yellow end of viridis is left out: it vanishes on a white background."""
    keys = scale_key(frame)
    rnn = (frame["model"] == "rnn").to_numpy() if len(frame) else np.zeros(0, dtype=bool)
    order = (
        pd.DataFrame({"key": keys, "init": frame["init"], "scale": frame["scale"]})[rnn]
        .drop_duplicates("key")
        .sort_values(["init", "scale"])["key"]
        .tolist()
    )
    cmap = colormaps[style.SEQUENTIAL]
    colours = [cmap(x) for x in np.linspace(0.0, 0.82, max(len(order), 2))]
    palette = dict(zip(order, colours, strict=False))
    return {**palette, **model_palette(label_order(keys[~rnn]))}


def _model_colours() -> dict[str, tuple]:
    """One colour per activation and model label, shared so that tanh is the same blue in every figure."""
    cb = sns.color_palette(style.PALETTE, 10)
    black = (0.0, 0.0, 0.0)
    return {
        "tanh": cb[0],
        "RNN-tanh": cb[0],
        "sigmoid": cb[1],
        "RNN-sigmoid": cb[1],
        "relu": cb[2],
        "RNN-relu": cb[2],
        "IRNN": cb[4],
        LSTM: black,
        "GRU": cb[3],
        "LRU": cb[9],
    }


def model_palette(names) -> dict[str, tuple]:
    """Colour-blind-safe colours for activations or model labels (unknown names get the remaining colours)."""
    known = _model_colours()
    spare = (
        c for c in sns.color_palette(style.PALETTE, 10)[5:] + sns.color_palette("dark", 10) if c not in known.values()
    )
    return {name: known[name] if name in known else next(spare) for name in names}


def label_order(labels) -> list[str]:
    """Model labels present, in the order RNN-tanh, RNN-sigmoid, RNN-relu, IRNN, LSTM, GRU, LRU, each followed by
    its variants ("LSTM b_f=1"), then any others."""

    def rank(label: str) -> tuple[int, str]:
        variant = (
            i for i, name in enumerate(LABEL_ORDER) if label == name or label.startswith((f"{name} ", f"{name},"))
        )
        return next(variant, len(LABEL_ORDER)), label

    return sorted(set(labels), key=rank)


def with_outcome(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an ``outcome`` column ("completed" | "diverged") from the runs table's status."""
    status = dict(zip(runs["run_id"], runs["status"], strict=True)) if len(runs) else {}
    outcome = [DIVERGED if status.get(run) == DIVERGED else COMPLETED for run in frame["run_id"]]
    return frame.assign(outcome=pd.Series(outcome, index=frame.index, dtype=object))


def with_stage(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows logged at step 0 and at each run's last logged step (when later than 0), with a ``stage`` label."""
    if frame.empty:
        return frame.assign(stage=pd.Series([], dtype=object))
    last = frame.groupby("run_id")["step"].transform("max")
    init = frame[frame["step"] == 0].assign(stage=STAGE_INIT)
    trained = frame[(frame["step"] == last) & (last > 0)].assign(stage=STAGE_TRAINED)
    return pd.concat([init, trained], ignore_index=True)


def last_target(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each run's last target step t (the last loss step by default), one curve per run and step."""
    if frame.empty:
        return frame
    return frame[frame["t"] == frame.groupby(["run_id", "step"])["t"].transform("max")]


def longest_T(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the longest sequence length of each task: the longest window shows decay or growth best."""
    if frame.empty:
        return frame
    return frame[frame["T"] == frame.groupby("task")["T"].transform("max")]


def setting_label(frame: pd.DataFrame) -> pd.Series:
    """ "copy, T = 100" (with the variant where a task appears with several) for facet rows."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    several = frame.groupby("task")["variant"].transform("nunique") > 1
    settings = frame[["task", "variant", "T"]].assign(many=several)
    text = {
        (task, variant, T, many): f"{task} ({variant}), T = {T}" if many else f"{task}, T = {T}"
        for task, variant, T, many in settings.drop_duplicates().itertuples(index=False)
    }  # each distinct setting formatted once
    labels = pd.Series(text, dtype=object).reindex(pd.MultiIndex.from_frame(settings)).to_numpy()
    return pd.Series(labels, index=frame.index, dtype=object)


def setting_order(frame: pd.DataFrame) -> list[str]:
    keyed = frame.assign(_setting=setting_label(frame)).sort_values(["task", "variant", "T"])
    return list(dict.fromkeys(keyed["_setting"]))


def log_safe(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into rows a log axis can draw (finite and > 0) and the rest."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(values) & (values > 0)
    return frame[keep], frame[~keep]


def at_top(dropped: pd.DataFrame, column: str) -> pd.DataFrame:
    """The dropped rows to mark at the top edge: NaN or +Inf (a blow-up), not zeros or underflow to -Inf."""
    values = pd.to_numeric(dropped[column], errors="coerce").to_numpy(dtype=float)
    return dropped[np.isnan(values) | np.isposinf(values)]


def count_dropped(dropped: pd.DataFrame, column: str) -> dict[str, int]:
    """How many dropped values were zero, negative, NaN, +Inf or -Inf (only the kinds that occur)."""
    values = pd.to_numeric(dropped[column], errors="coerce").to_numpy(dtype=float)
    counts = {
        "zero": int(np.sum(values == 0)),
        "negative": int(np.sum(values < 0) - np.sum(np.isneginf(values))),
        "NaN": int(np.sum(np.isnan(values))),
        "+Inf": int(np.sum(np.isposinf(values))),
        "-Inf": int(np.sum(np.isneginf(values))),
    }
    return {kind: n for kind, n in counts.items() if n}


def describe_dropped(what: str, counts: dict[str, int], why: str = "") -> str:
    """One footnote sentence: "Not drawn on the log axis: 12 zero, 3 NaN values of X (why)." """
    if not counts:
        return ""
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"Not drawn on the log axis: {parts} values of {what}" + (f" ({why})." if why else ".")


def finite_exp(log_values) -> np.ndarray:
    """exp of log values where the result is a finite positive number, NaN elsewhere (no overflow warning)."""
    logs = np.asarray(log_values, dtype=float)
    plottable = np.isfinite(logs) & (np.abs(logs) < 700.0)
    out = np.full(logs.shape, np.nan)
    out[plottable] = np.exp(logs[plottable])
    return out


def safe_log(values) -> np.ndarray:
    """Natural log with log(0) = -inf and NaN for negatives or NaN, without numpy's warnings."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(values)


def mark_diverged(ax: plt.Axes, steps, colours) -> None:
    """An x at the top edge of ``ax`` at each step where a run diverged."""
    ax.scatter(
        np.asarray(steps, dtype=float),
        np.full(len(colours), 0.97),
        marker="x",
        s=30,
        linewidths=1.5,
        c=list(colours),
        transform=blended_transform_factory(ax.transData, ax.transAxes),
        clip_on=False,
        zorder=6,
    )


def mark_nonfinite(ax: plt.Axes, x, colours) -> int:
    """Triangles at the top edge of ``ax`` at the x positions of NaN/Inf values; returns how many."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return 0
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter(
        x,
        np.full(x.size, 0.97),
        marker=NONFINITE_MARKER,
        s=22,
        c=list(colours),
        edgecolors="black",
        linewidths=0.4,
        transform=transform,
        clip_on=False,
        zorder=5,
    )
    # a scatter in axes coordinates does not widen the x range by itself: the marks must stay in view
    ax.update_datalim(np.column_stack([x, np.ones(x.size)]), updatex=True, updatey=False)
    ax.autoscale_view()
    return int(x.size)


def run_lines(ax: plt.Axes, frame: pd.DataFrame, x: str, y: str, hue: str, palette: dict) -> pd.DataFrame:
    """One line per run of ``y`` against ``x`` on a log y axis: completed runs solid, diverged dotted, NaN/+Inf
    values marked at the top edge. Needs columns run_id and outcome; returns the rows it could not draw."""
    ax.set_yscale("log")
    kept, dropped = log_safe(frame, y)
    if not kept.empty:
        sns.lineplot(
            data=kept,
            x=x,
            y=y,
            hue=hue,
            palette=palette,
            units="run_id",
            estimator=None,
            style="outcome",
            style_order=list(OUTCOMES),
            dashes=OUTCOME_DASHES,
            linewidth=1.1,
            legend=False,
            ax=ax,
        )
    top = at_top(dropped, y)
    mark_nonfinite(ax, top[x], [palette[key] for key in top[hue]])
    return dropped


def no_data(ax: plt.Axes, note: str = "no data") -> None:
    """An empty panel that says so."""
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=NOTE_SIZE + 1)
    ax.set_xticks([])
    ax.set_yticks([])


def evaluation_rows(metrics: pd.DataFrame, out_path, title: str, xlabel: str, ylabel: str) -> pd.DataFrame | None:
    """The metrics table's test-split rows; None, with the empty figure written, when there are none."""
    test = metrics[metrics["split"] == "test"]
    if test.empty:
        empty_figure(out_path, title, xlabel, ylabel, "no data (no test rows)")
        return None
    return test


def drawable(frame: pd.DataFrame, out_path, title: str, xlabel: str, ylabel: str) -> bool:
    """Whether ``frame`` has rows to draw; where it has none, the empty figure is written instead."""
    if frame.empty:
        empty_figure(out_path, title, xlabel, ylabel)
        return False
    return True


def empty_figure(out_path, title: str, xlabel: str = "", ylabel: str = "", note: str = "no data") -> None:
    """The whole figure when its tables hold nothing to draw: one labelled axes with a note."""
    fig, ax = plt.subplots(figsize=(4.0, 2.6), layout="constrained")
    no_data(ax, note)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    style.save(fig, out_path)


def legend_line(label: str, colour="0.25", **kwargs) -> Line2D:
    """A legend handle for a line (kwargs: linestyle, marker, ...)."""
    return Line2D([], [], color=colour, label=label, **kwargs)


def outcome_handles(frame: pd.DataFrame) -> list[Line2D]:
    """Legend entries for the line styles of completed and diverged runs (none if no run diverged)."""
    if not (frame["outcome"] == DIVERGED).any():
        return []
    return [
        legend_line("completed run", linestyle="-"),
        legend_line("diverged run", linestyle=(0, OUTCOME_DASHES[DIVERGED])),
    ]


def palette_handles(palette: dict) -> list[Line2D]:
    return [legend_line(key, colour, linewidth=1.8) for key, colour in palette.items()]


def nonfinite_handle() -> Line2D:
    return legend_line(
        "NaN/Inf (at top)",
        colour="0.5",
        linestyle="none",
        marker=NONFINITE_MARKER,
        markeredgecolor="black",
        markeredgewidth=0.4,
    )


def with_nonfinite(handles: list, dropped: pd.DataFrame, column: str) -> list:
    """The legend's handles, then the marker of values drawn at the top (NaN/+Inf) where ``dropped`` has any."""
    return handles + ([nonfinite_handle()] if not at_top(dropped, column).empty else [])


def diverged_handle() -> Line2D:
    """The legend entry of the x that marks where a run diverged (:func:`mark_diverged`)."""
    return legend_line("diverged here", linestyle="none", marker="x", markeredgewidth=1.5)


def panels(nrows: int, ncols: int, height: float, sharex=False, sharey=False) -> tuple[plt.Figure, np.ndarray]:
    """A page-wide figure, ``height`` inches tall, of nrows x ncols panels (axes always a 2-D array)."""
    return plt.subplots(
        nrows, ncols, figsize=(WIDTH, height), sharex=sharex, sharey=sharey, squeeze=False, layout="constrained"
    )


def _visible_length(label: str) -> int:
    """About how many characters a label shows: mathtext commands count as one, markup as none."""
    return len(re.sub(r"[${}^_]", "", re.sub(r"\\[a-zA-Z]+", "x", label)))


def legend(fig, handles: list, ncol: int = 6) -> None:
    """One legend for the whole figure, above the panels (the footnote takes the space below), with no more
    columns than fit the figure width (estimated from the longest label, so that no draw is needed)."""
    longest = max(_visible_length(handle.get_label()) for handle in handles)
    column_width = 0.075 * longest + 0.65  # inches at the legend's ~9.7 pt: text, handle and spacing
    width = fig.get_figwidth() if isinstance(fig, plt.Figure) else WIDTH  # a SubFigure spans the width here
    fit = int((width - 0.2) // column_width)
    fig.legend(handles=handles, loc="outside upper center", ncol=max(1, min(len(handles), ncol, fit)), frameon=False)


def footnote(fig: plt.Figure, notes: list[str]) -> None:
    """Notes under the figure (what was not drawn and why), wrapped to the figure width."""
    text = " ".join(note for note in notes if note)
    if text:
        wrapped = textwrap.fill(text, width=int(fig.get_figwidth() * 16))
        fig.text(0.01, 0.0, wrapped, ha="left", va="top", fontsize=NOTE_SIZE, color="0.3")


def readable_log_ticks(axes) -> None:
    """On log y axes that span under two decades, ticks at 1, 2, 5 x 10^k written as plain numbers (0.05, 0.1,
    0.2) instead of crowded minor labels like 6x10^-2. Call after the limits are final."""
    for ax in np.ravel(axes):
        if ax.get_yscale() != "log" or not ax.has_data():
            continue
        low, high = ax.get_ylim()
        if low > 0 and np.log10(high / low) < 2:
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def log2_scale_axis(ax: plt.Axes, scales) -> None:
    """A log2 x axis ticked at the scales used, labelled as plain numbers (0.5, 1, 4 rather than 2^-1)."""
    values = np.unique(np.asarray(scales, dtype=np.float64))
    ticks = [float(s) for s in values if np.isfinite(s) and s > 0]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels([format_number(s) for s in ticks])
    ax.minorticks_off()


def arm_labels(runs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(model, arm) per run: the model is the label, with the init and the scale where the label has several
    ("RNN-tanh, gaussian, g = 1"); the arm adds the clip threshold and Pascanu et al.'s regulariser weight where
    they are used ("RNN-tanh + clip 1 + reg 4")."""
    if runs.empty:
        empty = pd.Series([], index=runs.index, dtype=object)
        return empty, empty
    several_inits = runs.groupby("label")["init"].transform("nunique") > 1
    several_scales = runs.groupby("label")["scale"].transform(lambda s: s.fillna(-1.0).nunique()) > 1
    models, arms = [], []
    for label, init, scale, clip, alpha, by_init, by_scale in zip(
        runs["label"], runs["init"], runs["scale"], runs["clip"].astype(float), runs["regularizer"], several_inits,
        several_scales, strict=True,
    ):  # fmt: skip
        model = label + (f", {init}" if by_init else "") + (f", g = {format_number(scale)}" if by_scale else "")
        models.append(model)
        arm = model if np.isnan(clip) else f"{model} + clip {format_number(clip)}"
        arms.append(f"{arm} + reg {format_number(alpha)}" if alpha else arm)
    return pd.Series(models, index=runs.index, dtype=object), pd.Series(arms, index=runs.index, dtype=object)
