"""Who learns the task, and when: test loss against training step for each model (the runs table's ``label``:
RNN-tanh, RNN-relu, IRNN, LSTM, ...; clipped runs as their own model, "IRNN + clip 1"), one panel per task and
sequence length T, on a log axis, in the style of
Le, Jaitly and Hinton 2015, Fig. 2 and Arjovsky, Shah and Bengio 2016, Fig. 2.

Each run (seed) is a thin line; the thick line of a model is the median over its seeds at each evaluation step,
drawn only at steps where every one of its seeds has a finite test loss (so a diverged seed ends it). The dashed
line is the task's memoryless baseline (the loss of the best predictor that ignores the past: 1/6 for adding).
A circle marks each run's ``steps_to_solve`` (the first evaluation whose test metric met the task's success
criterion); an x at the top edge marks the step at which a run diverged (NaN or Inf loss or gradient)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "metrics")

XLABEL = "training step"
YLABEL = "test loss"
TITLE = "learning curves"
BASELINE_COLOUR = "0.35"
SEED_STYLE = {"linewidth": 0.7, "alpha": 0.45}
MEDIAN_WIDTH = 1.9


def seed_medians(data: pd.DataFrame) -> pd.DataFrame:
    """Per setting, label and step: the median test loss over the label's runs, where every run has a finite
    loss at that step (NaN elsewhere, so the line stops where a seed diverges or is missing)."""
    if data.empty:
        return pd.DataFrame(columns=["setting", "label", "step", "loss"])
    finite = data.assign(loss=data["loss"].where(np.isfinite(data["loss"].astype(float))))
    seeds = finite.groupby(["setting", "label"])["run_id"].nunique().rename("seeds")
    grouped = finite.groupby(["setting", "label", "step"]).agg(loss=("loss", "median"), finite=("loss", "count"))
    grouped = grouped.join(seeds, on=["setting", "label"])
    grouped["loss"] = grouped["loss"].where(grouped["finite"] == grouped["seeds"])
    return grouped.reset_index()[["setting", "label", "step", "loss"]]


def solve_points(test: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's test row at its ``steps_to_solve`` (none when the runs table has no such column or it is NaN)."""
    if "steps_to_solve" not in runs or runs.empty or test.empty:
        return test.iloc[0:0]
    steps = runs[["run_id", "steps_to_solve"]].dropna()
    hit = test.merge(steps, on="run_id")
    return hit[hit["step"] == hit["steps_to_solve"]]


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, test = tables["runs"], common.evaluation_rows(tables["metrics"], out_path, TITLE, XLABEL, YLABEL)
    if test is None:
        return
    # clipped and unclipped runs of one model are drawn as two models ("IRNN + clip 1")
    arm = dict(zip(runs["run_id"], common.arm_labels(runs)[1], strict=True))
    runs = runs.assign(label=runs["run_id"].map(arm))
    data = common.with_outcome(test, runs).assign(label=test["run_id"].map(arm))
    data = data.assign(setting=common.setting_label(data))
    settings = common.setting_order(data)
    labels = common.label_order(data["label"])
    palette = common.model_palette(labels)
    run_info = runs.assign(setting=common.setting_label(runs))
    medians = seed_medians(data)
    solved_at = solve_points(data, runs)

    ncols = min(len(settings), 3)
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = common.panels(nrows, ncols, 1.2 + 2.5 * nrows, sharex=True, sharey=data["task"].nunique() == 1)
    dropped, n_diverged, n_solved = [], 0, 0
    for ax, setting in zip(axes.flat, settings, strict=False):
        here = data[data["setting"] == setting]
        ax.set_yscale("log")
        kept, lost = common.log_safe(here, "loss")
        dropped.append(lost)
        for _, run in kept.groupby("run_id", sort=True):
            diverged = run["outcome"].iloc[0] == common.DIVERGED
            linestyle = (0, common.OUTCOME_DASHES[common.DIVERGED]) if diverged else "-"
            ax.plot(run["step"], run["loss"], color=palette[run["label"].iloc[0]], linestyle=linestyle, **SEED_STYLE)
        top = common.at_top(lost, "loss")
        common.mark_nonfinite(ax, top["step"], [palette[label] for label in top["label"]])
        for label in labels:
            line = medians[(medians["setting"] == setting) & (medians["label"] == label)].sort_values("step")
            line = line[np.isfinite(line["loss"]) & (line["loss"] > 0)]
            if len(line):
                ax.plot(line["step"], line["loss"], color=palette[label], linewidth=MEDIAN_WIDTH, zorder=3)
        hits = common.log_safe(solved_at[solved_at["setting"] == setting], "loss")[0]
        if len(hits):
            n_solved += len(hits)
            ax.scatter(
                hits["step"],
                hits["loss"],
                marker="o",
                s=22,
                facecolors="none",
                edgecolors=[palette[label] for label in hits["label"]],
                linewidths=1.2,
                zorder=4,
            )
        info = run_info[run_info["setting"] == setting]
        for baseline in np.unique(info["baseline_loss"].dropna()):
            ax.axhline(baseline, color=BASELINE_COLOUR, zorder=1, **common.THEORY_STYLE)
        blown = info[np.isfinite(info["diverged_at"].astype(float))]
        if not blown.empty:
            n_diverged += len(blown)
            common.mark_diverged(ax, blown["diverged_at"], [palette.get(label, "0.2") for label in blown["label"]])
        if kept.empty:
            common.no_data(ax, "no finite test loss")
        ax.set_title(setting)
        ax.set_xlabel(XLABEL)
        ax.tick_params(labelbottom=True)
        ax.set_ylabel(YLABEL if ax in axes[:, 0] else "")
    for ax in axes.flat[len(settings) :]:
        ax.set_visible(False)
    dropped = pd.concat(dropped, ignore_index=True)
    common.readable_log_ticks(axes)

    missing = len(set(runs["run_id"]) - set(data["run_id"]))
    seeds = run_info.groupby(["label", "setting"])["run_id"].nunique().groupby("label").agg(["min", "max"])
    handles = [
        common.legend_line(f"{label} ({_seeds(seeds, label)})", palette[label], linewidth=MEDIAN_WIDTH)
        for label in labels
    ]
    handles += common.outcome_handles(data)
    handles.append(common.legend_line("memoryless baseline", BASELINE_COLOUR, **common.THEORY_STYLE))
    if n_solved:
        handles.append(
            common.legend_line("first solved", linestyle="none", marker="o", markerfacecolor="none", markersize=5)
        )
    if n_diverged:
        handles.append(common.diverged_handle())
    common.legend(fig, common.with_nonfinite(handles, dropped, "loss"), ncol=4)
    common.footnote(
        fig,
        [
            "Test split. Thin lines: one run (seed) each; thick lines: the median over a model's seeds, at the"
            " evaluation steps where all of them have a finite loss.",
            common.describe_dropped("the test loss", common.count_dropped(dropped, "loss"), "NaN/+Inf at top"),
            f"{missing} run(s) of the runs table have no test rows and are not drawn." if missing else "",
        ],
    )
    style.save(fig, out_path)


def _seeds(seeds: pd.DataFrame, label: str) -> str:
    """ "3 seeds" (runs per panel), "2-3 seeds" where panels differ."""
    if label not in seeds.index:
        return "no runs"
    low, high = int(seeds.loc[label, "min"]), int(seeds.loc[label, "max"])
    return (f"{low}" if low == high else f"{low}-{high}") + (" seed" if high == 1 else " seeds")
