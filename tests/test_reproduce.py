"""Scoring published claims: interval code against closed forms and published values, the bootstrap's determinism
and coverage, every verdict on constructed tables, and a report whose every number comes from the claims or tables."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnngrad import reproduce
from rnngrad.reproduce import CONTRADICTED, NOT_AT_BUDGET, REPRODUCED

Z95 = reproduce.z_of(0.95)

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


def test_newcombe_takes_arrays_of_counts():
    low, high = reproduce.newcombe(np.arange(6)[:, None], 5, np.arange(6)[None, :], 5)
    assert low.shape == (6, 6) and (low[4, 0], high[4, 0]) == pytest.approx(reproduce.newcombe(4, 5, 0, 5))


# ----- the median's order-statistic interval -------------------------------------------------------------------


@pytest.mark.parametrize(("n", "coverage"), [(3, 0.75), (5, 0.9375), (6, 1 - 2 / 64)])
def test_min_max_covers_what_the_binomial_says(n, coverage):
    low, high, covered = reproduce.order_statistic_interval(np.arange(n, dtype=float))
    assert (low, high) == (0, n - 1) and covered == pytest.approx(coverage)
    assert reproduce.seeds_for_coverage() == 6


def test_order_statistic_interval_of_twenty_is_the_textbook_ranks():
    # n = 20: [x_(6), x_(15)] covers 1 - 2 P(B <= 5) = 0.9586 (B ~ Binomial(20, 1/2)); rank 7 would cover 0.8847
    low, high, coverage = reproduce.order_statistic_interval(np.arange(1.0, 21.0))
    assert (low, high) == (6, 15) and coverage == pytest.approx(0.958610534667969)


def test_order_statistic_interval_covers_the_true_median_as_it_says():
    rng = np.random.default_rng(11)
    true_median, trials = math.log(2), 4000  # exponential(1): a skewed distribution
    for n in (4, 9):
        hits, coverages = 0, set()
        for _ in range(trials):
            low, high, coverage = reproduce.order_statistic_interval(rng.exponential(size=n))
            hits += low <= true_median <= high
            coverages.add(coverage)
        (coverage,) = coverages
        assert abs(hits / trials - coverage) < 4 * math.sqrt(coverage * (1 - coverage) / trials)


# ----- verdicts on constructed tables -----------------------------------------------------------------------------

PAPER = {"updates": 1000, "batch": 20}
EFFECT = {"claimed": 0.8, "other": 0.2, "basis": "assumed"}


def runs_table(arms: dict[tuple, list[bool]], steps: int = 100, loss: dict | None = None) -> pd.DataFrame:
    """A runs table: for each (clip, T) arm, one run a seed with its solved flag (a solved run stopped there)."""
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
                    "status": "completed",
                    "steps": steps,
                    "batch_size": 20,
                    "steps_done": steps if not solved else steps // 2,
                    "solved_at": steps // 2 if solved else math.nan,
                    "final_metric": 1.0 if solved else 0.3,
                    "final_error_rate": 0.0 if solved else 0.7,
                    "final_loss": (loss or {}).get(clip, 1.0) * (1 + seed / 100),
                    "baseline_loss": 1.0,
                }
            )
    return pd.DataFrame(rows)


def claim(rule: dict, measure: str = "solved", select: dict | None = None, budget: dict | None = None, **more):
    base = {
        "id": "c",
        "paper": "p",
        "source": "Fig. 1",
        "statement": "s",
        "published": "v",
        "measure": measure,
        "select": select if select is not None else {"clip": 1.0},
        "rule": rule,
        "budget": budget or PAPER,
        "family": "Fig. 1",
    }
    if reproduce.MEASURES[measure].statistic == "share":
        base["power"] = EFFECT if rule["kind"] in reproduce.CONTRASTS else {"claimed": 0.9, "basis": "assumed"}
    return base | more


def score_one(c: dict, tables: dict, criteria: dict | None = None) -> dict:
    (row,) = reproduce.score([c], {c["id"]: tables}, criteria)
    return row


def decide(rule, runs, **kwargs) -> str:
    return score_one(claim(rule, **kwargs), {"runs": runs})["verdict"]


FULL, REDUCED = 1000, 100  # steps a run: the paper's budget, a tenth of it


def test_one_good_seed_of_five_does_not_carry_a_claim_about_every_seed():
    """Today's complaint: per-seed errors [0, .7, .7, .7, .7] matched "0 errors" on their median's interval. A
    claim about every seed is a share now, and one of five is not most of them, at any budget."""
    one_of_five = runs_table({(1.0, 50): [True, False, False, False, False]}, REDUCED)
    assert decide({"kind": "at_least", "value": 0.5}, one_of_five) == NOT_AT_BUDGET
    assert decide({"kind": "at_least", "value": 0.5}, runs_table({(1.0, 50): [True] * 5}, REDUCED)) == REPRODUCED
    assert decide({"kind": "at_least", "value": 0.5}, runs_table({(1.0, 50): [False] * 5}, FULL)) == CONTRADICTED


def test_match_on_a_median_is_no_longer_a_rule():
    with pytest.raises(reproduce.ClaimError, match="claim c: rule kind 'match'"):
        reproduce._check_claim(claim({"kind": "at_most", "value": 0.0}, measure="loss_ratio") | {
            "rule": {"kind": "match", "value": 0.0}})  # fmt: skip


def test_any_is_reproduced_by_one_run_and_reports_the_share():
    runs = runs_table({(1.0, 50): [True, False, False, False, False]}, REDUCED)
    row = score_one(claim({"kind": "any"}), {"runs": runs})
    assert row["verdict"] == REPRODUCED and "1/5 = 0.20" in row["measured"]
    assert decide({"kind": "any"}, runs_table({(1.0, 50): [False] * 5}, REDUCED)) == NOT_AT_BUDGET
    assert decide({"kind": "any"}, runs_table({(1.0, 50): [False] * 5}, FULL)) == CONTRADICTED


def median_runs(ratios: list[float], steps: int, arm=(1.0, 50)) -> pd.DataFrame:
    runs = runs_table({arm: [False] * len(ratios)}, steps)
    return runs.assign(final_loss=ratios)


def test_a_loss_ratio_is_not_assumed_to_fall():
    """Today's complaint: ratios far below 0.9 after a twentieth of the budget were "contradicted, more updates
    cannot move it back"; a final loss can rise again (or diverge), so only the paper's budget contradicts."""
    ratios = [0.5, 0.55, 0.6, 0.65, 0.7, 0.6]
    rule = {"kind": "at_least", "value": 0.9}
    assert decide(rule, median_runs(ratios, REDUCED), measure="loss_ratio") == NOT_AT_BUDGET
    assert decide(rule, median_runs(ratios, FULL), measure="loss_ratio") == CONTRADICTED
    assert decide(rule, median_runs([1.0] * 6, REDUCED), measure="loss_ratio") == REPRODUCED


def test_a_median_of_fewer_than_six_runs_decides_nothing_and_says_so():
    row = score_one(
        claim({"kind": "at_least", "value": 0.9}, measure="loss_ratio"), {"runs": median_runs([1] * 3, FULL)}
    )
    assert row["verdict"] == NOT_AT_BUDGET and "covers 75.0% only: 3 runs cannot reach 95%" in row["measured"]
    assert "needs at least 6 runs" in row["power"]


def test_a_failure_counts_below_the_paper_budget_only_beside_a_positive_control_that_learns():
    """Today's complaint: "the RNN stays at the baseline" was reproduced after 1,000 of 20,000 updates while the
    LSTM that should leave the baseline sat at 0.978 of it."""
    fails = claim({"kind": "at_least", "value": 0.9}, measure="loss_ratio", select={"clip": 1.0}) | {
        "id": "rnn", "failure": True, "control": "lstm"}  # fmt: skip
    control = claim({"kind": "at_most", "value": 0.5}, measure="loss_ratio", select={"clip": 2.0}) | {"id": "lstm"}

    def verdicts(lstm_ratio: float, steps: int = REDUCED, control_steps: int = REDUCED, control_T: int = 50):
        runs = pd.concat(
            [median_runs([1.0] * 6, steps), median_runs([lstm_ratio] * 6, control_steps, (2.0, control_T))]
        )
        rows = reproduce.score([fails, control], {"rnn": {"runs": runs}, "lstm": {"runs": runs}})
        return rows[0]["verdict"], rows[0]["rule"]

    assert verdicts(0.978)[0] == NOT_AT_BUDGET and "lstm is not reproduced" in verdicts(0.978)[1]
    assert verdicts(0.1) == (REPRODUCED, verdicts(0.1)[1]) and "positive control lstm learned" in verdicts(0.1)[1]
    assert verdicts(0.978, steps=FULL, control_steps=FULL)[0] == REPRODUCED  # at the paper's budget on its own
    assert "more than the 100" in verdicts(0.1, control_steps=FULL)[1]  # the control had more updates
    assert "ran T [60]" in verdicts(0.1, control_T=60)[1]  # another length
    alone = score_one(fails | {"control": None}, {"runs": median_runs([1.0] * 6, REDUCED)})
    assert alone["verdict"] == NOT_AT_BUDGET and "no positive control" in alone["rule"]


def test_the_budget_is_the_smallest_over_every_run_of_every_arm():
    runs = runs_table({(1.0, 50): [True] * 5}, FULL)
    runs.loc[3:, "steps"] = 10  # two of five runs had a hundredth of the paper's updates
    spent = reproduce.budget(claim({"kind": "at_least", "value": 0.5}), runs)
    assert spent.updates == 10 and not spent.full
    contrast = runs_table({(1.0, 50): [True] * 5, (None, 50): [False] * 5}, FULL)
    contrast.loc[contrast["clip"].isna(), "steps"] = 100  # the other arm had less
    assert not reproduce.budget(claim({"kind": "greater", "than": {"clip": None}}), contrast).full
    assert reproduce.budget(
        claim({"kind": "greater", "than": {"clip": None}}), runs_table({(1.0, 50): [True], (None, 50): [True]}, FULL)
    ).full


def test_a_solved_share_is_monotone_only_where_solved_runs_stopped_solved():
    rule = {"kind": "at_most", "value": 0.5}
    stopped = runs_table({(1.0, 50): [True] * 5}, REDUCED)
    assert decide(rule, stopped) == CONTRADICTED  # every solved run stopped solved: the share can only rise
    kept_training = stopped.assign(solved_at=math.nan)  # solved at the end only: it could be lost again
    assert decide(rule, kept_training) == NOT_AT_BUDGET


def test_nan_never_counts_as_solved():
    runs = runs_table({(1.0, 50): [True] * 3})
    runs["solved"] = runs["solved"].astype(object)
    runs.loc[1, "solved"] = None
    with pytest.raises(reproduce.ClaimError, match="run T50/clip1.0/seed1: solved is missing"):
        decide({"kind": "at_least", "value": 0.5}, runs)


def dldh_tables(runs: pd.DataFrame, at_step: dict[str, list[int]]) -> dict:
    rows = [
        {"run_id": run, "step": step, "t": 50, "k": k, "distance": 50 - k, "dLdh_norm": 0.5 ** (50 - k)}
        for run, steps in at_step.items() for step in steps for k in range(1, 51)
    ]  # fmt: skip
    return {"runs": runs, "gradients": pd.DataFrame(rows)}


def test_runs_without_gradient_rows_are_dropped_and_named():
    runs = runs_table({(1.0, 50): [False] * 7})
    ids = list(runs["run_id"])
    tables = dldh_tables(runs, {run: [0, 100] for run in ids[:6]} | {ids[6]: [0]})  # the last diverged early
    c = claim({"kind": "at_most", "value": 0.0}, measure="dldh_rate") | {"params": {"step": 100}}
    row = score_one(c, tables)
    assert f"6 of 7 runs used (dropped: {ids[6]}: no gradient rows at step 100)" in row["measured"]
    assert row["verdict"] == REPRODUCED


def test_a_slope_from_fewer_than_two_norms_is_a_claim_error_naming_the_run():
    runs = runs_table({(1.0, 50): [False]})
    gradients = pd.DataFrame({"run_id": runs["run_id"], "step": 0, "t": 50, "k": 1, "distance": 49, "dLdh_norm": 1.0})
    c = claim({"kind": "at_most", "value": 0.0}, measure="dldh_rate") | {"params": {"step": 0}}
    with pytest.raises(reproduce.ClaimError, match="claim c: run T50/clip1.0/seed0: 1 finite positive"):
        reproduce.measure(c, {"runs": runs, "gradients": gradients})


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


def test_equivalence_needs_the_whole_interval_within_the_margin():
    rule = {"kind": "equivalent", "than": {"clip": None}, "margin": 0.3}
    tight = runs_table({(1.0, 50): [True] * 30, (None, 50): [True] * 30}, REDUCED)
    assert decide(rule, tight) == REPRODUCED
    few = runs_table({(1.0, 50): [True] * 5, (None, 50): [True] * 5}, REDUCED)
    assert decide(rule, few) == NOT_AT_BUDGET  # equal shares, but 5 a side cannot show they are close
    apart = runs_table({(1.0, 50): [True] * 30, (None, 50): [False] * 30}, FULL)
    assert decide(rule, apart) == CONTRADICTED
    untrained = runs_table({(1.0, 50): [False] * 30, (None, 50): [False] * 30}, REDUCED)
    assert decide(rule, untrained) == NOT_AT_BUDGET  # 0 of 30 against 0 of 30: neither arm has learned yet
    assert decide(rule, runs_table({(1.0, 50): [False] * 30, (None, 50): [False] * 30}, FULL)) == REPRODUCED


def test_an_unknown_paper_budget_never_counts_as_full():
    runs = runs_table({(1.0, 50): [False] * 5}, 10**9)
    unknown = {"updates": None, "note": "not stated in the paper"}
    assert decide({"kind": "at_least", "value": 0.5}, runs, budget=unknown) == NOT_AT_BUDGET
    row = score_one(claim({"kind": "at_least", "value": 0.5}, budget=unknown), {"runs": runs})
    assert "not stated in the paper" in row["budget"]


# ----- power and families -----------------------------------------------------------------------------------------


def test_power_of_five_against_five_is_what_the_issue_measured():
    contrast = claim({"kind": "greater", "than": {"clip": None}})
    assert reproduce.power(contrast, 5) == pytest.approx(0.51, abs=0.005)
    assert reproduce.seeds_needed(contrast) == 10
    weaker = contrast | {"power": {"claimed": 0.6, "other": 0.2, "basis": "assumed"}}
    assert reproduce.power(weaker, 5) == pytest.approx(0.27, abs=0.005) and reproduce.seeds_needed(weaker) == 23


def test_power_agrees_with_simulating_the_rule():
    rng = np.random.default_rng(5)
    contrast = claim({"kind": "greater", "than": {"clip": None}})
    k1, k2 = rng.binomial(7, 0.8, 20_000), rng.binomial(6, 0.2, 20_000)
    low, _ = reproduce.newcombe(k1, 7, k2, 6)
    simulated = float(np.mean(low > 0))
    assert reproduce.power(contrast, 7, 6) == pytest.approx(simulated, abs=0.015)
    share = claim({"kind": "at_least", "value": 0.5})  # true share 0.9 (the default effect above)
    k = rng.binomial(9, 0.9, 20_000)
    assert reproduce.power(share, 9) == pytest.approx(np.mean(reproduce.wilson_bounds(k, 9)[0] >= 0.5), abs=0.015)


def test_holm_takes_back_what_one_family_of_seven_cannot_hold():
    """3/5 against 0/5 reads reproduced alone (Newcombe's lower bound +0.03), but not as one of seven claims of a
    figure (-0.14 at the first step's 99.29%)."""
    runs = runs_table({(1.0, 50): [True] * 3 + [False] * 2, (None, 50): [False] * 5}, REDUCED)
    claims = [claim({"kind": "greater", "than": {"clip": None}}) | {"id": f"c{i}"} for i in range(7)]
    rows = reproduce.score(claims, {f"c{i}": {"runs": runs} for i in range(7)})
    assert all(row["verdict"] == REPRODUCED for row in rows)
    assert all(row["holm"].startswith(NOT_AT_BUDGET) and "99.29%" in row["holm"] for row in rows)
    strong = runs_table({(1.0, 50): [True] * 12, (None, 50): [False] * 12}, REDUCED)
    rows = reproduce.score(claims[:2], {"c0": {"runs": strong}, "c1": {"runs": runs}})
    # step down: the strong claim holds at 97.5%, then the other is tested at 95% (Bonferroni would keep 97.5%)
    assert rows[0]["holm"].startswith(REPRODUCED) and "97.5%" in rows[0]["holm"]
    assert rows[1]["holm"].startswith(REPRODUCED) and "the 95% interval" in rows[1]["holm"]
    rows = reproduce.score(claims[:2], {"c0": {"runs": runs}, "c1": {"runs": runs}})
    assert all(row["holm"].startswith(NOT_AT_BUDGET) and "97.5%" in row["holm"] for row in rows)


def test_holm_steps_down_to_the_next_level_once_a_claim_is_decided():
    sides = {"a": lambda level: "claim", "b": lambda level: "claim" if level < 0.97 else "straddles"}
    levels = reproduce.holm_levels(sides)
    assert levels == {"a": pytest.approx(0.975), "b": pytest.approx(0.95)}


def test_sensitivity_varies_the_tasks_tolerance():
    runs = runs_table({(1.0, 50): [False] * 10}, REDUCED)
    runs["final_error_rate"] = [0.004] * 4 + [0.008] * 4 + [0.015] * 2  # under 1%: 8 solved
    runs["solved"] = runs["final_error_rate"] < 0.01
    criteria = {"temporal_order": {"criterion": "errors", "max_errors": 0.01}}
    row = score_one(claim({"kind": "at_least", "value": 0.5}), {"runs": runs}, criteria)
    assert row["verdict"] == NOT_AT_BUDGET  # 8/10: [0.49, 0.94]
    assert row["sensitivity"] == f"x0.5: {NOT_AT_BUDGET}; x2: {REPRODUCED}"  # 4/10 and 10/10
    ratio = claim({"kind": "at_least", "value": 0.9}, measure="loss_ratio")
    row = score_one(ratio, {"runs": median_runs([0.85] * 6, FULL)})  # 0.85: below 0.9, above 0.8
    assert (row["verdict"], row["sensitivity"]) == (CONTRADICTED, f"x0.5: {CONTRADICTED}; x2: {REPRODUCED}")


def test_the_length_printed_is_the_length_measured():
    runs = runs_table({(1.0, 30): [True, True, False]})
    ids = list(runs["run_id"])
    rows = [  # the lengths table: each run's final test at its T (30) and at 300; the third diverged
        {"run_id": run, "task": "temporal_order", "length": length, "error_rate": error, "solved": error < 0.01,
         "metric": 1 - error, "baseline_loss": 1.0}
        for run, errors in zip(ids[:2], [(0.0, 0.0), (0.0, 0.03)], strict=True)
        for length, error in zip((30, 300), errors, strict=True)
    ]  # fmt: skip
    tables = {"runs": runs, "lengths": pd.DataFrame(rows)}
    values = reproduce.MEASURES["solved_at_every_length"].values(tables, runs, {}, {}, 1.0)
    assert values.values.to_dict() == {ids[0]: True, ids[1]: False, ids[2]: False}
    assert values.lengths == "tested at lengths 30, 300"


def test_selection_errors_name_the_claim_and_the_column():
    runs = runs_table({(1.0, 50): [True]})
    with pytest.raises(reproduce.ClaimError, match="claim c: select on 'regularizer'"):
        decide({"kind": "at_least", "value": 0.5}, runs, select={"regularizer": 4})
    with pytest.raises(reproduce.ClaimError, match="claim c: no run matches"):
        decide({"kind": "at_least", "value": 0.5}, runs, select={"T": 7})


def test_pooled_lengths_are_named_in_the_measured_value():
    runs = runs_table({(1.0, 20): [True] * 3, (1.0, 50): [False] * 2})
    row = score_one(claim({"kind": "at_least", "value": 0.5}), {"runs": runs})
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
        " rule: {kind: greater, than: {clip: null}}, budget: {updates: 7654, batch: 21}, family: Fig. 8,"
        " power: {claimed: 0.7, other: 0.3, basis: assumed}}\n"
    )
    text = reproduce.write_report(published, {"clipping_helps": tmp_path}, "demo", [tmp_path / "a.md"])
    assert (tmp_path / "a.md").read_text() == text
    header, table = text.split("| claim |", 1)
    assert numbers(header) == {"95", "6", "0.5", "2"}  # the level, the runs a median needs, the sensitivity
    row, ladder = [line for line in table.splitlines() if line.startswith("| clipping_helps")]  # verdicts, ladder
    assert ladder.endswith("| not run | not run |") and numbers(ladder) <= numbers(row)
    claims_text = published.read_text()
    low, high = reproduce.newcombe(3, 4, 0, 4)
    contrast = reproduce.load_published(published)["clipping_helps"]
    from_tables = {
        "3", "4", "0", "0.75", "0.00", "37", "123", "2460", "8", "61", "1",
        *(f"{x:.2f}" for x in (*reproduce.wilson(3, 4), *reproduce.wilson(0, 4), low, high)),
        f"{0.75:+.2f}".lstrip("+"), f"{low:+.2f}".lstrip("+"), f"{high:+.2f}".lstrip("+"),
        f"{reproduce.power(contrast, 4):.2f}", str(reproduce.seeds_needed(contrast)),
    }  # fmt: skip
    from_claims = numbers(claims_text) | {"160734"}  # 7,654 x 21 sequences
    rules = {"95", "80", "0.5", "2"}  # the 95% interval, 80% power, the threshold halved and doubled
    assert numbers(row) <= from_tables | from_claims | rules
    assert "Someone 2099, Fig. 8, p. 9" in row and "clipped bars above plain ones" in row


def test_unknown_claims_and_bad_rules_are_named(tmp_path):
    published = tmp_path / "published.yaml"
    good = {"paper": "p", "source": "s", "statement": "s", "published": "v", "measure": "solved", "select": {},
            "budget": {"updates": 1, "batch": 1}, "family": "f", "power": EFFECT}  # fmt: skip
    import yaml

    def refused(match: str, **changes) -> None:
        published.write_text(yaml.safe_dump({"claims": [{"id": "a", **good, **changes}]}))
        with pytest.raises(reproduce.ClaimError, match=match):
            reproduce.load_published(published)

    refused("claim a: rule kind 'most'", rule={"kind": "most"})
    refused(r"claim a: rule greater takes \['than'\]", rule={"kind": "greater", "value": 1})
    refused("claim a: power needs", rule={"kind": "at_least", "value": 0.5})  # a share claim without its effect
    refused("claim a: rule greater needs a share measure", rule={"kind": "greater", "than": {}}, measure="loss_ratio")
    refused("claim a: control 'b' is not a claim", rule={"kind": "greater", "than": {}}, failure=True, control="b")
    without_family = {key: value for key, value in good.items() if key != "family"}
    with pytest.raises(reproduce.ClaimError, match=r"claim a: missing keys \['family'\]"):
        reproduce._check_claim({"id": "a", **without_family, "rule": {"kind": "any"}})
    published.write_text(yaml.safe_dump({"claims": [{"id": "a", **good, "rule": {"kind": "greater", "than": {}}}]}))
    with pytest.raises(reproduce.ClaimError, match=r"claims \['b'\] are not in"):
        reproduce.write_report(published, {"b": tmp_path}, "demo", [])


# ----- published numbers beside measured ones ---------------------------------------------------------------------


def test_the_papers_share_of_runs_stands_beside_the_measured_one():
    runs = runs_table({(1.0, 50): [True, True, True, False]})
    c = claim({"kind": "at_least", "value": 0.5}) | {"published_value": {"kind": "share", "successes": 5, "runs": 5}}
    text = reproduce.published_numbers([c], {"c": {"runs": runs}})
    (row,) = [line for line in text.splitlines() if line.startswith("| c |")]
    paper_low, _ = reproduce.wilson(5, 5)
    low, high = reproduce.newcombe(3, 4, 5, 5)
    assert f"5/5 = 1.00 [{paper_low:.2f}, 1.00] of runs" in row and "3/4 = 0.75" in row
    assert f"measured minus published -0.25 [{low:+.2f}, {high:+.2f}]" in row


def lengths_rows(errors: dict[str, dict[int, int]], n: int, trained: dict[str, int] | None = None) -> pd.DataFrame:
    """A lengths table: each run's errors out of ``n`` at each single length, and its mixed-length (trained) set."""
    rows = [
        {"run_id": run, "length": length, "trained": False, "error_rate": wrong / n}
        for run, at in errors.items()
        for length, wrong in at.items()
    ]
    rows += [
        {"run_id": run, "length": 50, "trained": True, "error_rate": wrong / n}
        for run, wrong in (trained or {}).items()
    ]
    return pd.DataFrame(rows)


def test_errors_at_the_papers_lengths_are_those_of_the_model_with_the_most_clean_lengths():
    runs = runs_table({(1.0, 200): [True, True, False]})
    a, b, c = runs["run_id"]
    lengths = lengths_rows(
        {a: {50: 0, 500: 0, 5000: 7}, b: {50: 0, 500: 0, 5000: 3}, c: {50: 2, 500: 9}}, 1000, trained={b: 40}
    )
    value = {"kind": "errors_at_lengths", "errors": 0, "sequences": 10000, "lengths": [50, 500, 1000, 5000]}
    claimed = claim({"kind": "any"}, measure="solved_at_every_length") | {"published_value": value}
    text = reproduce.published_numbers([claimed], {"c": {"runs": runs, "lengths": lengths}}, test_sequences=1000)
    (row,) = [line for line in text.splitlines() if line.startswith("| c |")]
    _, paper_high = reproduce.wilson(0, 10000)
    assert f"0 of 10,000 wrong = 0% [0%, {100 * paper_high:.3g}%] at each of 50, 500, 1000, 5000" in row
    # a and b are clean at two lengths; b's largest error share is smaller (its mixed set's 40 does not count)
    low, high = reproduce.wilson(3, 1000)
    assert f"run {b}: 50: 0 of 1,000 wrong" in row and "no error in 2/3 runs" in row
    assert f"5000: 3 of 1,000 wrong = 0.3% [{100 * low:.3g}%, {100 * high:.3g}%], no error in 0/3 runs" in row
    assert row.endswith("not tested at 1000 |")
    with pytest.raises(reproduce.ClaimError, match="claim c: published_value errors_at_lengths needs the test sets'"):
        reproduce.published_numbers([claimed], {"c": {"runs": runs, "lengths": lengths}})


def test_claims_without_a_published_number_are_named_as_such():
    runs = runs_table({(1.0, 50): [True, False]})
    text = reproduce.published_numbers([claim({"kind": "at_least", "value": 0.5})], {"c": {"runs": runs}})
    assert "| claim |" not in text and text.rstrip().endswith("the published column above says which): c.")


@pytest.mark.parametrize(
    ("value", "measure", "match"),
    [
        ({"kind": "mse", "value": 0.1}, "solved", "published_value kind 'mse'; allowed"),
        ({"kind": "share", "successes": 5}, "solved", r"published_value share takes \['runs', 'successes'\]"),
        ({"kind": "share", "successes": 6, "runs": 5}, "solved", r"published_value share: counts \[6, 5\] must be"),
        ({"kind": "errors_at_lengths", "errors": 0, "sequences": 10, "lengths": [5]}, "solved",
         "published_value errors_at_lengths is compared with measure solved_at_every_length, not solved"),
    ],
)  # fmt: skip
def test_a_bad_published_value_is_named(value, measure, match):
    with pytest.raises(reproduce.ClaimError, match=f"claim c: {match}"):
        reproduce._check_claim(claim({"kind": "at_least", "value": 0.5}, measure=measure) | {"published_value": value})


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


def test_a_tier_merges_mappings_replaces_lists_and_is_validated(tmp_path):
    from rnngrad import config as configuration

    grid = [{"task": ["adding"], "T": [4, 8, 16], "activation": ["relu"], "init": ["orthogonal"], "scale": [1.0],
             "seed": [0, 1, 2]}]  # fmt: skip
    paper = {"train": {"steps": 5000}, "experiments": {"lengths": {"grid": grid}}}
    config = smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}, paper)
    configuration.validate(config)
    full = configuration.tier_config(config, "paper")
    assert full["name"] == "smoke-paper" and "paper" not in full["reproduce"] and full["reproduce"]["tier"] == "paper"
    assert full["train"]["steps"] == 5000 and full["train"]["hidden"] == config["train"]["hidden"]  # merged
    assert full["experiments"]["lengths"]["grid"] == grid  # replaced whole
    assert full["experiments"]["lengths"]["train"] == config["experiments"]["lengths"]["train"]
    assert config["train"]["steps"] == 12  # the reduced config is left as it was
    bad = smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}, {"train": {"steps": 0}})
    with pytest.raises(configuration.ConfigError, match=r"reproduce.paper \(the paper tier\).*train.steps"):
        configuration.validate(bad)
    with pytest.raises(configuration.ConfigError, match=r"reproduce.long: missing"):
        configuration.tier_config(config, "long")
    config["reproduce"]["long"] = {"reproduce": {"claims": {"lengths_solve": None}}}  # not scored at that tier
    assert configuration.tier_config(config, "long")["reproduce"]["claims"] == {}
    drawn = set(config["figures"])
    config["reproduce"]["long"] = {"figures": {"dldh": False}}  # not drawn at that tier; null ones are kept
    configuration.validate(config)
    assert set(configuration.tier_config(config, "long")["figures"]) == drawn - {"dldh"}
    with pytest.raises(configuration.ConfigError, match=r"tier: 'huge' is unknown; allowed: \['long', 'paper'\]"):
        configuration.tier_config(config, "huge")


def test_a_measure_with_nothing_logged_is_named():
    runs = runs_table({(1.0, 50): [False]})
    gradients = pd.DataFrame({"run_id": runs["run_id"], "step": 0, "t": 50, "k": 1, "distance": 49, "dLdh_norm": 1.0})
    claim_100 = claim({"kind": "at_most", "value": 0.0}, measure="dldh_rate") | {"params": {"step": 100}}
    dropped = "dropped: T50/clip1.0/seed0: no gradient rows at step 100"
    with pytest.raises(reproduce.ClaimError, match=rf"claim c: measure dldh_rate .* no value .*{dropped}"):
        reproduce.measure(claim_100, {"runs": runs, "gradients": gradients})


def test_a_diverged_run_counts_as_infinitely_far_above_the_baseline():
    runs = runs_table({(1.0, 50): [False] * 3}, loss={1.0: 0.1})
    runs.loc[0, "final_loss"] = float("nan")
    measured = reproduce.measure(claim({"kind": "at_most", "value": 0.5}, measure="loss_ratio"), {"runs": runs})
    assert measured.value == pytest.approx(0.102) and measured.high == math.inf  # median of Inf, 0.101, 0.102


# ----- end to end ---------------------------------------------------------------------------------------------


def test_tier_cli_writes_a_valid_config(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    out = tmp_path / "paper.yaml"
    command = [sys.executable, "-m", "rnngrad", "tier", "config/reproduce/pascanu2013_fig7.yaml", "paper", "--out"]
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
    the results and the figures, and the paper-layout figure; then its long tier (rnngrad tier), whose budget
    ladder carries the reduced tier's verdicts, and the reduced report again, which now carries the long tier's."""
    import subprocess
    import sys

    import yaml
    from conftest import copy_workflow
    from test_pipeline import snakemake

    workdir = copy_workflow(tmp_path)
    snakemake(workdir, "--configfile", "config/smoke-reproduce.yaml")
    config = yaml.safe_load((workdir / "config" / "smoke-reproduce.yaml").read_text())
    text = (workdir / "results" / "smoke-reproduce" / "reproduction.md").read_text()
    assert (workdir / "figures" / "smoke-reproduce" / "reproduction.md").read_text() == text
    rows = report_rows(workdir / "figures" / "smoke-reproduce" / "reproduction.md")
    assert list(rows) == list(config["reproduce"]["claims"])
    assert all(row["verdict"] in {REPRODUCED, NOT_AT_BUDGET, CONTRADICTED} for row in rows.values())
    for figure in config["figures"]:
        assert (workdir / "figures" / "smoke-reproduce" / f"{figure}.png").stat().st_size > 10_000
    kept = workdir / "figures" / "smoke-reproduce" / "tables"  # what the verdicts read, small enough to commit
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*.parquet")) == [
        "fig7/lengths.parquet", "fig7/runs.parquet", "gradients/gradients.parquet", "gradients/runs.parquet",
    ]  # fmt: skip
    reduced = json.loads((workdir / "figures" / "smoke-reproduce" / "verdicts.json").read_text())
    assert {claim: record["verdict"] for claim, record in reduced.items()} == {
        claim: row["verdict"] for claim, row in rows.items()
    }

    tier = ["rnngrad", "tier", "config/smoke-reproduce.yaml", "long", "--out", "results/tiers/smoke-long.yaml"]
    subprocess.run([sys.executable, "-m", *tier], cwd=workdir, check=True, capture_output=True)
    snakemake(workdir, "--configfile", "results/tiers/smoke-long.yaml")
    long_text = (workdir / "figures" / "smoke-reproduce-long" / "reproduction.md").read_text()
    claim = next(iter(reduced))
    ladder_row = next(line for line in long_text.splitlines() if line.startswith(f"| {claim} |"))
    assert ladder_row.startswith(f"| {claim} | {reduced[claim]['holm_verdict']} (") and "10 updates" in ladder_row
    snakemake(workdir, "--configfile", "config/smoke-reproduce.yaml")  # the reduced report's ladder catches up
    text = (workdir / "figures" / "smoke-reproduce" / "reproduction.md").read_text()
    ladder_row = next(line for line in text.splitlines() if line.startswith(f"| {claim} |"))
    assert ladder_row.endswith("| not run |") and "not run | not run" not in ladder_row


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


def report_rows(path) -> dict[str, dict[str, str]]:
    """A committed reproduction report's rows by claim id, cell by column (escaped pipes kept); the sections after
    the verdicts (published numbers, budget ladder) left out."""
    verdicts = path.read_text().split("\n## ")[0]
    lines = [line for line in verdicts.splitlines() if line.startswith("| ")]
    split = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    header, rows = split[0], split[1:]
    return {row[0].split(":")[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_the_readmes_verdicts_are_the_committed_reports():
    """README.md's verdict tables quote every claim each tier scores, raw and Holm-adjusted, exactly as that tier's
    committed report says it: the reduced tier's every claim, and each long tier that has a committed report."""
    from conftest import ROOT

    from rnngrad import config as configuration

    text = (ROOT / "README.md").read_text()
    quoted = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| ([^|]+) \| \[[\w-]+\]\(([^)]+)\) \|$", text, re.M)
    expected = {}
    for name in ("pascanu2013_fig7", "pascanu2013_s411", "arjovsky2016", "le2015"):
        config = configuration.load(ROOT / "config" / "reproduce" / f"{name}.yaml")
        expected[f"figures/reproduce-{name}/reproduction.md"] = set(config["reproduce"]["claims"])
        if (ROOT / f"figures/reproduce-{name}-long/reproduction.md").is_file():
            long = configuration.tier_config(config, "long")
            expected[f"figures/reproduce-{name}-long/reproduction.md"] = set(long["reproduce"]["claims"])
    by_report: dict[str, list[str]] = {}
    for claim, verdict, holm, report in quoted:
        by_report.setdefault(report, []).append(claim)
        row = report_rows(ROOT / report)[claim]
        assert verdict.strip() == row["verdict"], (report, claim)
        assert row["holm"].startswith(holm.strip() + " ("), (report, claim)
    assert {report: sorted(claims) for report, claims in by_report.items()} == {
        report: sorted(claims) for report, claims in expected.items()
    }


def test_the_budget_ladder_puts_each_tiers_verdict_beside_this_reports(tmp_path):
    own = {"a": {"holm_verdict": "reproduced", "budget": "6,000 updates"}, "b": {"holm_verdict": "contradicted",
           "budget": "6,000 updates"}}  # fmt: skip
    long = tmp_path / "long.json"
    long.write_text(json.dumps({"a": {"holm_verdict": "not reproduced at this budget", "budget": "10,000 updates"}}))
    text = reproduce.ladder("reduced", own, {"long": long, "paper": tmp_path / "absent.json"})
    rows = [line for line in text.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert rows == [
        "| a | reproduced (6,000 updates) | not reproduced at this budget (10,000 updates) | not run |",
        "| b | contradicted (6,000 updates) | not run | not run |",
    ]
    assert "(this report: long)" in reproduce.ladder("long", own, {"long": long})  # its own column wins
    assert "| a | not run | reproduced (6,000 updates) |" in reproduce.ladder("long", own, {"long": long})
    with pytest.raises(reproduce.ClaimError, match=r"tier 'huge' is unknown; allowed: \['reduced', 'long', 'paper'\]"):
        reproduce.ladder("huge", own, {})


def test_each_tier_finds_the_others_figures(tmp_path):
    from rnngrad import config as configuration

    config = smoke_with_claims(tmp_path, {"lengths_solve": "lengths"}, {"train": {"steps": 50}})
    config["reproduce"]["long"] = {"train": {"steps": 20}}
    folders = {"reduced": "figures/smoke", "long": "figures/smoke-long", "paper": "figures/smoke-paper"}
    assert configuration.tier_figures(config) == folders
    assert configuration.tier_figures(configuration.tier_config(config, "long")) == folders
    assert configuration.tier_figures(configuration.tier_config(config, "paper")) == folders


def test_the_ladder_quotes_the_paper_tiers_cost(tmp_path):
    """`rnngrad reproduce --paper-cost` puts the totals line of `rnngrad cost`'s report into the ladder."""
    import subprocess
    import sys

    from conftest import ROOT

    runs_table({(1.0, 37): [True, True], (None, 37): [False] * 2}).to_parquet(tmp_path / "runs.parquet")
    published = tmp_path / "published.yaml"
    published.write_text(
        "claims:\n- {id: c, paper: P 2099, source: s, statement: s, published: v, measure: solved, select: {clip: 1.0},"
        " rule: {kind: greater, than: {clip: null}}, budget: {updates: 7654, batch: 21}, family: F,"
        " power: {claimed: 0.7, other: 0.3, basis: assumed}}\n"
    )
    cost = tmp_path / "paper-cost.md"
    cost.write_text("| experiment | runs |\n|---|---|\n\nTotal: 4 runs in 1 training jobs, 12.5 CPU-hours.\n")
    command = [sys.executable, "-m", "rnngrad", "reproduce", "--published", str(published), "--title", "t",
               "--out", str(tmp_path / "r.md"), "--paper-cost", str(cost), f"c={tmp_path}"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "`rnngrad cost`): Total: 4 runs in 1 training jobs, 12.5 CPU-hours." in result.stdout
