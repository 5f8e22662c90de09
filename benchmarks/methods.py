"""Cost per training step of the papers' methods against a plain step, measured in one run.

    PYTHONPATH=src python benchmarks/methods.py [--repeats 20] [--block 10] [--threads 1] [--tiny] [--out bench.json]

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
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _machine import write

from rnngrad import config as configuration
from rnngrad import tasks
from rnngrad.run import Run

ROOT = Path(__file__).resolve().parents[1]
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
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["tasks"].setdefault("temporal_order", {"variant": "pascanu", "solved_accuracy": 0.99})
    settings = {key: value for key, value in ARMS[arm].items() if key != "regularizer"}
    if "train_lengths" in settings:
        settings["train_lengths"] = [T // 2, T + T // 2]
    train = {"hidden": hidden, "batch_size": batch, "optimizer": "sgd", "lr": 0.01, "steps": 10**6, **settings}
    grid = {"task": [task], "T": [T], "activation": ["tanh"], "init": ["orthogonal"], "scale": [1.0], "clip": [1.0],
            "regularizer": [ARMS[arm].get("regularizer", 0)], "seed": [0]}  # fmt: skip
    config["experiments"] = {"bench": {"grid": [grid], "train": train}}
    config["figures"] = {}
    config["logging"].update(every=None, spectra_every=None, at=[])
    (spec,) = configuration.expand(copy.deepcopy(config))
    for split in ("train", "test"):
        path = root / f"{shape}-{T}-{split}.npz"
        if not path.exists():
            n = config["data"][f"n_{split}"]
            tasks.generate_file(
                path, task, T, n, config["data"][f"{split}_seed"], spec["variant"], **spec["task_params"]
            )
        spec[f"{split}_data"] = None if split == "train" and spec["fresh_data"] else str(path)
    return {**spec, "eval_every": 10**6, "device": "cpu"}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed blocks per arm and shape")
    parser.add_argument("--block", type=int, default=10, help="steps in a timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="T=20, 2 blocks of 2 steps: checks that it runs")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, block = (2, 2) if args.tiny else (args.repeats, args.block)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(shape, 20 if args.tiny else SHAPES[shape][3], repeats, block, Path(tmp)) for shape in SHAPES]
    write(args.out, {"benchmark": "methods", "repeats": repeats, "block": block, "rows": rows})


if __name__ == "__main__":
    main()
