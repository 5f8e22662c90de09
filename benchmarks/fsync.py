"""What durable writes cost a run: one training run with the fsyncs of rnngrad.io.atomic_write, and without them
(os.fsync replaced by a no-op), measured in one process, alternating, on the folder given.

    python benchmarks/fsync.py [--dir results] [--repeats 5] [--out fsync.json]   (--tiny: a 20-step run, once)

The run is the smoke config's `lengths` run (adding, T = 8, H = 8, batch 8, 400 steps, a checkpoint every 50):
small, so the writes weigh as much as they ever do against the training. Reports the median wall time of a run
with and without fsync, their ratio, the fsyncs a run makes and the time spent inside them (median over runs),
(the files' and the folders' apart), with the machine (CPU model, vector ISA, cores) and the filesystem of --dir,
on which the cost depends most.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _machine import write

from rnngrad import tasks
from rnngrad.contract import METHODS_OFF
from rnngrad.train import train


def filesystem(path: Path) -> str:
    """The type of the filesystem holding path (the longest mount point above it in /proc/mounts)."""
    path, best = path.resolve(), ("", "unknown")
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, *_ = line.split()
        if (path == Path(mount) or Path(mount) in path.parents) and len(mount) > len(best[0]):
            best = (mount, kind)
    return best[1]


def lengths_spec(data: Path, steps: int) -> dict:
    """smoke.yaml's `lengths` run (T = 8, relu, no clipping), on datasets generated into data."""
    paths = {}
    for split, seed in (("train", 1), ("test", 2)):
        paths[split] = data / f"{split}.npz"
        tasks.generate_file(paths[split], "adding", 8, 64 if split == "train" else 32, seed, "le")
    return {
        "experiment": "lengths", "run_id": "adding/T8/relu/orthogonal-1.0/seed0", "task": "adding", "variant": "le",
        "task_params": {}, "T": 8, "model": "rnn", "activation": "relu", "init": "orthogonal", "scale": 1.0,
        "clip": None, "seed": 0, "hidden": 8, "optimizer": "adam", "lr": 0.001, "momentum": 0.9,
        "rmsprop_alpha": 0.9, "batch_size": 8, "steps": steps, "eval_every": 50, "checkpoint_every": 50,
        "dtype": "float32", "log_every": None, "log_at": [], "log_spectra_every": None, "log_batch": 8,
        **METHODS_OFF, "forget_bias": None, "cell": None,
        "jacobian_samples": 2, "targets": ["last"], "device": "cpu", "threads": 1, "label": "RNN-relu",
        "train_data": str(paths["train"]), "test_data": str(paths["test"]),
    }  # fmt: skip


def timed_run(spec: dict, out_dir: Path, sync: bool) -> tuple[float, int, float, float]:
    """Wall seconds of one run into out_dir, its number of fsyncs, and the seconds spent in the fsyncs of files and
    in those of folders (0 without)."""
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        start = time.perf_counter()
        if sync:
            real_fsync(fd)
        calls.append((stat.S_ISDIR(os.fstat(fd).st_mode), time.perf_counter() - start))

    os.fsync = fsync
    try:
        start = time.perf_counter()
        train(spec, out_dir)
        seconds = time.perf_counter() - start
    finally:
        os.fsync = real_fsync
        shutil.rmtree(out_dir)
    in_files, in_folders = (
        sum(t for is_dir, t in calls if is_dir == folder) if sync else 0.0 for folder in (False, True)
    )
    return seconds, len(calls), in_files, in_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="where the runs are written (their filesystem is measured)")
    parser.add_argument("--repeats", type=int, default=5, help="runs with fsync and as many without")
    parser.add_argument("--tiny", action="store_true", help="a 20-step run, once each way (for the tests)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, repeats = (20, 1) if args.tiny else (400, args.repeats)
    with tempfile.TemporaryDirectory(prefix=".fsync-benchmark-", dir=args.dir) as folder:
        spec = lengths_spec(Path(folder), steps)
        timed_run(spec, Path(folder) / "warm-up", sync=False)  # imports and first-call costs, in neither column
        results = {True: [], False: []}
        for _ in range(repeats):
            for sync in (True, False):
                results[sync].append(timed_run(spec, Path(folder) / "run", sync))
    with_sync, without = (statistics.median(r[0] for r in results[sync]) for sync in (True, False))
    write(
        args.out,
        {
            "benchmark": "fsync",
            "filesystem": filesystem(Path(args.dir)),
            "steps": steps,
            "repeats": repeats,
            "run_seconds_with_fsync": with_sync,
            "run_seconds_without_fsync": without,
            "ratio": with_sync / without,
            "fsyncs_per_run": results[True][0][1],
            "seconds_in_file_fsyncs_per_run": statistics.median(r[2] for r in results[True]),
            "seconds_in_folder_fsyncs_per_run": statistics.median(r[3] for r in results[True]),
        },
    )


if __name__ == "__main__":
    main()
