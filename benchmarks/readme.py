"""Write the tables of docs/performance.md from the benchmarks' JSON files, each table naming its machine and the
command that measured it.

    python benchmarks/readme.py [benchmarks/results] [--page docs/performance.md] [--check | --print]

Reads groups.json, train_step-*.json, plan.json, methods.json, fsync.json, cells.json, compiled.json, cost.json and
eval_memory.json
from the folder (those present), as the benchmarks write them with --out, and replaces, in the page, what lies between
``<!-- begin NAME.json ... -->`` and ``<!-- end NAME.json -->`` with NAME.json's tables; the prose around the blocks
is the page's own. --check changes nothing and fails if a block differs; --print prints the blocks instead.
"""

from __future__ import annotations

import argparse
import json
import re
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
    if record.get("limit"):
        lines += ["", *limit_table(record["limit"])]
    return lines


def limit_table(limit: dict) -> list[str]:
    """What bounds the batched ratio: the update's cost against K, its fit, and the ATen ops per update."""
    lines = [
        f"What bounds the batched ratio (pure steps, H = {limit['H']}, B = {limit['B']}, T = {limit['T']}; one run: "
        f"{limit['one_run_ms']} ms and {limit['one_run_aten_ops']} ATen ops a step):",
        "",
        "| K | group update, ms | one run's step beside it, ms | ratio | ATen ops per update | per run-step |",
        "|---|---|---|---|---|---|",
    ]
    for row in limit["rows"]:
        lines.append(
            f"| {row['K']} | {row['update_ms']} | {row['one_run_ms']} | {row['ratio']:.2f} | "
            f"{row['aten_ops_per_update']} | {row['aten_ops_per_run_step']} |"
        )
    lines += ["", f"Fit: update = {limit['per_update_ms']} ms + {limit['per_member_ms']} ms x K."]
    if limit["ceiling_ratio"] is not None:  # the one-run step beside each K moves with the machine's state
        steps = [row["one_run_ms"] for row in limit["rows"]]
        low, high = (step / limit["per_member_ms"] for step in (min(steps), max(steps)))
        lines[-1] += (
            f" One run's step over the per-member cost: {limit['ceiling_ratio']:.2f} with the median one-run step,"
            f" {low:.2f} to {high:.2f} over the one-run steps measured beside each K."
        )
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


def methods_table(record: dict) -> list[str]:
    lines = [source(record) + " CPU time, median block; ratios to a plain step (SGD, clip 1).", ""]
    lines += [
        "| shape | plain step | + regulariser | fresh data | fresh data, mixed lengths |",
        "|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        shape = f"{row['task']}, H = {row['H']}, B = {row['B']}, T = {row['T']}"
        ratios = [f"{row[f'{arm}_ratio']:.2f}x" for arm in ("regularizer", "fresh_data", "mixed_lengths")]
        lines.append(f"| {shape} | {row['plain_ms']:.2f} ms | " + " | ".join(ratios) + " |")
    if record.get("stacked"):
        lines += ["", *stacked_tables(record)]
    return lines


STACKED_LABELS = {"fig7": "Fig. 7", "fig7_mixed": "Fig. 7, mixed lengths", "irnn": "IRNN", "default": "default"}


def stacked_tables(record: dict) -> list[str]:
    """methods.json's stacked groups against one run alone, the per-step products, and the group's profile."""
    lines = [
        "Stacked groups (`groups.stack_methods`) against one run alone, every arm interleaved in the same run on a "
        "machine shared with another job (compare within a row); % of compute limit: FLOPs an update over its time "
        "and the 512x512 matmul's rate measured beside it (group / sequential alone / stacked alone):",
        "",
        "| group | members | group update, ms | per member, ms | alone, sequential, ms | alone, stacked (K = 1), ms | "
        "speed-up vs sequential | vs stacked K = 1 | MFLOP an update | matmul, GFLOP/s | % of compute limit | "
        "group's draw, ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["stacked"]:
        lengths = f"T in {row['train_lengths']}" if row["train_lengths"] else f"T = {row['T']}"
        arms = " + ".join(f"{arm} x {arm_row['members']}" for arm, arm_row in row["arms"].items())
        label = f"{STACKED_LABELS.get(row['name'], row['name'])}: {row['task']}, H = {row['H']}, B = {row['B']}, "
        label += f"{lengths}, {row['activation']}, {row['optimizer']} ({arms})"
        pct = row["compute_limit_pct"]
        cells = [label, str(row["members"]), f"{row['group_ms']:.1f}", f"{row['member_ms']:.2f}",
                 f"{row['alone_ms']:.2f}", f"{row['alone_stacked_ms']:.2f}", f"{row['speedup']:.2f}x",
                 f"{row['speedup_vs_stacked1']:.2f}x", f"{row['mean_flops_per_update'] / 1e6:.1f}",
                 f"{row['matmul_gflops']:.0f}", f"{pct['group']:.1f} / {pct['sequential']:.1f} / {pct['stacked1']:.1f}",
                 f"{row['group_draw_ms']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for row in record["stacked"]:
        if len(row["arms"]) > 1:
            names = " / ".join(row["arms"])
            sequential = " / ".join(f"{value:.2f}" for value in row["sequential_ms"].values())
            stacked = " / ".join(f"{value:.2f}" for value in row["stacked1_ms"].values())
            flops = " / ".join(f"{value / 1e6:.1f}" for value in row["flops_per_update"].values())
            lines.append(f"{STACKED_LABELS.get(row['name'], row['name'])}, each arm alone ({names}): sequential "
                         f"{sequential} ms, stacked {stacked} ms; {flops} MFLOP an update.")  # fmt: skip
    small = next((row["small_products"] for row in record["stacked"] if "small_products" in row), None)
    if small:
        lines += ["", "Fig. 7's per-step recurrent product, in the same interleaving:", ""]
        lines += ["| product | shapes | us a call | GFLOP/s | ATen ops a call |", "|---|---|---|---|---|"]
        for name, cell in small.items():
            lines.append(f"| {name} | {cell['shape']} | {cell['us_per_call']:.1f} | {cell['gflops']:.1f} | "
                         f"{cell['aten_ops_per_call']:g} |")  # fmt: skip
    profiled = record.get("fig7_profile")
    if profiled:
        phases = ", ".join(f"{name} {ms:.1f}" for name, ms in profiled["phases_ms_per_step"].items())
        lines += [
            "",
            f"Profile of Fig. 7's group update (torch.profiler, {profiled['steps']} updates): "
            f"{profiled['profiled_step_ms']:.1f} ms a step profiled against {profiled['unprofiled_step_ms']:.1f} ms "
            f"unprofiled, {profiled['aten_ops_per_step']} ATen ops a step ({profiled['aten_self_ms_per_step']:.1f} ms "
            f"of their self time); phases, ms a step: {phases}.",
            "",
            "| ATen op | self ms a step | calls a step | share of the profiled step |",
            "|---|---|---|---|",
        ]
        for op in profiled["top_ops"]:
            lines.append(f"| {op['op']} | {op['self_ms_per_step']:.2f} | {op['calls_per_step']:g} | "
                         f"{100 * op['share']:.1f}% |")  # fmt: skip
    return lines


def cells_table(record: dict) -> list[str]:
    setup = record["setup"]
    shape = f"H = {setup['H']}, B = {setup['B']}, T = {setup['T']}"
    lines = [source(record) + f" {shape}, copy task, Adam, wall-clock medians of calls taking turns.", ""]
    lines += ["| cell | training step | ratio to the vanilla RNN | logging event (generic path) |", "|---|---|---|---|"]
    for name, ms in record["train_step_ms"].items():
        log = record["log_event_ms"].get(f"{name}_generic")
        log_cell = f"{log:.1f} ms" if log is not None else ""
        lines.append(f"| {name} | {ms:.2f} ms | {record['train_step_ratio_to_rnn'][name]:.2f}x | {log_cell} |")
    ratio = record["generic_over_explicit_log_ratio"]
    lines += ["", f"The vanilla RNN's logging event by the generic path costs {ratio:.2f}x the explicit recursion's."]
    return lines


def fsync_line(record: dict) -> list[str]:
    line = (
        f"a {record['steps']}-step run on {record['filesystem']} makes {record['fsyncs_per_run']} fsyncs: "
        f"{record['run_seconds_with_fsync']:.2f} s against {record['run_seconds_without_fsync']:.2f} s without "
        f"({record['ratio']:.2f}x)"
    )
    return [source(record) + " " + line + " (wall time)."]


def compiled_tables(record: dict) -> list[str]:
    """Per shape: each candidate's updates/s, one run and per run in a group, first call, compute share, agreement."""
    lines = [source(record) + f" CPU time, median block; groups of {record['k']} runs; agreement: largest relative "
             f"parameter difference from the reference after {record['check_steps']} updates (one run / group).",
             ""]  # fmt: skip
    for row in record["rows"]:
        lines += [f"{row['task']}, H = {row['H']}, B = {row['B']}, T = {row['T']}, {row['activation']}, "
                  f"{row['optimizer']}{', Omega' if row['regularizer'] else ''}"
                  f"{', fresh data' if row['fresh_data'] else ''}: {row['flops_per_update'] / 1e6:.2f} MFLOP an "
                  f"update; a 512x512 matmul runs at {row['matmul_gflops']} GFLOP/s; drawing a batch "
                  f"{row['draw_ms']} ms (not in the candidates' times).", ""]  # fmt: skip
        lines += ["| candidate | updates/s, one run | per run, group | first call, s (one / group) | "
                  "% of compute limit (one / group) | agreement (one / group) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, cell in row["candidates"].items():
            first = cell["first_call_s"]
            first = "" if first is None else f"{first['one']:.2f} / {first['group']:.2f}"
            share = "" if cell["compute_share_pct"] is None else f"{cell['compute_share_pct']:.2f}"
            if "group_compute_share_pct" in cell:
                share += f" / {cell['group_compute_share_pct']:.2f}"
            agree = (
                "" if cell["agreement_one"] is None else f"{cell['agreement_one']:.1e} / {cell['agreement_group']:.1e}"
            )
            label = f"{name} ({cell['setting']})" if "setting" in cell else name
            lines.append(f"| {label} | {cell['one_updates_per_s']:.0f} | {cell['group_per_run_updates_per_s']:.0f} "
                         f"| {first} | {share} | {agree} |")  # fmt: skip
        for name, reason in row["skipped"].items():
            lines.append(f"| {name} | skipped: {reason} | | | | |")
        lines.append("")
    if record.get("cpp_build_s") is not None:
        lines.append(f"The C++ extension's build (load_inline, g++ through ninja): {record['cpp_build_s']} s.")
    if record["startup"]:
        lines += ["", "A fresh process's start to its first update (Pascanu's shape, one run), wall / CPU seconds:", ""]
        lines += ["| candidate | empty cache | with the cache the first left |", "|---|---|---|"]
        for name, rows in record["startup"].items():
            cold, warm = rows["cold"], rows["warm"]
            lines.append(f"| {name} | {cold['wall_s']} / {cold['cpu_s']} | {warm['wall_s']} / {warm['cpu_s']} |")
    return lines


def cost_tables(record: dict) -> list[str]:
    """Per cell: each event timed at its fit lengths; the fit against a direct timing beyond the switch; the CPU
    seconds each timing took."""
    fits = "; ".join(f"{event} {', '.join(map(str, lengths))}" for event, lengths in record["fit_lengths"].items())
    lines = [source(record) + f" CPU time (time.process_time), the least of repeats; {record['task']} task, "
             f"{record['n_test']:,} test sequences; fit lengths: {fits}.", ""]  # fmt: skip
    for shape in record["shapes"]:
        lengths = list(shape["fit_timings_s"])
        lines += [f"{shape['cell']}, H = {shape['H']}, B = {shape['B']}, logging batch {shape['log_batch']}, "
                  f"{shape['jacobian_samples']} Jacobian sample(s): seconds of each event at its fit lengths",
                  ""]  # fmt: skip
        lines += ["| event | " + " | ".join(f"L = {n}" for n in lengths) + " |", "|---" * (len(lengths) + 1) + "|"]
        for event in record["fit_lengths"]:
            cells = [f"{shape['fit_timings_s'][n][event]:.4g}" if event in shape["fit_timings_s"][n] else ""
                     for n in lengths]  # fmt: skip
            lines.append(f"| {event} | " + " | ".join(cells) + " |")
        lines += ["", "| event | L | timed directly, s | fitted, s | fitted / timed |", "|---|---|---|---|---|"]
        lines += [f"| {row['event']} | {row['L']} | {row['direct_s']:.4g} | {row['fitted_s']:.4g} | "
                  f"{row['ratio']:.2f} |" for row in shape["rows"]]  # fmt: skip
        spent = {**shape["fit_timing_cpu_s"], **shape["direct_timing_cpu_s"]}
        lines += ["", "CPU seconds of timing every event needed at a length (the first, the task's shortest T, is the "
                  "warm-up): " + ", ".join(f"L = {n}: {s:g}" for n, s in spent.items()) + ".", ""]  # fmt: skip
    return lines[:-1]


def eval_memory_table(record: dict) -> list[str]:
    lines = [source(record) + f" A chunk: at most {record['chunk_cells']:,} state cells.", "",
             "| sequences x steps, H | forward | peak resident, GiB | wall, s |", "|---|---|---|---|"]  # fmt: skip
    for row in record["rows"]:
        forward = f"chunks of {row['chunk_sequences']:,} sequences" if row["chunked"] else "one"
        lines.append(f"| {row['sequences']:,} x {row['length']:,}, {row['hidden']} | {forward} | "
                     f"{row['peak_rss_gib']:.2f} | {row['seconds']:.0f} |")  # fmt: skip
    return lines


ROOT = Path(__file__).resolve().parents[1]
RENDERERS = {"groups": groups_tables, "train_step": train_step_table, "plan": plan_line, "methods": methods_table,
             "fsync": fsync_line, "cells": cells_table, "compiled": compiled_tables, "cost": cost_tables,
             "eval_memory": eval_memory_table}  # fmt: skip


def blocks(folder: Path) -> dict[str, list[str]]:
    """Each JSON file's name -> its rendered lines."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        out[path.name] = RENDERERS[record["benchmark"]](record)
    return out


def write_blocks(page: str, rendered: dict[str, list[str]]) -> str:
    """The page with each file's block replaced; a file without a block in the page is an error."""
    for name, lines in rendered.items():
        pattern = re.compile(rf"(<!-- begin {re.escape(name)}\b[^\n]*-->\n).*?(<!-- end {re.escape(name)} -->)", re.S)
        if not pattern.search(page):
            raise SystemExit(f"benchmarks/readme.py: no block for {name} in the page; add the lines "
                             f"'<!-- begin {name} (benchmarks/readme.py) -->' and '<!-- end {name} -->' where its "
                             "tables belong")  # fmt: skip
        match = pattern.search(page)
        block = match.group(1) + "\n".join(["", *lines, ""]) + "\n" + match.group(2)
        page = page[: match.start()] + block + page[match.end() :]
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "performance.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the page's blocks differ from the JSON files")
    mode.add_argument("--print", action="store_true", help="print the blocks instead of writing the page")
    args = parser.parse_args()
    rendered = blocks(args.folder)
    if args.print:
        print("\n".join(line for name, lines in rendered.items() for line in (f"<!-- {name} -->", *lines, "")))
        return
    page = args.page.read_text()
    new = write_blocks(page, rendered)
    if args.check:
        if new != page:
            sys.exit(
                f"{args.page}: tables differ from {args.folder}; run `python benchmarks/readme.py` to rewrite them"
            )
        return
    if new != page:
        args.page.write_text(new)


if __name__ == "__main__":
    main()
