"""The lecture's slide of nonlinearities: f and f' for sigmoid, tanh and relu, with gamma = max |f'| marked.

gamma bounds every ||diag(f'(a))||, so ||diag(f') W||_2 <= gamma sigma_max(W): the derivative panel is where the
vanishing-gradient story starts (sigmoid can shrink a gradient by 4 at every step before W does anything)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from rnngrad.figures import common, style
from rnngrad.models import ACTIVATIONS

TABLES: tuple[str, ...] = ()

A_RANGE = (-5.0, 5.0)


def curves(points: int = 801) -> pd.DataFrame:
    """f(a) and f'(a) on a grid, tidy: activation, a, quantity ("f(a)" | "f'(a)"), value."""
    a = torch.linspace(*A_RANGE, points, dtype=torch.float64)
    frames = []
    for name in style.ACTIVATION_ORDER:
        act = ACTIVATIONS[name]
        h = act.f(a)
        for quantity, value in (("f(a)", h), ("f'(a)", act.df(h))):
            frames.append(pd.DataFrame({"activation": name, "a": a.numpy(), "quantity": quantity, "value": value}))
    return pd.concat(frames, ignore_index=True)


def render(tables: dict[str, pd.DataFrame], out_path: Path) -> None:
    style.apply()
    data = curves()
    order = list(style.ACTIVATION_ORDER)
    palette = common.model_palette(order)
    fig, (ax_f, ax_df) = plt.subplots(1, 2, figsize=(common.WIDTH, 2.9), layout="constrained")
    for ax, quantity in ((ax_f, "f(a)"), (ax_df, "f'(a)")):
        sns.lineplot(
            data=data[data["quantity"] == quantity],
            x="a",
            y="value",
            hue="activation",
            hue_order=order,
            palette=palette,
            estimator=None,
            linewidth=1.6,
            ax=ax,
            legend=ax is ax_f,
        )
        ax.set_xlabel("pre-activation $a$")
        ax.set_xlim(*A_RANGE)
    ax_f.set_ylabel("$f(a)$")
    ax_f.set_ylim(-1.15, 3.2)
    ax_f.set_title("nonlinearity $f$")
    ax_f.legend(title=None, loc="upper left")
    ax_df.set_ylabel("$f'(a)$")
    ax_df.set_ylim(-0.05, 1.2)
    ax_df.set_title(r"derivative $f'$ and $\gamma = \max\,|f'|$")

    # gamma, one dotted line per distinct value, labelled with the activations that share it
    by_gamma: dict[float, list[str]] = {}
    for name in order:
        by_gamma.setdefault(ACTIVATIONS[name].gamma, []).append(name)
    for gamma, names in by_gamma.items():
        ax_df.axhline(gamma, color="0.35", linestyle=":", linewidth=1.0, zorder=1)
        ax_df.text(
            A_RANGE[1] - 0.15,
            gamma + 0.03,
            rf"$\gamma$ = {common.format_number(gamma, fraction=True)} ({', '.join(names)})",
            fontsize=common.NOTE_SIZE,
            va="bottom",
            ha="right",
            color="0.2",
        )
    # where the maximum is reached: a = 0 for sigmoid and tanh (relu: every a > 0)
    for name in ("sigmoid", "tanh"):
        act = ACTIVATIONS[name]
        ax_df.plot([0.0], [act.gamma], marker="o", markersize=5, color=palette[name], zorder=4)
    style.save(fig, out_path)
