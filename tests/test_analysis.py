"""The measured side: rate fits and the tables that set them beside theory, on synthetic contract tables with
known rates (float64)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnngrad import analysis, theory
from rnngrad.models import ACTIVATIONS

# ---------------------------------------------------------------------------------------------------------------
# Decay-rate fits


def test_fit_log_decay_rate_exact_on_a_pure_exponential():
    d = np.arange(0, 40)
    fit = analysis.fit_log_decay_rate(d, math.log(3.0) - 0.37 * d)
    assert fit["rate"] == pytest.approx(-0.37, abs=1e-13)
    assert fit["intercept"] == pytest.approx(math.log(3.0), abs=1e-12)
    assert (fit["n_points"], fit["d_min"], fit["d_max"]) == (40, 0.0, 39.0)


def test_fit_is_robust_to_a_few_outliers():
    d = np.arange(1, 61, dtype=float)
    log_norms = -0.2 * d + 1.0
    log_norms[[5, 20, 41]] += [30.0, -25.0, 40.0]
    assert analysis.fit_log_decay_rate(d, log_norms)["rate"] == pytest.approx(-0.2, abs=1e-12)


def test_fit_returns_nan_with_fewer_than_two_points():
    assert math.isnan(analysis.fit_log_decay_rate([1.0, 2.0], [-np.inf, np.nan])["rate"])
    assert analysis.fit_log_decay_rate([1.0, 2.0], [-np.inf, np.nan])["n_points"] == 0
    single = analysis.fit_log_decay_rate([4.0, 5.0], [-1.0, np.inf])
    assert math.isnan(single["rate"]) and single["n_points"] == 1
    assert math.isnan(analysis.fit_log_decay_rate([], [])["rate"])


def test_paired_fits_keep_float64_norms_far_below_float32_and_drop_the_float64_floor():
    """Contribution norms of 1e-100 (unrepresentable in float32, kept by a float64 fit) enter; those below
    FIT_FLOOR (where the squared norm underflows in float64) and zeros/NaN/Inf drop out of both fits alike."""
    t, rate = 400, -0.9  # 2.5 e^{-0.9 d} passes 1e-100 near d = 257 and FIT_FLOOR = 1e-150 near d = 385
    d = np.arange(1, t + 1, dtype=float)
    log_p = -0.5 + rate * d
    products = pd.DataFrame({"run_id": "r", "step": 0, "t": t, "distance": d, "log_product_norm": log_p})
    k = np.arange(1, t + 1)
    norms = np.where(k == 1, 0.0, 2.5 * np.exp(rate * (t - k)))
    norms[[10, 20]] = [np.nan, np.inf]  # distances 389 and 379
    gradients = pd.DataFrame({"run_id": "r", "step": 0, "t": t, "k": k, "distance": t - k, "contribution_norm": norms})
    fit = analysis.paired_fits(products, gradients).iloc[0]
    assert fit["product_rate"] == pytest.approx(rate, abs=1e-12)
    assert fit["contribution_rate"] == pytest.approx(rate, abs=1e-12)
    usable = (d <= t - 2) & (2.5 * np.exp(rate * d) > analysis.FIT_FLOOR) & ~np.isin(d, [389, 379])
    assert fit["fit_n_points"] == usable.sum() and fit["fit_d_max"] == d[usable].max() > 300
    assert analysis.FIT_FLOOR > 1e-300 and float(np.float64(analysis.FIT_FLOOR) ** 2) > 0  # squares stay normal


# ---------------------------------------------------------------------------------------------------------------
# Decay-rate table and the bound check on synthetic contract tables

SPEC_DEFAULTS = {
    "experiment": "scales",
    "task": "copy",
    "variant": "all",
    "T": 20,
    "clip": math.nan,
    "regularizer": 0.0,
    "input_init": "fan_in",
    "seed": 0,
    "hidden": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 4,
    "steps": 100,
}


def _spec(run_id: str, activation: str, init: str, scale: float, model: str = "rnn") -> dict:
    gamma = ACTIVATIONS[activation].gamma if model == "rnn" else math.nan
    label = "LSTM" if model == "lstm" else f"RNN-{activation}"
    return {
        **SPEC_DEFAULTS,
        "run_id": run_id,
        "model": model,
        "activation": activation if model == "rnn" else "none",
        "init": init if model == "rnn" else "none",
        "scale": scale if model == "rnn" else math.nan,
        "gamma": gamma,
        "label": label,
    }


def _tables(runs_def: list[dict]) -> dict[str, pd.DataFrame]:
    """Contract tables from per-run definitions: exponential products and contributions at given rates."""
    runs, products, gradients, spectrum = [], [], [], []
    for r in runs_def:
        spec = _spec(r["run_id"], r["activation"], r["init"], r["scale"], r.get("model", "rnn"))
        runs.append({**spec, "status": r.get("status", "completed"), "solved": False})
        if spec["model"] == "lstm":
            continue
        t = spec["T"]
        for step, (p_rate, c_rate, sigma, lyap) in r["steps"].items():
            d = np.arange(1, t + 1, dtype=float)
            log_p = np.log(0.8) + p_rate * d
            products.append(
                pd.DataFrame(
                    {
                        **spec,
                        "step": step,
                        "t": t,
                        "distance": d,
                        "product_norm": np.exp(log_p),
                        "log_product_norm": log_p,
                    }
                )
            )
            k = np.arange(1, t + 1)
            dist = (t - k).astype(float)
            contribution = np.where(k == 1, 0.0, 2.5 * np.exp(c_rate * dist))
            gradients.append(
                pd.DataFrame(
                    {
                        **spec,
                        "step": step,
                        "t": t,
                        "k": k,
                        "distance": dist,
                        "contribution_norm": contribution,
                        "contribution_norm_U": contribution,
                        "dLdh_norm": contribution,
                    }
                )
            )
            spectrum.append(
                {**spec, "step": step, "sigma_max_W": sigma, "spectral_radius_W": sigma, "lyapunov_qr": lyap}
            )
    return {
        "runs": pd.DataFrame(runs),
        "products": pd.concat(products, ignore_index=True),
        "gradients": pd.concat(gradients, ignore_index=True),
        "spectrum": pd.DataFrame(spectrum),
    }


RUNS = [
    {
        "run_id": "a",
        "activation": "tanh",
        "init": "orthogonal",
        "scale": 0.5,
        "steps": {0: (-0.8, -0.75, 0.5, -0.9), 100: (-0.7, -0.6, 0.6, -0.8)},
    },
    {"run_id": "b", "activation": "sigmoid", "init": "orthogonal", "scale": 2.0, "steps": {0: (-2.5, -2.4, 2.0, -2.6)}},
    {"run_id": "c", "activation": "tanh", "init": "gaussian", "scale": 1.5, "steps": {0: (0.05, 0.04, 3.0, 0.06)}},
    {"run_id": "d", "activation": "relu", "init": "identity", "scale": 1.0, "steps": {0: (-4.0, -3.9, 1.0, -0.1)}},
    {"run_id": "e", "activation": "none", "init": "none", "scale": math.nan, "model": "lstm"},
]


def test_decay_rate_table_recovers_exact_rates():
    tables = _tables(RUNS)
    table = analysis.decay_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    assert list(zip(table["run_id"], table["step"], strict=True)) == [
        ("a", 0),
        ("a", 100),
        ("b", 0),
        ("c", 0),
        ("d", 0),
    ]
    assert {"experiment", "T", "activation", "init", "scale", "clip", "seed", "label", "status"} <= set(table.columns)
    for r in RUNS[:4]:
        for step, (p_rate, c_rate, sigma, lyap) in r["steps"].items():
            row = table[(table["run_id"] == r["run_id"]) & (table["step"] == step)].iloc[0]
            assert row["product_rate"] == pytest.approx(p_rate, abs=1e-12)
            assert row["contribution_rate"] == pytest.approx(c_rate, abs=1e-12)
            assert row["fit_n_points"] == 18  # distances 1..18: products start at 1, C_{t,1} (distance 19) is 0
            assert (row["fit_d_min"], row["fit_d_max"]) == (1.0, 18.0)
            gamma = ACTIVATIONS[r["activation"]].gamma
            assert row["bound_rate"] == pytest.approx(math.log(gamma * sigma), abs=1e-14)
            assert row["lyapunov_qr"] == lyap
            d = np.arange(1, 21)
            excess = math.log(0.8) + (p_rate - math.log(gamma * sigma)) * d
            assert row["bound_ratio_max"] == pytest.approx(math.exp(excess.max()), rel=1e-12)
            assert row["bound_looseness"] == pytest.approx(-np.median(excess), abs=1e-12)
    # the mean-field columns come from the spec alone: the same for both logging steps of a run
    mean_field = table.set_index(["run_id", "step"])
    s2 = theory.input_variance("copy", 20, "all")
    assert mean_field.loc[("c", 0), "mean_field_rate"] == theory.mean_field_lyapunov("tanh", "gaussian", 1.5, s2)
    assert mean_field.loc[("a", 0), "mean_field_rate"] == mean_field.loc[("a", 100), "mean_field_rate"]
    assert mean_field.loc[("d", 0), "mean_field_rate"] == 0.0  # IRNN: ln g with g = 1
    assert (mean_field["input_var"] == 1.0 / 30.0).all()  # copy: one-hot over 10 symbols, U variance 1/30
    assert "e" not in set(table["run_id"])  # the LSTM has no Jacobians


def test_decay_rate_table_with_a_diverged_run_and_empty_tables():
    """Both rates are fitted on the distances where both norms are usable: Inf products past d = 10 shorten the
    contribution fit too; all-NaN contributions leave both rates NaN."""
    tables = _tables(RUNS[:2])
    products, gradients = tables["products"].copy(), tables["gradients"].copy()
    bad = (products["run_id"] == "a") & (products["step"] == 100)
    products.loc[bad & (products["distance"] > 10), ["product_norm", "log_product_norm"]] = [np.inf, np.nan]
    gradients.loc[(gradients["run_id"] == "a") & (gradients["step"] == 0), "contribution_norm"] = np.nan
    runs = tables["runs"].assign(status=["diverged", "completed"])
    table = analysis.decay_rate_table(products, gradients, runs, tables["spectrum"])
    row = table[(table["run_id"] == "a") & (table["step"] == 100)].iloc[0]
    assert row["status"] == "diverged"
    assert row["product_rate"] == pytest.approx(-0.7, abs=1e-12)
    assert row["contribution_rate"] == pytest.approx(-0.6, abs=1e-12)
    assert (row["fit_n_points"], row["fit_d_max"]) == (10, 10.0)
    row = table[(table["run_id"] == "a") & (table["step"] == 0)].iloc[0]
    assert math.isnan(row["product_rate"]) and math.isnan(row["contribution_rate"]) and row["fit_n_points"] == 0

    empty = {name: frame.iloc[0:0] for name, frame in tables.items()}
    out = analysis.decay_rate_table(empty["products"], empty["gradients"], empty["runs"], empty["spectrum"])
    assert out.empty and {"product_rate", "bound_rate", "mean_field_rate"} <= set(out.columns)
    assert analysis.check_bound(empty["products"], empty["spectrum"], empty["runs"]).empty


def test_check_bound_empty_when_the_bound_holds_and_lists_violations():
    tables = _tables(RUNS)
    assert analysis.check_bound(tables["products"], tables["spectrum"], tables["runs"]).empty
    products = tables["products"].copy()
    # run b at step 0: sigmoid, sigma 2: bound rate ln(0.5); make distance 3 exceed it by 1%
    at = (products["run_id"] == "b") & (products["distance"] == 3)
    products.loc[at, "product_norm"] = 1.01 * 0.5**3
    products.loc[at, "log_product_norm"] = math.log(1.01 * 0.5**3)
    report = analysis.check_bound(products, tables["spectrum"], tables["runs"])
    assert list(report["run_id"]) == ["b"] and int(report["n_violations"].iloc[0]) == 1
    assert report["worst_distance"].iloc[0] == 3
    assert report["max_excess"].iloc[0] == pytest.approx(math.log(1.01), abs=1e-12)
    assert report["looseness"].iloc[0] > 0
    # a hair above the bound is rounding: rtol is per factor, so 2.5e-6 over 3 factors passes rtol = 1e-6
    products.loc[at, "product_norm"] = (1 + 2.5e-6) * 0.5**3
    assert analysis.check_bound(products, tables["spectrum"], tables["runs"]).empty
    assert len(analysis.check_bound(products, tables["spectrum"], tables["runs"], rtol=5e-7)) == 1


def test_one_unit_runs_get_no_mean_field():
    """The mean field is a wide-network limit: an H = 1 run gets NaN (the scalar case has its own closed form)."""
    runs = [{"run_id": "w", "activation": "relu", "init": "identity", "scale": 1.0, "steps": {0: (0.0, 0.0, 1.0, 0.0)}}]
    tables = _tables(runs)
    tables["runs"]["hidden"] = 1
    table = analysis.decay_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    assert table["mean_field_rate"].isna().all() and table["input_var"].isna().all()
    tables["runs"]["hidden"] = 2
    table = analysis.decay_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    assert (table["mean_field_rate"] == 0.0).all()
