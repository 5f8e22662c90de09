"""Run groups: the unit of execution (the run stays the unit of results).

Grouping rule. Runs of one experiment that share task, T, model, activation and init form a *cell*: they share
shapes, datasets and hyperparameters and differ only in scale, clip and seed. A cell's runs, in grid order, are
cut into consecutive groups of at most ``groups.max_runs`` runs (a config key). So
- a changed hyperparameter (an experiment's ``train`` or ``logging`` block) reruns the groups of that experiment
  only, and a changed grid axis reruns only the cells it touches;
- process start-up (about 2 s of imports) is paid once per group, and a group's members can be stacked on a
  leading axis (:mod:`rnngrad.batched`) because they share their shapes;
- ``max_runs`` sizes a job: small enough to keep every core busy and to keep a cluster job within its time
  limit, large enough that start-up is a small part of it.

``groups.pack_cells: true`` then joins an experiment's consecutive groups into jobs of at most ``max_runs`` runs
(ids ``packed/g{index}``): for grids of many small cells, such as ``rnngrad miniature``'s, where start-up would
dominate. A job then trains each set of runs that share their shapes apart (:func:`rnngrad.batched.stack_parts`),
and a changed cell reruns its pack (and the packs after it where its number of runs changed), whose unchanged
runs are kept as complete.

``groups.stack_methods`` (default true) lets the papers' methods (:data:`STACK_METHODS`: the regulariser, fresh
data, training until solved, extra evaluation lengths, mixed training lengths) train stacked (:mod:`rnngrad.batched`):
each spec that uses one of them gets ``stack_methods: true`` in its spec. The stacked path agrees with the sequential
one within float32 rounding only (tests/test_batched.py), so ``stack_methods: false`` is a choice a config can make:
those runs then train one after another, with other bits, and the key in their specs tells the two apart (runs
using none of the methods are the same either way).

Each group's specs reach its job as a file, ``{results}/groups/{experiment}/{group}/specs.json``, and each
experiment's run folders as ``{results}/groups/{experiment}/runs.txt``: command lines never grow with the number of
runs. :func:`write_plan` writes them when the workflow is planned (rewriting a file only when its content changes)
and returns each file's sha256, which the rules pass as a param: Snakemake reruns a job when its params change, so
exactly the changed groups rerun, and a config changed and changed back reruns nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rnngrad.contract import STACK_METHODS
from rnngrad.io import atomic_write

CELL_AXES = ("task", "T", "model", "activation", "init")  # what a group's runs share (with the experiment)


def cell_id(spec: dict) -> str:
    """``adding/T50/tanh/orthogonal`` for an RNN, ``adding/T50/lstm`` for the LSTM (any other cell: its name)."""
    arch = f"{spec['activation']}/{spec['init']}" if spec["model"] == "rnn" else spec["model"]
    return f"{spec['task']}/T{spec['T']}/{arch}"


def uses_stack_methods(spec: dict) -> bool:
    """Whether the run uses one of :data:`STACK_METHODS`."""
    return any(spec[key] for key in STACK_METHODS)


def group_specs(
    specs: list[dict], max_runs: int, pack_cells: bool = False, stack_methods: bool = True
) -> dict[tuple[str, str], list[dict]]:
    """(experiment, group id) -> the group's specs, in grid order; group ids are ``{cell}/g{index}``, or
    ``packed/g{index}`` with ``pack_cells``. With ``stack_methods``, each spec using one of :data:`STACK_METHODS`
    carries ``stack_methods: true`` (the others are unchanged)."""
    if max_runs < 1:
        raise ValueError(f"groups.max_runs: must be >= 1, got {max_runs!r}")
    if stack_methods:
        specs = [{**spec, "stack_methods": True} if uses_stack_methods(spec) else spec for spec in specs]
    cells: dict[tuple[str, str], list[dict]] = {}
    for spec in specs:
        cells.setdefault((spec["experiment"], cell_id(spec)), []).append(spec)
    groups = {}
    for (experiment, cell), members in cells.items():
        for index, start in enumerate(range(0, len(members), max_runs)):
            groups[(experiment, f"{cell}/g{index}")] = members[start : start + max_runs]
    return _packed(groups, max_runs) if pack_cells else groups


def _packed(groups: dict[tuple[str, str], list[dict]], max_runs: int) -> dict[tuple[str, str], list[dict]]:
    """An experiment's consecutive groups joined while a job stays within ``max_runs`` runs."""
    packs: dict[str, list[list[dict]]] = {}
    for (experiment, _), members in groups.items():
        experiment_packs = packs.setdefault(experiment, [[]])
        if len(experiment_packs[-1]) + len(members) > max_runs:
            experiment_packs.append([])
        experiment_packs[-1].extend(members)
    return {
        (experiment, f"packed/g{index}"): members
        for experiment, experiment_packs in packs.items()
        for index, members in enumerate(experiment_packs)
    }


def specs_path(results: str, experiment: str, group: str) -> str:
    return f"{results}/groups/{experiment}/{group}/specs.json"


def status_path(results: str, experiment: str, group: str) -> str:
    return f"{results}/groups/{experiment}/{group}/status.json"


def run_list_path(results: str, experiment: str) -> str:
    return f"{results}/groups/{experiment}/runs.txt"


def run_dir(results: str, spec: dict) -> str:
    return f"{results}/runs/{spec['experiment']}/{spec['run_id']}"


def _write_if_changed(path: str | Path, text: str) -> str:
    """Write ``text`` unless the file holds it already; return its sha256."""
    path = Path(path)
    if not path.exists() or path.read_text() != text:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return hashlib.sha256(text.encode()).hexdigest()


def write_plan(groups: dict[tuple[str, str], list[dict]], results: str) -> dict[tuple[str, str] | str, str]:
    """Write each group's specs.json and each experiment's runs.txt; return their sha256 by (experiment, group)
    and by experiment."""
    hashes: dict[tuple[str, str] | str, str] = {}
    run_dirs: dict[str, list[str]] = {}
    for (experiment, group), members in groups.items():
        text = json.dumps(members, indent=1, sort_keys=True) + "\n"
        hashes[(experiment, group)] = _write_if_changed(specs_path(results, experiment, group), text)
        run_dirs.setdefault(experiment, []).extend(run_dir(results, spec) for spec in members)
    for experiment, dirs in run_dirs.items():
        hashes[experiment] = _write_if_changed(run_list_path(results, experiment), "".join(f"{d}\n" for d in dirs))
    return hashes


def read_run_list(path: str | Path) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line]
