"""The science summary: which runs vanish, explode, diverge or solve, and fitted rates beside theory.

The regime column comes from the fitted slope of the Jacobian products, ln ||J_t ... J_{t-d+1}||_2 against d at
step 0 (before any update): below -REGIME_TOLERANCE per step the backpropagated factor delta_{t,k} vanishes, above
+REGIME_TOLERANCE it explodes. The contributions C_{t,k} = delta_{t,k} h_{k-1}^T can differ (relu at g >= 2: the
products explode while the growth of h_{k-1} with k cancels them), so their rate has its own column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnngrad.analysis import cell_rate_table, check_bound, decay_rate_table, recurrent_contributions
from rnngrad.io import atomic_write
from rnngrad.tables import read_tables

REGIME_TOLERANCE = 0.05  # |rate| per step below which a run counts as marginal (1/0.05 = 20-step memory)
AT_BASELINE = 0.9  # a completed run whose final loss is above 90% of the memoryless baseline learnt nothing
SUMMARY_TABLES = ("runs", "products", "gradients", "spectrum")
GROUP = ["experiment", "task", "label", "init", "scale"]
RATE_HEADERS = {  # the summary's column headers, naming what each number is
    "finite_time_qr": "finite-time Lyapunov (QR, same samples)",
    "mean_field": "mean-field lambda",
    "mean_field_C": "mean-field rate of C",
}


def outcome(runs: pd.DataFrame) -> pd.Series:
    """solved | diverged | baseline (no better than memoryless) | learning (better, not solved)."""
    return pd.Series(
        np.select(
            [runs.solved, runs.status == "diverged", runs.final_loss >= AT_BASELINE * runs.baseline_loss],
            ["solved", "diverged", "baseline"],
            "learning",
        ),
        index=runs.index,
    )


def regime(rate: float) -> str:
    if not np.isfinite(rate):
        return "n/a"
    return "vanishing" if rate < -REGIME_TOLERANCE else "exploding" if rate > REGIME_TOLERANCE else "marginal"


def rates_vs_theory(per_experiment: list[dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """Median over seeds and lengths, at step 0, of the fitted rates beside the bound, the finite-time QR exponent
    and the mean-field predictions (the measured rates alone for cells other than the RNN)."""
    logged = [(t["products"], t["gradients"], t["runs"], t["spectrum"]) for t in per_experiment]
    rates = pd.concat(
        [decay_rate_table(*tables) for tables in logged] + [cell_rate_table(*tables) for tables in logged],
        ignore_index=True,
    )
    for column in ("bound_rate", "mean_field_rate", "mean_field_contribution_rate"):
        rates[column] = rates[column].astype(float)
    start = rates[rates.step == 0]
    table = start.groupby(GROUP, dropna=False, as_index=False).agg(
        runs=("run_id", "nunique"),
        product_rate=("product_rate", "median"),
        contribution_rate=("contribution_rate", "median"),
        bound_rate=("bound_rate", "median"),
        finite_time_qr=("lyapunov_qr", "median"),
        mean_field=("mean_field_rate", "median"),
        mean_field_C=("mean_field_contribution_rate", "median"),
    )
    table["product_regime"] = table.product_rate.map(regime)
    return table


def far_contributions(per_experiment: list[dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """For experiments with a cell other than the vanilla RNN: per model and length, the median over seeds of
    ||C_{t,2}|| / ||C_{t,t}|| at the last target step t (the farthest non-zero contribution against the nearest;
    all recurrent weights together), at step 0 and at the last logged step, and the seeds solved."""
    frames = []
    for tables in per_experiment:
        runs = tables["runs"]
        if runs.empty or (runs["model"] == "rnn").all():
            continue
        grads = recurrent_contributions(tables["gradients"])
        grads = grads[grads["t"] == grads.groupby(["run_id", "step"])["t"].transform("max")]
        last = grads.groupby("run_id")["step"].transform("max")
        ratios = {}
        for stage, at in (("step 0", grads[grads["step"] == 0]), ("trained", grads[grads["step"] == last])):
            far = at[at["k"] == 2].set_index("run_id")["contribution_norm"]
            near = at[at["k"] == at["t"]].set_index("run_id")["contribution_norm"]
            ratios[f"far/near {stage}"] = far / near
        frames.append(runs.set_index("run_id").join(pd.DataFrame(ratios)))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames)
    return table.groupby(["experiment", "label", "T"], as_index=False).agg(
        runs=("solved", "size"), solved=("solved", "sum"), **{c: (c, "median") for c in table if c.startswith("far/")}
    )


def outcomes(runs: pd.DataFrame) -> pd.DataFrame:
    """Counts of each outcome per (experiment, task, model, init, scale, clip and regulariser), lengths and seeds
    pooled."""
    clip = runs["clip"].map(lambda c: "none" if pd.isna(c) else f"{c:g}")
    clip += runs["regularizer"].map(lambda alpha: f" + reg {alpha:g}" if alpha else "")  # Pascanu et al.'s MSGD-CR
    runs = runs.assign(outcome=outcome(runs), clip=clip)
    counts = runs.groupby([*GROUP, "clip", "outcome"], dropna=False).size().unstack("outcome", fill_value=0)
    for column in ("solved", "learning", "baseline", "diverged"):
        if column not in counts:
            counts[column] = 0
    return counts[["solved", "learning", "baseline", "diverged"]].reset_index()


def summarise(tables_dirs: list[str | Path]) -> str:
    """The markdown summary of every experiment's tables."""
    per_experiment = [read_tables(d, SUMMARY_TABLES) for d in tables_dirs]
    tables = {name: pd.concat([t[name] for t in per_experiment], ignore_index=True) for name in SUMMARY_TABLES}
    # run ids repeat across experiments: theory's per-run functions get one experiment at a time
    rates = rates_vs_theory(per_experiment)
    violations = pd.concat(
        [check_bound(t["products"], t["spectrum"], t["runs"]) for t in per_experiment], ignore_index=True
    )
    rnn_runs = tables["runs"][tables["runs"].model == "rnn"]
    lines = [
        "# rnngrad summary",
        "",
        f"{len(tables['runs'])} runs: "
        + ", ".join(f"{n} {name}" for name, n in outcome(tables["runs"]).value_counts().sort_index().items())
        + ".",
        f"Bound ||J_t...J_{{t-d+1}}||_2 <= (gamma sigma_max(W))^d checked on {len(rnn_runs)} RNN runs at every "
        f"logged step: {len(violations)} violations.",
        "",
        "## Fitted rates against theory (step 0, per step, natural log; medians over seeds and lengths)",
        "",
        "product_rate: slope of ln ||product of d Jacobians|| against d (the factor in delta_{t,k}); contribution_rate:"
        " slope of ln ||C_{t,k}||_F, both fitted on the same distances; bound_rate: ln(gamma sigma_max(W)), a bound"
        " on product_rate only; finite-time Lyapunov: largest Lyapunov exponent by the QR method on the same sampled"
        " sequences and steps as the products (a consistency check, not a prediction); mean-field lambda: from the"
        " spec alone (activation, init, g, the task's input variance; rnngrad.theory); mean-field rate of C: its"
        " prediction for contribution_rate (lambda minus the growth rate of ||h||); product_regime: from product_rate.",
        "",
        rates.rename(columns=RATE_HEADERS).to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Outcomes (runs per outcome; lengths and seeds pooled)",
        "",
        f"solved: the task's criterion on the test set; baseline: final loss >= {AT_BASELINE:.0%} of the memoryless"
        " baseline; learning: in between; diverged: NaN/Inf loss or gradient.",
        "",
        outcomes(tables["runs"]).to_markdown(index=False),
        "",
    ]
    far = far_contributions(per_experiment)
    if not far.empty:
        lines += [
            "## How far the gradient reaches, per cell",
            "",
            "far/near: ||C_{t,2}||_F / ||C_{t,t}||_F at the last target step t (all recurrent weights together;"
            " C_{t,1} = 0 as s_0 = 0), median over seeds, at step 0 and after training.",
            "",
            far.to_markdown(index=False, floatfmt=".3g"),
            "",
        ]
    return "\n".join(lines)


def write_summary(tables_dirs: list[str | Path], out: str | Path) -> Path:
    text = summarise(tables_dirs)
    return atomic_write(out, lambda tmp: tmp.write_text(text))
