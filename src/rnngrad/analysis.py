"""Measured rates against theory: fits of the logged norms and the tables that set them beside the closed forms of
:mod:`rnngrad.theory` (the measurement side; theory.py never reads a measured number).

A "rate" is the Theil-Sen slope of the natural log of a norm against the distance t - k, in nats per step.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rnngrad import theory
from rnngrad.contract import SPEC_COLUMNS

# Contribution norms are square roots of float64 sums of squares (rnngrad.gradients.contribution_norms), so they
# lose precision below sqrt(2.2e-308) ~ 1.5e-154 and overflow above sqrt(1.8e308) ~ 1.3e154: fits use norms inside
# [FIT_FLOOR, FIT_CEILING]. Product norms are logged as logs and need no such limit.
FIT_FLOOR = 1e-150
FIT_CEILING = 1e150


# ------------------------------------------------------------------------------------------------------------
# Decay-rate fits


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Theil-Sen line: slope = median slope over all pairs with distinct x; intercept = median(y - slope x).

    Robust to the bends of a measured log-norm curve (a transient at short distance, a saturated stretch) and
    exact on a straight line. O(n^2) pairs: fine for the distances of one product or gradient curve
    (n up to ~2000).
    """
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    if not keep.any():
        return math.nan, math.nan
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep]))
    return slope, float(np.median(y - slope * x))


def fit_log_decay_rate(distance, log_norms) -> dict:
    """Exponential rate from already-logged norms (the ``log_product_norm`` column): Theil-Sen slope of
    ln ||.|| against distance over the finite points.

    Returns dict(rate, intercept, n_points, d_min, d_max); rate is NaN (not an error) when fewer than 2 points
    or fewer than 2 distinct distances remain.
    """
    x = np.asarray(distance, dtype=np.float64).ravel()
    y = np.asarray(log_norms, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    rate, intercept = _theil_sen(x, y) if len(x) >= 2 else (math.nan, math.nan)
    return {
        "rate": rate,
        "intercept": intercept,
        "n_points": int(len(x)),
        "d_min": float(x.min()) if len(x) else math.nan,
        "d_max": float(x.max()) if len(x) else math.nan,
    }


# ------------------------------------------------------------------------------------------------------------
# Measured against theory, from the experiment tables


def _spec(runs: pd.DataFrame, rnn: bool = True) -> pd.DataFrame:
    """One row per RNN run (``rnn``; else per run of any other cell): the spec columns present, and status."""
    columns = [c for c in (*SPEC_COLUMNS, "status") if c in runs.columns]
    return runs.loc[(runs["model"] == "rnn") == rnn, columns].drop_duplicates("run_id")


def recurrent_contributions(gradients: pd.DataFrame) -> pd.DataFrame:
    """One row per run, step, t and k: ``contribution_norm`` over all of a cell's recurrent weights together
    (the Frobenius norm of the stacked C_{t,k}: the vanilla RNN's W alone, the LRU's nu and theta together)."""
    keys = ["run_id", "step", "t", "k"]
    if gradients.empty or gradients.groupby(keys).size().max() == 1:
        return gradients
    squared = gradients.assign(_sq=gradients["contribution_norm"].astype(float) ** 2).groupby(keys)["_sq"].sum()
    first = gradients.drop_duplicates(keys).set_index(keys)
    return first.assign(contribution_norm=np.sqrt(squared)).reset_index()


def cell_rate_table(products: pd.DataFrame, gradients: pd.DataFrame, runs: pd.DataFrame, spectrum: pd.DataFrame):
    """The measured rates of :func:`decay_rate_table` (product_rate, contribution_rate of all recurrent weights
    together, lyapunov_qr) for the runs of cells other than the vanilla RNN, which have no scale or bound."""
    spec = _spec(runs, rnn=False)
    fits = paired_fits(products[products["run_id"].isin(spec["run_id"])], recurrent_contributions(gradients))
    qr = spectrum[["run_id", "step", "lyapunov_qr"]].drop_duplicates(["run_id", "step"])
    table = spec.merge(fits.merge(qr, on=["run_id", "step"], how="outer"), on="run_id", how="inner")
    return table.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)


def _products_vs_bound(products: pd.DataFrame, spectrum: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Product rows (run_id, step, t, distance) with log_measured and log_bound; non-finite ones dropped.

    log_measured is ln(product_norm), the mean of the norms and so the larger of the two measurements, where
    that is finite and positive, else log_product_norm (the mean log, finite where the norm under/overflowed).
    """
    spec = _spec(runs)[["run_id", "gamma"]]
    sigma = spectrum[["run_id", "step", "sigma_max_W"]].drop_duplicates(["run_id", "step"])
    rows = products[["run_id", "step", "t", "distance", "product_norm", "log_product_norm"]]
    rows = rows.merge(spec, on="run_id").merge(sigma, on=["run_id", "step"])
    norm = rows["product_norm"].to_numpy(dtype=np.float64)
    usable = np.isfinite(norm) & (norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_norm = np.log(np.where(usable, norm, 1.0))
    rows["log_measured"] = np.where(usable, log_norm, rows["log_product_norm"].to_numpy(dtype=np.float64))
    rows["log_bound"] = theory.log_product_bound(
        rows["gamma"].to_numpy(dtype=np.float64),
        rows["sigma_max_W"].to_numpy(dtype=np.float64),
        rows["distance"].to_numpy(dtype=np.float64),
    )
    finite = np.isfinite(rows["log_measured"]) & np.isfinite(rows["log_bound"])
    return rows.loc[finite].reset_index(drop=True)


def check_bound(products: pd.DataFrame, spectrum: pd.DataFrame, runs: pd.DataFrame, rtol: float = 1e-6) -> pd.DataFrame:
    """Where does a measured Jacobian product exceed (gamma sigma_max(W))^distance (Pascanu et al. 2013)?

    One row per (run_id, step) with a violation: n_points, n_violations, worst_distance, max_excess
    (max of log measured - log bound) and looseness (median of log bound - log measured over its distances).
    Empty (with these columns) when the bound holds everywhere. ``rtol`` is the relative tolerance per factor
    of the product (rounding accumulates over the distance): a violation is log measured - log bound >
    distance * ln(1 + rtol). Rows whose log norm or bound is not finite (diverged runs) cannot be checked.
    """
    columns = ["run_id", "step", "n_points", "n_violations", "worst_distance", "max_excess", "looseness"]
    rows = _products_vs_bound(products, spectrum, runs)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["excess"] = rows["log_measured"] - rows["log_bound"]
    rows["violation"] = rows["excess"] > rows["distance"] * math.log1p(rtol)
    report = []
    for (run_id, step), group in rows.groupby(["run_id", "step"], sort=True):
        if not group["violation"].any():
            continue
        worst = group["excess"].idxmax()
        report.append(
            {
                "run_id": run_id,
                "step": step,
                "n_points": len(group),
                "n_violations": int(group["violation"].sum()),
                "worst_distance": group.loc[worst, "distance"],
                "max_excess": float(group.loc[worst, "excess"]),
                "looseness": float((-group["excess"]).median()),
            }
        )
    return pd.DataFrame(report, columns=columns)


def paired_fits(products: pd.DataFrame, gradients: pd.DataFrame) -> pd.DataFrame:
    """Rates of the Jacobian products and of the contributions ||C_{t,k}||_F, fitted on the same distances.

    A distance d = t - k enters both fits when, at the products' target step t, its log product norm is finite
    and its contribution norm lies inside [FIT_FLOOR, FIT_CEILING]; k = 1 never does (C_{t,1} = 0 exactly, as
    h_0 = 0), so the window is 1 <= d <= t - 2 for both. One row per (run_id, step): product_rate,
    contribution_rate, fit_n_points, fit_d_min, fit_d_max (NaN rates, 0 points where nothing is usable).
    """
    keys = ["run_id", "step", "t", "distance"]
    prod = products[[*keys, "log_product_norm"]]
    contrib = gradients.loc[gradients["k"] > 1, [*keys, "contribution_norm"]]
    pairs = prod.merge(contrib, on=keys, how="inner")
    norm = pairs["contribution_norm"].to_numpy(dtype=np.float64)
    usable = np.isfinite(pairs["log_product_norm"].to_numpy(dtype=np.float64))
    usable &= (norm > FIT_FLOOR) & (norm < FIT_CEILING)
    distance = pairs["distance"].to_numpy(dtype=np.float64)
    log_product = pairs["log_product_norm"].to_numpy(dtype=np.float64)
    rows = []
    curves = pairs.groupby(["run_id", "step"]).indices  # positions of each curve's rows, in the frame's order
    for run_id, step in sorted(curves):
        rows_of_curve = curves[(run_id, step)]
        kept = rows_of_curve[usable[rows_of_curve]]
        log_c = np.log(norm[kept])
        product, contribution = (fit_log_decay_rate(distance[kept], y) for y in (log_product[kept], log_c))
        rows.append(
            {
                "run_id": run_id,
                "step": step,
                "product_rate": product["rate"],
                "contribution_rate": contribution["rate"],
                "fit_n_points": product["n_points"],
                "fit_d_min": product["d_min"],
                "fit_d_max": product["d_max"],
            }
        )
    columns = ["run_id", "step", "product_rate", "contribution_rate", "fit_n_points", "fit_d_min", "fit_d_max"]
    return pd.DataFrame(rows, columns=columns)


def mean_field_columns(spec: pd.DataFrame) -> pd.DataFrame:
    """input_var, mean_field_rate (lambda) and mean_field_contribution_rate for each RNN run, from its spec alone
    (rnngrad.theory: activation, init, scale, the input weights' spread and the task's input statistics; NaN for a
    task without them, and for
    one-unit runs: the mean field is a wide-network limit, the scalar case has its own closed form)."""
    keys = ["activation", "init", "scale", "task", "T", "variant", "hidden", "input_init"]
    settings = spec[keys].drop_duplicates()
    values = []
    for act, init, g, task, T, variant, hidden, input_init in settings.itertuples(index=False):  # noqa: N806
        s2 = theory.input_variance(task, T, variant, input_init, hidden) if hidden > 1 else math.nan
        lam = theory.mean_field_lyapunov(act, init, g, s2)
        values.append((s2, lam, float(theory.mean_field_contribution_rate(act, init, g, s2))))
    names = ["input_var", "mean_field_rate", "mean_field_contribution_rate"]
    settings[names] = pd.DataFrame(values, index=settings.index, columns=names) if values else math.nan
    return spec[["run_id", *keys]].merge(settings, on=keys, how="left")[["run_id", *names]]


def decay_rate_table(
    products: pd.DataFrame, gradients: pd.DataFrame, runs: pd.DataFrame, spectrum: pd.DataFrame
) -> pd.DataFrame:
    """Measured decay rates beside theory, one row per RNN run and logging step (other cells:
    :func:`cell_rate_table`).

    Columns: the spec columns and status of the run, step, and
    - product_rate, contribution_rate, fit_n_points, fit_d_min, fit_d_max: :func:`paired_fits` (same distances);
    - sigma_max_W, bound_rate = ln(gamma sigma_max_W): the bound on the product rate (Pascanu et al. 2013);
    - lyapunov_qr: the finite-time largest Lyapunov exponent by the QR method, on the same sampled sequences and
      steps as the products (logged with the spectrum; a consistency check of product_rate, not a prediction);
    - input_var, mean_field_rate, mean_field_contribution_rate: the mean-field predictions from the spec alone;
    - bound_ratio_max: max over distances of measured product_norm / (gamma sigma_max_W)^distance (<= 1 when
      the bound holds), from the logs; bound_looseness: median of ln bound - ln measured.
    NaN where a run has no usable points (a diverged run's NaN/Inf rows drop out of the fits).
    """
    spec = _spec(runs)
    fits = paired_fits(products[products["run_id"].isin(spec["run_id"])], gradients)
    sigma = spectrum[["run_id", "step", "sigma_max_W", "lyapunov_qr"]].drop_duplicates(["run_id", "step"])
    sigma = sigma[sigma["run_id"].isin(spec["run_id"])]

    vs_bound = _products_vs_bound(products, spectrum, runs)
    vs_bound["excess"] = vs_bound["log_measured"] - vs_bound["log_bound"]
    ratio = vs_bound.groupby(["run_id", "step"], as_index=False).agg(
        max_excess=("excess", "max"), median_excess=("excess", "median")
    )
    ratio["bound_ratio_max"] = np.exp(ratio.pop("max_excess"))
    ratio["bound_looseness"] = -ratio.pop("median_excess")

    keys = ["run_id", "step"]
    table = fits.merge(sigma, on=keys, how="outer").merge(ratio, on=keys, how="left")
    table = spec.merge(table, on="run_id", how="inner").merge(mean_field_columns(spec), on="run_id", how="left")
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    table["step"] = table["step"].astype("int64")
    table["fit_n_points"] = table["fit_n_points"].fillna(0).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_sigma = table["gamma"].to_numpy(np.float64) * table["sigma_max_W"].to_numpy(np.float64)
        table["bound_rate"] = np.log(gamma_sigma)
    order = [
        *spec.columns,
        "step",
        "product_rate",
        "contribution_rate",
        "fit_n_points",
        "fit_d_min",
        "fit_d_max",
        "sigma_max_W",
        "bound_rate",
        "lyapunov_qr",
        "input_var",
        "mean_field_rate",
        "mean_field_contribution_rate",
        "bound_ratio_max",
        "bound_looseness",
    ]
    return table[order]
