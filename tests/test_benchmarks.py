"""Every benchmark runs: its tiny mode in a subprocess, writing the JSON that docs/performance.md's tables are written
from (benchmarks/readme.py), with the machine beside the numbers. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnngrad.contract import RUN_FILES
from rnngrad.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "readme.py" and p.name[0] != "_")
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT / "src"),
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    for name in BENCHMARKS:
        extra = ["--sweep", "--limit"] if name == "groups.py" else []
        done = run(f"benchmarks/{name}", "--tiny", *extra, "--out", str(folder / name.replace(".py", ".json")))
        assert done.returncode == 0, done.stderr[-3000:]
    return folder


def test_every_benchmark_is_covered():
    assert BENCHMARKS == [
        "cells.py", "compiled.py", "cost.py", "eval_memory.py", "fsync.py", "groups.py", "methods.py", "plan.py",
        "train_step.py",
    ]  # fmt: skip


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_writes_its_numbers_with_the_machine(results, name):
    record = json.loads((results / name.replace(".py", ".json")).read_text())
    assert record["benchmark"] == name.removesuffix(".py")
    assert record["command"].startswith(f"python benchmarks/{name} --tiny")
    machine = record["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["threads"] >= 1
    assert machine["vector_isa"] in ("avx512f", "avx2", "avx", "sse4_2", "asimd", "neon", "none")
    assert machine["torch"].startswith("2.")
    if name == "plan.py":
        assert record["jobs"] > 0 and record["plan_s"] > 0
    elif name == "eval_memory.py":  # one forward, then chunks of 4 sequences; both peaks measured
        assert [(row["chunked"], row["chunk_sequences"]) for row in record["rows"]] == [(False, 32), (True, 4)]
        assert all(row["peak_rss_gib"] > 0 and row["loss"] > 0 for row in record["rows"])
    elif name == "cells.py":  # every registered cell's step, and the LSTM as it was stepped before
        assert set(record["train_step_ratio_to_rnn"]) == {*MODELS, "lstm_stepped_before"}
        assert record["generic_over_explicit_log_ratio"] > 0
    elif name == "methods.py":
        assert [row["shape"] for row in record["rows"]] == ["default", "pascanu"]
        assert all(
            row[f"{arm}_ratio"] > 0 for row in record["rows"] for arm in ("regularizer", "fresh_data", "mixed_lengths")
        )
        stacked = {row["name"]: row for row in record["stacked"]}  # each group against its arms alone, both paths
        assert {name: row["members"] for name, row in stacked.items()} == {
            "fig7": 15, "fig7_mixed": 15, "irnn": 10, "default": 12
        }  # fmt: skip
        assert stacked["fig7_mixed"]["train_lengths"] == [10, 20] and stacked["fig7"]["until_solved"]
        for row in stacked.values():
            assert row["member_ms"] > 0 and row["speedup"] > 0 and row["speedup_vs_stacked1"] > 0
            assert row["matmul_gflops"] > 0 and all(value > 0 for value in row["flops_per_update"].values())
            assert set(row["compute_limit_pct"]) == {"group", "sequential", "stacked1"}
        fig7 = stacked["fig7"]  # Omega's products: MSGD-CR's update has more FLOPs than MSGD-C's
        assert fig7["flops_per_update"]["MSGD-CR"] > fig7["flops_per_update"]["MSGD-C"]
        assert set(fig7["small_products"]) == {
            "small_baddbmm",
            "small_baddbmm_blocks",
            "small_baddbmm_slice",
            "small_addmm",
        }
        profiled = record["fig7_profile"]
        assert profiled["aten_ops_per_step"] > 0 and profiled["top_ops"][0]["op"].startswith("aten::")
        assert set(profiled["phases_ms_per_step"]) == {"draw", "forward", "backward", "omega", "update", "rest"}
    elif name == "fsync.py":  # a 20-step run writes each run file once, each with a file and a folder fsync
        assert record["fsyncs_per_run"] == 2 * len(RUN_FILES) and record["ratio"] > 0 and record["filesystem"]
    elif name == "compiled.py":  # every candidate present or skipped with a reason, each agreeing with the reference
        assert [row["shape"] for row in record["rows"]] == ["pascanu", "default"]
        for row in record["rows"]:
            cells = row["candidates"]
            assert {"reference", "batched", "torch_eager", "torch_compile"} <= set(cells)
            assert {"numba", "cpp"} <= set(cells) | set(row["skipped"])
            assert all(
                cell["one_updates_per_s"] > 0 and cell["group_per_run_updates_per_s"] > 0 for cell in cells.values()
            )
            assert all(cell["agreement_one"] < 1e-4 and cell["agreement_group"] < 1e-4
                       for candidate, cell in cells.items() if candidate != "batched")  # fmt: skip
            assert row["matmul_gflops"] > 0 and row["flops_per_update"] > 0
    elif name == "cost.py":  # each event fitted beyond its switch and timed there, for the RNN and the LSTM
        assert [shape["cell"] for shape in record["shapes"]] == ["rnn", "lstm"]
        for shape in record["shapes"]:
            assert {row["event"] for row in shape["rows"]} == set(record["fit_lengths"])
            assert all(row["direct_s"] > 0 and row["fitted_s"] > 0 for row in shape["rows"])
    elif name == "train_step.py":
        assert [row["activation"] for row in record["rows"]] == ["tanh", "relu"]
        assert all(row["rnngrad_ms"] > 0 and row["torch_nn_rnn_ms"] > 0 for row in record["rows"])


def test_groups_benchmark_measures_every_k_and_the_shape_rule(results):
    record = json.loads((results / "groups.json").read_text())
    measured = {(row["H"], row["K"], row["mode"]) for row in record["rows"]}
    for hidden in (8, 16):
        for k in (2, 3):
            assert {(hidden, k, mode) for mode in ("one run", "sequential group", "batched group")} <= measured
    assert all(row["pure_run_steps_per_s"] > 0 for row in record["rows"] if "pure_run_steps_per_s" in row)
    assert [row["cells"] for row in record["sweep"]] == [64, 256]


def test_performance_tables_name_machine_and_command(results, tmp_path):
    """readme.py writes each JSON file's tables into its block of the page, each naming its machine and command."""
    page = tmp_path / "performance.md"
    names = sorted(path.name for path in results.glob("*.json"))
    page.write_text(
        "".join(f"Prose before {name}.\n<!-- begin {name} -->\nold\n<!-- end {name} -->\n" for name in names)
    )
    done = run("benchmarks/readme.py", str(results), "--page", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    for name in BENCHMARKS:
        command = json.loads((results / name.replace(".py", ".json")).read_text())["command"]
        assert f"`{command}`" in text
    assert text.count("Measured on ") == len(BENCHMARKS) and "old" not in text
    assert all(f"Prose before {name}.\n<!-- begin {name} -->\n" in text for name in names)  # the prose is kept
    assert "| H = 8, B = 4, T = 6 | 2 | batched group |" in text
    again = run("benchmarks/readme.py", str(results), "--page", str(page), "--check")
    assert again.returncode == 0, again.stderr
    printed = run("benchmarks/readme.py", str(results), "--print")
    assert printed.returncode == 0 and printed.stdout.count("Measured on ") == len(BENCHMARKS)


def test_a_page_without_a_block_is_refused(results, tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("<!-- begin groups.json -->\n<!-- end groups.json -->\n")
    done = run("benchmarks/readme.py", str(results), "--page", str(page))
    assert done.returncode != 0 and "no block for cells.json" in done.stderr


def test_committed_performance_page_matches_the_committed_results(tmp_path):
    done = run("benchmarks/readme.py", "--check")
    assert done.returncode == 0, done.stderr
    edited = tmp_path / "performance.md"  # a hand-edited number is caught, naming the command that rewrites it
    edited.write_text(
        (ROOT / "docs" / "performance.md").read_text().replace("| batched group | 657 |", "| batched group | 999 |")
    )
    done = run("benchmarks/readme.py", "--page", str(edited), "--check")
    assert done.returncode != 0 and "run `python benchmarks/readme.py`" in done.stderr
