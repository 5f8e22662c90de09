"""Throughput of a group job (K runs in one process, one after another or batched) against one process per run.

    PYTHONPATH=src python benchmarks/groups.py [--k 12 48] [--steps 300] [--big-steps 30] [--repeats 5]
        [--sweep] [--out benchmarks/results/groups.json] [--tiny]

Measured in one run on one thread, as CPU time (this process's, and its children's for the start-up), so that
the numbers hold on a shared, loaded machine where wall time mostly measures the other jobs:
- the fixed cost of a run: process start-up with a training job's imports (`python -c "import rnngrad.cli,
  rnngrad.train"` as a subprocess), and the dataset load and model build (constructing run.Run);
- pure training steps (the loop of run.Run.run without any evaluation, logging or checkpoint due) as run-steps
  per second: one run, a sequential group of K (K runs one after another), a batched group of K (rnngrad.batched),
  and as a reference the same model trained the plain way (torch autograd, no bookkeeping), for one run and for
  K stacked runs (plain_autograd_loop);
- full runs at the default cadence (eval every 50, checkpoint every 100, the full gradient logging at step 0 and
  the end), as runs per second including the start-up: today's one process per run (start-up + train()), a
  sequential group job (one start-up + K train() calls) and a batched group job (one start-up + train_batched).
Shapes: the defaults (H=32, B=32, T=50, adding, tanh, Adam, --steps updates) and H=128, B=64, T=100 (--big-steps
updates in the full runs, to keep the benchmark short). Pure steps are measured for every K of --k, full runs for
the first. --sweep adds the shape rule's measurement: the pure-step ratio, batched group against one run, at
K = the first of --k, T = 50, for hidden x batch_size from 64 to 8192 (what rnngrad.batched.MAX_BATCHED_CELLS
rests on). --limit adds what bounds the batched ratio at the default shapes: a batched group's update time at K = 1,
2, 4, 12, 24, 48, fitted as a + b K (a: per-update cost, b: per-member cost), so that the ratio against one run's
step t_one rises toward t_one / b as K grows (a fit: blocks scatter around it); and the torch profiler's count of
ATen ops per update (one run, and the group at each K), which says whether the per-member cost is kernels or
dispatched ops. Prints and writes (--out) a JSON with the machine; --tiny runs every part at toy sizes in seconds
(the test suite does).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import write
from torch.profiler import ProfilerActivity, profile

from rnngrad import tasks
from rnngrad.batched import Group, can_batch, train_batched
from rnngrad.contract import METHODS_OFF
from rnngrad.run import Run
from rnngrad.train import train

NEVER = 10**9  # a cadence no benchmark step reaches


def make_spec(data: dict, hidden: int, batch: int, T: int, steps: int, seed: int) -> dict:  # noqa: N803
    """The default config's spec for the adding task (config/config.yaml), at the given shape."""
    return {
        "experiment": "bench", "run_id": f"r{seed}", "task": "adding", "variant": "le", "task_params": {}, "T": T,
        "model": "rnn", "activation": "tanh", "init": "orthogonal", "scale": 1.0, "clip": None, "seed": seed,
        "hidden": hidden, "optimizer": "adam", "lr": 0.001, "momentum": 0.9, "rmsprop_alpha": 0.9,
        "batch_size": batch, "steps": steps, "eval_every": 50, "checkpoint_every": 100, "dtype": "float32",
        "log_every": None, "log_at": [], "log_spectra_every": None, "log_batch": 16, "jacobian_samples": 4,
        **METHODS_OFF, "forget_bias": None, "cell": None,
        "targets": ["last"], "device": "cpu",
        "label": "RNN-tanh", "train_data": data["train"], "test_data": data["test"],
    }  # fmt: skip


def timed(fn) -> float:
    """CPU seconds of fn() in this process."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def child_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup_seconds(repeats: int) -> float:
    """Median CPU time of a fresh interpreter importing what a training job imports."""
    command = [sys.executable, "-c", "import rnngrad.cli, rnngrad.train"]
    times = []
    for _ in range(repeats):
        start = child_seconds()
        subprocess.run(command, check=True)
        times.append(child_seconds() - start)
    return statistics.median(times)


def plain_autograd_loop(k: int, hidden: int, batch: int, T: int):  # noqa: N803
    """A step of k stacked tanh RNNs on the adding task written the plain way, as a reference: one fixed batch
    in memory (no draw), the recurrence by baddbmm, squared error at the last step, autograd's backward, torch's
    Adam on the stacked parameters (per member, as Adam is elementwise). None of rnngrad's bookkeeping (draws,
    metrics, rows), but autograd in place of rnngrad's explicit BPTT backward."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(k, batch, T, 2, generator=gen)
    y = torch.rand(k, batch, generator=gen)
    W = (torch.randn(k, hidden, hidden, generator=gen) / hidden**0.5).requires_grad_()  # noqa: N806
    U = (torch.randn(k, 2, hidden, generator=gen) / 2**0.5).requires_grad_()  # noqa: N806
    b = torch.zeros(k, 1, hidden, requires_grad=True)
    V = (torch.randn(k, hidden, 1, generator=gen) / hidden**0.5).requires_grad_()  # noqa: N806
    optimizer = torch.optim.Adam([W, U, b, V], lr=1e-3)

    def step(n: int) -> None:
        for _ in range(n):
            drive = (x.reshape(k, batch * T, 2) @ U).reshape(k, batch, T, hidden)
            h = torch.zeros(k, batch, hidden)
            for t in range(T):
                h = torch.tanh(torch.baddbmm(drive[:, :, t] + b, h, W))
            loss = ((h @ V).squeeze(-1) - y).square().mean(-1).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return step


def pure_steps(specs: list[dict], root: Path, steps: int, repeats: int) -> dict[str, float]:
    """Run-steps per second of the training loop alone (nothing due but the updates), modes interleaved; beside
    them the plain autograd loops (plain_autograd_loop) for one run and for the group, as a reference."""
    runs = started_runs(specs, root / "sequential")
    group = Group(started_runs(specs, root / "batched"))

    def loop(run: Run, n: int) -> None:
        for _ in range(n):
            run_step(run)

    def batched(n: int) -> None:
        for _ in range(n):
            group.step()

    each = steps // len(runs) + 1  # updates of each member, so that a group does about `steps` run-steps
    shape = (specs[0]["hidden"], specs[0]["batch_size"], specs[0]["T"])
    plain_one, plain_group = plain_autograd_loop(1, *shape), plain_autograd_loop(len(runs), *shape)
    modes = {
        "one run": (lambda: loop(runs[0], steps), steps),
        "sequential group": (lambda: [loop(run, each) for run in runs], len(runs) * each),
        "batched group": (lambda: batched(each), len(runs) * each),
        "plain autograd loop, one run": (lambda: plain_one(steps), steps),
        "plain autograd loop, stacked group": (lambda: plain_group(each), len(runs) * each),
    }
    for fn, _ in modes.values():
        fn()  # warm-up (and the step-0 evaluation)
    times = {name: [] for name in modes}
    for _ in range(repeats):
        for name, (fn, _) in modes.items():
            times[name].append(timed(fn))
    return {name: count / statistics.median(times[name]) for name, (_, count) in modes.items()}


def run_step(run: Run) -> None:
    """One iteration of the body of run.Run.run."""
    run.before_step()
    run.end_step(run.train_step())


def started_runs(specs: list[dict], root: Path) -> list[Run]:
    """Runs ready to step with nothing but updates due (no evaluation, logging or checkpoint)."""
    runs = []
    for i, spec in enumerate(specs):
        run = Run({**spec, "steps": NEVER, "eval_every": NEVER, "checkpoint_every": NEVER}, root / f"r{i}")
        run.out_dir.mkdir(parents=True)
        run.start()
        run.logged = {}
        runs.append(run)
    return runs


def aten_ops(step, updates: int) -> float:
    """ATen ops dispatched per update, counted with the torch profiler (nested ones included)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            step()
    return sum(event.count for event in prof.key_averages() if event.key.startswith("aten::")) / updates


def batched_limit(specs: list[dict], root: Path, ks: list[int], run_steps: int, repeats: int) -> dict:
    """One run's step time t_one, the batched group's update time at each K (each timed right after t_one, median
    of `repeats`), the fit t_K = a + b K, the ceiling t_one / b, and ATen ops per update."""
    one = started_runs(specs[:1], root / "one")[0]

    def one_step() -> None:
        run_step(one)

    rows, t_ones = [], []
    for k in ks:
        group = Group(started_runs(specs[:k], root / f"K{k}"))
        updates = max(run_steps // k, 3)
        for _ in range(3):
            group.step()
            one_step()  # warm-up
        pairs = [
            (timed(lambda n=run_steps: [one_step() for _ in range(n)]) / run_steps,
             timed(lambda g=group, n=updates: [g.step() for _ in range(n)]) / updates)
            for _ in range(repeats)
        ]  # fmt: skip
        t_one, t_k = (statistics.median(part) for part in zip(*pairs, strict=True))
        t_ones.append(t_one)
        ops = aten_ops(group.step, 3)
        rows.append({"K": k, "update_ms": round(t_k * 1e3, 3), "one_run_ms": round(t_one * 1e3, 3),
                     "ratio": round(k * t_one / t_k, 3), "aten_ops_per_update": round(ops),
                     "aten_ops_per_run_step": round(ops / k, 1)})  # fmt: skip
    slope, intercept = statistics.linear_regression([row["K"] for row in rows], [row["update_ms"] for row in rows])
    t_one = statistics.median(t_ones) * 1e3
    return {
        "H": specs[0]["hidden"], "B": specs[0]["batch_size"], "T": specs[0]["T"], "rows": rows,
        "one_run_ms": round(t_one, 3), "one_run_aten_ops": round(aten_ops(one_step, 3)),
        "per_update_ms": round(intercept, 3), "per_member_ms": round(slope, 3),
        "ceiling_ratio": round(t_one / slope, 2) if slope > 0 else None,  # no per-member cost measured: toy sizes
    }  # fmt: skip


def datasets(root: Path, T: int, n_train: int, n_test: int) -> dict:  # noqa: N803
    """The default config's adding datasets (seeds 1 and 2) at length T."""
    data = {}
    for split, seed, n in (("train", 1, n_train), ("test", 2, n_test)):
        data[split] = str(root / f"adding-T{T}-{split}.npz")
        if not Path(data[split]).exists():
            tasks.generate_file(data[split], "adding", T, n, seed, "le")
    return data


def full_runs(specs: list[dict], root: Path, startup: float) -> dict[str, float]:
    """Runs per second of whole runs at the default cadence, each job paying one start-up."""
    one = timed(lambda: train(specs[0], root / "one"))
    sequential = timed(lambda: [train(spec, root / f"seq{i}") for i, spec in enumerate(specs)])
    batched = timed(lambda: train_batched(specs, [root / f"bat{i}" for i in range(len(specs))]))
    k = len(specs)
    return {
        "one run": 1 / (startup + one),
        "sequential group": k / (startup + sequential),
        "batched group": k / (startup + batched),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, nargs="+", default=[12, 48], help="runs per group (pure steps: each)")
    parser.add_argument("--steps", type=int, default=300, help="updates of a full run at the default shapes")
    parser.add_argument("--big-steps", type=int, default=30, help="updates of a full run at H=128")
    parser.add_argument("--pure-steps", type=int, default=240, help="run-steps per timed repeat of pure steps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also measure the shape rule (pure steps)")
    parser.add_argument("--limit", action="store_true", help="also measure what bounds the batched ratio")
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks that the benchmark runs")
    args = parser.parse_args()
    if args.tiny:
        args.k, args.steps, args.big_steps, args.pure_steps, args.repeats = [2, 3], 4, 2, 4, 1
    torch.set_num_threads(1)
    n_train = 64 if args.tiny else 2000
    startup = startup_seconds(1 if args.tiny else 3)
    shapes = ((8, 4, 6, 4), (16, 4, 8, 2)) if args.tiny else ((32, 32, 50, args.steps), (128, 64, 100, args.big_steps))
    rows, sweep, builds, limit = [], [], {}, None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for hidden, batch, T, steps in shapes:  # noqa: N806
            data = datasets(root, T, n_train, 256)
            shape = {"H": hidden, "B": batch, "T": T}
            specs = [make_spec(data, hidden, batch, T, steps, seed) for seed in range(max(args.k))]
            build = statistics.median(timed(lambda spec=specs[0]: Run(spec, root / "build")) for _ in range(3))
            pure_n = args.pure_steps if hidden <= 32 else max(args.pure_steps // 4, 1)
            for k in args.k:
                pure = pure_steps(specs[:k], root / f"H{hidden}-K{k}", pure_n, args.repeats)
                full = full_runs(specs[:k], root / f"H{hidden}-K{k}-full", startup) if k == args.k[0] else {}
                for mode, rate in pure.items():
                    row = {**shape, "K": k, "mode": mode, "pure_run_steps_per_s": round(rate, 1)}
                    row["pure_ratio"] = round(rate / pure["one run"], 3)
                    if mode in full:
                        row |= {"full_run_steps": steps, "full_runs_per_s": round(full[mode], 4)}
                        row["full_ratio"] = round(full[mode] / full["one run"], 3)
                    rows.append(row)
            rows.append({**shape, "K": args.k[0], "mode": "can_batch", "can_batch": can_batch(specs[: args.k[0]])})
            builds[f"H{hidden}"] = round(build * 1000, 1)
        if args.sweep:
            cells = ((8, 8), (16, 16), (32, 16), (32, 32), (32, 64), (64, 32), (64, 64), (128, 64))
            for hidden, batch in cells[:2] if args.tiny else cells:
                T = 6 if args.tiny else 50  # noqa: N806
                data = datasets(root, T, n_train, 256)
                specs = [make_spec(data, hidden, batch, T, 1, seed) for seed in range(args.k[0])]
                pure = pure_steps(specs, root / f"sweep-H{hidden}-B{batch}", args.pure_steps, args.repeats)
                ratio = pure["batched group"] / pure["one run"]
                sweep.append(
                    {"H": hidden, "B": batch, "cells": hidden * batch, "K": args.k[0], "ratio": round(ratio, 3)}
                )
        if args.limit:
            hidden, batch, T, _ = shapes[0]  # noqa: N806
            data = datasets(root, T, n_train, 256)
            ks = [1, 2, 3] if args.tiny else [1, 2, 4, 12, 24, 48]
            specs = [make_spec(data, hidden, batch, T, 1, seed) for seed in range(max(ks))]
            limit = batched_limit(specs, root / "limit", ks, args.pure_steps, args.repeats)
    write(
        args.out,
        {
            "benchmark": "groups",
            "units": "CPU time of this process, 1 thread",
            "startup_s": round(startup, 3),
            "build_ms": builds,
            "rows": rows,
            "sweep": sweep,
            "limit": limit,
        },
    )


if __name__ == "__main__":
    main()
