"""Bifurcation diagram of a one-unit RNN x_t = w sigmoid(x_{t-1}) + b at w = 5 (Pascanu et al. 2013, Fig. 3).

Dots: where the state ends (x_inf after many steps) from initial states spread over [-6, 6]. Lines: the fixed
points x = w sigmoid(x) + b, solid where stable (w sigmoid'(x) < 1), dashed where unstable. In the shaded range
of b two attractors coexist, and which one the state reaches depends on where it starts: crossing the unstable
branch is the wall of the error surface. Closed forms, no experiment tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rnngrad import theory
from rnngrad.figures import style

TABLES: tuple[str, ...] = ()

W = 5.0
B_RANGE = (-4.0, -1.0)
X0 = 0.5  # the initial state of the error surface


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    colors = sns.color_palette(style.PALETTE)
    fig, ax = plt.subplots(figsize=(3.4, 3.1), layout="constrained")

    lo, hi = theory.one_unit_bistable_range(W)
    ax.axvspan(lo, hi, color="0.9", zorder=0)
    ax.text((lo + hi) / 2, -4.3, "bistable", ha="center", va="bottom", fontsize="small", color="0.3")

    # fixed points, parametrised by x: b(x) = x - w s(x); stable where the slope w s'(x) < 1
    x = np.linspace(-5.0, 5.0, 2001)
    s = theory.sigmoid(x)
    b_of_x = x - W * s
    slope = W * s * (1.0 - s)
    for stable, ls, label in ((True, "-", "stable fixed point"), (False, "--", "unstable fixed point")):
        ax.plot(b_of_x, np.where((slope < 1.0) == stable, x, np.nan), ls=ls, color="0.2", lw=1.2, label=label)

    fixed = theory.one_unit_fixed_points(W, np.linspace(*B_RANGE, 121))
    ax.scatter(
        fixed["b"], fixed["x_inf"], color=colors[0], s=6, zorder=3, linewidths=0,
        label=r"$x_\infty$ from 12 $x_0$ in [-6, 6]",
    )  # fmt: skip

    wall = X0 - W * float(theory.sigmoid(X0))  # x0 = 0.5 is the unstable fixed point here
    ax.axvline(wall, color=colors[1], ls=":", lw=1.2)
    ax.plot(wall, X0, "D", color=colors[1], ms=4, zorder=4, label=f"$x_0$ = {X0:g} unstable: the wall")
    ax.set(xlabel="bias $b$", ylabel=r"state $x_\infty$ after 2000 steps", xlim=B_RANGE, ylim=(-4.5, 4.5))
    ax.set_title(f"one-unit RNN, $w$ = {W:g}", loc="left")
    fig.legend(loc="outside lower center", ncols=2, fontsize="x-small", frameon=False)
    style.save(fig, out_path)
