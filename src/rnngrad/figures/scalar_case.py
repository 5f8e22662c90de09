"""The one-unit case (H = 1): the Jacobian is the number J_j = w f'(a_j), so what backpropagation carries over n
steps is a product of n numbers, about |J|^n. Measured products beside the line J^n for the run's own geometric
mean |J|: below 1 the product vanishes, at 1 it stays, above 1 it explodes (Pascanu et al. 2013, Sect. 2)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "products", "jacobians")

XLABEL = r"$n = t - k$ (steps)"
YLABEL = r"$|J_t \cdots J_{t-n+1}|$"
TITLE = "one-unit RNN: products of n scalar Jacobians"


def theory_lines(jacobians: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """The line Jbar^n per run and stage, Jbar = exp(mean over j of log jac_norm) at that logging step.

    Built from logs, so that it is exact where Jbar^n would under/overflow; ``theory`` is NaN where the value is
    not a finite positive number (a step with J = 0, or a NaN from a diverged run). Columns: run_id, stage,
    distance (n = 1 .. the longest product logged), log_jbar, theory."""
    jac = jacobians.assign(log_jac=common.safe_log(jacobians["jac_norm"].abs()))
    log_jbar = jac.groupby(["run_id", "stage"])["log_jac"].mean(skipna=False)
    longest = products.groupby(["run_id", "stage"])["distance"].max()
    frames = []
    for (run_id, stage), n_max in longest.items():
        if (run_id, stage) not in log_jbar.index:
            continue
        n = np.arange(1, int(n_max) + 1)
        log_line = n * log_jbar[(run_id, stage)]
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "stage": stage,
                    "distance": n,
                    "log_jbar": log_jbar[(run_id, stage)],
                    "theory": common.finite_exp(log_line),
                }
            )
        )
    columns = ["run_id", "stage", "distance", "log_jbar", "theory"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    one_unit = runs[(runs["model"] == "rnn") & (runs["hidden"] == 1)]["run_id"]
    products = tables["products"]
    products = products[products["run_id"].isin(one_unit)]
    jacobians = tables["jacobians"]
    jacobians = jacobians[jacobians["run_id"].isin(one_unit)]
    if products.empty:
        common.empty_figure(out_path, TITLE, XLABEL, YLABEL, "no data (no runs with H = 1)")
        return

    products = common.last_target(common.with_stage(common.with_outcome(products, runs)))
    products = products.assign(
        series=common.scale_key(products), measured=common.finite_exp(products["log_product_norm"])
    )
    palette = common.scale_palette(products)
    theory = theory_lines(common.with_stage(jacobians), products)
    theory = theory.merge(products[["run_id", "series", "activation"]].drop_duplicates("run_id"), on="run_id")

    activations = common.ordered_activations(products)
    stages = [s for s in common.STAGES if (products["stage"] == s).any()]
    fig, axes = plt.subplots(
        len(stages),
        len(activations),
        figsize=(common.WIDTH, 1.0 + 2.3 * len(stages)),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    shown, lost, n_top = [], {}, 0
    for row, stage in enumerate(stages):
        for col, act in enumerate(activations):
            ax = axes[row, col]
            ax.set_yscale("log")
            here = products[(products["stage"] == stage) & (products["activation"] == act)]
            kept, dropped = common.log_safe(here, "measured")
            for kind, n in common.count_dropped(dropped, "measured").items():
                lost[kind] = lost.get(kind, 0) + n
            line = theory[(theory["stage"] == stage) & (theory["activation"] == act)].dropna(subset=["theory"])
            ax.axhline(1.0, color="0.4", linewidth=0.8, zorder=1)
            if not line.empty:
                sns.lineplot(
                    data=line,
                    x="distance",
                    y="theory",
                    hue="series",
                    palette=palette,
                    units="run_id",
                    estimator=None,
                    linewidth=1.1,
                    legend=False,
                    ax=ax,
                )
            if not kept.empty:
                sns.scatterplot(
                    data=kept,
                    x="distance",
                    y="measured",
                    hue="series",
                    palette=palette,
                    style="outcome",
                    markers={common.COMPLETED: "o", common.DIVERGED: "X"},
                    s=14,
                    alpha=0.8,
                    linewidth=0,
                    legend=False,
                    ax=ax,
                    zorder=3,
                )
                shown.append(np.abs(np.log10(kept["measured"].to_numpy())))
            if not line.empty:
                shown.append(np.abs(np.log10(line["theory"].to_numpy())))
            top = common.at_top(dropped, "measured")
            n_top += common.mark_nonfinite(ax, top["distance"], [palette[s] for s in top["series"]])
            ax.text(0.03, 0.95, r"$\bar J > 1$: explodes", transform=ax.transAxes, va="top", fontsize=8)
            ax.text(0.03, 0.05, r"$\bar J < 1$: vanishes", transform=ax.transAxes, va="bottom", fontsize=8)
            ax.set_title(f"{act}, {stage}", fontsize=9)
            ax.set_xlabel(XLABEL)
            ax.set_ylabel(YLABEL)
    # symmetric about 1, so that vanishing and exploding get the same room
    reach = max((float(np.max(s)) for s in shown if s.size), default=1.0) * 1.15 + 0.1
    axes[0, 0].set_ylim(10.0**-reach, 10.0**reach)

    handles = [common.legend_line(key, colour) for key, colour in palette.items()]
    handles += [
        common.legend_line(r"theory $\bar J^{\,n}$", linestyle="-"),
        common.legend_line("measured", linestyle="none", marker="o", markersize=4),
    ]
    if (products["outcome"] == common.DIVERGED).any():
        handles.append(common.legend_line("diverged run", linestyle="none", marker="X", markersize=5))
    if n_top:
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles)
    common.footnote(
        fig,
        [
            "Lines: J\u0304\u207f with J\u0304 = exp(mean over j of log |J_j|), one per run and logging step;"
            " points: exp(log_product_norm), the geometric mean of the product over sampled sequences.",
            common.describe_dropped("the measured product", lost, "a step with J = 0, or a blow-up"),
        ],
    )
    style.save(fig, out_path)
