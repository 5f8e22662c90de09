"""How many units sit where f' is (nearly) zero: the share of saturated units (f' < 0.01) for sigmoid and tanh,
of dead units (a <= 0) for relu, against the recurrent scale, at initialisation and after training.

A saturated unit passes no gradient back, so saturation is the second way (besides sigma_max(W) < 1/gamma) for
gradients to vanish; it is also why the bound gamma sigma_max(W) is loose for large scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "jacobians")

XLABEL = "scale $g$ of $W$ (log axis)"
YLABEL = "share of units with $f'(a) < 0.01$\n(relu: dead units)"
TITLE = "saturated and dead units"
DODGE = 0.07  # log2 units between activations, so that their points do not hide one another


def per_run(jacobians: pd.DataFrame) -> pd.DataFrame:
    """One value per run and stage: the mean over time steps j of saturated_frac (NaN if any step is NaN)."""
    keys = ["run_id", "stage", "activation", "scale", "outcome"]
    return jacobians.groupby(keys, as_index=False)["saturated_frac"].mean(skipna=False)


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs, jacobians = tables["runs"], tables["jacobians"]
    jacobians = jacobians[jacobians["model"] == "rnn"]
    if not common.drawable(jacobians, out_path, TITLE, XLABEL, YLABEL):
        return
    data = per_run(common.with_stage(common.with_outcome(jacobians, runs)))
    activations = common.ordered_activations(data.assign(model="rnn"))
    palette = common.model_palette(activations)
    offset = {act: DODGE * (i - (len(activations) - 1) / 2) for i, act in enumerate(activations)}
    data = data.assign(x=data["scale"] * np.exp2(data["activation"].map(offset).astype(float)))
    drawn = data[np.isfinite(data["saturated_frac"])]
    stages = [s for s in common.STAGES if (data["stage"] == s).any()]

    fig, axes = common.panels(1, len(stages), 3.3, sharey=True)
    for ax, stage in zip(axes[0], stages, strict=True):
        here = drawn[drawn["stage"] == stage]
        common.log2_scale_axis(ax, data["scale"])
        completed = here[here["outcome"] == common.COMPLETED]
        if not completed.empty:
            sns.lineplot(
                data=completed,
                x="x",
                y="saturated_frac",
                hue="activation",
                hue_order=activations,
                palette=palette,
                errorbar=None,
                linewidth=1.2,
                legend=False,
                ax=ax,
            )
        if not here.empty:
            sns.scatterplot(
                data=here,
                x="x",
                y="saturated_frac",
                hue="activation",
                hue_order=activations,
                palette=palette,
                style="outcome",
                style_order=list(common.OUTCOMES),
                markers={common.COMPLETED: "o", common.DIVERGED: "X"},
                s=24,
                alpha=0.75,
                legend=False,
                ax=ax,
            )
        common.log2_scale_axis(ax, data["scale"])
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel(XLABEL)
        ax.set_ylabel(YLABEL)
    handles = common.palette_handles(palette)
    handles += [
        common.legend_line("mean of completed runs", linestyle="-"),
        common.legend_line("one run", linestyle="none", marker="o", markersize=5),
    ]
    if (data["outcome"] == common.DIVERGED).any():
        handles.append(common.legend_line("diverged run", linestyle="none", marker="X", markersize=6))
    common.legend(fig, handles)
    missing = int((~np.isfinite(data["saturated_frac"])).sum())
    common.footnote(
        fig,
        [
            "Each point: one run's share averaged over the time steps j; points of one scale are shifted"
            " slightly per activation.",
            f"{missing} run-stage(s) with NaN/Inf shares (diverged) not drawn." if missing else "",
        ],
    )
    style.save(fig, out_path)
