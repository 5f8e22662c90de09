# Shared helpers of the rule files (kept apart from the rules, as Snakemake's linter asks).
from rnngrad.provenance import PACKAGE, training_code


def group_members(wildcards):
    return GROUPS[(wildcards.experiment, wildcards.group)]


def group_inputs(wildcards):
    """A group's spec file, the datasets its runs read (no training file where every minibatch is generated
    fresh; a test file per extra evaluation length; several cells' files in a packed group) and the training
    code, with the file of each user's cell it trains (one input function: Snakemake inspects each one per
    job)."""
    members = group_members(wildcards)
    return {
        "specs": rnngrad_groups.specs_path(
            RESULTS, wildcards.experiment, wildcards.group
        ),
        "train": sorted({s["train_data"] for s in members if s["train_data"]}),
        "test": sorted({p for s in members for p in (s["test_data"], *s["eval_data"])}),
        "code": TRAINING_CODE,
        "cells": sorted({CELL_FILES[s["cell"]] for s in members if s["cell"]}),
    }


def cell_files(cells):
    """The file defining each user's cell (module:Class -> path; torch is imported only where there are some)."""
    if not cells:
        return {}
    from rnngrad.models import cell_source

    return {target: cell_source(target)["file"] for target in cells.values()}


def experiment_groups(groups):
    """Each experiment's group status files (built once: the tables rule asks twice per experiment)."""
    statuses = {}
    for experiment, group in groups:
        path = rnngrad_groups.status_path(RESULTS, experiment, group)
        statuses.setdefault(experiment, []).append(path)
    return statuses


# Editing the training code makes every run stale: each training job takes it as an input.
TRAINING_CODE = [
    f"src/rnngrad/{path.relative_to(PACKAGE).as_posix()}" for path in training_code()
]
EXPERIMENT_GROUPS = experiment_groups(GROUPS)
# ... and editing the file that defines a user's cell makes that cell's runs stale (module:Class -> its file).
CELL_FILES = cell_files(config.get("cells", {}))
