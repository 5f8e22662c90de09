"""The one-unit case (H = 1): the Jacobian is the number J_j = w f'(a_j), so what backpropagation carries over n
steps is a product of n numbers. Measured products beside the closed form |w f'(a*)|^n of rnngrad.theory, with a*
the fixed point of a = w f(a) + u E[x] (h = f(w h + u x + b), b = 0, the input at its mean), computed from the spec
alone: w = g for the identity initialisation and u as the run's seed draws it, at initialisation only. Below 1 the
product vanishes, at 1 it stays, above 1 it explodes (Pascanu et al. 2013, Sect. 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad import theory
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "products")

XLABEL = r"$n = t - k$ (steps)"
YLABEL = r"$|J_t \cdots J_{t-n+1}|$"
TITLE = "one-unit RNN: products of n scalar Jacobians"


def theory_lines(products: pd.DataFrame) -> pd.DataFrame:
    """exp(n ln|w f'(a*)|) for n = 1 .. the longest product logged, per identity-initialised run at initialisation:
    w = g and the mean drive u . E[x] of rnngrad.theory.one_unit_drive, both from the spec. Other runs get no line
    (w is ±g for orthogonal, random for gaussian, and training moves w, u and b). ``theory`` is NaN where the value
    under/overflows or the task has no recorded mean input. Columns: run_id, stage, distance, drive, rate, theory."""
    columns = ["run_id", "stage", "distance", "drive", "rate", "theory"]
    here = products[(products["stage"] == common.STAGE_INIT) & (products["init"] == "identity")]
    frames = []
    keys = ["run_id", "activation", "scale", "task", "T", "variant", "seed"]
    for (run_id, activation, g, task, T, variant, seed), run in here.groupby(keys, sort=True):  # noqa: N806
        n = np.arange(1, int(run["distance"].max()) + 1)
        drive = theory.one_unit_drive(task, T, variant, activation, float(g), int(seed))
        rate = theory.scalar_rate(activation, float(g), drive) if np.isfinite(drive) else np.nan
        frame = pd.DataFrame({"run_id": run_id, "stage": common.STAGE_INIT, "distance": n, "drive": drive})
        frames.append(frame.assign(rate=rate, theory=common.finite_exp(n * rate)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    one_unit = runs[(runs["model"] == "rnn") & (runs["hidden"] == 1)]["run_id"]
    products = tables["products"]
    products = products[products["run_id"].isin(one_unit)]
    if products.empty:
        common.empty_figure(out_path, TITLE, XLABEL, YLABEL, "no data (no runs with H = 1)")
        return

    products = common.last_target(common.with_stage(common.with_outcome(products, runs)))
    products = products.assign(
        series=common.scale_key(products), measured=common.finite_exp(products["log_product_norm"])
    )
    palette = common.scale_palette(products)
    lines = theory_lines(products)
    lines = lines.merge(products[["run_id", "series", "activation"]].drop_duplicates("run_id"), on="run_id")

    activations = common.ordered_activations(products)
    stages = [s for s in common.STAGES if (products["stage"] == s).any()]
    fig, axes = common.panels(len(stages), len(activations), 1.0 + 2.3 * len(stages), sharex=True, sharey=True)
    shown, lost, n_top = [], {}, 0
    for row, stage in enumerate(stages):
        for col, act in enumerate(activations):
            ax = axes[row, col]
            ax.set_yscale("log")
            here = products[(products["stage"] == stage) & (products["activation"] == act)]
            kept, dropped = common.log_safe(here, "measured")
            for kind, n in common.count_dropped(dropped, "measured").items():
                lost[kind] = lost.get(kind, 0) + n
            line = lines[(lines["stage"] == stage) & (lines["activation"] == act)].dropna(subset=["theory"])
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
            ax.text(0.03, 0.95, r"$|w f'(a^*)| > 1$: explodes", transform=ax.transAxes, va="top", fontsize=8)
            ax.text(0.03, 0.05, r"$|w f'(a^*)| < 1$: vanishes", transform=ax.transAxes, va="bottom", fontsize=8)
            ax.set_title(f"{act}, {stage}", fontsize=9)
            ax.set_xlabel(XLABEL)
            ax.set_ylabel(YLABEL)
    # symmetric about 1, so that vanishing and exploding get the same room
    reach = max((float(np.max(s)) for s in shown if s.size), default=1.0) * 1.15 + 0.1
    axes[0, 0].set_ylim(10.0**-reach, 10.0**reach)

    handles = [common.legend_line(key, colour) for key, colour in palette.items()]
    handles += [
        common.legend_line(r"closed form $|w f'(a^*)|^n$ from the spec", linestyle="-"),
        common.legend_line("measured", linestyle="none", marker="o", markersize=4),
    ]
    if (products["outcome"] == common.DIVERGED).any():
        handles.append(common.legend_line("diverged run", linestyle="none", marker="X", markersize=5))
    if n_top:
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles)
    n_lines = lines.dropna(subset=["theory"])["run_id"].nunique()
    common.footnote(
        fig,
        [
            "Lines: the closed form at initialisation from the spec, a* the fixed point of a = g f(a) + u E[x] (b = 0;"
            " the input's fluctuations about its mean neglected), for identity-initialised runs whose mean input is"
            f" known ({n_lines} of {products['run_id'].nunique()} runs; a relu unit with a negative drive is off, its"
            " product 0; none after training, where w, u and b have moved); points: exp(log_product_norm), the"
            " geometric mean over sampled sequences.",
            common.describe_dropped("the measured product", lost, "a step with J = 0, or a blow-up"),
        ],
    )
    style.save(fig, out_path)
