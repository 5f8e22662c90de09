"""Measured exponential rates of gradient decay or growth against the recurrent scale, beside theory.

Per activation (columns) and logging stage (rows), fitted on the same distances (rnngrad.analysis.paired_fits): the
slope of ln ||J_t ... J_{k+1}||_2 (the Jacobian products carried by delta_{t,k}) and of ln ||C_{t,k}||_F (C_{t,k} =
delta_{t,k} h_{k-1}^T), and the finite-time largest Lyapunov exponent by the QR method on the same sampled sequences
and steps as the products (a consistency check of the product slope, not a prediction). Theory: the bound ln(gamma
sigma_max(W)) of Pascanu et al. 2013 (eq. 7), which bounds the product norms (and so their rate over long
distances), not C, which also carries the growth of h_{k-1}, and, at initialisation, the mean-field exponent lambda
computed from the spec alone (rnngrad.theory.mean_field_lyapunov) with its prediction for C, lambda minus the growth
rate of ||h||: they differ for relu above lambda = 0, where h_{k-1} grows as fast as the products and C stays flat.
Below 0 gradients vanish, above 0 they explode; 1/|rate| is the memory time in steps. The other cells (LSTM, GRU,
LRU, a user's; no scale g, no bound) get a last column with the same three measured rates per cell, from their
whole-state Jacobians and all recurrent weights' contributions (rnngrad.decompose).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad import analysis, theory
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "products", "gradients", "spectrum")

YLABEL = "slope of ln(norm) vs t − k (1/step)"
# measured quantity -> (legend label, marker); colours from the colour-blind palette in this order
MEASURED = {
    "product_rate": ("Jacobian products ||J_t⋯J_k+1||", "o"),
    "contribution_rate": ("contributions ||C_t,k||", "s"),
    "lyapunov_qr": ("finite-time Lyapunov (QR)", "D"),
}
DODGE = {"product_rate": -0.07, "contribution_rate": 0.0, "lyapunov_qr": 0.07}  # in log2 units of the scale


INIT_ORDER = ("orthogonal", "gaussian", "identity")
MEAN_FIELD_STYLE = {"linestyle": "-.", "linewidth": 1.1}
C_STYLE = {"linestyle": ":", "linewidth": 1.4}


def _column_key(table: pd.DataFrame) -> pd.Series:
    """Facet column: the activation, with the initialisation where one activation has several."""
    several = table.groupby("activation")["init"].transform("nunique") > 1
    return table["activation"].where(~several, table["activation"] + ", " + table["init"])


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    logged = (tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    rates = common.with_stage(analysis.decay_rate_table(*logged))
    cells = common.with_stage(analysis.cell_rate_table(*logged))
    if rates.empty and cells.empty:
        common.empty_figure(
            out_path, "decay rates (no runs with Jacobian products)", xlabel="recurrent scale g", ylabel=YLABEL
        )
        return
    rates = rates.assign(column=_column_key(rates))
    order = {name: i for i, name in enumerate([*style.ACTIVATION_ORDER, *INIT_ORDER])}
    ranked = rates.assign(_a=rates["activation"].map(order), _i=rates["init"].map(order))
    columns = list(dict.fromkeys(ranked.sort_values(["_a", "_i"], na_position="last")["column"]))
    rows = [stage for stage in common.STAGES if (pd.concat([rates["stage"], cells["stage"]]) == stage).any()]
    colours = dict(zip([*MEASURED, "bound"], sns.color_palette(style.PALETTE), strict=False))
    colours["bound"] = (0.1, 0.1, 0.1)
    cell_order = common.label_order(cells["label"])

    fig, axes = common.panels(len(rows), len(columns) + bool(cell_order), 0.9 + 2.0 * len(rows), sharey=True)
    not_drawn: dict[str, int] = {}
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            if (i, j) != (0, 0):
                ax.sharex(axes[0, 0])
            ax.axhline(0.0, color="0.6", lw=0.8)
            panel = rates[(rates["stage"] == row) & (rates["column"] == column)]
            if panel.empty:  # not common.no_data: that clears the ticks every shared axis shows
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            else:
                for key, n in _draw_panel(ax, panel, colours).items():
                    not_drawn[key] = not_drawn.get(key, 0) + n
            if i == 0:
                ax.set_title(column)
        if cell_order:
            for key, n in _draw_cells(axes[i, -1], cells[cells["stage"] == row], cell_order, colours).items():
                not_drawn[key] = not_drawn.get(key, 0) + n
            axes[0, -1].set_title("other cells")
        axes[i, -1].annotate(
            common.STAGE_SHORT[row], (1.04, 0.5), xycoords="axes fraction", rotation=270, ha="left", va="center"
        )
    if columns:
        _scale_axis(axes[-1, 0], rates["scale"])
    fig.supxlabel("recurrent scale g (log scale); other cells: the cell", fontsize="medium")
    fig.supylabel(YLABEL, fontsize="medium")

    handles = [
        common.legend_line(label, colours[key], linestyle="none", marker=marker, markersize=5)
        for key, (label, marker) in MEASURED.items()
    ]
    handles.append(common.legend_line("bound ln(γ σ_max(W)) on products", colours["bound"], **common.THEORY_STYLE))
    at_init = rates[rates["stage"] == common.STAGE_INIT]
    if at_init["mean_field_rate"].notna().any():
        handles += [
            common.legend_line("mean-field λ (from the spec)", colours["product_rate"], **MEAN_FIELD_STYLE),
            common.legend_line("mean field for C: λ − ρ_h", colours["contribution_rate"], **C_STYLE),
        ]
    if (rates["status"] == common.DIVERGED).any():
        handles.append(common.legend_line("diverged run (hollow)", "0.3", linestyle="none", marker="o", mfc="none"))
    if sum(not_drawn.values()):
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles, ncol=3)
    notes = [
        "Points: one per run; bound: median over seeds. Finite-time Lyapunov: QR method on the same sampled sequences"
        " and steps as the products. Mean field: at initialisation only (it describes a random W), from the spec at"
        f" the panel's median input variance s² (range {_range(at_init['input_var'])}), b = 0; ρ_h: growth rate of"
        " ||h|| (relu only). Below 0: vanishing; above 0: exploding.",
    ]
    unfitted = ", ".join(f"{n} {MEASURED[key][0]}" for key, n in not_drawn.items() if n)
    if unfitted:
        notes.append(
            f"NaN/Inf, marked at top: {unfitted} (NaN: too few finite norms, a diverged run; −inf: a QR estimate"
            " through exactly singular Jacobians, relu units off)."
        )
    no_theory = at_init.loc[at_init["mean_field_rate"].isna(), "task"].unique()
    if len(no_theory):
        notes.append(f"No mean-field line for task(s) {', '.join(map(str, no_theory))}: no input statistics recorded.")
    common.footnote(fig, notes)
    style.save(fig, out_path)


def _range(values: pd.Series) -> str:
    finite = values[np.isfinite(values)]
    return "none" if finite.empty else f"{finite.min():.3g} to {finite.max():.3g}"


def _scale_axis(ax: plt.Axes, scales: pd.Series) -> None:
    """A log2 axis ticked at the powers of two around the scales (ticks at every scale would crowd 1.5 and 2)."""
    finite = scales[np.isfinite(scales) & (scales > 0)]
    low, high = np.floor(np.log2(finite.min())), np.ceil(np.log2(finite.max()))
    common.log2_scale_axis(ax, 2.0 ** np.arange(low, high + 1))
    ax.set_xlim(2.0 ** (np.log2(finite.min()) - 0.3), 2.0 ** (np.log2(finite.max()) + 0.3))


def _draw_points(ax: plt.Axes, x, panel: pd.DataFrame, colours: dict, dodge) -> dict[str, int]:
    """The measured rates at positions x (dodged per quantity by ``dodge(x, key)``), hollow for diverged runs;
    returns per measured rate how many were NaN/Inf (marked at the top)."""
    diverged = (panel["status"] == common.DIVERGED).to_numpy()
    not_drawn = {}
    for key, (_, marker) in MEASURED.items():
        values = panel[key].to_numpy(dtype=float)
        xs = dodge(x, key)
        finite = np.isfinite(values)
        for hollow in (False, True):
            pick = finite & (diverged == hollow)
            ax.scatter(
                xs[pick], values[pick], marker=marker, s=18, linewidths=0.9, zorder=3,
                facecolors="none" if hollow else [colours[key]], edgecolors=[colours[key]],
            )  # fmt: skip
        not_drawn[key] = common.mark_nonfinite(ax, xs[~finite], [colours[key]] * int((~finite).sum()))
    return not_drawn


def _draw_cells(ax: plt.Axes, panel: pd.DataFrame, order: list[str], colours: dict) -> dict[str, int]:
    """The other cells' measured rates, one x position per cell label."""
    ax.axhline(0.0, color="0.6", lw=0.8)
    position = {label: i for i, label in enumerate(order)}
    x = panel["label"].map(position).to_numpy(dtype=float)
    not_drawn = _draw_points(ax, x, panel, colours, lambda x, key: x + 3 * DODGE[key])
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(order) - 0.4)
    return not_drawn


def _draw_panel(ax: plt.Axes, panel: pd.DataFrame, colours: dict) -> dict[str, int]:
    """Points for the measured rates, lines for theory; returns per measured rate how many were NaN/Inf
    (marked at the top)."""
    scale = panel["scale"].to_numpy(dtype=float)
    not_drawn = _draw_points(ax, scale, panel, colours, lambda x, key: x * 2.0 ** DODGE[key])

    finite_bound = panel[np.isfinite(panel["bound_rate"].to_numpy(dtype=float))]
    bound = finite_bound.groupby("scale")["bound_rate"].median()
    ax.plot(bound.index, bound.to_numpy(), color=colours["bound"], zorder=2, **common.THEORY_STYLE)

    at_init = panel[(panel["stage"] == common.STAGE_INIT) & panel["mean_field_rate"].notna()]
    if not at_init.empty:
        activation, init = at_init["activation"].iloc[0], at_init["init"].iloc[0]
        s2 = float(at_init["input_var"].median())
        grid = np.geomspace(at_init["scale"].min() / 1.2, at_init["scale"].max() * 1.2, 90)
        lam = theory.mean_field_lyapunov(activation, init, grid, s2)
        for_c = theory.mean_field_contribution_rate(activation, init, grid, s2)
        ax.plot(grid, lam, color=colours["product_rate"], zorder=2, **MEAN_FIELD_STYLE)
        ax.plot(grid, for_c, color=colours["contribution_rate"], zorder=2, **C_STYLE)
    return not_drawn
