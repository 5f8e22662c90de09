"""Train runs from their resolved specs: one run (:func:`train`) or a group of runs in one process
(:func:`train_group`, grouping rule in :mod:`rnngrad.groups`), stacked on a leading axis (:mod:`rnngrad.batched`)
where that is faster, else one after another (:mod:`rnngrad.run`). Each run writes exactly the files it writes
when trained alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from rnngrad import batched
from rnngrad.io import locked_folders
from rnngrad.run import Run
from rnngrad.run_files import completed_status


def train(spec: dict, out_dir: str | Path) -> dict:
    """Run (or resume) one training run on the spec's datasets and write its files into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    return Run(spec, out_dir).run()


def train_group(specs: list[dict], runs_dir: str | Path, threads: int = 1, stack: bool = True) -> dict:
    """Train a group of runs in one process, each into ``runs_dir/{run_id}``: stacked on a leading axis where
    :func:`rnngrad.batched.can_batch` says that is faster (and ``stack`` allows it), else one after another.

    Members already complete (same spec, same training code, files intact) are kept, so a group killed part-way
    resumes where it stopped: finished members are kept, interrupted ones resume from their checkpoints.
    Only runs that share their shapes and hyperparameters are stacked together (:func:`rnngrad.batched.stack_parts`):
    a group packing several cells (``groups.pack_cells``) trains them part by part.
    Returns the group's status: each member's outcome, whether it was kept, its path and the group's wall time.
    The members' folders are locked for the whole job (:func:`rnngrad.io.locked_folders`): a folder that another
    live process is writing into stops the job before it writes anything.
    """
    torch.set_num_threads(threads)
    out_dirs = [Path(runs_dir) / spec["run_id"] for spec in specs]
    with locked_folders(out_dirs):
        return _train_group(specs, out_dirs, threads, stack)


def _train_group(specs: list[dict], out_dirs: list[Path], threads: int, stack: bool) -> dict:
    kept = {i: completed_status(spec, out_dir) for i, (spec, out_dir) in enumerate(zip(specs, out_dirs, strict=True))}
    todo = [i for i, status in kept.items() if status is None]
    print(f"group of {len(specs)} runs: {len(specs) - len(todo)} complete and kept, {len(todo)} to train", flush=True)
    start = time.perf_counter()
    trained, paths = {}, {}
    for part in batched.stack_parts([specs[i] for i in todo]):
        members = [todo[j] for j in part]
        part_specs = [specs[i] for i in members]
        stacked = stack and batched.can_batch(part_specs)
        methods = batched.unstacked_methods(part_specs) if stack else []
        why = f" ({', '.join(methods)}: groups.stack_methods is false)" if methods else ""
        print(f"{len(members)} runs from {part_specs[0]['run_id']} "
              f"{'stacked (batched path)' if stacked else 'one after another' + why}", flush=True)  # fmt: skip
        if stacked:
            statuses = batched.train_batched(part_specs, [out_dirs[i] for i in members])
        else:
            statuses = []
            for position, i in enumerate(members, start=1):
                print(f"group member {position}/{len(members)}: {specs[i]['run_id']}", flush=True)
                statuses.append(train(specs[i], out_dirs[i]))
        trained.update(zip(members, statuses, strict=True))
        paths.update(dict.fromkeys(members, "batched" if stacked else "sequential"))
    outcomes = [
        {
            "run_id": spec["run_id"],
            "status": (kept[i] or trained[i])["status"],
            "kept": kept[i] is not None,
            "path": paths.get(i),  # None for a kept member
        }
        for i, spec in enumerate(specs)
    ]
    seconds = round(time.perf_counter() - start, 3)
    return {"runs": outcomes, "seconds": seconds, "threads": threads}
