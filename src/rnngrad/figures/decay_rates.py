"""Measured exponential rates of gradient decay or growth against the recurrent scale, beside theory.

Per activation (columns) and logging stage (rows): the fitted rate of the Jacobian product norms and of the
gradient contributions ||C_{t,k}|| against the distance t - k (nats per step, Theil-Sen, see
rnngrad.theory.decay_rate_table), the largest Lyapunov exponent by the QR method, the bound ln(gamma sigma_max(W))
of Pascanu et al. 2013 (eq. 7; every measured rate lies below it) and, for tanh with gaussian initialisation, the
mean-field exponent. Below 0 gradients vanish, above 0 they explode; 1/|rate| is the memory in steps.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad import theory
from rnngrad.figures import common, style

TABLES: tuple[str, ...] = ("runs", "products", "gradients", "spectrum")

YLABEL = "slope of ln(norm) vs t − k (1/step)"
# measured quantity -> (legend label, marker); colours from the colour-blind palette in this order
MEASURED = {
    "product_rate": ("Jacobian product ||∂h_t/∂h_k||", "o"),
    "contribution_rate": ("gradient contribution ||C_t,k||", "s"),
    "lyapunov_qr": ("Lyapunov exponent (QR)", "D"),
}
DODGE = {"product_rate": -0.07, "contribution_rate": 0.0, "lyapunov_qr": 0.07}  # in log2 units of the scale


INIT_ORDER = ("orthogonal", "gaussian", "identity")


def _column_key(table: pd.DataFrame) -> pd.Series:
    """Facet column: the activation, with the initialisation where one activation has several."""
    several = table.groupby("activation")["init"].transform("nunique") > 1
    return table["activation"].where(~several, table["activation"] + ", " + table["init"])


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    rates = theory.decay_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    rates = common.with_stage(rates)
    if rates.empty:
        common.empty_figure(
            out_path, "decay rates (no RNN runs with Jacobian products)", xlabel="recurrent scale g", ylabel=YLABEL
        )
        return
    rates = rates.assign(column=_column_key(rates))
    order = {name: i for i, name in enumerate([*style.ACTIVATION_ORDER, *INIT_ORDER])}
    ranked = rates.assign(_a=rates["activation"].map(order), _i=rates["init"].map(order))
    columns = list(dict.fromkeys(ranked.sort_values(["_a", "_i"], na_position="last")["column"]))
    rows = [stage for stage in common.STAGES if (rates["stage"] == stage).any()]
    colours = dict(zip([*MEASURED, "bound", "mean_field"], sns.color_palette(style.PALETTE), strict=False))
    colours["bound"] = (0.1, 0.1, 0.1)

    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(common.WIDTH, 0.9 + 2.0 * len(rows)),
        sharex=True, sharey=True, squeeze=False, layout="constrained",
    )  # fmt: skip
    not_drawn = 0
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            ax.axhline(0.0, color="0.6", lw=0.8)
            panel = rates[(rates["stage"] == row) & (rates["column"] == column)]
            if panel.empty:  # not common.no_data: that clears the ticks every shared axis shows
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            else:
                not_drawn += _draw_panel(ax, panel, colours)
            if i == 0:
                ax.set_title(column)
        axes[i, -1].annotate(
            common.STAGE_SHORT[row], (1.04, 0.5), xycoords="axes fraction", rotation=270, ha="left", va="center"
        )
    _scale_axis(axes[-1, 0], rates["scale"])
    fig.supxlabel("recurrent scale g (log scale)", fontsize="medium")
    fig.supylabel(YLABEL, fontsize="medium")

    handles = [
        common.legend_line(label, colours[key], linestyle="none", marker=marker, markersize=5)
        for key, (label, marker) in MEASURED.items()
    ]
    handles.append(common.legend_line("bound ln(γ σ_max(W))", colours["bound"], **common.THEORY_STYLE))
    if rates["mean_field_rate"].notna().any():
        handles.append(common.legend_line("mean field (tanh, gaussian)", colours["mean_field"], linestyle="-."))
    if (rates["status"] == common.DIVERGED).any():
        handles.append(common.legend_line("diverged run (hollow)", "0.3", linestyle="none", marker="o", mfc="none"))
    if not_drawn:
        handles.append(common.nonfinite_handle())
    common.legend(fig, handles, ncol=3)
    notes = ["Points: one per run; line: bound, median over seeds. Below 0: vanishing; above 0: exploding."]
    if not_drawn:
        notes.append(f"{not_drawn} rate(s) could not be fitted (too few finite norms, a diverged run): marked at top.")
    common.footnote(fig, notes)
    style.save(fig, out_path)


def _scale_axis(ax: plt.Axes, scales: pd.Series) -> None:
    """A log2 axis ticked at the powers of two around the scales (ticks at every scale would crowd 1.5 and 2)."""
    finite = scales[np.isfinite(scales) & (scales > 0)]
    low, high = np.floor(np.log2(finite.min())), np.ceil(np.log2(finite.max()))
    common.log2_scale_axis(ax, 2.0 ** np.arange(low, high + 1))
    ax.set_xlim(2.0 ** (np.log2(finite.min()) - 0.3), 2.0 ** (np.log2(finite.max()) + 0.3))


def _draw_panel(ax: plt.Axes, panel: pd.DataFrame, colours: dict) -> int:
    """Points for the measured rates, lines for theory; returns how many rates were NaN/Inf (marked at top)."""
    scale = panel["scale"].to_numpy(dtype=float)
    diverged = (panel["status"] == common.DIVERGED).to_numpy()
    not_drawn = 0
    for key, (_, marker) in MEASURED.items():
        values = panel[key].to_numpy(dtype=float)
        x = scale * 2.0 ** DODGE[key]
        finite = np.isfinite(values)
        for hollow in (False, True):
            pick = finite & (diverged == hollow)
            ax.scatter(
                x[pick], values[pick], marker=marker, s=18, linewidths=0.9, zorder=3,
                facecolors="none" if hollow else [colours[key]], edgecolors=[colours[key]],
            )  # fmt: skip
        if key != "lyapunov_qr":
            not_drawn += common.mark_nonfinite(ax, x[~finite], [colours[key]] * int((~finite).sum()))

    finite_bound = panel[np.isfinite(panel["bound_rate"].to_numpy(dtype=float))]
    bound = finite_bound.groupby("scale")["bound_rate"].median()
    ax.plot(bound.index, bound.to_numpy(), color=colours["bound"], zorder=2, **common.THEORY_STYLE)

    at_init = panel["stage"] == common.STAGE_INIT  # the mean field describes a random W, not a trained one
    if (panel["mean_field_rate"].notna() & at_init).any():
        scales = panel.loc[panel["mean_field_rate"].notna(), "scale"]
        grid = np.geomspace(scales.min(), scales.max(), 120)
        ax.plot(grid, theory.mean_field_lyapunov(grid), color=colours["mean_field"], ls="-.", lw=1.1, zorder=2)
    return not_drawn
