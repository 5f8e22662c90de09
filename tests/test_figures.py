"""Figures: every module renders PNG + PDF without a warning from small synthetic tables that follow the table
contracts exactly (several activations and scales, two logging steps, a diverged run with NaN/Inf, an lstm run,
zero contributions at k = 1), and renders a "no data" figure from empty tables. The numbers the figures compute
(stages, log-safe filtering, the scalar theory line, the product bound, the outcome cells) are checked against
closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rnngrad import config, theory
from rnngrad.figures import common, figure_module, style
from rnngrad.models import ACTIVATIONS

pytestmark = pytest.mark.filterwarnings("error")

FIGURES = (
    "nonlinearities",
    "scalar_case",
    "contributions",
    "dldh",
    "jacobian_spectra",
    "saturation",
    "training_curves",
    "outcome_map",
    "clipping",
    "learning_curves",
    "success_vs_length",
)
# which experiment's tables each figure draws (as in figures/README.md)
EXPERIMENT = {
    "nonlinearities": None,
    "scalar_case": "scalar",
    "contributions": "scales",
    "dldh": "baselines",
    "jacobian_spectra": "scales",
    "saturation": "scales",
    "training_curves": "scales",
    "outcome_map": "scales",
    "clipping": "clipping",
    "learning_curves": "baselines",
    "success_vs_length": "lengths",
}

SPEC_COLUMNS = [
    "experiment",
    "run_id",
    "task",
    "variant",
    "T",
    "model",
    "activation",
    "init",
    "scale",
    "clip",
    "regularizer",
    "input_init",
    "seed",
    "hidden",
    "optimizer",
    "lr",
    "batch_size",
    "steps",
    "gamma",
    "label",
]
TABLE_COLUMNS = {
    "runs": [
        "status",
        "steps_done",
        "diverged_at",
        "final_loss",
        "final_metric",
        "final_error_rate",
        "solved_at",
        "metric_name",
        "baseline_loss",
        "solved",
        "steps_to_solve",
    ],
    "metrics": [
        "step",
        "split",
        "loss",
        "metric",
        "metric_name",
        "seq_solved_frac",
        "grad_norm",
        "clipped",
        "lr",
        "length",
        "omega",
    ],
    "gradients": ["step", "t", "k", "distance", "contribution_norm", "contribution_norm_U", "dLdh_norm"],
    "jacobians": ["step", "j", "jac_norm", "jac_norm_max", "deriv_mean", "saturated_frac"],
    "products": ["step", "t", "distance", "product_norm", "log_product_norm"],
    "spectrum": ["step", "sigma_max_W", "spectral_radius_W", "lyapunov_qr"],
}
STEPS = 100


def spec(experiment, task, T, activation, scale, seed, *, init="orthogonal", clip=math.nan, hidden=8, model="rnn"):
    """One run's spec columns, as the tables carry them."""
    if model == "lstm":
        activation, init, scale, gamma, label = "none", "none", math.nan, math.nan, "LSTM"
    else:
        gamma = ACTIVATIONS[activation].gamma
        label = config.label({"model": model, "activation": activation, "init": init, "scale": scale, "hidden": hidden})
    clip_part = "noclip" if math.isnan(clip) else f"clip{clip:g}"
    init_part = "lstm" if model == "lstm" else f"{init}-{scale:g}"
    return {
        "experiment": experiment,
        "run_id": f"{task}/T{T}/{activation}/{init_part}/{clip_part}/seed{seed}",
        "task": task,
        "variant": "all" if task == "copy" else "le",
        "T": T,
        "model": model,
        "activation": activation,
        "init": init,
        "scale": scale,
        "clip": clip,
        "regularizer": 0.0,
        "input_init": "fan_in",
        "seed": seed,
        "hidden": hidden,
        "optimizer": "rmsprop",
        "lr": 1e-3,
        "batch_size": 16,
        "steps": STEPS,
        "gamma": gamma,
        "label": label,
    }


def baseline_loss(task, T):
    return 10 * math.log(8) / (T + 20) if task == "copy" else 1 / 6


def run_tables(run: dict, diverged_at: float, rng: np.random.Generator) -> dict[str, list[dict]]:
    """Synthetic rows of every table for one run: decay or growth at rate gamma * g per step, NaN/Inf at the
    last logged step of a diverged run, zero contributions at k = 1, no Jacobian rows for lstm."""
    T, lstm, diverged = run["T"], run["model"] == "lstm", not math.isnan(diverged_at)
    last = int(diverged_at) - 10 if diverged else STEPS
    rows: dict[str, list[dict]] = {name: [] for name in TABLE_COLUMNS}
    base = baseline_loss(run["task"], T)
    solved = not diverged and not lstm and run["gamma"] * run["scale"] >= 0.9 and (T <= 10 or run["seed"] == 0)
    rows["runs"].append(
        {
            "status": "diverged" if diverged else "completed",
            "steps_done": int(diverged_at) if diverged else STEPS,
            "diverged_at": diverged_at,
            "final_loss": math.nan if diverged else base * 0.3,
            "final_metric": math.nan if diverged else 0.9,
            "metric_name": "accuracy" if run["task"] == "copy" else "mse",
            "baseline_loss": base,
            "solved": solved,
            "steps_to_solve": 50.0 if solved else math.nan,
        }
    )
    for step in range(0, STEPS + 1, 5):
        if diverged and step > diverged_at:
            break
        blown = diverged and step == diverged_at
        loss = base * math.exp(-step / (40 + 40 * rng.random()))
        grad = float(np.exp(rng.normal())) * (30.0 if rng.random() < 0.1 else 1.0)
        for split in ("train", "test"):
            if blown and split == "test":
                continue
            rows["metrics"].append(
                {
                    "step": step,
                    "split": split,
                    "loss": math.nan if blown else loss * (1.05 if split == "test" else 1.0),
                    "metric": 0.5,
                    "metric_name": "accuracy" if run["task"] == "copy" else "mse",
                    "seq_solved_frac": 0.1,
                    "grad_norm": (math.inf if blown else grad) if split == "train" else math.nan,
                    "clipped": split == "train" and not math.isnan(run["clip"]) and grad > run["clip"],
                    "lr": 1e-3,
                }
            )
    # per-step rate: below gamma * g (saturation, dead relu units), about 1 for the IRNN and the LSTM
    shrink = {"tanh": 0.9, "sigmoid": 0.9, "relu": 0.75}.get(run["activation"], 1.0)
    rate = 0.97 if lstm else run["gamma"] * run["scale"] * (0.99 if run["init"] == "identity" else shrink)
    for step in (0, last):
        blow = diverged and step == last  # the diverged run's last log: overflow and NaN
        for k in range(1, T + 1):
            d = T - k
            value = (0.0 if k == 1 else 0.3 * rate**d) if not lstm else math.nan
            if blow:
                value = math.inf if d > T // 2 else (math.nan if d % 3 == 0 else value * 10)
            rows["gradients"].append(
                {
                    "step": step,
                    "t": T,
                    "k": k,
                    "distance": d,
                    "contribution_norm": value,
                    "contribution_norm_U": value / 2,
                    "dLdh_norm": math.nan if blow and d % 4 == 0 else 0.5 * rate**d,
                }
            )
        if lstm:
            continue
        for j in range(1, T + 1):
            jac = rate * float(rng.uniform(0.85, 1.0))
            floor = 0.3 if run["activation"] == "relu" else 0.0
            sat = min(1.0, floor + 0.12 * math.log2(run["scale"] * 2) * run["gamma"] + (0.1 if step else 0.0))
            rows["jacobians"].append(
                {
                    "step": step,
                    "j": j,
                    "jac_norm": math.nan if blow and j > T // 2 else jac,
                    "jac_norm_max": jac * 1.1,
                    "deriv_mean": 0.5,
                    "saturated_frac": math.nan if blow else sat,
                }
            )
        for d in range(1, T + 1):
            log_norm = d * math.log(rate * 0.95)
            norm = math.inf if blow and d > T // 2 else math.exp(log_norm)
            rows["products"].append(
                {"step": step, "t": T, "distance": d, "product_norm": norm, "log_product_norm": log_norm}
            )
        rows["spectrum"].append(
            {
                "step": step,
                "sigma_max_W": run["scale"] * (1.0 if step == 0 else 1.1),
                "spectral_radius_W": run["scale"],
                "lyapunov_qr": math.log(rate),
            }
        )
    return rows


def scalar_rows(run: dict, rng: np.random.Generator) -> dict[str, list[dict]]:
    """H = 1: J_j = w f'(a_j), so every product is exactly the product of the logged J_j in its window."""
    T, w = run["T"], run["scale"]
    rows = run_tables(run, math.nan, rng)
    rows["jacobians"], rows["products"] = [], []
    for step in (0, STEPS):
        jac = w * (rng.uniform(0.9, 1.0, T) if run["activation"] == "tanh" else np.ones(T))
        for j in range(1, T + 1):
            rows["jacobians"].append(
                {
                    "step": step,
                    "j": j,
                    "jac_norm": jac[j - 1],
                    "jac_norm_max": jac[j - 1],
                    "deriv_mean": jac[j - 1] / w,
                    "saturated_frac": 0.0,
                }
            )
        for d in range(1, T + 1):
            window = jac[T - d : T]
            rows["products"].append(
                {
                    "step": step,
                    "t": T,
                    "distance": d,
                    "product_norm": float(np.prod(window)),
                    "log_product_norm": float(np.sum(np.log(window))),
                }
            )
    return rows


def assemble(runs: list[tuple[dict, dict[str, list[dict]]]]) -> dict[str, pd.DataFrame]:
    """Join the spec columns onto every row and build each table with exactly the contract's columns."""
    tables = {}
    for name, columns in TABLE_COLUMNS.items():
        records = [{**run, **row} for run, rows in runs for row in rows[name]]
        tables[name] = pd.DataFrame(records, columns=SPEC_COLUMNS + columns)
    return tables


def make_experiments() -> dict[str, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(0)
    scales = []
    for task in ("copy", "adding"):
        for T in (10, 20):
            for activation in ("sigmoid", "tanh", "relu"):
                for g in (0.5, 1.0, 2.0, 4.0):
                    for seed in (0, 1):
                        run = spec("scales", task, T, activation, g, seed)
                        blown = (task, T, activation, g, seed) == ("adding", 20, "relu", 4.0, 1)
                        scales.append((run, run_tables(run, 60.0 if blown else math.nan, rng)))
    lstm = spec("scales", "copy", 20, None, None, 0, model="lstm")
    scales.append((lstm, run_tables(lstm, math.nan, rng)))

    scalar = []
    for activation in ("tanh", "relu"):
        for w in (0.9, 1.0, 1.1):
            for seed in (0, 1):
                run = spec("scalar", "adding", 30, activation, w, seed, hidden=1, init="identity")
                scalar.append((run, scalar_rows(run, rng)))

    baselines = []
    for activation, init, model in (
        ("tanh", "orthogonal", "rnn"),
        ("relu", "orthogonal", "rnn"),
        ("relu", "identity", "rnn"),
        (None, None, "lstm"),
    ):
        for T in (10, 20):
            for seed in (0, 1):
                run = spec("baselines", "adding", T, activation, 1.0, seed, init=init or "none", model=model)
                blown = (activation, init, T, seed) == ("relu", "orthogonal", 20, 1)
                baselines.append((run, run_tables(run, 70.0 if blown else math.nan, rng)))

    lengths = []
    for activation, init, model, clip in (
        ("tanh", "orthogonal", "rnn", math.nan),
        ("tanh", "orthogonal", "rnn", 1.0),
        ("relu", "orthogonal", "rnn", math.nan),
        ("relu", "identity", "rnn", math.nan),
        (None, None, "lstm", math.nan),
    ):
        for T in (5, 10, 20):
            for seed in (0, 1, 2):
                run = spec("lengths", "adding", T, activation, 1.0, seed, init=init or "none", model=model, clip=clip)
                blown = (activation, init, T, seed) == ("relu", "orthogonal", 20, 0)
                lengths.append((run, run_tables(run, 40.0 if blown else math.nan, rng)))

    clipping = []
    for activation in ("tanh", "relu"):
        for clip in (math.nan, 1.0):
            for seed in (0, 1):
                run = spec("clipping", "copy", 20, activation, 2.0, seed, clip=clip)
                blown = activation == "relu" and math.isnan(clip) and seed == 0
                clipping.append((run, run_tables(run, 70.0 if blown else math.nan, rng)))
    return {
        "scales": assemble(scales),
        "scalar": assemble(scalar),
        "baselines": assemble(baselines),
        "clipping": assemble(clipping),
        "lengths": assemble(lengths),
    }


@pytest.fixture(scope="module")
def experiments():
    return make_experiments()


def tables_for(name: str, experiments) -> dict[str, pd.DataFrame]:
    module = figure_module(name)
    experiment = EXPERIMENT[name]
    return {table: experiments[experiment][table] for table in module.TABLES}


def assert_rendered(out_path, min_bytes: int) -> None:
    png, pdf = out_path.with_suffix(".png"), out_path.with_suffix(".pdf")
    assert png.stat().st_size > min_bytes and pdf.stat().st_size > min_bytes
    with Image.open(png) as image:
        width, height = image.size
    assert width <= (common.WIDTH + 0.3) * style.DPI, "wider than a page column"
    assert height <= 10.5 * style.DPI


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_without_warnings(name, experiments, tmp_path):
    out = tmp_path / f"{name}.png"
    figure_module(name).render(tables_for(name, experiments), out)
    assert_rendered(out, 10_000)


@pytest.mark.parametrize("name", FIGURES)
def test_figure_rebuilt_from_the_same_tables_is_the_same_bytes(name, experiments, tmp_path, monkeypatch):
    """PNG and PDF carry no creation date: a rebuild is byte-identical, so the manifest's sha256 certifies it.
    (The two renders are dated years apart through SOURCE_DATE_EPOCH, which matplotlib would write.)"""
    for folder, epoch in (("a", "0"), ("b", "1700000000")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        (tmp_path / folder).mkdir()
        figure_module(name).render(tables_for(name, experiments), tmp_path / folder / f"{name}.png")
    for ext in ("png", "pdf"):
        assert (tmp_path / "a" / f"{name}.{ext}").read_bytes() == (tmp_path / "b" / f"{name}.{ext}").read_bytes()


@pytest.mark.parametrize("name", [n for n in FIGURES if EXPERIMENT[n]])
def test_figure_renders_empty_tables(name, experiments, tmp_path):
    empty = {table: frame.iloc[0:0] for table, frame in tables_for(name, experiments).items()}
    out = tmp_path / f"{name}.png"
    figure_module(name).render(empty, out)
    assert_rendered(out, 1_000)


@pytest.mark.parametrize("name", [n for n in FIGURES if EXPERIMENT[n]])
def test_figure_renders_when_every_measurement_is_nan_or_inf(name, experiments, tmp_path):
    """Nothing left for a log axis to draw: the panels must still come out, with the marks and the counts."""
    spec_and_keys = set(SPEC_COLUMNS) | {"step", "t", "k", "j", "distance", "split", "metric_name", "clipped"}
    poisoned = {}
    for table, frame in tables_for(name, experiments).items():
        frame = frame[(frame["task"] == frame["task"].min()) & (frame["T"] == frame["T"].max())]  # fewer panels
        if table == "runs":
            poisoned[table] = frame
            continue
        values = np.where(np.arange(len(frame)) % 2 == 0, np.nan, np.inf)
        poisoned[table] = frame.assign(**{c: values for c in frame.columns if c not in spec_and_keys})
    out = tmp_path / f"{name}.png"
    figure_module(name).render(poisoned, out)
    assert_rendered(out, 5_000)


def test_every_figure_reads_only_contract_tables():
    for name in FIGURES:
        assert set(figure_module(name).TABLES) <= set(TABLE_COLUMNS), name


def test_with_stage_keeps_step_zero_and_each_runs_last_logged_step():
    frame = pd.DataFrame({"run_id": ["a", "a", "a", "b", "c", "c"], "step": [0, 50, 100, 0, 0, 40]})
    staged = common.with_stage(frame)
    got = set(zip(staged["run_id"], staged["step"], staged["stage"], strict=True))
    assert got == {
        ("a", 0, common.STAGE_INIT),
        ("a", 100, common.STAGE_TRAINED),
        ("b", 0, common.STAGE_INIT),
        ("c", 0, common.STAGE_INIT),
        ("c", 40, common.STAGE_TRAINED),
    }


def test_log_safe_splits_and_counts_what_a_log_axis_cannot_draw():
    frame = pd.DataFrame({"v": [1.0, 0.0, -1.0, math.nan, math.inf, -math.inf, 2.0]})
    kept, dropped = common.log_safe(frame, "v")
    assert kept["v"].tolist() == [1.0, 2.0]
    assert common.count_dropped(dropped, "v") == {"zero": 1, "negative": 1, "NaN": 1, "+Inf": 1, "-Inf": 1}
    top = common.at_top(dropped, "v")["v"].to_numpy()
    assert np.isnan(top[0]) and np.isposinf(top[1]) and len(top) == 2
    assert common.describe_dropped("x", {}) == ""


def test_finite_exp_is_nan_where_exp_is_not_plottable():
    out = common.finite_exp([0.0, math.log(3.0), 800.0, -800.0, -math.inf, math.nan])
    assert out[0] == 1.0 and out[1] == pytest.approx(3.0, rel=1e-15)
    assert np.isnan(out[2:]).all()


def test_number_labels():
    assert common.format_number(0.25, fraction=True) == "1/4"
    assert common.format_number(0.5) == "0.5"
    assert common.format_number(4.0, fraction=True) == "4"
    assert common.format_number(1.5, fraction=True) == "1.5"


def test_nonlinearity_curves_reach_gamma():
    from rnngrad.figures.nonlinearities import curves

    data = curves()
    for name, act in ACTIVATIONS.items():
        deriv = data[(data["activation"] == name) & (data["quantity"] == "f'(a)")]["value"]
        assert deriv.max() == pytest.approx(act.gamma, rel=1e-12)


def test_scalar_theory_line_is_the_closed_form_from_the_spec(experiments):
    """H = 1: the line is |g f'(a*)|^n from theory alone (identity init, at initialisation, the mean drive drawn
    from the seed), whatever was measured: relu g^n when its drive is positive; no line after training."""
    from rnngrad.figures.scalar_case import theory_lines

    products = common.with_stage(experiments["scalar"]["products"])
    lines = theory_lines(products).merge(products, on=["run_id", "stage", "distance"])
    assert not lines.empty and (lines["stage"] == common.STAGE_INIT).all() and (lines["init"] == "identity").all()
    for (activation, g, seed), line in lines.groupby(["activation", "scale", "seed"]):
        drive = theory.one_unit_drive("adding", 30, "le", activation, g, seed)
        np.testing.assert_allclose(line["rate"], theory.scalar_rate(activation, g, drive), rtol=0)
        if activation == "relu" and drive > 0:
            np.testing.assert_allclose(line["theory"], g ** line["distance"], rtol=1e-12)
    shifted = products.assign(log_product_norm=products["log_product_norm"] + 1.0)
    pd.testing.assert_frame_equal(theory_lines(shifted), theory_lines(products))  # no measured number enters


def test_product_bound_is_exponentiated_only_where_finite():
    from rnngrad.figures.jacobian_spectra import bound_lines

    products = pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b", "c"],
            "stage": common.STAGE_INIT,
            "distance": [1, 10, 600, 1, 600, 5],
            "gamma": [1.0, 1.0, 1.0, 0.25, 0.25, 1.0],
        }
    )
    spectrum = pd.DataFrame(
        {"run_id": ["a", "b", "c"], "stage": common.STAGE_INIT, "sigma_max_W": [4.0, 4.0, math.nan]}
    )
    bound = bound_lines(products, spectrum)["bound"].to_numpy()
    np.testing.assert_allclose(bound[:2], [4.0, 4.0**10], rtol=1e-12)
    assert np.isnan(bound[2])  # 4^600 overflows: not drawn rather than inf
    np.testing.assert_allclose(bound[3:5], [1.0, 1.0])  # sigmoid at sigma_max = 1/gamma: on the threshold
    assert np.isnan(bound[5])


def _outcome(run: dict, status: str, solved, final_loss: float, steps: float = math.nan) -> dict:
    return {
        **run,
        "status": status,
        "solved": solved,
        "final_loss": final_loss,
        "baseline_loss": 0.2,
        "diverged_at": 40.0 if status == "diverged" else math.nan,
        "steps_to_solve": steps,
    }


def outcome_runs() -> pd.DataFrame:
    """Three tanh seeds (solved at step 300, diverged, failed), three more (solved at 100 and 500, failed), an
    lstm that solved, and a relu cell whose every seed diverged."""
    tanh = [spec("scales", "copy", 10, "tanh", 2.0, seed) for seed in range(3)]
    longer = [spec("scales", "copy", 20, "tanh", 2.0, seed) for seed in range(3)]
    relu = [spec("scales", "copy", 10, "relu", 4.0, seed) for seed in range(2)]
    return pd.DataFrame(
        [
            _outcome(tanh[0], "completed", True, 0.002, 300.0),
            _outcome(tanh[1], "diverged", None, math.nan),
            _outcome(tanh[2], "completed", False, 0.1, 200.0),  # met the criterion at 200, lost it by the end
            _outcome(longer[0], "completed", True, 0.001, 100.0),
            _outcome(longer[1], "completed", True, 0.004, 500.0),
            _outcome(longer[2], "completed", False, 0.3),
            _outcome(spec("scales", "copy", 10, None, None, 0, model="lstm"), "completed", True, 0.02, 50.0),
            *(_outcome(run, "diverged", None, math.nan) for run in relu),
        ]
    )


def test_outcome_cells_count_seeds_and_take_medians_over_the_right_runs():
    from rnngrad.figures.outcome_map import cell_text, outcome_cells

    cells = outcome_cells(outcome_runs()).set_index(["row", "T"])
    tanh = cells.loc[("tanh, g = 2", 10)]
    assert (tanh["seeds"], tanh["n_solved"], tanh["n_diverged"]) == (3, 1, 1)
    assert tanh["solved"] == pytest.approx(1 / 3) and tanh["diverged"] == pytest.approx(1 / 3)
    assert tanh["loss_ratio"] == pytest.approx(np.median([0.002, 0.1]) / 0.2)  # completed runs only
    assert tanh["steps_to_solve"] == 300.0  # solved runs only: the failed run's 200 does not count
    longer = cells.loc[("tanh, g = 2", 20)]
    assert longer["loss_ratio"] == pytest.approx(0.004 / 0.2) and longer["steps_to_solve"] == 300.0
    assert cells.loc[(common.LSTM, 10), "solved"] == 1.0
    relu = cells.loc[("relu, g = 4", 10)]
    assert relu["n_diverged"] == relu["seeds"] == 2 and math.isnan(relu["loss_ratio"])
    assert cell_text(3, 1, 1, 300.0) == "\u27131/3 @300\nD1/3"
    assert cell_text(3, 2, 0, 1500.0) == "\u27132/3 @1.5k"
    assert cell_text(2, 0, 2, math.nan) == "D2/2"
    assert cell_text(2, 0, 0, math.nan) == ""


def test_outcome_map_renders_all_diverged_cells_and_tables_without_steps_to_solve(tmp_path):
    runs = outcome_runs()
    figure_module("outcome_map").render({"runs": runs}, tmp_path / "a.png")
    assert_rendered(tmp_path / "a.png", 10_000)
    old = runs.drop(columns="steps_to_solve")
    figure_module("outcome_map").render({"runs": old}, tmp_path / "b.png")
    assert_rendered(tmp_path / "b.png", 10_000)
    diverged = runs[runs["status"] == "diverged"]
    figure_module("outcome_map").render({"runs": diverged}, tmp_path / "c.png")
    assert_rendered(tmp_path / "c.png", 5_000)


def test_clipping_counts_diverged_failed_and_solved_runs_per_arm():
    from rnngrad.figures.clipping import arm_counts, count_text

    runs = []
    for clip in (math.nan, 1.0):
        for seed in range(6):
            run = spec("clipping", "adding", 50, "tanh", 4.0, seed, clip=clip)
            if math.isnan(clip):
                outcome = ("diverged", None) if seed < 4 else ("completed", False)
            else:
                outcome = ("completed", seed < 3)
            runs.append(_outcome(run, outcome[0], outcome[1], 0.1))
    counts = arm_counts(pd.DataFrame(runs)).set_index("clipping")
    assert count_text(counts.loc["no clipping"]) == "4/6 diverged, 2/6 failed, 0/6 solved"
    assert count_text(counts.loc["clipped at 1"]) == "0/6 diverged, 3/6 failed, 3/6 solved"


def test_learning_curve_medians_stop_where_a_seed_has_no_finite_loss():
    from rnngrad.figures.learning_curves import seed_medians

    data = pd.DataFrame(
        {
            "setting": "adding, T = 10",
            "label": "RNN-tanh",
            "run_id": ["a", "a", "a", "b", "b", "c", "c", "c"],
            "step": [0, 10, 20, 0, 10, 0, 10, 20],
            "loss": [1.0, 0.5, 0.2, 3.0, math.nan, 2.0, 0.7, 0.4],
        }
    )
    medians = seed_medians(data).set_index("step")["loss"]
    assert medians[0] == 2.0
    assert math.isnan(medians[10]) and math.isnan(medians[20])  # b is NaN at 10 and has no row at 20


def test_success_vs_length_arms_and_steps_to_solve():
    from rnngrad.figures.success_vs_length import shares

    rows = []
    for clip in (math.nan, 1.0):
        for seed, (status, solved, steps) in enumerate(
            [("completed", True, 100.0), ("completed", True, 300.0), ("diverged", None, 50.0)]
        ):
            rows.append(
                _outcome(spec("lengths", "adding", 20, "tanh", 1.0, seed, clip=clip), status, solved, 0.1, steps)
            )
    rows.append(_outcome(spec("lengths", "adding", 20, "relu", 1.0, 0, init="identity"), "completed", False, 0.2))
    table = shares(pd.DataFrame(rows)).set_index("arm")
    assert set(table.index) == {"RNN-tanh", "RNN-tanh + clip 1", "IRNN"}
    tanh = table.loc["RNN-tanh"]
    assert tanh["seeds"] == 3 and tanh["solved_share"] == pytest.approx(2 / 3)
    assert tanh["diverged_share"] == pytest.approx(1 / 3)
    assert tanh["steps_to_solve"] == 200.0  # median over the two solved seeds; the diverged run's 50 is not one
    assert math.isnan(table.loc["IRNN", "steps_to_solve"])


def test_outcome_colour_bar_labels_the_baseline_and_the_top_of_its_scale():
    from matplotlib.colors import LogNorm

    from rnngrad.figures.outcome_map import colour_ticks

    assert colour_ticks(LogNorm(0.1, 7.06)) == pytest.approx([0.1, 1.0, 5.0])
    assert colour_ticks(LogNorm(0.003, 1.0)) == pytest.approx([0.01, 0.1, 1.0])
    assert colour_ticks(LogNorm(0.01, 10.0)) == pytest.approx([0.01, 0.1, 1.0, 10.0])


def test_clipping_with_many_settings_stays_within_a_page(tmp_path):
    """Twelve settings (the paper's clipping grid) go two abreast and keep the figure within a page."""
    rng = np.random.default_rng(3)
    runs = []
    for T in (10, 20):
        for activation in ("tanh", "relu"):
            for g in (1.5, 2.0, 4.0):
                for clip in (math.nan, 1.0):
                    run = spec("clipping", "adding", T, activation, g, 0, clip=clip)
                    runs.append((run, run_tables(run, 30.0 if math.isnan(clip) else math.nan, rng)))
    tables = assemble(runs)
    figure_module("clipping").render({name: tables[name] for name in ("runs", "metrics")}, tmp_path / "c.png")
    assert_rendered(tmp_path / "c.png", 10_000)


def test_learning_curves_count_runs_without_test_rows(experiments, tmp_path, monkeypatch):
    notes = []
    footnote = common.footnote
    monkeypatch.setattr(common, "footnote", lambda fig, lines: (notes.extend(lines), footnote(fig, lines)))
    tables = tables_for("learning_curves", experiments)
    dropped = tables["runs"]["run_id"].iloc[0]
    metrics = tables["metrics"][tables["metrics"]["run_id"] != dropped]
    figure_module("learning_curves").render({"runs": tables["runs"], "metrics": metrics}, tmp_path / "l.png")
    assert_rendered(tmp_path / "l.png", 10_000)
    assert "1 run(s) of the runs table have no test rows and are not drawn." in notes


def test_outcome_map_predicted_lengths_come_from_theory_and_sit_on_the_log_t_axis(experiments):
    import matplotlib.pyplot as plt

    from rnngrad.figures import outcome_map

    runs = experiments["scales"]["runs"]
    predicted = outcome_map.predicted_lengths(runs)
    assert (
        "LSTM" not in set(predicted["row"])
        and len(predicted) == runs[runs["model"] == "rnn"].groupby(["task", "activation", "scale"]).ngroups
    )
    one = runs[(runs["model"] == "rnn") & (runs["task"] == "copy") & (runs["activation"] == "tanh")].iloc[0]
    s2 = theory.input_variance("copy", float(runs.loc[runs["task"] == "copy", "T"].median()), one["variant"])
    row = outcome_map.row_labels(one.to_frame().T).iloc[0]
    expected = outcome_map.TRAINABLE_MULTIPLE * theory.memory_time("tanh", one["init"], one["scale"], s2)
    assert predicted.loc[predicted["row"] == row, "length"].iloc[0] == pytest.approx(expected, rel=1e-12)

    fig, ax = plt.subplots()
    lengths = pd.DataFrame({"panel": "p", "row": ["a", "b", "c"], "length": [10**1.5, 1e6, math.nan]})
    assert outcome_map._draw_predicted_lengths(ax, lengths, ["a", "b", "c"], [10, 100]) == 2
    xs = [line.get_xdata()[0] for line in ax.lines]
    assert xs == pytest.approx([1.0, 1.9])  # midway between the columns' centres on log T; beyond: at the right edge
    plt.close(fig)
