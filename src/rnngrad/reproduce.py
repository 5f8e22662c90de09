"""Score published claims against an experiment's tables: a measured value with a 95% interval, the budget spent
against the paper's, and a verdict decided by a stated rule.

A claim (config/reproduce/published.yaml) names the runs it is about (``select``: column -> value on the runs
table), a per-run ``measure`` (see :data:`MEASURES`), the published value or statement, the paper's budget, and a
``rule``. Shares of seeds get Wilson score intervals, medians a seeded percentile bootstrap, and a contrast between
two sets of runs ("A above B") Newcombe's hybrid score interval for a difference of shares (built from the two
Wilson intervals) or a bootstrap interval for a difference of medians.

Verdicts (every rule below is written into the report row that uses it):
- the interval lies wholly on the claim's side (``match``: holds the published value) -> reproduced;
- it lies wholly on the other side -> contradicted, unless the runs had less than the paper's budget (or the paper's
  budget is not known) and more training could move the measure towards the claim (a solved share can only rise,
  a loss ratio only fall; a contrast or an undirected measure could move either way): then not reproduced at this
  budget;
- it straddles the claim's bound -> not reproduced at this budget (too few seeds or updates to decide).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rnngrad.io import atomic_write

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
REPRODUCED, NOT_AT_BUDGET, CONTRADICTED = "reproduced", "not reproduced at this budget", "contradicted"
RULE_KINDS = ("match", "at_least", "at_most", "greater")
EXTREMES = {"longest": "max", "shortest": "min"}  # select values: the largest or smallest value of that column


class ClaimError(ValueError):
    """A claim that cannot be scored (bad field, or no run matches its selection); the message names the claim."""


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a share of ``successes`` out of ``n`` (Wilson 1927)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # at 0 and n the closed form's bound is exactly 0 or 1; rounding must not move it off the published value
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """95% interval for p1 - p2 by Newcombe's hybrid score method (1998, method 10), from the two Wilson
    intervals: it stays inside [-1, 1] and behaves at 0 and n successes, where the Wald interval does not."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _bootstrap_medians(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return np.median(values[picks], axis=1)


def _percentile_interval(statistics: np.ndarray) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles, taken as values of the sample (no interpolation between an Inf and a
    finite value)."""
    low, high = np.percentile(statistics, [2.5, 97.5], method="inverted_cdf")
    return float(low), float(high)


def bootstrap_median(
    values, seed: int = BOOTSTRAP_SEED, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float, float]:
    """(median, 2.5% and 97.5% percentiles of the bootstrap medians): a percentile interval, the same numbers for
    the same values and seed. +-Inf values are allowed (a diverged run's loss), NaN is not."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0 or np.isnan(values).any():
        raise ValueError(f"bootstrap_median: need values that are not NaN, got {values}")
    medians = _bootstrap_medians(values, np.random.default_rng(seed), resamples)
    low, high = _percentile_interval(medians)
    return float(np.median(values)), low, high


def bootstrap_median_difference(
    a, b, seed: int = BOOTSTRAP_SEED, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float, float]:
    """median(a) - median(b) with a percentile interval, each group resampled on its own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    differences = _bootstrap_medians(a, rng, resamples) - _bootstrap_medians(b, rng, resamples)
    low, high = _percentile_interval(differences)
    return float(np.median(a) - np.median(b)), low, high


# ----- per-run measures -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A per-run value read from an experiment's tables. ``statistic``: share (of runs where it is true, Wilson)
    or median (bootstrap). ``training``: how more updates can move it (raises, lowers or either)."""

    statistic: str
    training: str
    tables: tuple[str, ...]
    values: Callable[[dict[str, pd.DataFrame], pd.DataFrame, dict], pd.Series]
    describe: str


def _solved(tables, runs, params) -> pd.Series:
    return runs.set_index("run_id")["solved"].astype(bool)


def _loss_ratio(tables, runs, params) -> pd.Series:
    """Final test loss over the memoryless baseline's; a diverged run (NaN or Inf loss) counts as +Inf."""
    ratio = runs.set_index("run_id").eval("final_loss / baseline_loss")
    return ratio.where(np.isfinite(ratio), np.inf)


def _errors_at_longest(tables, runs, params) -> pd.Series:
    """Share of test sequences counted wrong (the task's error rule) at the final evaluation, on the longest length
    each run was tested at (the lengths table: its T and its extra ``eval_lengths``). A run without a final test
    (diverged) counts as all wrong."""
    lengths = tables["lengths"]
    rows = lengths[lengths["run_id"].isin(runs["run_id"])]
    longest = rows[rows["length"] == rows.groupby("run_id")["length"].transform("max")]
    return longest.set_index("run_id")["error_rate"].reindex(runs["run_id"]).fillna(1.0)


def _dldh_rate(tables, runs, params) -> pd.Series:
    """Per-step log growth of ||dL_t/dh_k|| with the distance t - k, at training step ``params['step']``: the slope
    of a least-squares line through log ||dL_t/dh_k|| against t - k for the last target t (negative: it decays
    exponentially as it travels back)."""
    gradients = tables["gradients"]
    rows = gradients[(gradients["step"] == params["step"]) & gradients["run_id"].isin(runs["run_id"])]
    rows = rows[rows["t"] == rows.groupby("run_id")["t"].transform("max")]
    rates = {}
    for run, frame in rows.groupby("run_id"):
        by_distance = frame.groupby("distance")["dLdh_norm"].mean()
        finite = by_distance[(by_distance > 0) & np.isfinite(by_distance)]
        rates[run] = np.polyfit(finite.index.to_numpy(float), np.log(finite.to_numpy()), 1)[0]
    return pd.Series(rates, dtype=float)


MEASURES = {
    "solved": Measure("share", "raises", ("runs",), _solved, "share of seeds that solved the task"),
    "loss_ratio": Measure(
        "median", "lowers", ("runs",), _loss_ratio, "final test loss / the memoryless baseline's loss"
    ),
    "errors_at_longest": Measure(
        "median", "lowers", ("runs", "lengths"), _errors_at_longest, "test error share at the longest tested length"
    ),
    "dldh_rate": Measure(
        "median", "either", ("runs", "gradients"), _dldh_rate, "slope of log ||dL/dh_k|| per step back"
    ),
}


# ----- claims -----------------------------------------------------------------------------------------------------

CLAIM_KEYS = {"id", "paper", "source", "statement", "published", "measure", "select", "rule", "budget"}
OPTIONAL_KEYS = {"params", "unconfirmed"}


def load_published(path: str | Path) -> dict[str, dict]:
    """The published claims by id, each checked for its keys, measure and rule (ClaimError naming the claim)."""
    data = yaml.safe_load(Path(path).read_text())
    claims = {}
    for claim in data["claims"]:
        name = claim.get("id", "?")
        missing, extra = CLAIM_KEYS - set(claim), set(claim) - CLAIM_KEYS - OPTIONAL_KEYS
        if missing or extra:
            raise ClaimError(f"claim {name}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
        if claim["measure"] not in MEASURES:
            raise ClaimError(f"claim {name}: measure {claim['measure']!r}; allowed: {sorted(MEASURES)}")
        kind = claim["rule"].get("kind")
        if kind not in RULE_KINDS:
            raise ClaimError(f"claim {name}: rule kind {kind!r}; allowed: {list(RULE_KINDS)}")
        if (kind == "greater") != ("than" in claim["rule"]) or (kind != "greater") != ("value" in claim["rule"]):
            raise ClaimError(f"claim {name}: rule {kind} needs {'than' if kind == 'greater' else 'value'} only")
        if name in claims:
            raise ClaimError(f"claim {name}: defined twice")
        claims[name] = claim
    return claims


def _extreme(value) -> bool:
    return isinstance(value, str) and value in EXTREMES


def select_runs(runs: pd.DataFrame, select: dict, claim: str) -> pd.DataFrame:
    """Runs whose columns equal the selection (null matches NaN or a missing value, a list any of its values;
    ``longest`` / ``shortest`` the largest / smallest value among the runs that match the rest, e.g. the longest
    length T a config ran)."""
    keep = pd.Series(True, index=runs.index)
    for column, value in select.items():
        if column not in runs:
            raise ClaimError(f"claim {claim}: select on {column!r}, not a runs column; have {sorted(runs)}")
        if value is None:
            keep &= runs[column].isna() | (runs[column] == "none")
        elif not _extreme(value):
            keep &= runs[column].isin(value if isinstance(value, list) else [value])
    for column, value in select.items():
        if _extreme(value):
            keep &= runs[column] == runs.loc[keep, column].agg(EXTREMES[value])
    chosen = runs[keep]
    if chosen.empty:
        raise ClaimError(f"claim {claim}: no run matches {select}")
    return chosen


@dataclass(frozen=True)
class Measured:
    value: float
    low: float
    high: float
    text: str


def _lengths(runs: pd.DataFrame) -> str:
    return "T = " + ", ".join(str(t) for t in sorted(runs["T"].unique()))


def _describe_share(values: pd.Series) -> str:
    k, n = int(values.sum()), len(values)
    low, high = wilson(k, n)
    return f"{k}/{n} = {k / n:.2f} [{low:.2f}, {high:.2f}]"


def _values(claim: dict, spec: Measure, tables: dict, runs: pd.DataFrame, params: dict) -> pd.Series:
    """The measure's per-run values; a ClaimError when the tables hold none (e.g. nothing logged at that step)."""
    values = spec.values(tables, runs, params).dropna()
    if values.empty:
        raise ClaimError(
            f"claim {claim['id']}: measure {claim['measure']} {params or ''} has no finite value for the "
            f"{len(runs)} runs selected (is it logged there?)"
        )
    return values


def measure(claim: dict, tables: dict[str, pd.DataFrame]) -> Measured:
    """The claim's statistic over its runs, with its 95% interval and a line saying what was counted."""
    spec = MEASURES[claim["measure"]]
    params = claim.get("params", {})
    runs = select_runs(tables["runs"], claim["select"], claim["id"])
    values = _values(claim, spec, tables, runs, params)
    if claim["rule"]["kind"] == "greater":
        than = claim["rule"]["than"]
        other_select = {**claim["select"], **than}
        for column, value in claim["select"].items():
            if _extreme(value) and column not in than:  # the other side at the lengths the claimed side has
                other_select[column] = sorted(runs[column].unique().tolist())
        other = select_runs(tables["runs"], other_select, claim["id"])
        others = _values(claim, spec, tables, other, params)
        if spec.statistic == "share":
            k1, n1, k2, n2 = int(values.sum()), len(values), int(others.sum()), len(others)
            value, (low, high) = k1 / n1 - k2 / n2, newcombe(k1, n1, k2, n2)
            parts = f"{_describe_share(values)} vs {_describe_share(others)}"
        else:
            value, low, high = bootstrap_median_difference(values, others)
            parts = f"medians {np.median(values):.3g} (n={len(values)}) vs {np.median(others):.3g} (n={len(others)})"
        difference = f"difference {value:+.2f} [{low:+.2f}, {high:+.2f}]"
        return Measured(value, low, high, f"{parts}; {difference}; {_lengths(runs)}")
    if spec.statistic == "share":
        k, n = int(values.sum()), len(values)
        low, high = wilson(k, n)
        return Measured(k / n, low, high, f"{_describe_share(values)}; {_lengths(runs)}")
    value, low, high = bootstrap_median(values)
    return Measured(value, low, high, f"median {value:.3g} [{low:.3g}, {high:.3g}], n={len(values)}; {_lengths(runs)}")


# ----- budget and verdict -----------------------------------------------------------------------------------------


def budget(claim: dict, runs: pd.DataFrame) -> tuple[str, bool]:
    """What the claim's runs were allowed (updates a run, sequences a run) against the paper's, and whether that is
    at least the paper's (False when the paper's budget is not known)."""
    chosen = select_runs(runs, claim["select"], claim["id"])
    steps, batch = int(chosen["steps"].max()), int(chosen["batch_size"].max())
    used = int(chosen["steps_done"].max())
    paper = claim["budget"]
    ours = f"{used:,} of {steps:,} updates x {batch} = {used * batch:,} sequences a run"
    if paper.get("updates") is None:
        return f"{ours}; paper: {paper.get('note', 'not stated')}", False
    paper_sequences = paper["updates"] * paper["batch"]
    text = f"{ours}; paper: {paper['updates']:,} x {paper['batch']} = {paper_sequences:,}"
    return text, steps * batch >= paper_sequences and steps >= paper["updates"]


def _side(kind: str, bound: float, low: float, high: float) -> str:
    """Where the interval lies against the claim: 'claim', 'below' or 'above' it (the other side), or
    'straddles' its bound."""
    if kind == "match":
        return "claim" if low <= bound <= high else ("below" if high < bound else "above")
    if kind == "at_most":
        return "claim" if high <= bound else ("above" if low > bound else "straddles")
    reached = low > bound if kind == "greater" else low >= bound
    return "claim" if reached else ("below" if high < bound else "straddles")


def verdict(claim: dict, measured: Measured, full_budget: bool) -> tuple[str, str]:
    """(verdict, the rule that decided it, in words)."""
    rule = claim["rule"]
    kind = rule["kind"]
    bound = 0.0 if kind == "greater" else float(rule["value"])
    want = {
        "match": f"the 95% interval holds {bound:g}",
        "at_least": f"the 95% interval lies at or above {bound:g}",
        "at_most": f"the 95% interval lies at or below {bound:g}",
        "greater": "the 95% interval of the difference lies above 0",
    }[kind]
    side = _side(kind, bound, measured.low, measured.high)
    if side == "claim":
        return REPRODUCED, f"reproduced: {want}"
    if side == "straddles":
        return NOT_AT_BUDGET, f"wanted: {want}; it straddles {bound:g}, too few seeds or updates to decide"
    training = "either" if kind == "greater" else MEASURES[claim["measure"]].training
    towards = training == "either" or (training == "raises") == (side == "below")
    if towards and not full_budget:
        return NOT_AT_BUDGET, f"wanted: {want}; it lies {side}, and more updates than these could move it there"
    reason = "at the paper's budget" if full_budget else "and more updates cannot move it back"
    return CONTRADICTED, f"wanted: {want}; it lies {side}, {reason}"


def score(claims: list[dict], tables: dict[str, dict[str, pd.DataFrame]]) -> list[dict]:
    """One report row per claim; ``tables`` maps each claim id to its experiment's tables (by table name)."""
    rows = []
    for claim in claims:
        frames = tables[claim["id"]]
        measured = measure(claim, frames)
        spent, full = budget(claim, frames["runs"])
        decided, rule = verdict(claim, measured, full)
        source = f"{claim['paper']}, {claim['source']}"
        if claim.get("unconfirmed"):
            source += f" (unconfirmed: {claim['unconfirmed']})"
        rows.append(
            {
                "claim": f"{claim['id']}: {claim['statement']}",
                "source": source,
                "published": claim["published"],
                "measured": f"{MEASURES[claim['measure']].describe}: {measured.text}",
                "budget": spent,
                "verdict": decided,
                "rule": rule,
            }
        )
    return rows


REPORT_COLUMNS = ("claim", "source", "published", "measured", "budget", "verdict", "rule")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report(title: str, rows: list[dict]) -> str:
    """The reproduction report: a markdown table, one claim a row, every number from the claims file or tables."""
    lines = [
        f"# Reproduction: {title}",
        "",
        "Intervals are 95%: Wilson score for shares of seeds, Newcombe's hybrid score for differences of shares, a "
        f"percentile bootstrap ({BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}) for medians. Verdicts and "
        "their rules: rnngrad.reproduce. Published values: config/reproduce/published.yaml.",
        "",
        "| " + " | ".join(REPORT_COLUMNS) + " |",
        "|" + "---|" * len(REPORT_COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(row[key]) for key in REPORT_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(
    published: str | Path, claim_tables: dict[str, str | Path], title: str, out_paths: list[str | Path]
) -> str:
    """Score each claim (id -> its experiment's tables folder) and write the same report to every path."""
    from rnngrad.tables import read_tables

    all_claims = load_published(published)
    unknown = sorted(set(claim_tables) - set(all_claims))
    if unknown:
        raise ClaimError(f"claims {unknown} are not in {published}; have {sorted(all_claims)}")
    claims = [all_claims[name] for name in claim_tables]
    tables = {
        claim["id"]: read_tables(claim_tables[claim["id"]], MEASURES[claim["measure"]].tables) for claim in claims
    }
    text = report(title, score(claims, tables))
    for path in out_paths:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return text
