"""Pascanu, Mikolov and Bengio 2013, Fig. 7, in its own layout: one panel per initialisation (sigmoid, basic tanh,
smart tanh), and in each the share of seeds that solved temporal order at each sequence length as bars for MSGD,
MSGD-C (gradient-norm clipping) and MSGD-CR (clipping and the regulariser Omega), with 95% Wilson intervals.

Panels come from the runs' (activation, init): sigmoid; tanh with ``gaussian`` W (basic tanh, N(0, 0.1^2) at
H = 50 is scale 0.7071); tanh with ``sparse`` W (smart tanh). Other settings get a panel named by activation,
init and scale. Arms come from ``clip`` and ``regularizer``: neither is MSGD, clip alone MSGD-C, both MSGD-CR,
the regulariser alone MSGD-R. Solved: the runs table's ``solved`` (the task's success criterion at the end).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad.figures import common, style
from rnngrad.reproduce import wilson

TABLES: tuple[str, ...] = ("runs",)

ARMS = ("MSGD", "MSGD-C", "MSGD-CR", "MSGD-R")
PANELS = {("sigmoid", "gaussian"): "sigmoid", ("tanh", "gaussian"): "basic tanh", ("tanh", "sparse"): "smart tanh"}


def panel_and_arm(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with their panel (initialisation) and arm (MSGD, MSGD-C, MSGD-CR, MSGD-R)."""
    regularised = runs.get("regularizer", pd.Series(0.0, index=runs.index)).fillna(0.0).astype(float) > 0
    clipped = runs["clip"].notna()
    arm = np.select([clipped & regularised, clipped, regularised], ["MSGD-CR", "MSGD-C", "MSGD-R"], "MSGD")
    panel = [
        PANELS.get((activation, init), f"{activation} {init}-{scale:g}")
        for activation, init, scale in zip(runs["activation"], runs["init"], runs["scale"], strict=True)
    ]
    return runs.assign(panel=panel, arm=arm)


def success_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per panel, arm and T: seeds, seeds solved, their share and its 95% Wilson interval."""
    frame = panel_and_arm(runs).assign(solved=runs["solved"].astype("boolean").fillna(False).astype(int))
    table = frame.groupby(["panel", "arm", "T"], sort=False).agg(seeds=("run_id", "nunique"), k=("solved", "sum"))
    table = table.reset_index()
    bounds = [wilson(int(k), int(n)) for k, n in zip(table["k"], table["seeds"], strict=True)]
    return table.assign(share=table["k"] / table["seeds"], low=[b[0] for b in bounds], high=[b[1] for b in bounds])


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    runs = tables["runs"]
    if runs.empty:
        common.empty_figure(out_path, "Fig. 7: success rate (no runs)", "sequence length", "share of seeds solved")
        return
    table = success_table(runs)
    panels = [p for p in PANELS.values() if p in set(table["panel"])]
    panels += sorted(set(table["panel"]) - set(panels))
    arms = [arm for arm in ARMS if arm in set(table["arm"])]
    colours = dict(zip(ARMS, sns.color_palette(style.PALETTE), strict=False))
    width = 0.8 / len(arms)

    fig, axes = common.panels(1, len(panels), 2.9, sharey=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        lengths = sorted(table.loc[table["panel"] == panel, "T"].unique())  # each panel at the lengths it ran
        for i, arm in enumerate(arms):
            bars = table[(table["panel"] == panel) & (table["arm"] == arm)].set_index("T").reindex(lengths)
            x = np.arange(len(lengths)) + (i - (len(arms) - 1) / 2) * width
            present = bars["seeds"].notna().to_numpy()
            share = bars["share"].to_numpy(float)[present]
            errors = np.vstack(
                [share - bars["low"].to_numpy(float)[present], bars["high"].to_numpy(float)[present] - share]
            )
            ax.bar(x[present], share, width, color=colours[arm], label=arm)
            ax.errorbar(x[present], share, yerr=errors, fmt="none", ecolor="0.2", elinewidth=0.8, capsize=1.5)
        ax.set_xticks(np.arange(len(lengths)), [str(t) for t in lengths])
        ax.set_ylim(0, 1.05)
        ax.set_title(panel)
        ax.set_xlabel("sequence length T")
    axes[0, 0].set_ylabel("share of seeds solved")
    seeds = table["seeds"]
    count = f"{int(seeds.min())}" if seeds.min() == seeds.max() else f"{int(seeds.min())}-{int(seeds.max())}"
    common.legend(fig, [plt.Rectangle((0, 0), 1, 1, color=colours[arm], label=arm) for arm in arms])
    common.footnote(
        fig,
        [
            f"Bars: share of seeds ({count} a bar) that met the task's success criterion at the end of training;"
            " whiskers: 95% Wilson intervals. MSGD-C: gradient norm clipped; MSGD-CR: clipped and regularised"
            " (Omega, Pascanu et al. 2013, eq. 10: squared norms, as they trained)."
        ],
    )
    style.save(fig, out_path)
