"""Cost per training step of the papers' methods against a plain step, measured in one run.

    PYTHONPATH=src python benchmarks/methods.py [--repeats 20] [--block 10] [--threads 1] [--tiny] [--out bench.json]
        [--stacked-repeats 10]

Each arm is a real run (rnngrad.run.Run.train_step on a spec expanded from config/config.yaml) at two shapes,
float32, tanh, plain SGD (lr 0.01) clipped at 1, Pascanu et al. 2013's MSGD-C:
  plain          the stored training set (the default: minibatches sampled from data.n_train sequences);
  regularizer    + Pascanu's Omega with alpha 2 (MSGD-CR): a second backward recursion and one [H, H] product;
  fresh_data     every minibatch generated from (seed, step) instead of sampled;
  mixed_lengths  fresh data with T drawn per minibatch from [T/2, 3T/2] (mean T, so the recurrence costs the same
                 on average).
train_until_solved and eval_lengths add nothing per step (a comparison at each evaluation; one test at the end).
Shapes: the default config's (adding, H=32, B=32, T=50) and Pascanu's Fig. 7 (temporal order, H=50, B=20, T=50).
Each timing is this process's CPU time over a block of steps (steadier than wall time on a shared machine), the
arms interleaved; the median block gives ms a step. --tiny: T=20 and 2 blocks of 2 steps, to check that it runs.

``fig7_stacked``: Fig. 7's three arms (MSGD: no clip; MSGD-C: clip 1; MSGD-CR: clip 1 and Omega with alpha 4) x 5
seeds at one length, the Pascanu shape with fresh data (until solved off, so every member takes every step), as one
stacked group of 15 (rnngrad.batched.Group.step with groups.stack_methods) against each arm's run alone on the
sequential path (Run.train_step), blocks interleaved: ms a group update, ms a member's update (the group's over
15), and the speed-up of updates per second per run, the arms' mean sequential step over a member's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _machine import write
from _spec import default_config, one_run_spec

from rnngrad.batched import Group, can_batch
from rnngrad.run import Run

SHAPES = {  # name: (task, H, B, T)
    "default": ("adding", 32, 32, 50),
    "pascanu": ("temporal_order", 50, 20, 50),
}
ARMS = {
    "plain": {},
    "regularizer": {"regularizer": 2.0},
    "fresh_data": {"fresh_data": True},
    "mixed_lengths": {"fresh_data": True, "train_lengths": "half_to_one_and_a_half_T"},
}


def arm_spec(shape: str, arm: str, T: int, root: Path) -> dict:  # noqa: N803 - the papers' name
    """The spec of one arm, expanded from the default config so that every key is the pipeline's own."""
    task, hidden, batch, _ = SHAPES[shape]
    settings = {key: value for key, value in ARMS[arm].items() if key != "regularizer"}
    if "train_lengths" in settings:
        settings["train_lengths"] = [T // 2, T + T // 2]
    train = {"hidden": hidden, "batch_size": batch, "optimizer": "sgd", "lr": 0.01, "steps": 10**6, **settings}
    grid = {"task": [task], "T": [T], "activation": ["tanh"], "init": ["orthogonal"], "scale": [1.0], "clip": [1.0],
            "regularizer": [ARMS[arm].get("regularizer", 0)], "seed": [0]}  # fmt: skip
    return {**one_run_spec(default_config(), grid, train, root, shape), "eval_every": 10**6}


def measure(shape: str, T: int, repeats: int, block: int, root: Path) -> dict:  # noqa: N803
    runs = {arm: Run(arm_spec(shape, arm, T, root), root / shape / arm) for arm in ARMS}

    def steps(run: Run) -> None:
        for _ in range(block):
            assert run.train_step(), "a benchmark step diverged"
            run.step += 1

    for run in runs.values():
        steps(run)  # warm-up
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(repeats):
        for arm, run in runs.items():
            start = time.process_time()
            steps(run)
            times[arm].append((time.process_time() - start) / block)
    ms = {arm: 1000 * statistics.median(values) for arm, values in times.items()}
    task, hidden, batch, _ = SHAPES[shape]
    row = {"shape": shape, "task": task, "H": hidden, "B": batch, "T": T}
    row |= {f"{arm}_ms": round(value, 4) for arm, value in ms.items()}
    return row | {f"{arm}_ratio": round(ms[arm] / ms["plain"], 3) for arm in ARMS if arm != "plain"}


FIG7_ARMS = {"MSGD": (None, 0.0), "MSGD-C": (1.0, 0.0), "MSGD-CR": (1.0, 4.0)}  # arm: (clip, alpha)
FIG7_SEEDS = 5


def measure_fig7_stacked(T: int, repeats: int, block: int, root: Path) -> dict:  # noqa: N803
    """Fig. 7's 15 runs stacked against each arm alone on the sequential path (module docstring)."""
    base = {**arm_spec("pascanu", "fresh_data", T, root), "checkpoint_every": 10**6, "stack_methods": True}
    specs = {
        (arm, seed): {**base, "clip": clip, "regularizer": alpha, "seed": seed, "run_id": f"{arm}/seed{seed}"}
        for arm, (clip, alpha) in FIG7_ARMS.items()
        for seed in range(FIG7_SEEDS)
    }
    assert can_batch(list(specs.values())), "the Fig. 7 group must take the stacked path"
    members = [Run(spec, root / "fig7" / "stacked" / spec["run_id"]) for spec in specs.values()]
    alone = {arm: Run(specs[(arm, 0)], root / "fig7" / "alone" / arm) for arm in FIG7_ARMS}
    for run in [*members, *alone.values()]:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        run.start()
    group = Group(members)

    def group_steps() -> None:
        for _ in range(block):
            group.step()
        assert len(group.active) == len(members), "a benchmark member diverged"

    def alone_steps(run: Run) -> None:
        for _ in range(block):
            run.before_step()
            assert run.train_step(), "a benchmark step diverged"
            run.step += 1

    group_steps()  # warm-up (and step 0's evaluation and gradient logging)
    for run in alone.values():
        alone_steps(run)
    times: dict[str, list[float]] = {name: [] for name in ("group", *FIG7_ARMS)}
    for _ in range(repeats):
        for name in times:
            start = time.process_time()
            if name == "group":
                group_steps()
            else:
                alone_steps(alone[name])
            times[name].append((time.process_time() - start) / block)
    ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
    member_ms = ms["group"] / len(members)
    sequential_ms = statistics.mean(ms[arm] for arm in FIG7_ARMS)
    return {
        "task": "temporal_order", "H": base["hidden"], "B": base["batch_size"], "T": T, "members": len(members),
        "group_ms": round(ms["group"], 4), "member_ms": round(member_ms, 4),
        **{f"{arm}_alone_ms": round(ms[arm], 4) for arm in FIG7_ARMS},
        "speedup": round(sequential_ms / member_ms, 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed blocks per arm and shape")
    parser.add_argument("--block", type=int, default=10, help="steps in a timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="T=20, 2 blocks of 2 steps: checks that it runs")
    parser.add_argument("--stacked-repeats", type=int, default=10, help="timed blocks of the Fig. 7 group and arms")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, block = (2, 2) if args.tiny else (args.repeats, args.block)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(shape, 20 if args.tiny else SHAPES[shape][3], repeats, block, Path(tmp)) for shape in SHAPES]
        stacked_repeats = 2 if args.tiny else args.stacked_repeats
        fig7 = measure_fig7_stacked(20 if args.tiny else SHAPES["pascanu"][3], stacked_repeats, block, Path(tmp))
    record = {"benchmark": "methods", "repeats": repeats, "block": block, "rows": rows}
    write(args.out, record | {"stacked_repeats": stacked_repeats, "fig7_stacked": fig7})


if __name__ == "__main__":
    main()
