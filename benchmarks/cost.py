"""What `rnngrad cost`'s fits are worth, and what timing an event directly at a long length would take instead.

    python benchmarks/cost.py [--out cost.json]   (--tiny: H = 8, batch 4, 16 test sequences, one length an event)

For the longest shapes of the papers' configs, Arjovsky et al. 2016's adding task at the paper's budget (`rnngrad
tier config/reproduce/arjovsky2016.yaml paper`: the tanh RNN and the LSTM, H = 128, batch 20, a logging batch of
20, one Jacobian sample, 10,000 test sequences): each event of rnngrad.cost (training step, evaluation,
contributions, spectra) fitted as `rnngrad cost` fits it (rnngrad.cost.ShapeCosts, from the event's FIT_LENGTHS)
and timed directly (rnngrad.cost.measure) at lengths beyond its switch; their ratio; the CPU seconds of each timing
at the fit lengths and at the long ones (what the switch trades against: timing at L costs about one event at L).
All times are CPU seconds of this process (time.process_time), the least of repeats as `rnngrad cost` takes them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _machine import write

from rnngrad import config as configuration
from rnngrad.cost import EVENTS, FIT_LENGTHS, MIN_TIMED_SECONDS, ShapeCosts, measure, switch

CONFIG = "config/reproduce/arjovsky2016.yaml"
LONG = {"step": (750, 1024), "evaluation": (512, 750)}
CHECKED = {  # cell -> event -> the lengths beyond its switch where the fit is checked against a direct timing
    "rnn": LONG | {"contributions": (256, 512, 750), "spectra": (256, 512, 750)},
    "lstm": LONG | {"contributions": (256, 512), "spectra": (256, 512)},  # quadratic: 512 takes minutes
}
TINY = {event: (switch(event) + 1,) for event in EVENTS}


def shape_spec(model: str, tiny: bool) -> dict:
    """The adding task's spec of the cell at the paper's budget (its T is set by each timing)."""
    specs = configuration.expand(configuration.tier_config(configuration.load(CONFIG), "paper"))
    spec = next(s for s in specs if s["experiment"] == "adding" and s["model"] == model)
    return spec | ({"hidden": 8, "batch_size": 4, "log_batch": 4} if tiny else {})


def check(model: str, n_test: int, tiny: bool, folder: Path) -> dict:
    """The fit's timings and coefficients, then each event timed directly at each checked length."""
    spec = shape_spec(model, tiny)
    checked = TINY if tiny else CHECKED[model]
    costs = ShapeCosts(spec)
    for event, lengths in checked.items():
        for length in lengths:
            costs.plan(event, length)
    spent, repeat = {}, 0.0 if tiny else MIN_TIMED_SECONDS  # tiny: each event timed once

    def measured(spec, length, events, n_test, folder):  # rnngrad.cost.measure, its CPU time recorded
        start = time.process_time()
        result = measure(spec, length, events, n_test, folder, repeat)
        spent[length] = spent.get(length, 0.0) + time.process_time() - start
        return result

    costs.measure_all(measured, n_test, folder)
    fit_cpu = dict(spent)
    rows, direct_cpu = [], {}
    for length in sorted({length for lengths in checked.values() for length in lengths}):
        events = {event for event, at in checked.items() if length in at}
        start = time.process_time()
        direct = measure(spec, length, events, n_test, folder, repeat)
        direct_cpu[str(length)] = round(time.process_time() - start, 2)
        for event in (event for event in EVENTS if event in events):
            fitted = costs.cost(event, length)
            rows.append({"event": event, "L": length, "direct_s": round(direct[event], 5),
                         "fitted_s": round(fitted, 5), "ratio": round(fitted / direct[event], 3)})  # fmt: skip
    return {
        "cell": model,
        "H": spec["hidden"],
        "B": spec["batch_size"],
        "log_batch": spec["log_batch"],
        "jacobian_samples": spec["jacobian_samples"],
        "fit_timings_s": {str(n): {e: round(s, 5) for e, s in t.items()} for n, t in sorted(costs.timings.items())},
        "fit_timing_cpu_s": {str(n): round(s, 2) for n, s in sorted(fit_cpu.items())},  # the first: the warm-up
        "direct_timing_cpu_s": direct_cpu,  # every event checked at the length, timed directly
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="toy sizes, one length an event (a smoke test)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_test = 16 if args.tiny else configuration.tier_config(configuration.load(CONFIG), "paper")["data"]["n_test"]
    with tempfile.TemporaryDirectory() as tmp:
        shapes = [check(model, n_test, args.tiny, Path(tmp)) for model in ("rnn", "lstm")]
    write(
        args.out,
        {
            "benchmark": "cost",
            "config": CONFIG,
            "task": "adding",
            "n_test": n_test,
            "fit_lengths": {event: list(lengths) for event, lengths in FIT_LENGTHS.items()},
            "shapes": shapes,
        },
    )


if __name__ == "__main__":
    main()
