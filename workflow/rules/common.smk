# Shared helpers of the rule files (kept apart from the rules, as Snakemake's linter asks).


def run_spec(wildcards):
    return RUNS[(wildcards.experiment, wildcards.run)]


def run_data(wildcards):
    """The run's train and test datasets (one input function: Snakemake inspects each one per job)."""
    spec = run_spec(wildcards)
    return {"train": spec["train_data"], "test": spec["test_data"]}


def group_run_dirs(runs):
    """Each experiment's run folders, in grid order (built once: the tables rule asks twice per experiment)."""
    run_dirs = {}
    for experiment, run in runs:
        run_dirs.setdefault(experiment, []).append(f"results/runs/{experiment}/{run}")
    return run_dirs


EXPERIMENT_RUN_DIRS = group_run_dirs(RUNS)


def experiment_run_dirs(experiment):
    return list(EXPERIMENT_RUN_DIRS.get(experiment, []))
