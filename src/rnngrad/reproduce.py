"""Score published claims against an experiment's tables: a measured value with its interval, the budget spent
against the paper's, the power of the seeds run, and a verdict decided by a stated rule, raw and adjusted for the
claim's family.

A claim (config/reproduce/published.yaml) names the runs it is about (``select``: column -> value on the runs
table), a per-run ``measure`` (see :data:`MEASURES`), the published value or statement, the paper's budget, its
``family`` (a figure or a section) and a ``rule``. Shares of seeds get Wilson score intervals, a contrast of two
shares ("A above B", "A comparable to B") Newcombe's hybrid score interval, and medians the exact order-statistic
(binomial) interval with its real coverage: a median of fewer than 6 values cannot reach 95%, and says so.

Verdicts (each report row writes out the rule that decided it):
- the interval lies wholly on the claim's side -> reproduced, except a claim that something fails (``failure``):
  below the paper's budget an untrained model and one that cannot learn look alike, so it is reproduced only at the
  paper's budget or beside its positive control (``control``: a claim of the same report about a model that should
  learn, same task and lengths, no more updates) that is itself reproduced; likewise two shares found equivalent
  when no run of either arm succeeded (two models that have not learned look alike below the paper's budget);
- it lies wholly on the other side -> contradicted at the paper's budget; below it, contradicted only where more
  training cannot move the measure back (a share of runs that stop once solved can only rise); else not reproduced
  at this budget;
- it straddles the claim's bound, or its coverage cannot reach 95% -> not reproduced at this budget.
The budget of a claim is the smallest over every run of every arm it compares. Claims of one family in a report are
adjusted by Holm's step-down (the intervals recomputed at level 0.05 / m, 0.05 / (m - 1), ...). A sensitivity line
gives the verdict with the success threshold halved and doubled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import yaml

from rnngrad import tasks
from rnngrad.io import atomic_write, read_json

ALPHA = 0.05  # every interval is 1 - ALPHA (two-sided) before Holm's adjustment
POWER_TARGET = 0.8
MAX_SEEDS = 200  # the largest number of seeds an arm `seeds_needed` looks at
SENSITIVITY = (0.5, 2.0)  # the success threshold halved and doubled
REPRODUCED, NOT_AT_BUDGET, CONTRADICTED = "reproduced", "not reproduced at this budget", "contradicted"
RULE_KINDS = ("at_least", "at_most", "greater", "equivalent", "any")
CONTRASTS = ("greater", "equivalent")  # rules comparing the claimed runs with others (``than``)
EXTREMES = {"longest": "max", "shortest": "min"}  # select values: the largest or smallest value of that column


class ClaimError(ValueError):
    """A claim that cannot be scored (bad field, no run matches, a degenerate value); the message names it."""


def z_of(level: float) -> float:
    """The normal quantile of a two-sided interval at confidence ``level``."""
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def wilson(successes: int, n: int, level: float = 1 - ALPHA) -> tuple[float, float]:
    """Wilson score interval for a share of ``successes`` out of ``n`` (Wilson 1927)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    low, high = wilson_bounds(np.array([successes]), n, level)
    return float(low[0]), float(high[0])


def wilson_bounds(successes: np.ndarray, n: int, level: float = 1 - ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Wilson bounds for an array of success counts out of ``n`` (the power sums need every count at once)."""
    z = z_of(level)
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # at 0 and n the closed form's bound is exactly 0 or 1; rounding must not move it off
    low = np.where(successes == 0, 0.0, np.maximum(0.0, centre - half))
    high = np.where(successes == n, 1.0, np.minimum(1.0, centre + half))
    return low, high


def newcombe(k1, n1: int, k2, n2: int, level: float = 1 - ALPHA):
    """Interval for p1 - p2 by Newcombe's hybrid score method (1998, method 10), from the two Wilson intervals:
    it stays inside [-1, 1] and behaves at 0 and n successes, where the Wald interval does not. Counts may be
    arrays (broadcast against each other)."""
    k1, k2 = np.asarray(k1), np.asarray(k2)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson_bounds(k1, n1, level), wilson_bounds(k2, n2, level)
    d = p1 - p2
    low, high = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


def binomial_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])


def order_statistic_interval(values, level: float = 1 - ALPHA) -> tuple[float, float, float]:
    """(low, high, coverage): the exact distribution-free interval [x_(j), x_(n+1-j)] for a median, j the largest
    rank whose coverage 1 - 2 P(Binomial(n, 1/2) < j) is at least ``level``. When even [min, max] falls short
    (n < 6 at 95%), it is [min, max] with its real coverage below ``level``."""
    values = np.sort(np.asarray(values, dtype=float))
    n = len(values)
    if n == 0 or np.isnan(values).any():
        raise ValueError(f"order_statistic_interval: need values that are not NaN, got {values}")
    tail = np.cumsum(binomial_pmf(n, 0.5))  # P(B <= i)
    j = 1
    while j + 1 <= (n + 1) // 2 and 1 - 2 * tail[j] >= level:  # rank j + 1 still covers
        j += 1
    return float(values[j - 1]), float(values[n - j]), float(1 - 2 * tail[j - 1])


def seeds_for_coverage(level: float = 1 - ALPHA) -> int:
    """The fewest values whose [min, max] covers the median with probability ``level`` (6 at 95%)."""
    return next(n for n in range(1, 64) if 1 - 2 * 0.5**n >= level)


# ----- per-run measures -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Values:
    """A measure's per-run values, what was dropped and why, and the lengths it was read at."""

    values: pd.Series
    dropped: dict[str, str]
    lengths: str


@dataclass(frozen=True)
class Measure:
    """A per-run value read from an experiment's tables. ``statistic``: share (of runs where it is true) or
    median. ``values(tables, runs, params, criteria, factor)``: ``factor`` scales the success threshold (the
    sensitivity line); None where the measure has no threshold."""

    statistic: str
    tables: tuple[str, ...]
    values: Callable[..., Values]
    describe: str
    threshold: bool  # whether the measure has a success threshold to vary


def _lengths(runs: pd.DataFrame) -> str:
    return "T = " + ", ".join(f"{t:g}" for t in sorted(runs["T"].unique()))


def tolerance_scaled(task: str, criterion: dict, factor: float) -> dict:
    """The task's success criterion with the error it tolerates times ``factor``: ``max_errors`` for the errors
    criterion; for the metric criterion 1 - the accuracy threshold, or the adding task's MSE fraction."""
    if criterion["criterion"] == "errors":
        return {**criterion, "max_errors": criterion["max_errors"] * factor}
    key = tasks.get(task).SUCCESS_KEY
    threshold = criterion["threshold"]
    if key == "solved_accuracy":
        return {**criterion, "threshold": 1 - (1 - threshold) * factor}
    if key == "solved_mse_fraction":
        return {**criterion, "threshold": threshold * factor}
    raise ClaimError(f"task {task}: no tolerance to scale in its success key {key}")


def _criterion(criteria: dict, task: str, factor: float) -> dict:
    if task not in criteria:
        raise ClaimError(f"no success criterion for task {task!r}; given: {criteria}")
    return tolerance_scaled(task, criteria[task], factor)


def _solved(tables, runs, params, criteria, factor) -> Values:
    """Whether each run solved its task at its final evaluation (a diverged run did not). The runs table's own
    column at factor 1, else the criterion with its tolerance scaled, on the run's final metric and error share."""
    frame = runs.set_index("run_id")
    if factor == 1:
        missing = frame.index[frame["solved"].isna()]
        if len(missing):
            raise ClaimError(f"run {missing[0]}: solved is missing (NaN); NaN never counts as solved")
        return Values(frame["solved"].astype(bool), {}, _lengths(runs))
    solved = {
        run: row["status"] == "completed"
        and tasks.reached(
            row["task"], _criterion(criteria, row["task"], factor), row["final_metric"],
            row["final_error_rate"], row["baseline_loss"],
        )
        for run, row in frame.iterrows()
    }  # fmt: skip
    return Values(pd.Series(solved, dtype=bool), {}, _lengths(runs))


def _solved_at_every_length(tables, runs, params, criteria, factor) -> Values:
    """Whether each run meets the success criterion at every length it was tested at (the lengths table: its
    trained test set and every extra ``eval_lengths``): "the same trained model" made no errors at each. A run
    without a final test (diverged) meets it nowhere."""
    lengths = tables["lengths"]
    rows = lengths[lengths["run_id"].isin(runs["run_id"])]
    if factor != 1:
        rows = rows.assign(
            solved=[
                tasks.reached(task, _criterion(criteria, task, factor), metric, error, baseline)
                for task, metric, error, baseline in zip(
                    rows["task"], rows["metric"], rows["error_rate"], rows["baseline_loss"], strict=True
                )
            ]
        )
    every = rows.groupby("run_id")["solved"].all().reindex(runs["run_id"]).fillna(False).astype(bool)
    tested = ", ".join(f"{n:g}" for n in sorted(rows["length"].unique()))
    return Values(every, {}, f"tested at lengths {tested}")


def _loss_ratio(tables, runs, params, criteria, factor) -> Values:
    """Final test loss over the memoryless baseline's; a diverged run (NaN or Inf loss) counts as +Inf."""
    ratio = runs.set_index("run_id").eval("final_loss / baseline_loss")
    return Values(ratio.where(np.isfinite(ratio), np.inf), {}, _lengths(runs))


def _dldh_rate(tables, runs, params, criteria, factor) -> Values:
    """Per-step log growth of ||dL_t/dh_k|| with the distance t - k, at training step ``params['step']``: the slope
    of a least-squares line through log ||dL_t/dh_k|| against t - k for the last target t (negative: it decays
    exponentially as it travels back). A run with no rows at that step is dropped, and the row says so."""
    gradients = tables["gradients"]
    step = params["step"]
    rows = gradients[(gradients["step"] == step) & gradients["run_id"].isin(runs["run_id"])]
    rows = rows[rows["t"] == rows.groupby("run_id")["t"].transform("max")]
    rates, dropped = {}, {}
    for run in runs["run_id"]:
        by_distance = rows[rows["run_id"] == run].groupby("distance")["dLdh_norm"].mean()
        if by_distance.empty:
            dropped[run] = f"no gradient rows at step {step}"
            continue
        finite = by_distance[(by_distance > 0) & np.isfinite(by_distance)]
        if len(finite) < 2:
            raise ClaimError(f"run {run}: {len(finite)} finite positive ||dL/dh_k|| at step {step}; a slope needs 2")
        rates[run] = np.polyfit(finite.index.to_numpy(float), np.log(finite.to_numpy()), 1)[0]
    return Values(pd.Series(rates, dtype=float), dropped, f"{_lengths(runs)}, step {step}")


MEASURES = {
    "solved": Measure("share", ("runs",), _solved, "share of seeds that solved the task", True),
    "solved_at_every_length": Measure(
        "share",
        ("runs", "lengths"),
        _solved_at_every_length,
        "share of seeds that succeed at every tested length",
        True,
    ),
    "loss_ratio": Measure("median", ("runs",), _loss_ratio, "final test loss / the memoryless baseline's loss", False),
    "dldh_rate": Measure("median", ("runs", "gradients"), _dldh_rate, "slope of log ||dL/dh_k|| per step back", False),
}


# ----- claims -----------------------------------------------------------------------------------------------------

CLAIM_KEYS = {"id", "paper", "source", "statement", "published", "measure", "select", "rule", "budget", "family"}
OPTIONAL_KEYS = {"params", "unconfirmed", "failure", "control", "power", "published_value"}
# A number the paper's text states (``published_value``), put beside the measured one (:func:`published_numbers`):
# its kind -> its keys and the measure whose runs it is compared with.
PUBLISHED_KINDS = {
    "share": ({"successes", "runs"}, "solved"),  # k of n runs succeeded
    "errors_at_lengths": ({"errors", "sequences", "lengths"}, "solved_at_every_length"),  # a model's errors a length
}


def _check_claim(claim: dict) -> None:
    name = claim.get("id", "?")
    missing, extra = CLAIM_KEYS - set(claim), set(claim) - CLAIM_KEYS - OPTIONAL_KEYS
    if missing or extra:
        raise ClaimError(f"claim {name}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
    if claim["measure"] not in MEASURES:
        raise ClaimError(f"claim {name}: measure {claim['measure']!r}; allowed: {sorted(MEASURES)}")
    rule = claim["rule"]
    kind = rule.get("kind")
    if kind not in RULE_KINDS:
        raise ClaimError(f"claim {name}: rule kind {kind!r}; allowed: {list(RULE_KINDS)}")
    wanted = {"at_least": {"value"}, "at_most": {"value"}, "greater": {"than"}, "equivalent": {"than", "margin"}}
    if set(rule) - {"kind"} != wanted.get(kind, set()):
        raise ClaimError(f"claim {name}: rule {kind} takes {sorted(wanted.get(kind, set())) or 'no other key'}")
    share = MEASURES[claim["measure"]].statistic == "share"
    if not share and kind in (*CONTRASTS, "any"):
        raise ClaimError(f"claim {name}: rule {kind} needs a share measure; {claim['measure']} is a median")
    if share:
        power = claim.get("power") or {}
        needs = {"claimed", "other", "basis"} if kind in CONTRASTS else {"claimed", "basis"}
        if set(power) != needs:
            raise ClaimError(f"claim {name}: power needs {sorted(needs)} (the effect it is powered for), got {power}")
    if claim.get("control") is not None and not claim.get("failure"):
        raise ClaimError(f"claim {name}: control is for a failure claim (failure: true)")
    if "published_value" in claim:
        _check_published_value(name, claim["measure"], claim["published_value"])


def _check_published_value(name: str, measure_name: str, value: dict) -> None:
    kind = value.get("kind")
    if kind not in PUBLISHED_KINDS:
        raise ClaimError(f"claim {name}: published_value kind {kind!r}; allowed: {sorted(PUBLISHED_KINDS)}")
    keys, compared_with = PUBLISHED_KINDS[kind]
    if set(value) - {"kind"} != keys:
        given = sorted(set(value) - {"kind"})
        raise ClaimError(f"claim {name}: published_value {kind} takes {sorted(keys)}, got {given}")
    if measure_name != compared_with:
        raise ClaimError(
            f"claim {name}: published_value {kind} is compared with measure {compared_with}, not {measure_name}"
        )
    counts = [value["successes"], value["runs"]] if kind == "share" else [value["errors"], value["sequences"]]
    if not all(isinstance(n, int) and n >= 0 for n in counts) or counts[0] > counts[1] or counts[1] == 0:
        raise ClaimError(f"claim {name}: published_value {kind}: counts {counts} must be 0 <= k <= n, n > 0")


def load_published(path: str | Path) -> dict[str, dict]:
    """The published claims by id, each checked for its keys, measure, rule, power and control (ClaimError naming
    the claim)."""
    data = yaml.safe_load(Path(path).read_text())
    claims = {}
    for claim in data["claims"]:
        _check_claim(claim)
        if claim["id"] in claims:
            raise ClaimError(f"claim {claim['id']}: defined twice")
        claims[claim["id"]] = claim
    for claim in claims.values():
        if claim.get("control") is not None and claim["control"] not in claims:
            raise ClaimError(f"claim {claim['id']}: control {claim['control']!r} is not a claim of {path}")
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


def arms(claim: dict, runs: pd.DataFrame) -> list[pd.DataFrame]:
    """The runs a claim compares: the claimed ones, and for a contrast the others (``than``), taken at the lengths
    the claimed side has where the claim picks its own lengths (``longest`` / ``shortest``)."""
    chosen = select_runs(runs, claim["select"], claim["id"])
    if claim["rule"]["kind"] not in CONTRASTS:
        return [chosen]
    than = claim["rule"]["than"]
    other_select = {**claim["select"], **than}
    for column, value in claim["select"].items():
        if _extreme(value) and column not in than:
            other_select[column] = sorted(chosen[column].unique().tolist())
    return [chosen, select_runs(runs, other_select, claim["id"])]


@dataclass(frozen=True)
class Measured:
    """A claim's statistic at one confidence level: value and interval, the coverage the interval really has (a
    median's can fall short of the level), the share counts of each arm, and the words that say what was counted."""

    value: float
    low: float
    high: float
    coverage: float
    level: float
    counts: tuple[tuple[int, int], ...]
    n: int  # runs used on the claimed side
    text: str


def _described(values: Values, selected: int) -> str:
    used = f"{len(values.values)} of {selected} runs used"
    if values.dropped:
        reasons = "; ".join(f"{run}: {why}" for run, why in values.dropped.items())
        used += f" (dropped: {reasons})"
    return f"{used}; {values.lengths}"


def _share_text(k: int, n: int, level: float) -> str:
    low, high = wilson(k, n, level)
    return f"{k}/{n} = {k / n:.2f} [{low:.2f}, {high:.2f}]"


def measure(
    claim: dict, tables: dict[str, pd.DataFrame], level: float = 1 - ALPHA, criteria: dict | None = None,
    factor: float = 1.0,
) -> Measured:  # fmt: skip
    """The claim's statistic over its runs, with its interval at ``level`` and a line saying what was counted;
    ``factor`` scales the success threshold (needs the config's ``criteria``)."""
    spec = MEASURES[claim["measure"]]
    params = claim.get("params", {})
    sides = []
    for runs in arms(claim, tables["runs"]):
        try:
            values = spec.values(tables, runs, params, criteria or {}, factor)
        except ClaimError as err:
            raise ClaimError(f"claim {claim['id']}: {err}") from err
        if values.values.empty:
            raise ClaimError(f"claim {claim['id']}: measure {claim['measure']} {params or ''} has no value for the "
                             f"{len(runs)} runs selected ({_described(values, len(runs))})")  # fmt: skip
        if values.values.isna().any():
            run = values.values.index[values.values.isna()][0]
            raise ClaimError(f"claim {claim['id']}: run {run}: measure {claim['measure']} is NaN")
        sides.append((values, len(runs)))
    (claimed, selected), kind = sides[0], claim["rule"]["kind"]
    if spec.statistic == "share":
        counts = tuple((int(v.values.sum()), len(v.values)) for v, _ in sides)
        (k1, n1) = counts[0]
        if kind in CONTRASTS:
            (k2, n2) = counts[1]
            low, high = newcombe(k1, n1, k2, n2, level)
            value = k1 / n1 - k2 / n2
            text = (
                f"{_share_text(k1, n1, level)} ({_described(claimed, selected)}) vs {_share_text(k2, n2, level)} "
                f"({_described(*sides[1])}); difference {value:+.2f} [{low:+.2f}, {high:+.2f}]"
            )
        else:
            low, high = wilson(k1, n1, level)
            value = k1 / n1
            text = f"{_share_text(k1, n1, level)}; {_described(claimed, selected)}"
        return Measured(value, low, high, level, level, counts, n1, text)
    values = claimed.values.to_numpy(float)
    low, high, coverage = order_statistic_interval(values, level)
    value = float(np.median(values))
    note = f"{coverage:.1%} coverage" if coverage >= level else (
        f"[min, max] covers {coverage:.1%} only: {len(values)} runs cannot reach {level:.0%}"
    )  # fmt: skip
    text = f"median {value:.3g} [{low:.3g}, {high:.3g}] ({note}); {_described(claimed, selected)}"
    return Measured(value, low, high, coverage, level, (), len(values), text)


# ----- budget, power and verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    updates: int  # the fewest updates any compared run was allowed
    sequences: int  # the fewest sequences (updates x batch) any compared run was allowed
    full: bool  # whether that is at least the paper's (False where the paper's budget is not known)
    text: str


def budget(claim: dict, runs: pd.DataFrame) -> Budget:
    """The smallest budget of any run of any arm the claim compares (updates a run may take, and sequences), used
    updates alongside, against the paper's."""
    compared = pd.concat(arms(claim, runs))
    allowed = compared["steps"].astype(int)
    sequences = int((allowed * compared["batch_size"].astype(int)).min())
    updates = int(allowed.min())
    used = compared["steps_done"].astype(int)
    ours = (
        f"at least {updates:,} updates ({sequences:,} sequences) allowed to each of the {len(compared)} runs "
        f"compared; used {used.min():,} to {used.max():,}"
    )
    paper = claim["budget"]
    if paper.get("updates") is None:
        return Budget(updates, sequences, False, f"{ours}; paper: {paper.get('note', 'not stated')}")
    paper_sequences = paper["updates"] * paper["batch"]
    text = f"{ours}; paper: {paper['updates']:,} x {paper['batch']} = {paper_sequences:,}"
    return Budget(updates, sequences, sequences >= paper_sequences and updates >= paper["updates"], text)


def _passes(kind: str, rule: dict, low, high, k=None):
    """Whether the interval (arrays allowed) lies wholly on the claim's side."""
    if kind == "at_least":
        return low >= rule["value"]
    if kind == "at_most":
        return high <= rule["value"]
    if kind == "greater":
        return low > 0
    if kind == "equivalent":
        return (low >= -rule["margin"]) & (high <= rule["margin"])
    return k >= 1  # any


def side(kind: str, rule: dict, measured: Measured) -> str:
    """Where the interval lies: 'claim', 'other' (wholly on the other side) or 'straddles' the bound."""
    low, high = measured.low, measured.high
    if _passes(kind, rule, low, high, measured.counts[0][0] if measured.counts else None):
        return "claim"
    other = {
        "at_least": high < rule.get("value", 0),
        "at_most": low > rule.get("value", 0),
        "greater": high < 0,
        "equivalent": low > rule.get("margin", 0) or high < -rule.get("margin", 0),
        "any": True,  # no run succeeded
    }[kind]
    return "other" if other else "straddles"


def power(claim: dict, n_claimed: int, n_other: int | None = None, level: float = 1 - ALPHA) -> float:
    """Probability that the claim's rule says reproduced (its interval on the claim's side) when the true shares
    are the effect it declares (``power: claimed, other``), with these numbers of seeds: exact, by summing over
    every outcome of the binomial counts."""
    kind, rule, effect = claim["rule"]["kind"], claim["rule"], claim["power"]
    p1 = binomial_pmf(n_claimed, effect["claimed"])
    k1 = np.arange(n_claimed + 1)
    if kind == "any":
        return float(1 - p1[0])
    if kind not in CONTRASTS:
        low, high = wilson_bounds(k1, n_claimed, level)
        return float(p1[_passes(kind, rule, low, high)].sum())
    n_other = n_claimed if n_other is None else n_other
    p2 = binomial_pmf(n_other, effect["other"])
    low, high = newcombe(k1[:, None], n_claimed, np.arange(n_other + 1)[None, :], n_other, level)
    return float((np.outer(p1, p2) * _passes(kind, rule, low, high)).sum())


def seeds_needed(claim: dict, target: float = POWER_TARGET) -> int | None:
    """The fewest seeds an arm (equal on both sides of a contrast) for ``target`` power; None past MAX_SEEDS."""
    return next((n for n in range(1, MAX_SEEDS + 1) if power(claim, n) >= target), None)


def _effect_text(effect: dict) -> str:
    """The true shares a claim is powered for: the claimed arm's, and the other arm's for a contrast."""
    return f"{effect['claimed']:g}" + (f" vs {effect['other']:g}" if "other" in effect else "")


def power_text(claim: dict, measured: Measured, family_size: int) -> str:
    """The power of the seeds run against the declared effect (before Holm's adjustment), or for a median the runs
    a 95% interval needs, and the runs the first step of Holm's adjustment in a family of this size needs."""
    if not measured.counts:
        holm = seeds_for_coverage(1 - ALPHA / family_size)
        return (
            f"median: a 95% interval needs at least {seeds_for_coverage()} runs, the first Holm step in a family of "
            f"{family_size} at least {holm}"
        )
    effect = claim["power"]
    ns = [n for _, n in measured.counts]
    achieved = power(claim, *ns)
    needed = seeds_needed(claim)
    shares = _effect_text(effect)
    need = f"{needed} a side" if needed else f"more than {MAX_SEEDS} a side"
    return f"{achieved:.2f} at true shares {shares} ({effect['basis']}), before Holm; 80% needs {need}"


@dataclass(frozen=True)
class Judged:
    verdict: str
    reason: str


def _can_move_back(claim: dict, runs: pd.DataFrame) -> bool:
    """Whether more training could move a measure lying on the other side back towards the claim. Only a share of
    solved runs that all stopped once solved (``solved_at`` set) is monotone: it can only rise."""
    kind = claim["rule"]["kind"]
    if claim["measure"] != "solved" or kind in CONTRASTS:
        return True
    solved = runs[runs["solved"].astype(bool)]
    if "solved_at" not in runs or solved["solved_at"].isna().any():
        return True  # a run solved at its last evaluation may lose it with more training
    return kind != "at_most"  # a rising share can reach at_least / any bounds, never come back under at_most


def wanted(claim: dict, level: float) -> str:
    rule, pct = claim["rule"], f"{100 * level:.2f}".rstrip("0").rstrip(".") + "%"
    return {
        "at_least": f"the {pct} interval lies at or above {rule.get('value', 0):g}",
        "at_most": f"the {pct} interval lies at or below {rule.get('value', 0):g}",
        "greater": f"the {pct} interval of the difference lies above 0",
        "equivalent": f"the {pct} interval of the difference lies within +-{rule.get('margin', 0):g}",
        "any": "at least one run succeeds",
    }[rule["kind"]]


def judge(
    claim: dict, measured: Measured, spent: Budget, runs: pd.DataFrame, control: Judged | None, control_ok: str
) -> Judged:  # fmt: skip
    """The verdict of one measurement by the module docstring's rules. ``control``: the positive control's raw
    verdict where the claim names one in this report; ``control_ok``: why that control does not count, or ''."""
    want = wanted(claim, measured.level)
    if measured.coverage < measured.level:
        needed = seeds_for_coverage(measured.level)
        return Judged(NOT_AT_BUDGET, f"wanted: {want}; {measured.n} runs cannot give that interval ({needed} needed)")
    where = side(claim["rule"]["kind"], claim["rule"], measured)
    if where == "straddles":
        return Judged(NOT_AT_BUDGET, f"wanted: {want}; it straddles the bound, too few seeds or updates to decide")
    if where == "claim":
        untrained = claim["rule"]["kind"] == "equivalent" and measured.counts and not any(k for k, _ in measured.counts)
        if untrained and not spent.full:
            return Judged(
                NOT_AT_BUDGET,
                f"{want}, but no run of either arm succeeded: below the paper's budget two models that have not "
                "learned look alike",
            )
        if not claim.get("failure") or spent.full:
            return Judged(REPRODUCED, f"reproduced: {want}")
        if control is None:
            why = "no positive control in this report"
        elif control_ok:
            why = f"its control {claim['control']} {control_ok}"
        elif control.verdict != REPRODUCED:
            why = f"its control {claim['control']} is {control.verdict}"
        else:
            return Judged(REPRODUCED, f"reproduced: {want}, and its positive control {claim['control']} learned")
        return Judged(
            NOT_AT_BUDGET,
            f"{want}, but a failure below the paper's budget counts only beside a positive control that learns ({why})",
        )
    if spent.full:
        return Judged(CONTRADICTED, f"wanted: {want}; it lies on the other side at the paper's budget")
    if _can_move_back(claim, runs):
        return Judged(NOT_AT_BUDGET, f"wanted: {want}; it lies on the other side, and more updates could move it")
    return Judged(CONTRADICTED, f"wanted: {want}; it lies on the other side, and more updates cannot move it back")


def _control_mismatch(mine: pd.DataFrame, theirs: pd.DataFrame, spent: Budget) -> str:
    """Why a positive control's runs (``theirs``) do not stand for the claim's runs (``mine``) ('' when they do):
    same task and lengths, and no more updates than the claim's runs had."""
    for column in ("task", "T"):
        if set(mine[column]) != set(theirs[column]):
            return f"ran {column} {sorted(set(theirs[column]))}, not {sorted(set(mine[column]))}"
    if int(theirs["steps"].max()) > spent.updates:
        return f"was allowed {int(theirs['steps'].max()):,} updates, more than the {spent.updates:,} here"
    return ""


def holm_levels(family_sides: dict[str, Callable[[float], str]]) -> dict[str, float]:
    """Holm's step-down over one family: each claim's level, 1 - 0.05 / m for the first step, where m claims are
    left; the claims whose interval at that level leaves its bound (on either side) are decided and removed, and
    the rest are tested at the next, wider step. ``family_sides[id](level)`` is the claim's side at a level."""
    remaining, levels = list(family_sides), {}
    while remaining:
        level = 1 - ALPHA / len(remaining)
        decided = [claim for claim in remaining if family_sides[claim](level) != "straddles"]
        for claim in remaining if not decided else decided:
            levels[claim] = level
        if not decided:
            break
        remaining = [claim for claim in remaining if claim not in decided]
    return levels


def score(claims: list[dict], tables: dict[str, dict[str, pd.DataFrame]], criteria: dict | None = None) -> list[dict]:
    """One report row per claim; ``tables`` maps each claim id to its experiment's tables (by table name),
    ``criteria`` the config's success criteria by task (for the sensitivity line)."""
    by_id = {claim["id"]: claim for claim in claims}
    raw = {c["id"]: measure(c, tables[c["id"]]) for c in claims}
    spent = {c["id"]: budget(c, tables[c["id"]]["runs"]) for c in claims}
    compared = {c["id"]: pd.concat(arms(c, tables[c["id"]]["runs"])) for c in claims}  # every arm's runs

    def judged(claim: dict, measured: Measured, verdicts: dict[str, Judged]) -> Judged:
        name, control = claim["id"], claim.get("control")
        mismatch = _control_mismatch(compared[name], compared[control], spent[name]) if control in by_id else ""
        return judge(claim, measured, spent[name], compared[name], verdicts.get(control), mismatch)

    verdicts: dict[str, Judged] = {}
    for claim in sorted(claims, key=lambda c: c.get("failure", False)):  # controls are judged before failures
        verdicts[claim["id"]] = judged(claim, raw[claim["id"]], verdicts)

    adjusted: dict[str, Judged] = {}
    families = sorted({c["family"] for c in claims})
    for family in families:
        members = [c for c in claims if c["family"] == family and c["rule"]["kind"] != "any"]
        sides = {
            c["id"]: (lambda level, c=c: side(c["rule"]["kind"], c["rule"], measure(c, tables[c["id"]], level)))
            for c in members
        }
        for name, level in holm_levels(sides).items():
            claim = by_id[name]
            adjusted[name] = judged(claim, measure(claim, tables[name], level), verdicts)

    rows = []
    for claim in claims:
        name, measured = claim["id"], raw[claim["id"]]
        source = f"{claim['paper']}, {claim['source']}"
        if claim.get("unconfirmed"):
            source += f" (unconfirmed: {claim['unconfirmed']})"
        family = [c["id"] for c in claims if c["family"] == claim["family"] and c["rule"]["kind"] != "any"]
        holm = adjusted.get(name)
        rows.append(
            {
                "id": name,
                "holm_verdict": holm.verdict if holm else verdicts[name].verdict,
                "claim": f"{name}: {claim['statement']}",
                "family": f"{claim['family']} ({len(family)} in this report)",
                "source": source,
                "published": claim["published"],
                "measured": f"{MEASURES[claim['measure']].describe}: {measured.text}",
                "budget": spent[name].text,
                "power": power_text(claim, measured, max(len(family), 1)),
                "verdict": verdicts[name].verdict,
                "holm": f"{holm.verdict} ({holm.reason})" if holm else "no test (an existence claim)",
                "sensitivity": sensitivity(claim, tables[name], criteria, judged, verdicts),
                "rule": verdicts[name].reason,
            }
        )
    return rows


def sensitivity(claim: dict, tables: dict, criteria: dict | None, judged, verdicts) -> str:
    """The raw verdict with the success threshold halved and doubled: the task's tolerance for a share of solved
    runs, the distance from the baseline for a loss ratio; none for a measure without a threshold."""
    spec = MEASURES[claim["measure"]]
    parts = []
    for factor in SENSITIVITY:
        if spec.threshold:
            if criteria is None:
                return "not computed (no success criteria given)"
            varied, measured = claim, measure(claim, tables, criteria=criteria, factor=factor)
        elif claim["measure"] == "loss_ratio":
            value = claim["rule"]["value"]
            bound = value * factor if claim["rule"]["kind"] == "at_most" else 1 - (1 - value) * factor
            varied = {**claim, "rule": {**claim["rule"], "value": bound}}
            measured = measure(varied, tables)
        else:
            return "no threshold to vary"
        parts.append(f"x{factor:g}: {judged(varied, measured, verdicts).verdict}")
    text = "; ".join(parts)
    runs = pd.concat(arms(claim, tables["runs"]))
    if spec.threshold and "solved_at" in runs and runs["solved_at"].notna().any():
        text += " (runs that stopped once solved are judged as they stopped: x0.5 asks more than they trained for)"
    return text


REPORT_COLUMNS = (
    "claim", "family", "source", "published", "measured", "budget", "power", "verdict", "holm", "sensitivity", "rule",
)  # fmt: skip


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report(title: str, rows: list[dict]) -> str:
    """The reproduction report: a markdown table, one claim a row, every number from the claims file or tables."""
    lines = [
        f"# Reproduction: {title}",
        "",
        "Intervals are 95% unless a row says otherwise: Wilson score for shares of seeds, Newcombe's hybrid score for "
        "differences of shares, the exact order-statistic interval for medians with its real coverage (fewer than "
        f"{seeds_for_coverage()} runs cannot reach 95%). power: the chance that this rule reproduces the claim with "
        "these seeds if the declared effect is true. holm: the verdict after Holm's step-down over the claims of the "
        "same family in this report. sensitivity: the verdict with the success threshold halved (x0.5) and doubled "
        "(x2). A claim that a model fails counts only at the paper's budget or beside a positive control that "
        "learns. Rules: rnngrad.reproduce. Published values: config/reproduce/published.yaml.",
        "",
        "| " + " | ".join(REPORT_COLUMNS) + " |",
        "|" + "---|" * len(REPORT_COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(row[key]) for key in REPORT_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rate_text(errors: int, n: int) -> str:
    low, high = wilson(errors, n)
    return f"{errors:,} of {n:,} wrong = {100 * errors / n:.3g}% [{100 * low:.3g}%, {100 * high:.3g}%]"


def _compare_share(claim: dict, tables: dict[str, pd.DataFrame], test_sequences: int | None) -> tuple[str, str]:
    """The paper's k of n runs beside the measured share of the claimed runs, and the difference (measured minus
    published) with Newcombe's interval."""
    value = claim["published_value"]
    k2, n2 = value["successes"], value["runs"]
    (k1, n1) = measure(claim, tables).counts[0]
    low, high = newcombe(k1, n1, k2, n2)
    return (
        f"{_share_text(k2, n2, 1 - ALPHA)} of runs",
        f"{_share_text(k1, n1, 1 - ALPHA)} of runs; measured minus published {k1 / n1 - k2 / n2:+.2f} "
        f"[{low:+.2f}, {high:+.2f}]",
    )


def _compare_errors_at_lengths(claim: dict, tables: dict, test_sequences: int | None) -> tuple[str, str]:
    """The paper's errors out of its sequences at each of its lengths, beside one measured model's: the run with
    no error at the most of those lengths (then the smallest largest error share, then its id), as the paper
    reports "the same trained model"; and at each length how many runs made no error. Only the single-length test
    sets (``eval_lengths``) count, not the mixed-length one a run was trained and judged on."""
    if test_sequences is None:
        raise ClaimError(f"claim {claim['id']}: published_value errors_at_lengths needs the test sets' size "
                         "(--test-sequences: the config's data.n_test)")  # fmt: skip
    value = claim["published_value"]
    runs = pd.concat(arms(claim, tables["runs"]))
    lengths = tables["lengths"]
    rows = lengths[lengths["run_id"].isin(runs["run_id"]) & ~lengths["trained"].astype(bool)]
    rows = rows[rows["length"].isin(value["lengths"])]
    if rows.empty:
        return _published_errors(value), f"not tested at any of those lengths ({_lengths(runs)})"
    errors = rows.assign(errors=(rows["error_rate"] * test_sequences).round().astype(int))
    by_run = errors.groupby("run_id").agg(clean=("errors", lambda e: int((e == 0).sum())), worst=("error_rate", "max"))
    best = by_run.sort_values(["clean", "worst"], ascending=[False, True], kind="stable").index[0]
    parts, untested = [], []
    for length in value["lengths"]:
        at = errors[errors["length"] == length]
        mine = at[at["run_id"] == best]["errors"]
        if mine.empty:
            untested.append(f"{length:g}")
            continue
        no_error = int((at["errors"] == 0).sum())
        parts.append(
            f"{length:g}: {_rate_text(int(mine.iloc[0]), test_sequences)}, no error in {no_error}/{len(runs)} runs"
        )
    if untested:
        parts.append(f"not tested at {', '.join(untested)}")
    return _published_errors(value), f"run {best}: " + "; ".join(parts)


def _published_errors(value: dict) -> str:
    lengths = ", ".join(f"{n:g}" for n in value["lengths"])
    return f"{_rate_text(value['errors'], value['sequences'])} at each of {lengths}"


COMPARISONS = {"share": _compare_share, "errors_at_lengths": _compare_errors_at_lengths}


def published_numbers(claims: list[dict], tables: dict, test_sequences: int | None = None) -> str:
    """The section that puts each number the papers' texts state (``published_value``) beside the measured one,
    both with 95% intervals (Wilson: shares of runs, shares of sequences wrong), and names the claims for which the
    paper gives only a figure or a statement without a number."""
    numbered = [claim for claim in claims if "published_value" in claim]
    lines = [
        "## Published numbers",
        "",
        "Where the paper's text states a number, the measured value beside it, each with its 95% interval (Wilson: "
        "shares of runs, shares of sequences wrong); the verdicts above are the claims' rules, not this comparison.",
        "",
    ]
    if numbered:
        lines += ["| claim | published | measured |", "|---|---|---|"]
        for claim in numbered:
            compare = COMPARISONS[claim["published_value"]["kind"]]
            paper, mine = compare(claim, tables[claim["id"]], test_sequences)
            lines.append(f"| {_cell(claim['id'])} | {_cell(paper)} | {_cell(mine)} |")
    others = [claim["id"] for claim in claims if "published_value" not in claim]
    if others:
        lines += [""] * bool(numbered) + [
            "No number in the paper's text to compare (a figure or a statement; the published column above says "
            f"which): {', '.join(others)}."
        ]
    return "\n".join(lines) + "\n"


TIERS = ("reduced", "long", "paper")  # budget tiers, smallest first (rnngrad.config.tier_config)


def verdict_records(rows: list[dict]) -> dict[str, dict]:
    """What a report's tier tells the others' budget ladders (verdicts.json): each claim's verdict, raw and after
    Holm, with what was measured and the budget spent."""
    keys = ("verdict", "holm_verdict", "measured", "budget")
    return {row["id"]: {key: row[key] for key in keys} for row in rows}


def ladder(tier: str, own: dict[str, dict], others: dict[str, str | Path], paper_cost: str = "") -> str:
    """The budget ladder: each claim's verdict after Holm at every tier, this report's and each other tier's
    (its verdicts.json, where that tier has been run), so a reader sees how a verdict moves with budget."""
    if tier not in TIERS:
        raise ClaimError(f"tier {tier!r} is unknown; allowed: {list(TIERS)}")
    columns = {name: read_json(path) for name, path in others.items() if name != tier and Path(path).is_file()}
    columns[tier] = own
    lines = [
        "## Budget ladder",
        "",
        f"Each claim's verdict after Holm at every budget tier (this report: {tier}), with the budget spent; "
        "'not run' where that tier's report does not exist. Tiers: reduced (minutes, CI), long (the papers' "
        "shortest lengths on one machine, about an hour), paper (the paper's budget, for a cluster)."
        + (f" {paper_cost}" if paper_cost else ""),
        "",
        "| claim | " + " | ".join(TIERS) + " |",
        "|" + "---|" * (len(TIERS) + 1),
    ]
    for claim in own:
        cells = [
            f"{columns[name][claim]['holm_verdict']} ({columns[name][claim]['budget']})"
            if claim in columns.get(name, {})
            else "not run"
            for name in TIERS
        ]
        lines.append("| " + " | ".join(_cell(text) for text in [claim, *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    published: str | Path, claim_tables: dict[str, str | Path], title: str, out_paths: list[str | Path],
    criteria: dict | None = None, tier: str = "reduced", verdicts_path: str | Path | None = None,
    other_tiers: dict[str, str | Path] | None = None, paper_cost: str = "", keep_tables: str | Path | None = None,
    test_sequences: int | None = None,
) -> str:  # fmt: skip
    """Score each claim (id -> its experiment's tables folder) and write the same report, with the published
    numbers beside the measured ones (:func:`published_numbers`; ``test_sequences``: the size of each test set)
    and its budget ladder (:func:`ladder`), to every path; this tier's verdicts to ``verdicts_path`` for the other
    tiers' ladders; with ``keep_tables``, a copy of the tables the verdicts read
    (``{keep_tables}/{experiment}/{table}.parquet``: small, so that a tier's results can be committed and scored
    again without its runs)."""
    from rnngrad.tables import read_tables

    all_claims = load_published(published)
    unknown = sorted(set(claim_tables) - set(all_claims))
    if unknown:
        raise ClaimError(f"claims {unknown} are not in {published}; have {sorted(all_claims)}")
    claims = [all_claims[name] for name in claim_tables]
    tables = {
        claim["id"]: read_tables(claim_tables[claim["id"]], MEASURES[claim["measure"]].tables) for claim in claims
    }
    rows = score(claims, tables, criteria)
    records = verdict_records(rows)
    sections = [
        report(title, rows),
        published_numbers(claims, tables, test_sequences),
        ladder(tier, records, other_tiers or {}, paper_cost),
    ]
    text = "\n".join(sections)
    for path in out_paths:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    if verdicts_path is not None:
        atomic_write(verdicts_path, lambda tmp: tmp.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n"))
    if keep_tables is not None:
        for claim in claims:
            source = Path(claim_tables[claim["id"]])
            for name in MEASURES[claim["measure"]].tables:
                data = (source / f"{name}.parquet").read_bytes()
                target = Path(keep_tables) / source.name / f"{name}.parquet"
                atomic_write(target, lambda tmp, data=data: tmp.write_bytes(data))
    return text


def power_table(published: str | Path, names: list[str] | None = None) -> str:
    """For each share claim: its declared effect and the seeds an arm needs for 80% power under its rule."""
    claims = load_published(published)
    lines = ["claim | rule | effect | seeds for 80% power | power at 5 | power at 10"]
    for name in names or list(claims):
        if name not in claims:
            raise ClaimError(f"claim {name} is not in {published}; have {sorted(claims)}")
        claim = claims[name]
        if MEASURES[claim["measure"]].statistic != "share":
            lines.append(f"{name} | {claim['rule']['kind']} | median | a 95% interval needs {seeds_for_coverage()}")
            continue
        effect = claim["power"]
        shares = _effect_text(effect)
        needed = seeds_needed(claim)
        lines.append(
            f"{name} | {claim['rule']['kind']} | {shares} | {needed or f'> {MAX_SEEDS}'} | "
            f"{power(claim, 5):.2f} | {power(claim, 10):.2f}"
        )
    return "\n".join(lines) + "\n"
