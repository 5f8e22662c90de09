"""The error surface of a one-unit RNN and its wall (Pascanu, Mikolov and Bengio 2013, Fig. 6).

x_t = w sigmoid(x_{t-1}) + b, x_0 = 0.5, E = (sigmoid(x_50) - 0.7)^2. Where x_0 sits on the unstable fixed point
of the bistable map, a tiny change of (w, b) sends x_50 to the other attractor: the error jumps (a wall) and the
gradient is huge there, so one plain gradient step throws the parameters far away; a clipped step (Algorithm 1)
stays local. Computed from closed forms, no experiment tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm

from rnngrad import theory
from rnngrad.figures import style

TABLES: tuple[str, ...] = ()

W_RANGE = (1.0, 8.0)
B_RANGE = (-5.0, 0.0)
W_CUT = 5.0  # the cross-section of panels (b) and (c)
B_CUT = (-2.7, -2.5)
START = (5.0, -2.6124)  # a point on the wall, on its high-error side
LR = 0.5
THRESHOLD = 1.0  # Pascanu et al. clip at 1
LABEL_BOX = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "boxstyle": "round,pad=0.2"}


def _edge_point(start: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, bool]:
    """start + step, or where that segment leaves the plotted box (and whether it does)."""
    end = start + step
    lows = np.array([W_RANGE[0], B_RANGE[0]])
    highs = np.array([W_RANGE[1], B_RANGE[1]])
    if np.all(end >= lows) and np.all(end <= highs):
        return end, False
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(step > 0, (highs - start) / step, (lows - start) / step)
    fraction = np.nanmin(np.where(fractions >= 0, fractions, np.nan))
    return start + 0.98 * fraction * step, True


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    colors = sns.color_palette(style.PALETTE)
    fig = plt.figure(figsize=(7.0, 3.3), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0])
    surface = fig.add_subplot(grid[:, 0])
    cut_error = fig.add_subplot(grid[0, 1])
    cut_grad = fig.add_subplot(grid[1, 1], sharex=cut_error)

    # (a) log-coloured error over (w, b)
    w = np.linspace(*W_RANGE, 421)
    b = np.linspace(*B_RANGE, 301)
    error = theory.one_unit_error(w[None, :], b[:, None])
    mesh = surface.pcolormesh(
        w, b, np.clip(error, 1e-4, 1.0), norm=LogNorm(1e-4, 1.0), cmap=style.SEQUENTIAL, shading="auto", rasterized=True
    )
    fig.colorbar(mesh, ax=surface, label=r"error $E_{50}$ (log scale)", pad=0.01)
    surface.set(xlabel="recurrent weight $w$", ylabel="bias $b$", xlim=W_RANGE, ylim=B_RANGE)
    surface.set_title("(a) error surface", loc="left")
    surface.plot([W_CUT, W_CUT], B_CUT, color="white", lw=3, solid_capstyle="butt")
    surface.annotate(
        "cut (b, c)", (W_CUT, B_CUT[0]), xytext=(6.2, -4.3), color="white", fontsize="small",
        arrowprops={"arrowstyle": "-", "color": "white", "lw": 0.8},
    )  # fmt: skip

    # one plain and one clipped gradient step from a point on the wall
    start = np.array(START)
    grad = np.array([float(g) for g in theory.one_unit_gradient(*START)])
    plain = theory.clipped_step(grad, LR, np.inf)
    clipped = theory.clipped_step(grad, LR, THRESHOLD)
    plain_end, left_plot = _edge_point(start, plain)
    surface.annotate("", plain_end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": colors[1], "lw": 1.6})
    surface.annotate(
        "", start + clipped, xytext=start,
        arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 1.6, "linestyle": "--", "shrinkA": 0, "shrinkB": 0},
    )  # fmt: skip
    surface.plot(*start, "o", color="white", markeredgecolor="black", ms=5, zorder=5)
    note = "\n(off the plot)" if left_plot else ""
    surface.text(
        plain_end[0] - 0.75, plain_end[1] - 0.1,
        f"plain step\n|Δθ| = {np.linalg.norm(plain):.0f}{note}",
        color=colors[1], ha="right", va="top", fontsize="small", fontweight="bold", bbox=LABEL_BOX,
    )  # fmt: skip
    surface.text(
        start[0] - 0.15, start[1] + 0.1,
        f"clipped step\n|Δθ| = {np.linalg.norm(clipped):.2f}",
        color="black", ha="right", va="bottom", fontsize="small", bbox=LABEL_BOX,
    )  # fmt: skip

    # (b, c) the cut through the wall at w = W_CUT
    b_cut = np.linspace(*B_CUT, 4001)
    wall = 0.5 - W_CUT * float(theory.sigmoid(0.5))  # x_0 = 0.5 is then the unstable fixed point
    cut_error.plot(b_cut, theory.one_unit_error(W_CUT, b_cut), color=colors[0])
    cut_error.set(ylabel=r"$E_{50}$")
    cut_error.set_title(f"(b) error across the wall, $w$ = {W_CUT:g}", loc="left")
    dw, db = theory.one_unit_gradient(W_CUT, b_cut)
    cut_grad.plot(b_cut, np.hypot(dw, db), color=colors[0])
    cut_grad.set(yscale="log", xlabel="bias $b$", ylabel=r"$\|\nabla E_{50}\|$ (log scale)", xlim=B_CUT)
    cut_grad.set_title("(c) gradient norm", loc="left")
    cut_grad.axhline(THRESHOLD, color=colors[1], ls="--", lw=1)
    cut_grad.text(B_CUT[1], THRESHOLD * 1.5, "clip threshold", color=colors[1], ha="right", fontsize="small")
    for ax in (cut_error, cut_grad):
        ax.axvline(wall, color="0.4", ls=":", lw=1)
    cut_error.text(wall + 0.004, 0.2, "wall", color="0.3", fontsize="small")
    plt.setp(cut_error.get_xticklabels(), visible=False)
    style.save(fig, out_path)
