"""Closed forms and bounds for vanishing and exploding gradients, and fits that compare them with measurement.

Sources: Pascanu, Mikolov and Bengio 2013, "On the difficulty of training recurrent neural networks" (ICML):
the product bound (eqs. 5-7), the one-unit bifurcation (Fig. 3), the one-unit error surface (Fig. 6) and
gradient clipping (Algorithm 1). The mean-field Lyapunov exponent of a random tanh network is the classic
calculation usually credited to Molgedey, Schuchhardt and Schuster 1992. All arithmetic is float64.

Conventions: a "rate" is the slope of the natural log of a norm against the distance t - k, in nats per step;
negative rates vanish, positive rates explode, and 1/|rate| is the memory timescale in steps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from rnngrad.contract import SPEC_COLUMNS

# Fits use norms inside [FIT_FLOOR, FIT_CEILING]: well inside float32's normal range (1.2e-38 .. 3.4e38), so
# that neither float32 underflow/denormals nor overflow of a float32 model bends the fitted line.
FIT_FLOOR = 1e-30
FIT_CEILING = 1e30


# ------------------------------------------------------------------------------------------------------------
# The product bound (Pascanu et al. 2013, eqs. 5-7)


def product_bound(gamma, sigma_max, distance):
    """(gamma sigma_max)^distance, bound on ||dh_t/dh_k|| at distance t - k (Pascanu et al. 2013, eqs. 6-7).

    Each Jacobian diag(f'(a_j)) W has spectral norm <= gamma * sigma_max(W), and norms are submultiplicative.
    Overflows to inf for long distances; use :func:`log_product_bound` to compare with measurements.
    """
    return np.power(np.multiply(gamma, sigma_max, dtype=np.float64), distance)


def log_product_bound(gamma, sigma_max, distance):
    """distance * ln(gamma sigma_max): log of :func:`product_bound`, finite where that over/underflows."""
    with np.errstate(divide="ignore"):
        return np.multiply(distance, np.log(np.multiply(gamma, sigma_max, dtype=np.float64)))


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


def fit_decay_rate(distance, norms, floor: float = FIT_FLOOR, ceiling: float = FIT_CEILING) -> dict:
    """Exponential rate of ``norms`` against ``distance``: Theil-Sen slope of ln(norm) on the points with
    floor < norm < ceiling (dropping zeros, NaN, Inf and floor/ceiling, where a norm lost its value).

    Returns dict(rate, intercept, n_points, d_min, d_max), as :func:`fit_log_decay_rate`.
    """
    x = np.asarray(distance, dtype=np.float64).ravel()
    v = np.asarray(norms, dtype=np.float64).ravel()
    keep = np.isfinite(v) & (v > floor) & (v < ceiling)
    return fit_log_decay_rate(x[keep], np.log(v[keep]))


# ------------------------------------------------------------------------------------------------------------
# Lyapunov exponents


def lyapunov_qr(jacobians) -> float | torch.Tensor:
    """Largest Lyapunov exponent of the product J_T ... J_1 by the QR method.

    Push an orthonormal set (the identity) through J_1, J_2, ...; after each step re-orthonormalise with a QR
    factorisation, Q_t R_t = J_t Q_{t-1}, and add up ln|diag(R_t)|. The averages (1/T) sum_t ln|R_t[i, i]| are
    the Lyapunov exponents (Benettin et al. 1980); the largest of them is returned. It is the asymptotic slope
    of ln ||dh_t/dh_k|| against t - k (the backward pass's transposed product has the same singular values).

    ``jacobians``: [T, H, H] -> float, or a batch [S, T, H, H] -> Tensor[S]. Computed in float64.
    """
    J = torch.as_tensor(jacobians, dtype=torch.float64)
    single = J.dim() == 3
    if single:
        J = J.unsqueeze(0)
    if J.dim() != 4 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"lyapunov_qr: expected [T, H, H] or [S, T, H, H], got {tuple(J.shape)}")
    samples, steps, hidden, _ = J.shape
    Q = torch.eye(hidden, dtype=torch.float64).expand(samples, hidden, hidden)
    log_r = torch.zeros(samples, hidden, dtype=torch.float64)
    for t in range(steps):
        Q, R = torch.linalg.qr(J[:, t] @ Q)
        log_r += torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
    largest = (log_r / steps).max(dim=-1).values
    return float(largest[0]) if single else largest


def _gauss_mean(n_quad: int, z_max: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with sum(w * f(z)) = E[f(z)], z ~ N(0, 1): the trapezoid rule on [-z_max, z_max].

    Not Gauss-Hermite: tanh^2(sqrt(Delta) z) and sech^4(sqrt(Delta) z) have features of width 1/sqrt(Delta) that
    no low-degree polynomial follows, and numpy's hermegauss overflows beyond ~300 nodes. With 101 Gauss-Hermite
    nodes lambda(4) comes out 0.455, with 201 nodes 0.4344, against 0.43288 (mpmath, 30 digits). The trapezoid
    rule is spectrally accurate for smooth, fast-decaying integrands as long as the spacing resolves 1/sqrt(Delta).
    """
    z = np.linspace(-z_max, z_max, n_quad)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


def mean_field_variance(g: float, n_quad: int = 4001) -> float:
    """Stationary pre-activation variance Delta of h_{t+1} = W tanh(h_t), W_ij ~ N(0, g^2/N), N -> infinity:
    the nonzero solution of Delta = g^2 E[tanh^2(sqrt(Delta) z)] for g > 1 (0 for g <= 1).

    Solved by bisection on ln Delta of r(Delta) = g^2 E[tanh^2(sqrt(Delta) z)] / Delta - 1, which falls strictly
    (tanh^2(x)/x^2 falls in |x|) from g^2 - 1 > 0 at Delta -> 0 to below 0 at Delta = g^2 (tanh^2 < 1). Plain
    fixed-point iteration reaches the same point but needs ~1/(g^2 - 1) iterations: seconds just above g = 1.
    """
    if g <= 1.0:
        return 0.0
    z, w = _gauss_mean(n_quad)

    def excess(log_delta: float) -> float:
        delta = math.exp(log_delta)
        return g * g * float(np.sum(w * np.tanh(math.sqrt(delta) * z) ** 2)) / delta - 1.0

    lo, hi = math.log(1e-300), math.log(g * g)
    while hi - lo > 1e-15:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def mean_field_lyapunov(g, n_quad: int = 4001):
    """Mean-field largest Lyapunov exponent of a random tanh RNN without input, W_ij ~ N(0, g^2/N):

    lambda = 0.5 ln(g^2 E[sech^4(sqrt(Delta) z)]),  z ~ N(0, 1),  Delta from :func:`mean_field_variance`,

    by quadrature (see :func:`_gauss_mean`); lambda = ln g for g <= 1 (Delta = 0, sech = 1). The 0.5 because a tangent
    vector's squared norm grows by g^2 E[f'(a)^2] per step, with a ~ N(0, Delta) in the stationary state.
    Accepts a scalar (-> float) or an array of g (-> array).
    """
    gs = np.asarray(g, dtype=np.float64)
    z, w = _gauss_mean(n_quad)
    out = np.empty(gs.shape)
    for index, value in np.ndenumerate(gs):
        if value <= 1.0:
            out[index] = math.log(value)
            continue
        delta = mean_field_variance(float(value), n_quad)
        e = np.exp(-2.0 * np.abs(math.sqrt(delta) * z))
        sech4 = float(np.sum(w * (2.0 * np.sqrt(e) / (1.0 + e)) ** 4))  # sech x = 2 e^-|x| / (1 + e^-2|x|)
        out[index] = 0.5 * math.log(value * value * sech4)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------------------------------------------------
# The one-unit RNN x_t = w sigmoid(x_{t-1}) + b (Pascanu et al. 2013, Figs. 3 and 6)


def sigmoid(x):
    """Logistic sigmoid written with tanh, so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def one_unit_error(w, b, steps: int = 50, x0: float = 0.5, target: float = 0.7):
    """E = (sigmoid(x_steps) - target)^2, x_t = w sigmoid(x_{t-1}) + b, x_0 = x0 (Pascanu et al. 2013 Fig. 6).

    Vectorised over broadcastable arrays w and b (float64).
    """
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, x0, dtype=np.float64)
    for _ in range(steps):
        x = w * sigmoid(x) + b
    return (sigmoid(x) - target) ** 2


def one_unit_gradient(w, b, steps: int = 50, x0: float = 0.5, target: float = 0.7):
    """(dE/dw, dE/db) of :func:`one_unit_error`, exactly, by forward-mode differentiation of the recursion:

    dx_t/dw = s(x_{t-1}) + w s'(x_{t-1}) dx_{t-1}/dw,  dx_t/db = 1 + w s'(x_{t-1}) dx_{t-1}/db,
    dE/d. = 2 (s(x_T) - target) s'(x_T) dx_T/d.   with s' = s (1 - s).
    The factor prod_t w s'(x_{t-1}) is the one-unit Jacobian product: it is huge at the wall.
    """
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, x0, dtype=np.float64)
    dx_dw = np.zeros(w.shape)
    dx_db = np.zeros(w.shape)
    for _ in range(steps):
        s = sigmoid(x)
        jac = w * s * (1.0 - s)
        dx_dw = s + jac * dx_dw
        dx_db = 1.0 + jac * dx_db
        x = w * s + b
    s = sigmoid(x)
    outer = 2.0 * (s - target) * s * (1.0 - s)
    return outer * dx_dw, outer * dx_db


def clipped_step(grad, lr: float, threshold: float) -> np.ndarray:
    """Parameter update -lr * g after norm clipping (Pascanu et al. 2013, Algorithm 1):
    g <- threshold * g / ||g|| if ||g|| >= threshold. threshold = inf gives the plain SGD step."""
    g = np.asarray(grad, dtype=np.float64)
    norm = float(np.linalg.norm(g))
    if norm >= threshold:
        g = g * (threshold / norm)
    return -lr * g


def one_unit_bistable_range(w: float) -> tuple[float, float]:
    """The interval of b where x = w sigmoid(x) + b has two stable fixed points (and an unstable one between).

    Its ends are the saddle-node bifurcations, where a fixed point has slope w s'(x) = 1: s(1 - s) = 1/w, so
    s = (1 +- sqrt(1 - 4/w)) / 2 and b = x - w s. Exists only for w > 4 (max s' = 1/4); NaNs otherwise.
    """
    if w <= 4.0:
        return math.nan, math.nan
    root = math.sqrt(1.0 - 4.0 / w)
    ends = []
    for s in ((1.0 - root) / 2.0, (1.0 + root) / 2.0):
        x = math.log(s / (1.0 - s))
        ends.append(x - w * s)
    return min(ends), max(ends)


def one_unit_fixed_points(w: float, b_values, x0_values=None, steps: int = 2000) -> pd.DataFrame:
    """x_inf reached by iterating x_t = w sigmoid(x_{t-1}) + b for ``steps`` steps from each initial state
    (Pascanu et al. 2013, Fig. 3). Tidy: one row per (b, x0) with columns w, b, x0, x_inf, residual
    (|w s(x_inf) + b - x_inf|, small once converged; large near a bifurcation, where convergence is slow).

    The default initial states, 12 points in [-6, 6], avoid the unstable fixed point x = 0 of b = -w/2.
    """
    x0s = np.linspace(-6.0, 6.0, 12) if x0_values is None else np.asarray(x0_values, dtype=np.float64)
    bs = np.asarray(b_values, dtype=np.float64)
    b_grid, x0_grid = np.meshgrid(bs, x0s, indexing="ij")
    x = x0_grid.copy()
    for _ in range(steps):
        x = w * sigmoid(x) + b_grid
    return pd.DataFrame(
        {
            "w": float(w),
            "b": b_grid.ravel(),
            "x0": x0_grid.ravel(),
            "x_inf": x.ravel(),
            "residual": np.abs(w * sigmoid(x) + b_grid - x).ravel(),
        }
    )


# ------------------------------------------------------------------------------------------------------------
# Measured against theory, from the experiment tables


def _spec(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per RNN run: the spec columns present, and status (LSTM runs have no Jacobians to compare)."""
    columns = [c for c in (*SPEC_COLUMNS, "status") if c in runs.columns]
    return runs.loc[runs["model"] == "rnn", columns].drop_duplicates("run_id")


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
    rows["log_bound"] = log_product_bound(
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


def _median_fit(frame: pd.DataFrame, fit, x: str, y: str, prefix: str) -> pd.DataFrame:
    """Fit each (run_id, step, t) curve separately (each target step has its own intercept), then take the
    median rate over t; n_points adds up."""
    columns = ["run_id", "step", f"{prefix}_rate", f"{prefix}_n_points"]
    fits = []
    for (run_id, step, _), curve in frame.groupby(["run_id", "step", "t"], sort=True):
        result = fit(curve[x], curve[y])
        fits.append({"run_id": run_id, "step": step, "rate": result["rate"], "n": result["n_points"]})
    if not fits:
        return pd.DataFrame(columns=columns)
    per_t = pd.DataFrame(fits)
    out = per_t.groupby(["run_id", "step"], as_index=False).agg(rate=("rate", "median"), n=("n", "sum"))
    return out.set_axis(columns, axis=1)


def decay_rate_table(
    products: pd.DataFrame, gradients: pd.DataFrame, runs: pd.DataFrame, spectrum: pd.DataFrame
) -> pd.DataFrame:
    """Measured decay rates beside theory, one row per RNN run and logging step (LSTM runs are left out).

    Columns: the spec columns and status of the run, step, and
    - product_rate: Theil-Sen slope of log_product_norm against distance (median over target steps t);
    - contribution_rate: the same for ln contribution_norm, without k = 1 (C_{t,1} = 0 exactly as h_0 = 0) and
      within [FIT_FLOOR, FIT_CEILING]; *_n_points count the points used;
    - sigma_max_W, bound_rate = ln(gamma sigma_max_W) (Pascanu et al. 2013, eq. 7), lyapunov_qr (spectrum);
    - mean_field_rate: the mean-field lambda(scale) for tanh with gaussian init (NaN otherwise);
    - bound_ratio_max: max over distances of measured product_norm / (gamma sigma_max_W)^distance (<= 1 when
      the bound holds), from the logs; bound_looseness: median of ln bound - ln measured.
    NaN where a run has no usable points (a diverged run's NaN/Inf rows drop out of the fits).
    """
    spec = _spec(runs)
    prod = _median_fit(
        products[products["run_id"].isin(spec["run_id"])],
        fit_log_decay_rate,
        "distance",
        "log_product_norm",
        "product",
    )
    contributions = gradients[gradients["run_id"].isin(spec["run_id"]) & (gradients["k"] > 1)]
    contrib = _median_fit(contributions, fit_decay_rate, "distance", "contribution_norm", "contribution")
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
    table = prod.merge(contrib, on=keys, how="outer").merge(sigma, on=keys, how="outer")
    table = table.merge(ratio, on=keys, how="left")
    table = spec.merge(table, on="run_id", how="inner").sort_values(keys, kind="stable")
    table = table.reset_index(drop=True)
    table["step"] = table["step"].astype("int64")
    for column in ("product_n_points", "contribution_n_points"):
        table[column] = table[column].fillna(0).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_sigma = table["gamma"].to_numpy(np.float64) * table["sigma_max_W"].to_numpy(np.float64)
        table["bound_rate"] = np.log(gamma_sigma)
    mean_field = (table["activation"] == "tanh") & (table["init"] == "gaussian")
    table["mean_field_rate"] = math.nan
    if mean_field.any():
        scales = table.loc[mean_field, "scale"].to_numpy(np.float64)
        unique = np.unique(scales)
        lookup = dict(zip(unique, np.atleast_1d(mean_field_lyapunov(unique)), strict=True))
        table.loc[mean_field, "mean_field_rate"] = [lookup[s] for s in scales]
    order = [
        *spec.columns,
        "step",
        "product_rate",
        "product_n_points",
        "contribution_rate",
        "contribution_n_points",
        "sigma_max_W",
        "bound_rate",
        "lyapunov_qr",
        "mean_field_rate",
        "bound_ratio_max",
        "bound_looseness",
    ]
    return table[order]
