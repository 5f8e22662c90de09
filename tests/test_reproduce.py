"""Scoring published claims: interval code against closed forms and published values, the bootstrap's determinism
and coverage, every verdict on constructed tables, and a report whose every number comes from the claims or tables."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnngrad import reproduce
from rnngrad.reproduce import CONTRADICTED, NOT_AT_BUDGET, REPRODUCED, Z95

# ----- intervals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 20, 1000])
def test_wilson_at_zero_and_all_successes_is_the_closed_form(n):
    z2 = Z95**2
    assert reproduce.wilson(0, n) == (0.0, pytest.approx(z2 / (n + z2), rel=1e-12))
    assert reproduce.wilson(n, n) == (pytest.approx(n / (n + z2), rel=1e-12), 1.0)


def test_wilson_three_of_five_is_the_textbook_value():
    low, high = reproduce.wilson(3, 5)  # (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    p, n, z2 = 0.6, 5, Z95**2
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    assert (low, high) == (
        pytest.approx((p + z2 / (2 * n) - half) / (1 + z2 / n), rel=1e-12),
        pytest.approx((p + z2 / (2 * n) + half) / (1 + z2 / n), rel=1e-12),
    )
    assert (round(low, 4), round(high, 4)) == (0.2307, 0.8824)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_holds_the_share_and_mirrors(case):
    k, n = case
    low, high = reproduce.wilson(k, n)
    assert 0 <= low <= k / n <= high <= 1
    mirror_low, mirror_high = reproduce.wilson(n - k, n)
    assert (low, high) == (pytest.approx(1 - mirror_high, abs=1e-12), pytest.approx(1 - mirror_low, abs=1e-12))


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes"):
        reproduce.wilson(6, 5)


def test_newcombe_matches_the_published_example():
    # Newcombe 1998 (Stat. Med. 17:873), Table II, example (a): 56/70 - 48/80 = 0.2, method 10: 0.0524 to 0.3339
    low, high = reproduce.newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = reproduce.newcombe(0, 5, 0, 5)  # no difference: symmetric about 0, within the Wilson bound
    assert low == pytest.approx(-high) and high == pytest.approx(reproduce.wilson(0, 5)[1])


def test_bootstrap_is_deterministic_in_its_seed():
    values = np.random.default_rng(3).normal(size=9)
    first, again = reproduce.bootstrap_median(values, seed=5), reproduce.bootstrap_median(values, seed=5)
    assert first == again
    # with few resamples the percentiles depend on which resamples were drawn: another seed, other numbers
    assert reproduce.bootstrap_median(values, seed=6, resamples=40) != reproduce.bootstrap_median(values, 5, 40)
    assert first[0] == np.median(values) and first[1] <= first[0] <= first[2]


def test_bootstrap_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    true_median, trials = math.log(2), 300  # exponential(1): a skewed distribution
    covered = 0
    for trial in range(trials):
        _, low, high = reproduce.bootstrap_median(rng.exponential(size=41), seed=trial, resamples=1000)
        covered += low <= true_median <= high
    assert 0.88 <= covered / trials <= 0.99  # binomial(300, 0.95) stays in here with probability > 0.999


def test_bootstrap_difference_of_medians_is_centred_and_ordered():
    a, b = np.arange(10.0), np.arange(10.0) + 100
    value, low, high = reproduce.bootstrap_median_difference(b, a)
    assert value == 100 and low <= 100 <= high and low > 0


# ----- verdicts on constructed tables -----------------------------------------------------------------------------

PAPER = {"updates": 1000, "batch": 20}


def runs_table(arms: dict[tuple, list[bool]], steps: int = 100, loss: dict | None = None) -> pd.DataFrame:
    """A runs table: for each (clip, T) arm, one run a seed with its solved flag."""
    rows = []
    for (clip, T), outcome in arms.items():  # noqa: N806
        for seed, solved in enumerate(outcome):
            rows.append(
                {
                    "run_id": f"T{T}/clip{clip}/seed{seed}",
                    "task": "temporal_order",
                    "T": T,
                    "clip": clip,
                    "seed": seed,
                    "solved": solved,
                    "steps": steps,
                    "batch_size": 20,
                    "steps_done": steps if not solved else steps // 2,
                    "final_loss": (loss or {}).get(clip, 1.0) * (1 + seed / 100),
                    "baseline_loss": 1.0,
                }
            )
    return pd.DataFrame(rows)


def claim(rule: dict, measure: str = "solved", select: dict | None = None, budget: dict | None = None) -> dict:
    return {
        "id": "c",
        "paper": "p",
        "source": "Fig. 1",
        "statement": "s",
        "published": "v",
        "measure": measure,
        "select": select if select is not None else {"clip": 1.0},
        "rule": rule,
        "budget": budget or PAPER,
    }


def decide(rule, runs, **kwargs) -> str:
    c = claim(rule, **kwargs)
    (row,) = reproduce.score([c], {"c": {"runs": runs}})
    return row["verdict"]


FULL, REDUCED = 1000, 100  # steps a run: the paper's budget, a tenth of it


@pytest.mark.parametrize(
    ("outcome", "steps", "expected"),
    [
        ([True] * 5, REDUCED, REPRODUCED),  # 5/5: the interval holds 1
        ([True, True, False, False, False], REDUCED, NOT_AT_BUDGET),  # below 1, and solving can only rise
        ([True, True, False, False, False], FULL, CONTRADICTED),  # below 1 at the paper's budget
    ],
)
def test_match_share_verdicts(outcome, steps, expected):
    assert decide({"kind": "match", "value": 1.0}, runs_table({(1.0, 50): outcome}, steps)) == expected


def test_a_success_share_above_a_published_failure_is_contradicted_at_any_budget():
    runs = runs_table({(1.0, 50): [True] * 5}, REDUCED)
    assert decide({"kind": "match", "value": 0.0}, runs) == CONTRADICTED  # more updates cannot unsolve a run
    assert decide({"kind": "match", "value": 0.0}, runs_table({(1.0, 50): [False] * 5})) == REPRODUCED
    assert decide({"kind": "at_most", "value": 0.5}, runs) == CONTRADICTED
    assert decide({"kind": "at_most", "value": 0.5}, runs_table({(1.0, 50): [False] * 5})) == REPRODUCED


def test_at_least_verdicts_on_medians():
    rule = {"kind": "at_least", "value": 0.9}
    at_baseline = runs_table({(1.0, 50): [False] * 5}, REDUCED, loss={1.0: 1.0})
    below = runs_table({(1.0, 50): [False] * 5}, REDUCED, loss={1.0: 0.1})
    assert decide(rule, at_baseline, measure="loss_ratio") == REPRODUCED
    assert decide(rule, below, measure="loss_ratio") == CONTRADICTED  # a loss ratio falls with training
    straddling = runs_table({(1.0, 50): [False] * 5}, REDUCED, loss={1.0: 0.88})  # ratios 0.88 .. 0.915
    assert decide(rule, straddling, measure="loss_ratio") == NOT_AT_BUDGET


@pytest.mark.parametrize(
    ("clipped", "plain", "steps", "expected"),
    [
        ([True] * 5, [False] * 5, REDUCED, REPRODUCED),
        ([False] * 5, [False] * 5, FULL, NOT_AT_BUDGET),  # straddles 0 even at the paper's budget
        ([False] * 5, [True] * 5, REDUCED, NOT_AT_BUDGET),  # reversed, but more updates could still change it
        ([False] * 5, [True] * 5, FULL, CONTRADICTED),
    ],
)
def test_greater_verdicts(clipped, plain, steps, expected):
    runs = runs_table({(1.0, 50): clipped, (None, 50): plain}, steps)
    assert decide({"kind": "greater", "than": {"clip": None}}, runs) == expected


def test_an_unknown_paper_budget_never_counts_as_full():
    runs = runs_table({(1.0, 50): [False] * 5}, 10**9)
    unknown = {"updates": None, "note": "not stated in the paper"}
    assert decide({"kind": "match", "value": 1.0}, runs, budget=unknown) == NOT_AT_BUDGET
    (row,) = reproduce.score([claim({"kind": "match", "value": 1.0}, budget=unknown)], {"c": {"runs": runs}})
    assert "not stated in the paper" in row["budget"]


def test_selection_errors_name_the_claim_and_the_column():
    runs = runs_table({(1.0, 50): [True]})
    with pytest.raises(reproduce.ClaimError, match="claim c: select on 'regularizer'"):
        reproduce.score([claim({"kind": "match", "value": 1.0}, select={"regularizer": 4})], {"c": {"runs": runs}})
    with pytest.raises(reproduce.ClaimError, match="claim c: no run matches"):
        reproduce.score([claim({"kind": "match", "value": 1.0}, select={"T": 7})], {"c": {"runs": runs}})


def test_pooled_lengths_are_named_in_the_measured_value():
    runs = runs_table({(1.0, 20): [True] * 3, (1.0, 50): [False] * 2})
    (row,) = reproduce.score([claim({"kind": "match", "value": 1.0})], {"c": {"runs": runs}})
    assert "3/5 = 0.60 [0.23, 0.88]" in row["measured"] and "T = 20, 50" in row["measured"]


def test_dldh_rate_recovers_an_exponential_decay():
    runs = runs_table({(1.0, 50): [False, False]})
    rows = []
    for run in runs["run_id"]:
        for step in (0, 100):
            for k in range(1, 51):  # ||dL/dh_k|| = 0.5^(t-k) at step 0, flat at step 100
                rows.append({"run_id": run, "step": step, "t": 50, "k": k, "distance": 50 - k,
                             "dLdh_norm": 0.5 ** (50 - k) if step == 0 else 1.0})  # fmt: skip
    tables = {"runs": runs, "gradients": pd.DataFrame(rows)}
    at_init = claim({"kind": "at_most", "value": 0.0}, measure="dldh_rate") | {"params": {"step": 0}}
    measured = reproduce.measure(at_init, tables)
    assert measured.value == pytest.approx(math.log(0.5)) and measured.high == pytest.approx(math.log(0.5))
    later = at_init | {"params": {"step": 100}}
    assert reproduce.measure(later, tables).value == pytest.approx(0.0, abs=1e-12)


def test_errors_at_longest_reads_the_longest_length_and_counts_a_run_without_one_as_wrong():
    runs = runs_table({(1.0, 50): [True, True, False]})
    ids = list(runs["run_id"])
    rows = [  # the lengths table: each run's final test at its T (50) and its extra lengths; the third diverged
        {"run_id": run, "length": length, "error_rate": error}
        for run in ids[:2]
        for length, error in [(50, 0.0), (500, 0.03), (200, 0.0)]
    ]
    tables = {"runs": runs, "lengths": pd.DataFrame(rows)}
    values = reproduce.MEASURES["errors_at_longest"].values(tables, runs, {})
    assert values.to_dict() == {ids[0]: 0.03, ids[1]: 0.03, ids[2]: 1.0}


# ----- the report ---------------------------------------------------------------------------------------------

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    return {match.replace(",", "") for match in NUMBER.findall(text)}


def test_every_number_in_the_report_comes_from_the_claims_or_the_tables(tmp_path):
    runs = runs_table({(1.0, 37): [True, True, True, False], (None, 37): [False] * 4}, steps=123)
    runs.to_parquet(tmp_path / "runs.parquet")
    published = tmp_path / "published.yaml"
    published.write_text(
        "claims:\n"
        "- {id: clipping_helps, paper: Someone 2099, source: 'Fig. 8, p. 9', statement: clipping solves more,"
        " published: 'clipped bars above plain ones', measure: solved, select: {clip: 1.0},"
        " rule: {kind: greater, than: {clip: null}}, budget: {updates: 7654, batch: 21}}\n"
    )
    text = reproduce.write_report(published, {"clipping_helps": tmp_path}, "demo", [tmp_path / "a.md"])
    assert (tmp_path / "a.md").read_text() == text
    header, table = text.split("| claim |")
    assert numbers(header) == {"95", str(reproduce.BOOTSTRAP_RESAMPLES), str(reproduce.BOOTSTRAP_SEED)}
    (row,) = [line for line in table.splitlines() if line.startswith("| clipping_helps")]
    claims_text = published.read_text()
    low, high = reproduce.newcombe(3, 4, 0, 4)
    from_tables = {
        "3", "4", "0", "0.75", "0.00", "37", "123", "20", "1230", "61", "2460",
        *(f"{x:.2f}" for x in (*reproduce.wilson(3, 4), *reproduce.wilson(0, 4), low, high)),
        f"{0.75:+.2f}".lstrip("+"), f"{low:+.2f}".lstrip("+"), f"{high:+.2f}".lstrip("+"),
    }  # fmt: skip
    from_claims = numbers(claims_text) | {"160734"}  # 7,654 x 21 sequences
    assert numbers(row) <= from_tables | from_claims | {"95"}  # 95: the rule names the 95% interval
    assert "Someone 2099, Fig. 8, p. 9" in row and "clipped bars above plain ones" in row


def test_unknown_claims_and_bad_rules_are_named(tmp_path):
    published = tmp_path / "published.yaml"
    good = {"paper": "p", "source": "s", "statement": "s", "published": "v", "measure": "solved", "select": {},
            "budget": {"updates": 1, "batch": 1}}  # fmt: skip
    import yaml

    published.write_text(yaml.safe_dump({"claims": [{"id": "a", **good, "rule": {"kind": "most"}}]}))
    with pytest.raises(reproduce.ClaimError, match="claim a: rule kind 'most'"):
        reproduce.load_published(published)
    published.write_text(yaml.safe_dump({"claims": [{"id": "a", **good, "rule": {"kind": "greater", "value": 1}}]}))
    with pytest.raises(reproduce.ClaimError, match="claim a: rule greater needs than"):
        reproduce.load_published(published)
    published.write_text(yaml.safe_dump({"claims": [{"id": "a", **good, "rule": {"kind": "match", "value": 1}}]}))
    with pytest.raises(reproduce.ClaimError, match=r"claims \['b'\] are not in"):
        reproduce.write_report(published, {"b": tmp_path}, "demo", [])


# ----- the config's reproduce block ---------------------------------------------------------------------------


def smoke_with_claims(tmp_path, claims: dict, paper: dict | None = None) -> dict:
    import yaml
    from conftest import ROOT

    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    published = tmp_path / "published.yaml"
    good = {"paper": "p", "source": "s", "statement": "s", "published": "v", "measure": "solved", "select": {},
            "rule": {"kind": "match", "value": 1.0}, "budget": {"updates": 10, "batch": 8}}  # fmt: skip
    published.write_text(yaml.safe_dump({"claims": [{"id": "lengths_solve", **good}]}))
    config["reproduce"] = {"published": str(published), "claims": claims}
    if paper is not None:
        config["reproduce"]["paper"] = paper
    return config


def test_reproduce_block_names_unknown_claims_and_experiments(tmp_path):
    from rnngrad import config as configuration

    configuration.validate(smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}))
    with pytest.raises(configuration.ConfigError, match="reproduce.claims.nope: not a claim of"):
        configuration.validate(smoke_with_claims(tmp_path, {"nope": "lengths"}))
    with pytest.raises(configuration.ConfigError, match="reproduce.claims.lengths_solve: experiment 'gone'"):
        configuration.validate(smoke_with_claims(tmp_path, {"lengths_solve": "gone"}))


def test_paper_budget_merges_mappings_replaces_lists_and_is_validated(tmp_path):
    from rnngrad import config as configuration

    grid = [{"task": ["adding"], "T": [4, 8, 16], "activation": ["relu"], "init": ["orthogonal"], "scale": [1.0],
             "seed": [0, 1, 2]}]  # fmt: skip
    paper = {"train": {"steps": 5000}, "experiments": {"lengths": {"grid": grid}}}
    config = smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}, paper)
    configuration.validate(config)
    full = configuration.paper_budget(config)
    assert full["name"] == "smoke-paper" and "paper" not in full["reproduce"]
    assert full["train"]["steps"] == 5000 and full["train"]["hidden"] == config["train"]["hidden"]  # merged
    assert full["experiments"]["lengths"]["grid"] == grid  # replaced whole
    assert full["experiments"]["lengths"]["train"] == config["experiments"]["lengths"]["train"]
    assert config["train"]["steps"] == 12  # the reduced config is left as it was
    bad = smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}, {"train": {"steps": 0}})
    with pytest.raises(configuration.ConfigError, match=r"reproduce.paper \(the paper's budget\).*train.steps"):
        configuration.validate(bad)


def test_a_measure_with_nothing_logged_is_named():
    runs = runs_table({(1.0, 50): [False]})
    gradients = pd.DataFrame({"run_id": runs["run_id"], "step": 0, "t": 50, "k": 1, "distance": 49, "dLdh_norm": 1.0})
    claim_100 = claim({"kind": "at_most", "value": 0.0}, measure="dldh_rate") | {"params": {"step": 100}}
    with pytest.raises(reproduce.ClaimError, match="claim c: measure dldh_rate .* no finite value"):
        reproduce.measure(claim_100, {"runs": runs, "gradients": gradients})


def test_a_diverged_run_counts_as_infinitely_far_above_the_baseline():
    runs = runs_table({(1.0, 50): [False] * 3}, loss={1.0: 0.1})
    runs.loc[0, "final_loss"] = float("nan")
    measured = reproduce.measure(claim({"kind": "at_most", "value": 0.5}, measure="loss_ratio"), {"runs": runs})
    assert measured.value == pytest.approx(0.102) and measured.high == math.inf  # median of Inf, 0.101, 0.102


# ----- end to end ---------------------------------------------------------------------------------------------


def test_paper_budget_cli_writes_a_valid_config(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    out = tmp_path / "paper.yaml"
    command = [sys.executable, "-m", "rnngrad", "paper-budget", "config/reproduce/pascanu2013_fig7.yaml", "--out"]
    result = subprocess.run([*command, str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    paper = yaml.safe_load(out.read_text())
    assert paper["name"] == "reproduce-pascanu2013_fig7-paper" and paper["train"]["steps"] == 5_000_000


@pytest.mark.parametrize("name", ["pascanu2013_fig7", "pascanu2013_s411", "arjovsky2016", "le2015"])
def test_every_reproduction_config_is_valid_and_scores_claims_of_the_claims_file(name):
    from conftest import ROOT

    from rnngrad import config as configuration

    path = ROOT / "config" / "reproduce" / f"{name}.yaml"
    config = configuration.load(path)  # validates the reduced and (reproduce.paper) the paper's budget
    claims = reproduce.load_published(ROOT / config["reproduce"]["published"])
    assert set(config["reproduce"]["claims"]) <= set(claims)
    assert config["name"] == f"reproduce-{name}"


@pytest.mark.slow
def test_smoke_reproduction_runs_end_to_end(tmp_path):
    """config/smoke-reproduce.yaml through the real pipeline: a report with one verdict a claim, written beside
    the results and the figures, and the paper-layout figure."""
    import yaml
    from conftest import copy_workflow
    from test_pipeline import snakemake

    workdir = copy_workflow(tmp_path)
    snakemake(workdir, "--configfile", "config/smoke-reproduce.yaml")
    config = yaml.safe_load((workdir / "config" / "smoke-reproduce.yaml").read_text())
    text = (workdir / "results" / "smoke-reproduce" / "reproduction.md").read_text()
    assert (workdir / "figures" / "smoke-reproduce" / "reproduction.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert [row.split(":")[0].lstrip("| ") for row in rows] == list(config["reproduce"]["claims"])
    verdicts = {REPRODUCED, NOT_AT_BUDGET, CONTRADICTED}
    assert all(sum(f"| {verdict} |" in row for verdict in verdicts) == 1 for row in rows)
    for figure in config["figures"]:
        assert (workdir / "figures" / "smoke-reproduce" / f"{figure}.png").stat().st_size > 10_000


def test_select_longest_keeps_the_longest_length_of_the_matching_runs():
    runs = runs_table({(1.0, 20): [True] * 2, (1.0, 40): [False] * 3, (None, 40): [True] * 2, (None, 60): [False]})
    chosen = reproduce.select_runs(runs, {"clip": 1.0, "T": "longest"}, "c")
    assert set(chosen["T"]) == {40} and len(chosen) == 3  # T = 60 has no clipped run
    contrast = claim({"kind": "greater", "than": {"clip": None}}, select={"clip": 1.0, "T": "longest"})
    measured = reproduce.measure(contrast, {"runs": runs})  # the other side at the same length, not its own longest
    assert measured.value == pytest.approx(0 / 3 - 2 / 2) and "T = 40" in measured.text
    by_length = claim({"kind": "greater", "than": {"T": "longest"}}, select={"clip": 1.0, "T": "shortest"})
    assert reproduce.measure(by_length, {"runs": runs}).value == pytest.approx(2 / 2 - 0 / 3)  # T = 20 against 40


def test_a_figure_draws_several_experiments_and_the_manifest_lists_their_code(tmp_path):
    """`rnngrad figure --tables-dir A --tables-dir B` draws the concatenated tables; the manifest of a figure drawn
    from a list of experiments carries every experiment's training-code versions."""
    from rnngrad.cli import main
    from rnngrad.io import read_json

    dirs = []
    for panel, (init, scale, code) in {
        "basic": ("gaussian", 0.7071068, "a" * 64),
        "smart": ("sparse", 0.95, "b" * 64),
    }.items():
        runs = runs_table({(1.0, 20): [True, False], (None, 20): [False, False]})
        runs = runs.assign(run_id=panel + runs["run_id"], activation="tanh", init=init, scale=scale, regularizer=0.0)
        (tmp_path / panel).mkdir()
        runs.assign(code_sha256=code).to_parquet(tmp_path / panel / "runs.parquet")
        dirs += ["--tables-dir", str(tmp_path / panel)]
    figures = tmp_path / "figures"
    assert main(["figure", "pascanu_fig7", *dirs, "--out", str(figures / "pascanu_fig7.png")]) == 0
    assert (figures / "pascanu_fig7.png").stat().st_size > 10_000
    drawn = pascanu_fig7_table(tmp_path)
    assert set(drawn["panel"]) == {"basic tanh", "smart tanh"} and drawn["seeds"].eq(2).all()
    runs_args = ["--runs", str(tmp_path / "basic" / "runs.parquet"), str(tmp_path / "smart" / "runs.parquet")]
    out = figures / "manifest.json"
    assert main(["manifest", "--config-sha256", "0", *runs_args, "--out", str(out), "pascanu_fig7=basic,smart"]) == 0
    entry = read_json(out)["figures"]["pascanu_fig7"]
    assert entry["experiment"] == ["basic", "smart"] and entry["runs_code_sha256"] == ["a" * 64, "b" * 64]


def pascanu_fig7_table(tables_root) -> pd.DataFrame:
    from rnngrad.figures import pascanu_fig7

    runs = pd.concat([pd.read_parquet(tables_root / panel / "runs.parquet") for panel in ("basic", "smart")])
    return pascanu_fig7.success_table(runs)
