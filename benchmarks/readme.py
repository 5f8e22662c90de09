"""Print the README's Performance tables from the benchmarks' JSON files, each table naming its machine and the
command that measured it.

    python benchmarks/readme.py [benchmarks/results]

Reads groups.json, train_step-*.json and plan.json from the folder (those present), as the benchmarks write them
with --out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _machine import describe


def source(record: dict) -> str:
    return (
        f"Measured on {describe(record['machine'])}, {record['machine']['threads']} thread(s): `{record['command']}`."
    )


def groups_tables(record: dict) -> list[str]:
    lines = [source(record) + f" CPU time; start-up of a training job {record['startup_s']:.2f} s.", ""]
    lines += ["| shape | K | mode | run-steps/s, training only | ratio | full runs/s, start-up included | ratio |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        if row["mode"] == "can_batch":
            continue
        cells = [f"H = {row['H']}, B = {row['B']}, T = {row['T']}", str(row["K"]), row["mode"]]
        cells += [f"{row['pure_run_steps_per_s']:.0f}", f"{row['pure_ratio']:.2f}"]
        if "full_ratio" in row:
            cells += [f"{row['full_runs_per_s']:.3f} ({row['full_run_steps']} steps)", f"{row['full_ratio']:.2f}"]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    if record["sweep"]:
        lines += [
            "",
            "Shape rule (pure steps, batched group against one run, K = {}, T = 50):".format(record["sweep"][0]["K"]),
            "",
        ]
        lines += ["| H | B | hidden x batch_size | ratio |", "|---|---|---|---|"]
        lines += [f"| {row['H']} | {row['B']} | {row['cells']} | {row['ratio']:.2f} |" for row in record["sweep"]]
    return lines


def train_step_table(record: dict) -> list[str]:
    rows = {row["activation"]: row for row in record["rows"]}
    shape = f"H = {record['H']}, B = {record['B']}, T = {record['T']}"
    lines = [source(record) + f" {shape}, copy task, wall-clock medians.", ""]
    lines += ["| | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for label, key, unit in (
        ("rnngrad training step (forward, explicit BPTT backward, Adam)", "rnngrad_ms", " ms"),
        ("torch.nn.RNN, same shapes and readout", "torch_nn_rnn_ms", " ms"),
        ("rnngrad speed-up over torch.nn.RNN", "speedup_vs_torch", "x"),
        ("achieved GFLOP/s, rnngrad", "rnngrad_gflops", ""),
        ("a large float32 matmul, GFLOP/s", "matmul_gflops", ""),
        ("contribution logging at every step, ratio to a plain step", "log_contributions_every_step_ratio", "x"),
        ("a full logging event, ms", "log_all_ms", ""),
        (f"default cadence over a {record['run_steps']}-step run, ratio", "log_default_cadence_ratio", "x"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{row[key]}{unit}" for row in rows.values()) + " |")
    return lines


def plan_line(record: dict) -> list[str]:
    line = f"`snakemake -n` plans {record['config']} ({record['jobs']} jobs) in {record['plan_s']} s"
    if "default_noop_s" in record:
        line += f"; a finished default run re-checks in {record['default_noop_s']} s"
    return [source(record) + " " + line + " (wall time)."]


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    out = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        render = {"groups": groups_tables, "train_step": train_step_table, "plan": plan_line}[record["benchmark"]]
        out += [f"<!-- {path.name} -->", *render(record), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
