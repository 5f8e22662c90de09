"""The theory figures render PNG + PDF without a warning: error_surface and bifurcation from closed forms,
decay_rates and success_vs_length from small synthetic tables that follow the table contracts (several activations
and scales, two logging steps, a diverged run with NaN/Inf, an lstm run), and from empty tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rnngrad import analysis, config
from rnngrad.figures import figure_module
from rnngrad.models import ACTIVATIONS

pytestmark = pytest.mark.filterwarnings("error")

SCALES = (0.5, 1.0, 2.0, 4.0)


def _spec(experiment: str, activation: str, init: str, scale: float, seed: int, T: int, clip: float, model="rnn"):
    rnn = model == "rnn"
    clip_name = "noclip" if math.isnan(clip) else f"clip{clip:g}"
    name = f"{activation}/{init}-{scale:g}" if rnn else "lstm"
    return {
        "experiment": experiment,
        "run_id": f"copy/T{T}/{name}/{clip_name}/seed{seed}",
        "task": "copy",
        "variant": "all",
        "T": T,
        "model": model,
        "activation": activation if rnn else "none",
        "init": init if rnn else "none",
        "scale": scale if rnn else math.nan,
        "clip": clip,
        "regularizer": 0.0,
        "input_init": "fan_in",
        "seed": seed,
        "hidden": 8,
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 4,
        "steps": 200,
        "gamma": ACTIVATIONS[activation].gamma if rnn else math.nan,
        "forget_bias": math.nan,
        "label": config.label(
            {"model": model, "activation": activation, "init": init, "scale": scale, "hidden": 8}
            | {"forget_bias": None, "cell": None}
        ),
    }


def _outcome(spec: dict, diverged: bool, solved: bool) -> dict:
    return {
        **spec,
        "status": "diverged" if diverged else "completed",
        "steps_done": 120 if diverged else spec["steps"],
        "diverged_at": 120.0 if diverged else math.nan,
        "final_loss": math.nan if diverged else 0.1,
        "final_metric": math.nan if diverged else 0.9,
        "metric_name": "accuracy",
        "baseline_loss": 0.17,
        "solved": solved,
    }


def scales_tables() -> dict[str, pd.DataFrame]:
    """The scales experiment in miniature: per run, product norms and contributions decaying at a rate a little
    below the bound, logged at step 0 and 200; relu at scale 4, seed 1 diverges (NaN/Inf after training)."""
    rng = np.random.default_rng(0)
    runs, products, gradients, spectrum = [], [], [], []
    grid = [(a, "orthogonal", g) for a in ("tanh", "sigmoid", "relu") for g in SCALES]
    grid += [("tanh", "gaussian", g) for g in (0.5, 1.5, 3.0)]
    T = 16
    for activation, init, g in grid:
        for seed in (0, 1):
            spec = _spec("scales", activation, init, g, seed, T, math.nan)
            diverged = (activation, g, seed) == ("relu", 4.0, 1)
            runs.append(_outcome(spec, diverged, solved=g == 1.0))
            for step in (0, 200):
                sigma = g * (2.0 if init == "gaussian" else 1.0) * (1.0 + 0.1 * step / 200)
                rate = math.log(ACTIVATIONS[activation].gamma * sigma) - rng.uniform(0.1, 0.6)
                d = np.arange(1, T + 1, dtype=float)
                log_p = rate * d + rng.normal(0, 0.05, T) - 0.2
                p_norm = np.exp(log_p)
                k = np.arange(1, T + 1)
                c_norm = np.where(k == 1, 0.0, np.exp(rate * (T - k) + rng.normal(0, 0.05, T)))
                lyap = rate - 0.05
                if diverged and step == 200:
                    p_norm[5:], log_p[5:], c_norm[:] = np.inf, np.nan, np.nan
                    sigma, lyap = math.inf, math.nan
                products.append(
                    pd.DataFrame({**spec, "step": step, "t": T, "distance": d, "product_norm": p_norm,
                                  "log_product_norm": log_p})
                )  # fmt: skip
                gradients.append(
                    pd.DataFrame({**spec, "step": step, "t": T, "k": k, "distance": T - k, "contribution_norm": c_norm,
                                  "contribution_norm_U": c_norm, "dLdh_norm": c_norm})
                )  # fmt: skip
                spectrum.append({**spec, "step": step, "sigma_max_W": sigma, "spectral_radius_W": sigma,
                                 "lyapunov_qr": lyap})  # fmt: skip
    lstm = _spec("scales", "none", "none", math.nan, 0, T, math.nan, model="lstm")
    runs.append(_outcome(lstm, False, True))
    for step in (0, 200):  # the LSTM's whole-state Jacobians and W_hh contributions decay slowly
        d, k = np.arange(1, T + 1, dtype=float), np.arange(1, T + 1)
        products.append(pd.DataFrame({**lstm, "step": step, "t": T, "distance": d, "product_norm": np.exp(-0.02 * d),
                                      "log_product_norm": -0.02 * d}))  # fmt: skip
        c_norm = np.where(k == 1, 0.0, np.exp(-0.03 * (T - k)))
        gradients.append(pd.DataFrame({**lstm, "step": step, "t": T, "k": k, "distance": T - k, "weight": "W_hh",
                                       "contribution_norm": c_norm, "contribution_norm_U": c_norm,
                                       "dLdh_norm": c_norm}))  # fmt: skip
        spectrum.append({**lstm, "step": step, "sigma_max_W": math.nan, "spectral_radius_W": math.nan,
                         "lyapunov_qr": -0.02})  # fmt: skip
    return {
        "runs": pd.DataFrame(runs),
        "products": pd.concat(products, ignore_index=True),
        "gradients": pd.concat(gradients, ignore_index=True),
        "spectrum": pd.DataFrame(spectrum),
    }


def lengths_runs() -> pd.DataFrame:
    """The lengths experiment in miniature: success falls with T, clipping helps relu, some runs diverge."""
    rng = np.random.default_rng(1)
    rows = []
    for activation, init in (("tanh", "orthogonal"), ("sigmoid", "orthogonal"), ("relu", "orthogonal"),
                             ("relu", "identity")):  # fmt: skip
        for T in (10, 20, 40, 80):
            for clip in (math.nan, 1.0):
                for seed in range(4):
                    spec = _spec("lengths", activation, init, 1.0, seed, T, clip)
                    diverged = activation == "relu" and math.isnan(clip) and rng.random() < T / 100
                    solved = not diverged and rng.random() < 1.2 - T / 60
                    rows.append(_outcome(spec, diverged, solved))
    for T in (10, 80):
        rows.append(_outcome(_spec("lengths", "none", "none", math.nan, 0, T, 1.0, model="lstm"), False, True))
    return pd.DataFrame(rows)


def _check_written(out_path):
    png, pdf = out_path.with_suffix(".png"), out_path.with_suffix(".pdf")
    assert png.exists() and pdf.exists() and pdf.stat().st_size > 1000
    with Image.open(png) as image:
        assert image.width > 300 and image.height > 200


@pytest.mark.parametrize("name", ["error_surface", "bifurcation"])
def test_closed_form_figures_render(tmp_path, name):
    module = figure_module(name)
    assert module.TABLES == ()
    module.render({}, tmp_path / f"{name}.png")
    _check_written(tmp_path / f"{name}.png")


def test_decay_rates_renders_with_lstm_and_a_diverged_run(tmp_path):
    module = figure_module("decay_rates")
    tables = scales_tables()
    assert set(module.TABLES) == set(tables)
    module.render(tables, tmp_path / "decay_rates.png")
    _check_written(tmp_path / "decay_rates.png")
    # what the figure draws: the diverged run's trained rates are NaN, its step-0 rates are not
    rates = analysis.decay_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    diverged = rates[rates["status"] == "diverged"].set_index("step")
    assert np.isfinite(diverged.loc[0, "product_rate"]) and np.isnan(diverged.loc[200, "contribution_rate"])
    assert (rates["bound_ratio_max"].dropna() <= 1.0).all()
    cells = analysis.cell_rate_table(tables["products"], tables["gradients"], tables["runs"], tables["spectrum"])
    assert list(cells["label"].unique()) == ["LSTM"] and len(cells) == 2
    assert cells["product_rate"].to_numpy() == pytest.approx(-0.02) and (cells["contribution_rate"] < 0).all()


def test_decay_rates_renders_from_empty_tables(tmp_path):
    tables = {name: frame.iloc[0:0] for name, frame in scales_tables().items()}
    figure_module("decay_rates").render(tables, tmp_path / "decay_rates.png")
    _check_written(tmp_path / "decay_rates.png")


def test_decay_rates_renders_with_lstm_runs_only(tmp_path):
    tables = scales_tables()
    lstm = {name: frame[frame["model"] == "lstm"] for name, frame in tables.items()}
    figure_module("decay_rates").render(lstm, tmp_path / "decay_rates.png")
    _check_written(tmp_path / "decay_rates.png")


def test_success_vs_length_renders(tmp_path):
    module = figure_module("success_vs_length")
    assert module.TABLES == ("runs",)
    module.render({"runs": lengths_runs()}, tmp_path / "success.png")
    _check_written(tmp_path / "success.png")


def test_success_vs_length_renders_from_empty_runs(tmp_path):
    figure_module("success_vs_length").render({"runs": lengths_runs().iloc[0:0]}, tmp_path / "success.png")
    _check_written(tmp_path / "success.png")
