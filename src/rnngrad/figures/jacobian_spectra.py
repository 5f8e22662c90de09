"""Where the Jacobians sit relative to the vanish/explode threshold, and what their products do.

A: the distribution (over time steps and runs) of ||diag(f'(a_j)) W||_2 per activation and scale, at
initialisation and after training, against the threshold 1 and the bound gamma sigma_max(W). For an orthogonal W
every singular value is g, so the bound reaches 1 at g = 1/gamma: 1 for tanh and relu, 4 for sigmoid (Pascanu et
al. 2013: sigma_max < 1/gamma suffices for vanishing, sigma_max > 1/gamma is needed for exploding).
B: the norm of the product of d consecutive Jacobians against d, beside the bound (gamma sigma_max(W))^d, for
every model: for a cell other than the vanilla RNN, J_j is the whole state's step Jacobian ds_j/ds_{j-1}
(rnngrad.decompose; the LSTM's (h, c), the LRU's diag(lambda) in real form) and no bound is drawn."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "jacobians", "products", "spectrum")

JAC_LABEL = r"$\|\mathrm{diag}(f'(a_j))\,W\|_2$"
PRODUCT_LABEL = r"$\|J_t \cdots J_{t-d+1}\|_2$"
DISTANCE_LABEL = "number of factors $d$ (steps)"
SCALE_LABEL = "scale $g$ of $W$"
TITLE = "Jacobian norms and their products"


def bound_lines(products: pd.DataFrame, spectrum: pd.DataFrame) -> pd.DataFrame:
    """(gamma sigma_max(W))^d for every (run, stage, distance) row of ``products``, computed as
    exp(d log(gamma sigma_max(W))) and kept only where that is a finite positive number (NaN elsewhere)."""
    sigma = spectrum[["run_id", "stage", "sigma_max_W"]].drop_duplicates(["run_id", "stage"])
    rows = products[["run_id", "stage", "distance", "gamma"]].merge(sigma, on=["run_id", "stage"])
    log_rate = common.safe_log(rows["gamma"] * rows["sigma_max_W"])
    return rows.assign(bound=common.finite_exp(rows["distance"].to_numpy() * log_rate))


def _panel_a(subfig, jacobians: pd.DataFrame, spectrum: pd.DataFrame, activations: list[str]) -> dict:
    """Violins of jac_norm per scale (log x) and stage, the threshold 1, the bound gamma sigma_max and g = 1/gamma."""
    stages = [s for s in common.STAGES if (jacobians["stage"] == s).any()]
    colours = dict(zip(common.STAGES, sns.color_palette(style.PALETTE, 2), strict=True))
    axes = subfig.subplots(1, len(activations), sharey=True, squeeze=False)[0]
    kept, dropped = common.log_safe(jacobians, "jac_norm")
    bound = spectrum.assign(bound=spectrum["gamma"] * spectrum["sigma_max_W"])
    bound, _ = common.log_safe(bound, "bound")
    for ax, act in zip(axes, activations, strict=True):
        here = kept[kept["activation"] == act]
        ax.set_yscale("log")
        common.log2_scale_axis(ax, jacobians["scale"])
        if not here.empty:
            sns.violinplot(
                data=here,
                x="scale",
                y="jac_norm",
                hue="stage",
                hue_order=stages,
                palette=colours,
                native_scale=True,
                cut=0,
                inner=None,
                density_norm="width",
                linewidth=0.6,
                legend=False,
                ax=ax,
            )
        bound_here = bound[bound["activation"] == act]
        if not bound_here.empty:
            sns.lineplot(
                data=bound_here,
                x="scale",
                y="bound",
                hue="stage",
                hue_order=stages,
                palette=colours,
                errorbar=None,
                marker="_",
                markersize=8,
                linestyle="--",
                linewidth=0.9,
                legend=False,
                ax=ax,
            )
        ax.axhline(1.0, color="0.15", linewidth=1.0, zorder=1)
        gamma = float(jacobians.loc[jacobians["activation"] == act, "gamma"].iloc[0])
        ax.axvline(1.0 / gamma, color="0.3", linestyle=":", linewidth=1.0)
        common.log2_scale_axis(ax, [*jacobians["scale"], 1.0 / gamma])
        # the label goes top left of the line, above the bound (nothing is drawn there), unless that side is short
        left, right = np.log2(ax.get_xlim())
        room_left = (np.log2(1.0 / gamma) - left) / (right - left)
        ax.text(
            1.0 / gamma,
            0.97,
            rf" $g = 1/\gamma = {common.format_number(1.0 / gamma)}$ ",
            transform=ax.get_xaxis_transform(),
            ha="right" if room_left > 0.4 else "left",
            va="top",
            fontsize=common.NOTE_SIZE,
        )
        ax.set_title(f"{act} ($\\gamma$ = {common.format_number(gamma, fraction=True)})", fontsize=9)
        ax.set_xlabel(SCALE_LABEL)
        ax.set_ylabel(JAC_LABEL if ax is axes[0] else "")
    axes[0].set_title("A", loc="left", fontweight="bold", fontsize=10)
    if axes[0].has_data():  # room above the violins for the labels, below for the smallest norms
        low, high = np.log10(axes[0].get_ylim())
        axes[0].set_ylim(10 ** (low - 0.08 * (high - low)), 10 ** (high + 0.25 * (high - low)))
    common.readable_log_ticks(axes)
    handles = [
        plt.matplotlib.patches.Patch(facecolor=colours[s], edgecolor="0.2", label=f"{common.STAGE_SHORT[s]}")
        for s in stages
    ]
    if not bound.empty:
        handles.append(common.legend_line(r"bound $\gamma\,\sigma_{\max}(W)$", linestyle="--", marker="_"))
    handles.append(common.legend_line("threshold 1", colour="0.15"))
    common.legend(subfig, handles)
    return common.count_dropped(dropped, "jac_norm")


def _panel_b(subfig, products: pd.DataFrame, spectrum: pd.DataFrame, activations: list[str]) -> pd.DataFrame:
    """Per-run product norms against d, per stage (rows) and activation (columns), with their bounds dashed."""
    palette = common.scale_palette(products)
    stages = [s for s in common.STAGES if (products["stage"] == s).any()]
    bounds = bound_lines(products, spectrum).merge(
        products[["run_id", "stage", "distance", "series", "activation"]], on=["run_id", "stage", "distance"]
    )
    axes = subfig.subplots(len(stages), len(activations), sharex=True, sharey=True, squeeze=False)
    dropped = []
    for r, stage in enumerate(stages):
        for c, act in enumerate(activations):
            ax = axes[r, c]
            here = products[(products["stage"] == stage) & (products["activation"] == act)]
            dropped.append(common.run_lines(ax, here, "distance", "measured", "series", palette))
            bound = bounds[(bounds["stage"] == stage) & (bounds["activation"] == act)].dropna(subset=["bound"])
            if not bound.empty:
                sns.lineplot(
                    data=bound,
                    x="distance",
                    y="bound",
                    hue="series",
                    palette=palette,
                    units="run_id",
                    estimator=None,
                    legend=False,
                    ax=ax,
                    **common.THEORY_STYLE,
                )
            ax.axhline(1.0, color="0.15", linewidth=0.8, zorder=1)
            ax.set_title(f"{act} · {common.STAGE_SHORT[stage]}", fontsize=9)
            if (r, c) == (0, 0):
                ax.set_title("B", loc="left", fontweight="bold", fontsize=10)
            ax.set_xlabel("")
            ax.set_ylabel(PRODUCT_LABEL if c == 0 else "")
    dropped = pd.concat(dropped, ignore_index=True)
    handles = common.palette_handles(palette)
    handles.append(common.legend_line("measured", linestyle="-"))
    if bounds["bound"].notna().any():
        handles.append(common.legend_line(r"bound $(\gamma\,\sigma_{\max}(W))^d$", **common.THEORY_STYLE))
    handles += common.outcome_handles(products)[1:]
    common.legend(subfig, common.with_nonfinite(handles, dropped, "measured"))
    return dropped


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    rnn = {name: frame[frame["model"] == "rnn"] for name, frame in tables.items() if name != "runs"}
    if rnn["jacobians"].empty and tables["products"].empty:
        common.empty_figure(out_path, TITLE, SCALE_LABEL, JAC_LABEL)
        return
    jacobians = common.with_stage(rnn["jacobians"])
    spectrum = common.with_stage(tables["spectrum"])
    products = common.last_target(common.longest_T(common.with_stage(common.with_outcome(tables["products"], runs))))
    products = products.assign(
        series=common.scale_key(products),
        measured=common.finite_exp(products["log_product_norm"]),
        activation=common.activation_key(products),
    )

    fig = plt.figure(figsize=(common.WIDTH, 8.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.75])
    notes = []
    if jacobians.empty:
        common.no_data(top.subplots())
    else:
        lost = _panel_a(top, jacobians, spectrum, common.ordered_activations(jacobians))
        notes.append(common.describe_dropped("the Jacobian norm (panel A)", lost, "all units dead, or a blow-up"))
    if products.empty:
        common.no_data(bottom.subplots())
    else:
        dropped = _panel_b(bottom, products, spectrum, common.ordered_activations(products))
        notes.append(
            common.describe_dropped(
                "the product (panel B)", common.count_dropped(dropped, "measured"), "NaN/+Inf at top"
            )
        )
    notes.append(
        "A pools every step j and run of a scale; the bound uses each run's sigma_max(W) at that logging step."
        " B: exp(log_product_norm), each task at its longest T, one line per run."
    )
    common.footnote(fig, notes)
    style.save(fig, out_path)
